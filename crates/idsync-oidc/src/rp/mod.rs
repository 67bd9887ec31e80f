//! The relying party: idsync signs users in at the company's identity provider.
//!
//! ```text
//! let rp = RelyingParty::discover(config, http, clock).await?;   // once, at start
//! let (url, pending) = rp.start_login();                         // redirect the browser to url,
//!                                                                 // keep `pending` (by its state)
//! let login = rp.finish_login(&pending, &callback).await?;       // on the redirect back
//! login.claims                                                   // typed, validated
//! ```

mod claims;
mod error;
mod http;
pub(crate) use http::check_endpoint;
mod jwks;

use std::sync::Arc;

use idsync_core::Clock;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use claims::{Groups, LoginClaims};
pub use error::RpError;

use crate::jose::UnverifiedToken;
use crate::pkce::{pkce_challenge, random_token, secrets_equal};

/// The largest clock skew accepted in the settings (10 minutes).
pub const MAX_CLOCK_SKEW_S: i64 = 600;

/// How idsync authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body.
    #[default]
    ClientSecretPost,
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
}

/// Which claims rules apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IdpStyle {
    /// Any OpenID provider: `sub` is the subject, `groups` read when it is an array.
    Generic,
    /// Entra ID (v2 endpoints): `tid` must be `tenant_id`; `oid` is the subject; group overage.
    EntraId { tenant_id: String },
    /// An Azure AD B2C user flow: `tfp`/`acr` must be `policy`; `emails`; no groups.
    AzureAdB2c { policy: String },
}

/// The relying party's settings.
#[derive(Clone, Serialize, Deserialize)]
pub struct RpConfig {
    /// Discovery is read at `{authority}/.well-known/openid-configuration`.
    pub authority: String,
    /// The issuer the discovery document and every ID token must name, exactly.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub client_auth: ClientAuth,
    /// idsync's callback URL, registered at the provider.
    pub redirect_uri: String,
    /// Scopes requested besides `openid`.
    pub scopes: Vec<String>,
    pub style: IdpStyle,
    /// Clock difference tolerated on `exp`, `nbf` and `iat` (0 to [`MAX_CLOCK_SKEW_S`]).
    pub clock_skew_s: i64,
    /// The shortest time between two JWKS fetches caused by unknown `kid`s.
    pub jwks_refetch_interval_s: i64,
    /// The JWKS is fetched again when the cached copy is older than this.
    pub jwks_max_age_s: i64,
    /// How long a started login may take before its answer is refused.
    pub login_max_age_s: i64,
}

impl std::fmt::Debug for RpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpConfig")
            .field("authority", &self.authority)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_auth", &self.client_auth)
            .field("redirect_uri", &self.redirect_uri)
            .field("style", &self.style)
            .finish_non_exhaustive()
    }
}

impl RpConfig {
    /// Settings with the defaults: issuer = authority, secret in the body, scopes `profile
    /// email`, 120 s skew, JWKS refetched at most once a minute and read again daily, 10 minutes
    /// to finish a login.
    pub fn new(
        authority: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        let authority = authority.into();
        Self {
            issuer: authority.clone(),
            authority,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            client_auth: ClientAuth::default(),
            redirect_uri: redirect_uri.into(),
            scopes: vec!["profile".to_owned(), "email".to_owned()],
            style: IdpStyle::Generic,
            clock_skew_s: 120,
            jwks_refetch_interval_s: 60,
            jwks_max_age_s: 24 * 3600,
            login_max_age_s: 600,
        }
    }

    /// Entra ID, single tenant, v2 endpoints: authority and issuer
    /// `https://login.microsoftonline.com/{tenant_id}/v2.0`.
    pub fn entra_id(
        tenant_id: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        let authority = format!("https://login.microsoftonline.com/{tenant_id}/v2.0");
        let mut config = Self::new(authority, client_id, client_secret, redirect_uri);
        config.style = IdpStyle::EntraId {
            tenant_id: tenant_id.to_owned(),
        };
        config
    }

    /// An Azure AD B2C user flow: authority
    /// `https://{tenant}.b2clogin.com/{tenant}.onmicrosoft.com/{policy}/v2.0/`, issuer
    /// `https://{tenant}.b2clogin.com/{tenant_id}/v2.0/` (B2C's default issuer claim).
    pub fn azure_ad_b2c(
        tenant_name: &str,
        tenant_id: &str,
        policy: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        let authority = format!(
            "https://{tenant_name}.b2clogin.com/{tenant_name}.onmicrosoft.com/{policy}/v2.0/"
        );
        let mut config = Self::new(authority, client_id, client_secret, redirect_uri);
        config.issuer = format!("https://{tenant_name}.b2clogin.com/{tenant_id}/v2.0/");
        config.scopes = Vec::new();
        config.style = IdpStyle::AzureAdB2c {
            policy: policy.to_owned(),
        };
        config
    }

    /// Checks the settings (URLs, bounds).
    pub fn validate(&self) -> Result<(), RpError> {
        http::check_endpoint("authority", &self.authority)?;
        http::check_endpoint("redirect_uri", &self.redirect_uri)?;
        if self.issuer.is_empty() {
            return Err(RpError::Config("the issuer is empty".into()));
        }
        if self.client_id.is_empty() {
            return Err(RpError::Config("the client id is empty".into()));
        }
        if !(0..=MAX_CLOCK_SKEW_S).contains(&self.clock_skew_s) {
            return Err(RpError::Config(format!(
                "clock_skew_s must be 0 to {MAX_CLOCK_SKEW_S}, not {}",
                self.clock_skew_s
            )));
        }
        if self.jwks_refetch_interval_s < 1 || self.jwks_max_age_s < self.jwks_refetch_interval_s {
            return Err(RpError::Config(
                "jwks_refetch_interval_s must be 1 or more and at most jwks_max_age_s".into(),
            ));
        }
        if self.login_max_age_s < 10 {
            return Err(RpError::Config("login_max_age_s must be 10 or more".into()));
        }
        match &self.style {
            IdpStyle::EntraId { tenant_id } if tenant_id.is_empty() => {
                Err(RpError::Config("the Entra tenant id is empty".into()))
            }
            IdpStyle::AzureAdB2c { policy } if policy.is_empty() => {
                Err(RpError::Config("the B2C user flow is empty".into()))
            }
            _ => Ok(()),
        }
    }
}

/// The parts of the provider's discovery document the relying party uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

/// A login in progress: what the answer is checked against. Keep it server-side (or sealed)
/// under its `state` until the browser comes back.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub code_verifier: String,
    pub started_at_ms: i64,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("started_at_ms", &self.started_at_ms)
            .finish_non_exhaustive()
    }
}

/// The query (or form) parameters of the redirect back to idsync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl Callback {
    /// From decoded `name=value` pairs; the first of a repeated name wins.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut out = Self::default();
        for (name, value) in pairs {
            let slot = match name {
                "code" => &mut out.code,
                "state" => &mut out.state,
                "iss" => &mut out.iss,
                "error" => &mut out.error,
                "error_description" => &mut out.error_description,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value.to_owned());
            }
        }
        out
    }

    /// From a raw query string (`code=...&state=...`).
    pub fn from_query(query: &str) -> Self {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        Self::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// A finished login.
#[derive(Debug, Clone)]
pub struct Login {
    pub claims: LoginClaims,
    /// The provider's access token (for its userinfo endpoint), when it sent one.
    pub access_token: Option<String>,
}

/// A relying party bound to one provider (one client registration).
pub struct RelyingParty {
    config: RpConfig,
    metadata: ProviderMetadata,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    jwks: jwks::JwksCache,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("config", &self.config)
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl RelyingParty {
    /// Reads the provider's discovery document; its issuer must be the configured one exactly.
    /// `http` is the caller's client: its timeouts bound every call to the provider.
    pub async fn discover(
        config: RpConfig,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RpError> {
        config.validate()?;
        let url = format!(
            "{}/.well-known/openid-configuration",
            config.authority.trim_end_matches('/')
        );
        let body = http::get(&http, &url).await?;
        let metadata: ProviderMetadata =
            serde_json::from_slice(&body).map_err(|e| RpError::BadDocument {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        Self::with_metadata(config, metadata, http, clock)
    }

    /// A relying party from a discovery document already read (or written by hand).
    pub fn with_metadata(
        config: RpConfig,
        metadata: ProviderMetadata,
        http: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RpError> {
        config.validate()?;
        if metadata.issuer != config.issuer {
            return Err(RpError::IssuerMismatch {
                expected: config.issuer.clone(),
                found: metadata.issuer,
            });
        }
        http::check_endpoint("authorization_endpoint", &metadata.authorization_endpoint)?;
        http::check_endpoint("token_endpoint", &metadata.token_endpoint)?;
        http::check_endpoint("jwks_uri", &metadata.jwks_uri)?;
        let jwks = jwks::JwksCache::new(
            metadata.jwks_uri.clone(),
            config.jwks_refetch_interval_s * 1000,
            config.jwks_max_age_s * 1000,
        );
        Ok(Self {
            config,
            metadata,
            http,
            clock,
            jwks,
        })
    }

    pub fn config(&self) -> &RpConfig {
        &self.config
    }

    pub fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    /// How many times the JWKS was fetched so far.
    pub async fn jwks_fetches(&self) -> u64 {
        self.jwks.fetches().await
    }

    /// Starts a login: the URL to send the browser to, and what to keep until it comes back.
    pub fn start_login(&self) -> (String, PendingLogin) {
        self.start_login_with(&[])
    }

    /// [`Self::start_login`] with extra authorization parameters (`prompt`, `login_hint`,
    /// `domain_hint`...). The protocol's own parameters cannot be overridden.
    pub fn start_login_with(&self, extra: &[(&str, &str)]) -> (String, PendingLogin) {
        let pending = PendingLogin {
            state: random_token(),
            nonce: random_token(),
            code_verifier: random_token(),
            started_at_ms: self.clock.now_ms(),
        };
        let mut scope = vec!["openid".to_owned()];
        scope.extend(
            self.config
                .scopes
                .iter()
                .filter(|s| *s != "openid")
                .cloned(),
        );
        let challenge = pkce_challenge(&pending.code_verifier);
        let fixed = [
            ("response_type", "code"),
            ("client_id", self.config.client_id.as_str()),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("scope", &scope.join(" ")),
            ("state", pending.state.as_str()),
            ("nonce", pending.nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in fixed {
            query.append_pair(k, v);
        }
        for (k, v) in extra {
            if !fixed.iter().any(|(f, _)| f == k) {
                query.append_pair(k, v);
            }
        }
        let endpoint = &self.metadata.authorization_endpoint;
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        (format!("{endpoint}{sep}{}", query.finish()), pending)
    }

    /// Finishes a login from the redirect back: checks the state (and `iss`), exchanges the
    /// code with the PKCE verifier, and validates the ID token.
    pub async fn finish_login(
        &self,
        pending: &PendingLogin,
        callback: &Callback,
    ) -> Result<Login, RpError> {
        let state_ok = callback
            .state
            .as_deref()
            .is_some_and(|s| secrets_equal(s, &pending.state));
        if !state_ok {
            return Err(RpError::StateMismatch);
        }
        let now = self.clock.now_ms();
        if now.saturating_sub(pending.started_at_ms) > self.config.login_max_age_s * 1000 {
            return Err(RpError::LoginExpired {
                max_age_s: self.config.login_max_age_s,
            });
        }
        // RFC 9207: the issuer in the answer defends against mix-up between providers.
        match &callback.iss {
            Some(iss) if *iss != self.config.issuer => {
                return Err(RpError::IssuerMismatch {
                    expected: self.config.issuer.clone(),
                    found: iss.clone(),
                })
            }
            None if self.metadata.authorization_response_iss_parameter_supported => {
                return Err(RpError::IssuerMismatch {
                    expected: self.config.issuer.clone(),
                    found: String::new(),
                })
            }
            _ => {}
        }
        if let Some(error) = &callback.error {
            return Err(RpError::ProviderError {
                error: error.clone(),
                description: callback.error_description.clone(),
            });
        }
        let code = callback.code.as_deref().ok_or(RpError::MissingCode)?;
        let answer = self.redeem(code, &pending.code_verifier).await?;
        let id_token = answer.id_token.ok_or(RpError::MissingClaim("id_token"))?;
        let claims = self.validate_id_token(&id_token, &pending.nonce).await?;
        tracing::info!(issuer = %self.config.issuer, subject = %claims.subject, "signed in at the identity provider");
        Ok(Login {
            claims,
            access_token: answer.access_token,
        })
    }

    async fn redeem(&self, code: &str, verifier: &str) -> Result<TokenAnswer, RpError> {
        let url = &self.metadata.token_endpoint;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        let mut request = self.http.post(url).header("accept", "application/json");
        match self.config.client_auth {
            ClientAuth::ClientSecretPost => {
                form.push(("client_id", &self.config.client_id));
                form.push(("client_secret", &self.config.client_secret));
            }
            ClientAuth::ClientSecretBasic => {
                let enc =
                    |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                request = request.basic_auth(
                    enc(&self.config.client_id),
                    Some(enc(&self.config.client_secret)),
                );
            }
        }
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let response = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| RpError::Http {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let (status, body) = http::read_body(url, response).await?;
        let answer: Result<TokenAnswer, _> = serde_json::from_slice(&body);
        match answer {
            Ok(a) if a.error.is_some() || status != 200 => Err(RpError::TokenRefused {
                error: a.error.unwrap_or_else(|| format!("HTTP {status}")),
                description: a.error_description,
            }),
            Ok(a) => Ok(a),
            Err(_) if status != 200 => Err(RpError::HttpStatus {
                url: url.clone(),
                status,
                body: http::excerpt(&body),
            }),
            Err(e) => Err(RpError::BadDocument {
                url: url.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// Validates an ID token (signature with the provider's JWKS, `iss`, `aud`/`azp`,
    /// `exp`/`nbf`/`iat` within the skew, `nonce`, and the style's rules) and returns its claims.
    pub async fn validate_id_token(
        &self,
        token: &str,
        expected_nonce: &str,
    ) -> Result<LoginClaims, RpError> {
        let parsed = UnverifiedToken::parse(token)?;
        let claims = self
            .jwks
            .verify(&self.http, self.clock.as_ref(), parsed)
            .await?;
        self.check_registered(&claims, expected_nonce)?;
        claims::extract(&self.config.style, &self.config.issuer, claims)
    }

    fn check_registered(&self, claims: &Map<String, Value>, nonce: &str) -> Result<(), RpError> {
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(RpError::MissingClaim("iss"))?;
        if iss != self.config.issuer {
            return Err(RpError::WrongIssuer {
                expected: self.config.issuer.clone(),
                found: iss.to_owned(),
            });
        }
        let audiences: Vec<String> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or(RpError::MissingClaim("aud"))
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(RpError::MissingClaim("aud")),
        };
        if !audiences.contains(&self.config.client_id) {
            return Err(RpError::WrongAudience { found: audiences });
        }
        let azp = claims.get("azp").and_then(Value::as_str);
        if (audiences.len() > 1 || azp.is_some()) && azp != Some(self.config.client_id.as_str()) {
            return Err(RpError::WrongAuthorizedParty {
                found: azp.map(str::to_owned),
            });
        }
        let now = self.clock.now_ms().div_euclid(1000);
        let skew = self.config.clock_skew_s;
        let number = |name: &'static str| -> Result<Option<i64>, RpError> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_f64().map(|f| f as i64))
                    .map(Some)
                    .ok_or(RpError::MissingClaim(name)),
            }
        };
        let exp = number("exp")?.ok_or(RpError::MissingClaim("exp"))?;
        if now > exp.saturating_add(skew) {
            return Err(RpError::Expired {
                exp,
                now,
                skew_s: skew,
            });
        }
        if let Some(nbf) = number("nbf")? {
            if now.saturating_add(skew) < nbf {
                return Err(RpError::NotYetValid {
                    nbf,
                    now,
                    skew_s: skew,
                });
            }
        }
        let iat = number("iat")?.ok_or(RpError::MissingClaim("iat"))?;
        if iat > now.saturating_add(skew) {
            return Err(RpError::IssuedInFuture {
                iat,
                now,
                skew_s: skew,
            });
        }
        let token_nonce = claims.get("nonce").and_then(Value::as_str);
        if !token_nonce.is_some_and(|n| secrets_equal(n, nonce)) {
            return Err(RpError::NonceMismatch);
        }
        Ok(())
    }
}
