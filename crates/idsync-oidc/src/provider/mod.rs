//! The OpenID provider: idsync is the identity provider the products trust.
//!
//! Handlers take parsed request parameters and return a [`Response`]; the server mounts them:
//!
//! ```text
//! GET  {issuer}/.well-known/openid-configuration -> provider.discovery()
//! GET  {jwks_uri}                                 -> provider.jwks()
//! GET  {authorization_endpoint}?...               -> provider.authorize(&pairs)
//!        Ok(request)  -> sign the user in (upstream), then provider.issue_code(&request, user)
//!                        or provider.refuse(&request, "access_denied", why)
//!        Err(response) -> render it (an error page, or an error redirect to a registered URI)
//! POST {token_endpoint}                            -> provider.token(&form, authorization)
//! GET  {userinfo_endpoint}                         -> provider.userinfo(authorization)
//! ```

mod authorize;
mod response;
mod store;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use idsync_core::Clock;
use ring::signature::RsaKeyPair;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use authorize::AuthorizationRequest;
pub use response::Response;
pub use store::{AccessGrant, CodeGrant, MemoryStore, ProviderStore, Redeemed, StoreError};

use crate::jose::{JoseError, JwkSet};
use crate::keys::{KeyError, KeyRotation, KeySet};

/// The longest an authorization code may live (RFC 6749 §4.1.2 recommends 10 minutes at most).
pub const MAX_CODE_TTL_S: i64 = 600;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("OpenID provider settings: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("signing the ID token: {0}")]
    Signing(#[from] JoseError),
}

/// The provider's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderConfig {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: String,
    pub jwks_uri: String,
    pub code_ttl_s: i64,
    pub id_token_ttl_s: i64,
    pub access_token_ttl_s: i64,
    pub key_rotation: KeyRotation,
}

impl ProviderConfig {
    /// Endpoints under the issuer (`/authorize`, `/token`, `/userinfo`, `/jwks`), codes valid
    /// 60 s, ID and access tokens 10 minutes, keys rotated every 90 days with 2 days' overlap.
    pub fn new(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into().trim_end_matches('/').to_owned();
        Self {
            authorization_endpoint: format!("{issuer}/authorize"),
            token_endpoint: format!("{issuer}/token"),
            userinfo_endpoint: format!("{issuer}/userinfo"),
            jwks_uri: format!("{issuer}/jwks"),
            issuer,
            code_ttl_s: 60,
            id_token_ttl_s: 600,
            access_token_ttl_s: 600,
            key_rotation: KeyRotation::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ProviderError> {
        for (name, value) in [
            ("issuer", &self.issuer),
            ("authorization_endpoint", &self.authorization_endpoint),
            ("token_endpoint", &self.token_endpoint),
            ("userinfo_endpoint", &self.userinfo_endpoint),
            ("jwks_uri", &self.jwks_uri),
        ] {
            crate::rp::check_endpoint(name, value)
                .map_err(|e| ProviderError::Config(e.to_string()))?;
        }
        if !(1..=MAX_CODE_TTL_S).contains(&self.code_ttl_s) {
            return Err(ProviderError::Config(format!(
                "code_ttl_s must be 1 to {MAX_CODE_TTL_S}"
            )));
        }
        if self.id_token_ttl_s < 1 || self.access_token_ttl_s < 1 {
            return Err(ProviderError::Config(
                "token lifetimes must be 1 s or more".into(),
            ));
        }
        self.key_rotation.validate()?;
        if self.key_rotation.overlap_ms < self.id_token_ttl_s * 1000 {
            return Err(ProviderError::Config(
                "the key overlap must be at least the ID token lifetime".into(),
            ));
        }
        Ok(())
    }
}

/// A product registered with the provider.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    /// `None`: a public client (no secret; PKCE always required).
    pub client_secret: Option<String>,
    /// Compared exactly, character for character: no prefixes, no wildcards.
    pub redirect_uris: Vec<String>,
    /// Whether a confidential client must use PKCE too (public clients always must).
    pub require_pkce: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("confidential", &self.client_secret.is_some())
            .field("redirect_uris", &self.redirect_uris)
            .field("require_pkce", &self.require_pkce)
            .finish()
    }
}

impl Client {
    fn pkce_required(&self) -> bool {
        self.require_pkce || self.client_secret.is_none()
    }
}

/// Who signed in, as the products see them: `groups` are names (after the flow's group rules).
/// Attributes that are `None` are left out of the tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// `sub`: stable for the user.
    pub subject: String,
    /// `preferred_username`.
    pub username: Option<String>,
    pub email: Option<String>,
    /// `name`.
    pub display_name: Option<String>,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The user's claims (`sub`, `preferred_username`, `email`, `name`, `groups`).
    pub(crate) fn claims(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), json!(self.subject));
        if let Some(v) = &self.username {
            claims.insert("preferred_username".into(), json!(v));
        }
        if let Some(v) = &self.email {
            claims.insert("email".into(), json!(v));
        }
        if let Some(v) = &self.display_name {
            claims.insert("name".into(), json!(v));
        }
        claims.insert("groups".into(), json!(self.groups));
        claims
    }
}

struct LoadedKeys {
    set: KeySet,
    signer: Arc<RsaKeyPair>,
    jwks: JwkSet,
}

impl LoadedKeys {
    fn new(set: KeySet) -> Result<Self, KeyError> {
        let signer = Arc::new(set.current.key_pair()?);
        let jwks = set.jwks()?;
        Ok(Self { set, signer, jwks })
    }
}

/// The OpenID provider.
pub struct Provider {
    config: ProviderConfig,
    clients: HashMap<String, Client>,
    store: Arc<dyn ProviderStore>,
    clock: Arc<dyn Clock>,
    keys: RwLock<Arc<LoadedKeys>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("config", &self.config)
            .field("clients", &self.clients.values().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

async fn generate_off_thread(now_ms: i64) -> Result<KeySet, KeyError> {
    tokio::task::spawn_blocking(move || KeySet::generate(now_ms))
        .await
        .map_err(|e| KeyError::Generate(e.to_string()))?
}

impl Provider {
    /// A provider with its keys from the store, or new keys (generated and stored) the first
    /// time; keys due for rotation are rotated.
    pub async fn start(
        config: ProviderConfig,
        clients: Vec<Client>,
        store: Arc<dyn ProviderStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ProviderError> {
        config.validate()?;
        let mut map = HashMap::new();
        for client in clients {
            if client.client_id.is_empty() || client.redirect_uris.is_empty() {
                return Err(ProviderError::Config(format!(
                    "client {:?} needs an id and at least one redirect URI",
                    client.client_id
                )));
            }
            for uri in &client.redirect_uris {
                let parsed = crate::rp::check_endpoint("redirect URI", uri)
                    .map_err(|e| ProviderError::Config(e.to_string()))?;
                if parsed.fragment().is_some() {
                    return Err(ProviderError::Config(format!(
                        "redirect URI {uri:?} has a fragment"
                    )));
                }
            }
            if map.insert(client.client_id.clone(), client).is_some() {
                return Err(ProviderError::Config("two clients share an id".into()));
            }
        }
        let now = clock.now_ms();
        let set = match store.load_keys().await? {
            Some(set) => set,
            None => {
                let set = generate_off_thread(now).await?;
                store.save_keys(&set).await?;
                tracing::info!(kid = %set.current.kid, "generated the OpenID provider's signing key");
                set
            }
        };
        let provider = Self {
            config,
            clients: map,
            store,
            clock,
            keys: RwLock::new(Arc::new(LoadedKeys::new(set)?)),
        };
        provider.maintain_keys().await?;
        Ok(provider)
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// A registered client by id (to name the product on the sign-in pages).
    pub fn client(&self, client_id: &str) -> Option<&Client> {
        self.clients.get(client_id)
    }

    fn loaded(&self) -> Arc<LoadedKeys> {
        match self.keys.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The key set as it is now (to show which keys are published).
    pub fn key_set(&self) -> KeySet {
        self.loaded().set.clone()
    }

    /// Rotates the signing key when due and drops a previous key past its overlap; stores the
    /// set when it changed. Call it periodically (hourly is plenty). Returns whether it changed.
    pub async fn maintain_keys(&self) -> Result<bool, ProviderError> {
        let now = self.clock.now_ms();
        let rotation = self.config.key_rotation;
        let mut set = self.loaded().set.clone();
        let mut changed = set.prune(now, &rotation);
        if set.rotation_due(now, &rotation) {
            let next = tokio::task::spawn_blocking(move || crate::keys::SigningKey::generate(now))
                .await
                .map_err(|e| KeyError::Generate(e.to_string()))??;
            set.rotate(next, now);
            changed = true;
            tracing::info!(kid = %set.current.kid, "rotated the OpenID provider's signing key");
        }
        if changed {
            self.store.save_keys(&set).await?;
            let loaded = Arc::new(LoadedKeys::new(set)?);
            match self.keys.write() {
                Ok(mut guard) => *guard = loaded,
                Err(poisoned) => *poisoned.into_inner() = loaded,
            }
        }
        Ok(changed)
    }

    /// `GET /.well-known/openid-configuration`.
    pub fn discovery(&self) -> Response {
        let c = &self.config;
        Response::json(
            200,
            json!({
                "issuer": c.issuer,
                "authorization_endpoint": c.authorization_endpoint,
                "token_endpoint": c.token_endpoint,
                "userinfo_endpoint": c.userinfo_endpoint,
                "jwks_uri": c.jwks_uri,
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "email", "groups"],
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce",
                    "preferred_username", "email", "name", "groups"],
                "token_endpoint_auth_methods_supported":
                    ["client_secret_basic", "client_secret_post", "none"],
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": true,
                "claims_parameter_supported": false,
                "request_parameter_supported": false,
                "request_uri_parameter_supported": false,
            }),
        )
    }

    /// `GET {jwks_uri}`: the current key and, during the overlap, the previous one.
    pub fn jwks(&self) -> Response {
        let jwks = self.loaded().jwks.clone();
        Response::json(
            200,
            serde_json::to_value(jwks).unwrap_or_else(|_| json!({"keys": []})),
        )
    }
}
