//! The single sign-on broker (issue 19, decision 0045): idsync is the OpenID provider the
//! products trust, and signs their users in at the company's identity provider (an upstream).
//!
//! ```text
//! product ──> GET  {issuer}/sso/oidc/authorize        (provider.rs: checked, kept with the
//!                                                       upstream login under its state)
//!         <── 303 upstream's authorization endpoint    (upstream.rs)
//! upstream ─> GET  {issuer}/sso/upstream/<name>/callback   (OpenID; SAML: POST
//!                 {issuer}/sso/saml/<name>/acs, saml.rs, metadata at .../metadata)
//!                 finish_login ─> just in time (jit.rs: Runtime::login) ─> issue_code
//!         <── 303 the product's redirect URI with the code (a SAML product: a signed Response
//!             posted to its ACS URL, saml_idp.rs, also IdP-initiated from /sso/saml-idp/init)
//! product ──> POST {issuer}/sso/oidc/token, GET {issuer}/sso/oidc/userinfo
//! ```
//!
//! Discovery is at `{issuer}/.well-known/openid-configuration`, the keys at
//! `{issuer}/sso/oidc/jwks`. Errors become pages in one place (`respond.rs`).

mod jit;
mod limits;
mod provider;
mod respond;
mod saml;
mod saml_idp;
mod saml_keys;
mod upstream;

pub use respond::{escape_html, SsoError};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use idsync_config::{ClientSubject, SsoConfig};
use idsync_core::Clock;
use idsync_engine::Service;
use idsync_oidc::provider::{AuthorizationRequest, Client, Provider, ProviderConfig, UserInfo};
use idsync_oidc::KeyRotation;
use idsync_saml::SpRequest;
use idsync_store::{Keyring, SealKey, SsoStore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// How often the signing keys are checked for rotation and expired codes, tokens and sign-ins
/// are purged.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(3600);

/// A product registered with the broker.
pub(crate) struct Product {
    pub name: String,
    pub upstream: String,
    pub flow: String,
    pub subject: ClientSubject,
}

/// The broker: the provider, its upstreams, its products.
pub struct Sso {
    pub(crate) provider: Provider,
    pub(crate) upstreams: BTreeMap<String, upstream::Upstream>,
    pub(crate) saml_upstreams: BTreeMap<String, saml::SamlUpstream>,
    /// By client id.
    pub(crate) products: BTreeMap<String, Product>,
    /// idsync's SAML identity provider, when products sign in to it by SAML.
    pub(crate) saml_idp: Option<saml_idp::SamlIdp>,
    /// The products of `[sso.saml_clients]`, by entity id.
    pub(crate) saml_products: BTreeMap<String, Product>,
    pub(crate) svc: Arc<Service>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) login_timeout_ms: i64,
    /// Sign-ins started per address, sign-ins in progress, failed client authentications.
    pub(crate) limits: limits::SignInLimits,
    /// The issuer URL's path ("" at a host's root): every route is under it.
    prefix: String,
}

impl std::fmt::Debug for Sso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sso")
            .field("issuer", &self.provider.config().issuer)
            .field("upstreams", &self.upstreams.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Why the broker cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SsoStartError {
    #[error("[sso] needs [store] secret_key to seal its signing keys")]
    NoSecretKey,
    #[error("[sso]: {0}")]
    Provider(#[from] idsync_oidc::provider::ProviderError),
    #[error("[sso.upstreams.{name}]: {message}")]
    Upstream { name: String, message: String },
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Sso {
    /// The broker of `[sso]`: the provider with its keys from the store (made and sealed the
    /// first time), and the upstreams (their discovery is read at the first sign-in, so an
    /// identity provider that is down does not stop `idsync serve`).
    pub async fn start(
        config: &SsoConfig,
        store_config: &idsync_config::StoreConfig,
        svc: Arc<Service>,
    ) -> Result<Self, SsoStartError> {
        let key = store_config
            .secret_key
            .as_ref()
            .ok_or(SsoStartError::NoSecretKey)?;
        let keyring = Keyring::new(
            SealKey::new(key.expose()),
            store_config
                .previous_secret_keys
                .iter()
                .map(|k| SealKey::new(k.expose()))
                .collect(),
        );
        let rt = &svc.runtime;
        let clock = Arc::clone(&rt.clock);
        let issuer = config.issuer.trim_end_matches('/').to_string();
        let mut pc = ProviderConfig::new(issuer.clone());
        pc.authorization_endpoint = format!("{issuer}/sso/oidc/authorize");
        pc.token_endpoint = format!("{issuer}/sso/oidc/token");
        pc.userinfo_endpoint = format!("{issuer}/sso/oidc/userinfo");
        pc.jwks_uri = format!("{issuer}/sso/oidc/jwks");
        pc.code_ttl_s = i64::try_from(config.code_ttl.as_secs()).unwrap_or(60);
        pc.id_token_ttl_s = i64::try_from(config.token_ttl.as_secs()).unwrap_or(600);
        pc.access_token_ttl_s = pc.id_token_ttl_s;
        pc.key_rotation = KeyRotation {
            period_ms: ms(config.key_rotation),
            overlap_ms: ms(config.key_overlap),
        };
        let clients = config
            .clients
            .values()
            .map(|c| Client {
                client_id: c.client_id.clone(),
                client_secret: c.client_secret.as_ref().map(|s| s.expose().to_string()),
                redirect_uris: c.redirect_uris.clone(),
                require_pkce: c.require_pkce,
            })
            .collect();
        let keyring_for_saml = keyring.clone();
        let store = Arc::new(SsoStore::new(rt.store.clone(), keyring));
        let provider = Provider::start(pc, clients, store, Arc::clone(&clock)).await?;
        let mut upstreams = BTreeMap::new();
        for (name, u) in &config.upstreams {
            let up = upstream::Upstream::new(u, &issuer, config.login_timeout, Arc::clone(&clock))
                .map_err(|message| SsoStartError::Upstream {
                    name: name.clone(),
                    message,
                })?;
            upstreams.insert(name.clone(), up);
        }
        let mut saml_upstreams = BTreeMap::new();
        for (name, u) in &config.saml_upstreams {
            let up =
                saml::SamlUpstream::new(u, &issuer).map_err(|message| SsoStartError::Upstream {
                    name: name.clone(),
                    message,
                })?;
            saml_upstreams.insert(name.clone(), up);
        }
        let products = config
            .clients
            .values()
            .map(|c| {
                (
                    c.client_id.clone(),
                    Product {
                        name: c.name.clone(),
                        upstream: c.upstream.clone(),
                        flow: c.flow.clone(),
                        subject: c.subject,
                    },
                )
            })
            .collect();
        let saml_idp = saml_idp::SamlIdp::start(
            config,
            &issuer,
            &rt.store,
            &keyring_for_saml,
            clock.now_ms(),
        )
        .await
        .map_err(|message| SsoStartError::Upstream {
            name: "saml-idp".into(),
            message,
        })?;
        let saml_products = config
            .saml_clients
            .values()
            .map(|c| {
                (
                    c.entity_id.clone(),
                    Product {
                        name: c.name.clone(),
                        upstream: c.upstream.clone(),
                        flow: c.flow.clone(),
                        subject: ClientSubject::Username,
                    },
                )
            })
            .collect();
        let prefix = url_path(&issuer);
        tracing::info!(issuer = %issuer, upstreams = upstreams.len(), products = config.clients.len(), "single sign-on ready");
        Ok(Sso {
            provider,
            upstreams,
            saml_upstreams,
            products,
            saml_idp,
            saml_products,
            svc,
            clock: Arc::clone(&clock),
            login_timeout_ms: ms(config.login_timeout),
            limits: limits::SignInLimits::new(config, Arc::clone(&clock)),
            prefix,
        })
    }

    /// The OpenID issuer.
    pub fn issuer(&self) -> &str {
        &self.provider.config().issuer
    }

    /// Rotates the signing key when due and purges expired codes, tokens and sign-ins.
    pub async fn maintain(&self) {
        if let Err(e) = self.provider.maintain_keys().await {
            tracing::error!(error = %e, "signing key maintenance failed");
        }
        if let Some(idp) = &self.saml_idp {
            if let Err(e) = idp.maintain_keys(self.clock.now_ms()).await {
                tracing::error!(error = %e, "SAML signing key maintenance failed");
            }
        }
        match self.svc.runtime.store.purge_sso(self.clock.now_ms()).await {
            Ok(p) => tracing::debug!(
                codes = p.codes,
                tokens = p.tokens,
                pending = p.pending,
                "purged expired single sign-on state"
            ),
            Err(e) => tracing::error!(error = %e, "purging single sign-on state failed"),
        }
    }

    /// [`Self::maintain`] every [`MAINTENANCE_INTERVAL`] until `stop` turns true.
    pub async fn maintain_until(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(MAINTENANCE_INTERVAL) => self.maintain().await,
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return;
                    }
                }
            }
        }
    }
}

/// Who asked for a sign-in and how the answer goes back: an OpenID product's authorization
/// request (a code by redirect) or a SAML product's AuthnRequest (a signed Response by POST).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Downstream {
    Oidc(AuthorizationRequest),
    Saml(SpRequest),
    /// An IdP-initiated sign-in (`/sso/saml-idp/init`): an unsolicited Response to the
    /// registered service provider's ACS URL, with the checked RelayState.
    SamlUnsolicited {
        sp_entity_id: String,
        relay_state: Option<String>,
    },
}

/// The client's address, when the connection gave one (`ConnectInfo`, listen.rs).
pub(crate) struct Peer(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

impl Sso {
    /// Start a checked sign-in at the product's upstream for the client at `peer`, within
    /// the limits (`[sso] sign_in_rate`, `sign_in_burst`, `max_pending_sign_ins`): over them,
    /// a page with `Retry-After` and nothing stored.
    pub(crate) async fn start_sign_in(
        &self,
        peer: Option<IpAddr>,
        request: Downstream,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        if let Err(e) = self.limits.admit_start(&self.svc.runtime.store, peer).await {
            return e.into_response();
        }
        match upstream::start(self, request).await {
            Ok(resp) => {
                self.limits.started();
                resp
            }
            Err(e) => e.into_response(),
        }
    }

    /// The sign-in in progress kept under `key` (the OpenID state or the SAML RelayState),
    /// taken once: an unknown or expired key, or one started at another upstream than `name`,
    /// is refused.
    pub(crate) async fn take_pending<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        name: &str,
    ) -> Result<T, SsoError> {
        let (started, data) = self
            .svc
            .runtime
            .store
            .take_sso_pending(key, self.clock.now_ms())
            .await?
            .ok_or(SsoError::UnknownLogin)?;
        if started != name {
            return Err(SsoError::WrongUpstream {
                started,
                came: name.to_string(),
            });
        }
        serde_json::from_str(&data).map_err(|e| SsoError::Internal(e.to_string()))
    }

    /// The registered product that asked.
    pub(crate) fn product_of(&self, d: &Downstream) -> Result<&Product, SsoError> {
        let (map, key) = match d {
            Downstream::Oidc(r) => (&self.products, &r.client_id),
            Downstream::Saml(r) => (&self.saml_products, &r.sp_entity_id),
            Downstream::SamlUnsolicited { sp_entity_id, .. } => (&self.saml_products, sp_entity_id),
        };
        map.get(key)
            .ok_or_else(|| SsoError::Internal(format!("{key:?} has no registration")))
    }

    /// The answer to the product once `user` is signed in and provisioned.
    pub(crate) async fn answer(
        &self,
        d: &Downstream,
        user: UserInfo,
    ) -> Result<axum::response::Response, SsoError> {
        match d {
            Downstream::Oidc(r) => Ok(respond::render(self.provider.issue_code(r, user).await?)),
            Downstream::Saml(r) => match &self.saml_idp {
                Some(idp) => idp.respond(r, user, self.clock.now_ms()),
                None => Err(SsoError::Internal("no SAML identity provider".into())),
            },
            Downstream::SamlUnsolicited {
                sp_entity_id,
                relay_state,
            } => match &self.saml_idp {
                Some(idp) => idp.respond_unsolicited(
                    sp_entity_id,
                    relay_state.as_deref(),
                    user,
                    self.clock.now_ms(),
                ),
                None => Err(SsoError::Internal("no SAML identity provider".into())),
            },
        }
    }
}

/// The path of a URL ("" for a host's root), without a trailing slash.
fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find('/') {
        Some(i) => rest[i..].trim_end_matches('/').to_string(),
        None => String::new(),
    }
}

/// The broker's routes, under the issuer's path.
pub(crate) fn router(sso: Arc<Sso>) -> Router {
    let p = sso.prefix.clone();
    Router::new()
        .route(
            &format!("{p}/.well-known/openid-configuration"),
            get(provider::discovery),
        )
        .route(&format!("{p}/sso/oidc/jwks"), get(provider::jwks))
        .route(&format!("{p}/sso/oidc/authorize"), get(provider::authorize))
        .route(&format!("{p}/sso/oidc/token"), post(provider::token))
        .route(
            &format!("{p}/sso/oidc/userinfo"),
            get(provider::userinfo).post(provider::userinfo),
        )
        .route(
            &format!("{p}/sso/upstream/{{name}}/callback"),
            get(upstream::callback),
        )
        .route(
            &format!("{p}/sso/saml/{{name}}/metadata"),
            get(saml::metadata),
        )
        .route(&format!("{p}/sso/saml/{{name}}/acs"), post(saml::acs))
        .route(
            &format!("{p}/sso/saml-idp/metadata"),
            get(saml_idp::metadata),
        )
        .route(
            &format!("{p}/sso/saml-idp/sso"),
            get(saml_idp::sso_redirect).post(saml_idp::sso_post),
        )
        .route(&format!("{p}/sso/saml-idp/init"), get(saml_idp::init))
        .with_state(sso)
}

#[cfg(test)]
mod tests {
    use super::url_path;

    #[test]
    fn routes_sit_under_the_issuers_path() {
        assert_eq!(url_path("https://idsync.example.com"), "");
        assert_eq!(url_path("https://idsync.example.com/"), "");
        assert_eq!(url_path("https://example.com/idsync/"), "/idsync");
        assert_eq!(url_path("http://127.0.0.1:8080"), "");
    }
}
