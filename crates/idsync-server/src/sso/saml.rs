//! SAML 2.0 upstreams (`style = "saml"`): idsync as a service provider of a SAML identity
//! provider such as Entra's enterprise applications. A product's authorization request becomes
//! an AuthnRequest by HTTP-Redirect (the sign-in kept in the store under its RelayState, with
//! the request's ID); the identity provider's Response, posted to our Assertion Consumer
//! Service, is validated by `idsync_saml` (signatures, audience, recipient, times, the
//! request it answers, replay) on a blocking thread, and the sign-in goes on as an OpenID one
//! does: just in time, then a code to the product. Our SP metadata is published for the
//! identity provider's administrator.

use super::respond::{redirect, SsoError};
use super::{jit, Downstream, Product, Sso};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use idsync_config::SsoSamlUpstreamConfig;
use idsync_engine::Login;
use idsync_saml::{
    IdpDescriptor, MemoryReplayCache, MemorySentRequests, ResponseCheck, SamlError, SamlLogin,
    ServiceProvider, ServiceProviderConfig, SignatureRequirement,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// Assertions remembered against replay, per upstream (each until its own expiry, at most an
/// hour): a full cache refuses new sign-ins rather than forget one.
const REPLAY_CAPACITY: usize = 100_000;

/// One `[sso.upstreams.<name>] style = "saml"`.
pub(crate) struct SamlUpstream {
    pub config: SsoSamlUpstreamConfig,
    sp: ServiceProvider,
    replay: Mutex<MemoryReplayCache>,
}

/// What is kept while the user signs in at the identity provider.
#[derive(Serialize, Deserialize)]
struct Pending {
    request: Downstream,
    /// The AuthnRequest's ID: the Response must answer it (`InResponseTo`).
    saml_request: String,
    expires_ms: i64,
}

fn instant(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl SamlUpstream {
    pub(crate) fn new(u: &SsoSamlUpstreamConfig, issuer: &str) -> Result<Self, String> {
        let idp = IdpDescriptor::from_metadata(&u.metadata)
            .map_err(|e| format!("{}: {e}", u.metadata_file.display()))?;
        let config = ServiceProviderConfig {
            entity_id: u
                .entity_id
                .clone()
                .unwrap_or_else(|| format!("{issuer}/sso/saml/{}", u.name)),
            acs_url: format!("{issuer}/sso/saml/{}/acs", u.name),
            name_id_format: None,
            signing_key: None,
            require: SignatureRequirement {
                response: u.require_response_signature,
                assertion: u.require_assertion_signature,
            },
            allow_unsolicited: false,
            clock_skew: time::Duration::seconds(
                i64::try_from(u.clock_skew.as_secs()).unwrap_or(120),
            ),
        };
        let sp = ServiceProvider::new(config, idp).map_err(|e| e.to_string())?;
        Ok(Self {
            config: u.clone(),
            sp,
            replay: Mutex::new(MemoryReplayCache::new(REPLAY_CAPACITY)),
        })
    }

    /// The sign-in's claims as the login pipeline takes them: the attributes the upstream's
    /// `claims` table maps (only those present), Entra's groups and overage.
    fn login_of(&self, saml: &SamlLogin) -> Login {
        let raw: Map<String, Value> = saml
            .attributes
            .iter()
            .map(|(name, values)| (name.clone(), Value::from(values.clone())))
            .collect();
        Login {
            source: self.config.source.clone(),
            subject: saml.subject.clone(),
            attributes: jit::attributes(&raw, &self.config.claims),
            groups: saml.claims.groups.clone(),
            groups_overage: saml.claims.groups_overage.is_some(),
        }
    }
}

/// A checked authorization request of `product`: an AuthnRequest to the identity provider.
pub(super) async fn start(
    sso: &Sso,
    up: &SamlUpstream,
    product: &Product,
    request: Downstream,
) -> Result<Response, SsoError> {
    let relay = idsync_oidc::random_token();
    let now = sso.clock.now_ms();
    let authn = up
        .sp
        .authn_request(instant(now), &mut rand::rngs::OsRng, Some(&relay))
        .map_err(|e| SsoError::Internal(e.to_string()))?;
    let expires_ms = now.saturating_add(sso.login_timeout_ms);
    let data = serde_json::to_string(&Pending {
        request,
        saml_request: authn.id,
        expires_ms,
    })
    .map_err(|e| SsoError::Internal(e.to_string()))?;
    sso.svc
        .runtime
        .store
        .put_sso_pending(&relay, &up.config.name, &data, expires_ms)
        .await?;
    tracing::info!(product = %product.name, upstream = %up.config.name, "sign-in started at the SAML identity provider");
    Ok(redirect(&authn.url))
}

/// `GET /sso/saml/<name>/metadata`: our service provider's metadata.
pub(super) async fn metadata(State(sso): State<Arc<Sso>>, Path(name): Path<String>) -> Response {
    match sso.saml_upstreams.get(&name) {
        Some(up) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            up.sp.metadata_xml(),
        )
            .into_response(),
        None => SsoError::UnknownUpstream(name).into_response(),
    }
}

/// `POST /sso/saml/<name>/acs`: the identity provider's Response (HTTP-POST binding).
pub(super) async fn acs(
    State(sso): State<Arc<Sso>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    match finish(&sso, &name, &body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

/// The form's one value of `key` (a repeated key is refused: which one would count?).
fn field(form: &[(String, String)], key: &str) -> Result<Option<String>, SsoError> {
    let mut values = form.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
    let first = values.next().cloned();
    if values.next().is_some() {
        return Err(SsoError::Unusable(format!("{key} is given more than once")));
    }
    Ok(first)
}

async fn finish(sso: &Arc<Sso>, name: &str, body: &[u8]) -> Result<Response, SsoError> {
    let up = sso
        .saml_upstreams
        .get(name)
        .ok_or_else(|| SsoError::UnknownUpstream(name.to_string()))?;
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    // No RelayState: an IdP-initiated sign-in, which no product asked for.
    let relay = field(&form, "RelayState")?.ok_or(SsoError::UnknownLogin)?;
    let response = field(&form, "SAMLResponse")?
        .ok_or_else(|| SsoError::Unusable("the form carries no SAMLResponse".into()))?;
    let now = sso.clock.now_ms();
    let pending: Pending = sso.take_pending(&relay, name).await?;
    let product = sso.product_of(&pending.request)?;
    // Parsing, canonicalising and verifying a document of up to 1 MiB: off the async threads.
    let job_sso = Arc::clone(sso);
    let job_name = name.to_string();
    let saml = tokio::task::spawn_blocking(move || -> Result<SamlLogin, SamlError> {
        let Some(up) = job_sso.saml_upstreams.get(&job_name) else {
            return Err(SamlError::Config("no such upstream".into()));
        };
        let mut requests = MemorySentRequests::new(1);
        requests.insert(
            &pending.saml_request,
            instant(pending.expires_ms),
            instant(now),
        );
        let mut replay = up
            .replay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        up.sp.validate_post(
            &response,
            ResponseCheck {
                now: instant(now),
                requests: &mut requests,
                replay: &mut *replay,
            },
        )
    })
    .await
    .map_err(|e| SsoError::Internal(e.to_string()))?
    .map_err(SsoError::Saml)?;
    let (user, _) = jit::provision(sso, up.login_of(&saml), name, &saml.subject, product).await?;
    let answer = sso.answer(&pending.request, user).await?;
    tracing::info!(product = %product.name, upstream = %name, subject = %saml.subject, "signed in (SAML): back to the product");
    Ok(answer)
}
