//! idsync as the SAML 2.0 identity provider of the products registered in
//! `[sso.saml_clients.<name>]`: its metadata at `{issuer}/sso/saml-idp/metadata`, its SSO
//! endpoint at `{issuer}/sso/saml-idp/sso` (an AuthnRequest by HTTP-Redirect or HTTP-POST, from
//! a registered service provider only, answered at its registered ACS URL only), the sign-in
//! at the product's upstream, and the signed Response delivered by an auto-posting form.
//! The signing key is made the first time and sealed in the store with the store's key.

use super::respond::{page, SsoError};
use super::{upstream, Downstream, Sso};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use idsync_config::SsoConfig;
use idsync_oidc::provider::UserInfo;
use idsync_saml::{
    IdentityProvider, IdentityProviderConfig, NameIdFormat, RegisteredSp, SamlUser, SigningKey,
    SpRequest,
};
use idsync_store::{Keyring, Store};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::OffsetDateTime;

/// The sealed secret holding the IdP's key and certificate.
const KEY_SECRET: &str = "sso.saml-idp.signing-key";
/// How long a generated signing certificate is valid.
const CERTIFICATE_VALIDITY: time::Duration = time::Duration::days(5 * 365);

#[derive(Serialize, Deserialize)]
struct StoredKey {
    key_pem: String,
    certificate_pem: String,
}

fn instant(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The identity provider, when products are registered with it.
pub(crate) struct SamlIdp {
    idp: IdentityProvider,
}

/// The signing key sealed in the store, made and sealed the first time.
async fn signing_key(
    store: &Store,
    keyring: &Keyring,
    issuer: &str,
    now_ms: i64,
) -> Result<SigningKey, String> {
    if let Some(bytes) = store
        .get_secret(keyring, KEY_SECRET)
        .await
        .map_err(|e| e.to_string())?
    {
        let stored: StoredKey = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the sealed SAML signing key is unreadable: {e}"))?;
        return SigningKey::from_pem(&stored.key_pem, &stored.certificate_pem)
            .map_err(|e| e.to_string());
    }
    let key = tokio::task::spawn_blocking({
        let issuer = issuer.to_string();
        move || {
            SigningKey::generate(
                &mut rand::rngs::OsRng,
                &issuer,
                instant(now_ms) - time::Duration::hours(1),
                CERTIFICATE_VALIDITY,
            )
        }
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let stored = StoredKey {
        key_pem: key
            .private_key_pem()
            .map_err(|e| e.to_string())?
            .to_string(),
        certificate_pem: key.certificate().to_pem().map_err(|e| e.to_string())?,
    };
    let bytes = zeroize::Zeroizing::new(serde_json::to_vec(&stored).map_err(|e| e.to_string())?);
    store
        .put_secret(keyring, KEY_SECRET, &bytes, now_ms)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("made and sealed the SAML identity provider's signing key");
    Ok(key)
}

impl SamlIdp {
    pub(crate) async fn start(
        config: &SsoConfig,
        issuer: &str,
        store: &Store,
        keyring: &Keyring,
        now_ms: i64,
    ) -> Result<Option<Self>, String> {
        if config.saml_clients.is_empty() {
            return Ok(None);
        }
        let signing_key = signing_key(store, keyring, issuer, now_ms).await?;
        let service_providers = config
            .saml_clients
            .values()
            .map(|c| RegisteredSp {
                entity_id: c.entity_id.clone(),
                acs_url: c.acs_url.clone(),
                name_id_format: NameIdFormat::Unspecified,
                request_certificates: Vec::new(),
                require_signed_requests: false,
            })
            .collect();
        let idp = IdentityProvider::new(IdentityProviderConfig {
            entity_id: format!("{issuer}/sso/saml-idp"),
            sso_url: format!("{issuer}/sso/saml-idp/sso"),
            signing_key,
            next_certificate: None,
            service_providers,
            assertion_lifetime: time::Duration::minutes(5),
            request_max_age: time::Duration::minutes(10),
            clock_skew: time::Duration::minutes(2),
        })
        .map_err(|e| e.to_string())?;
        Ok(Some(Self { idp }))
    }

    /// The signed Response for `request`, as an auto-posting page.
    pub(crate) fn respond(
        &self,
        request: &SpRequest,
        user: UserInfo,
        now_ms: i64,
    ) -> Result<Response, SsoError> {
        let username = user
            .username
            .clone()
            .unwrap_or_else(|| user.subject.clone());
        let saml_user = SamlUser {
            name_id: username.clone(),
            username,
            email: user.email,
            display_name: user.display_name,
            groups: user.groups,
            session_index: format!("_{}", idsync_oidc::random_token()),
            authn_instant: instant(now_ms),
        };
        let form = self
            .idp
            .respond(request, &saml_user, instant(now_ms), &mut rand::rngs::OsRng)
            .map_err(|e| SsoError::Internal(e.to_string()))?;
        let nonce = idsync_oidc::random_token();
        let mut resp = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            form.html(Some(&nonce)),
        )
            .into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        if let Ok(csp) = HeaderValue::from_str(&format!(
            "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; frame-ancestors 'none'"
        )) {
            h.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        Ok(resp)
    }
}

/// `GET /sso/saml-idp/metadata`.
pub(super) async fn metadata(State(sso): State<Arc<Sso>>) -> Response {
    match &sso.saml_idp {
        Some(idp) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            idp.idp.metadata_xml(),
        )
            .into_response(),
        None => page(
            StatusCode::NOT_FOUND,
            "No SAML identity provider",
            "no product is registered in [sso.saml_clients]",
        ),
    }
}

/// `GET /sso/saml-idp/sso?SAMLRequest=...`: an AuthnRequest by HTTP-Redirect.
pub(super) async fn sso_redirect(
    State(sso): State<Arc<Sso>>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let accepted = match &sso.saml_idp {
        Some(idp) => idp.idp.accept_redirect(&query, instant(sso.clock.now_ms())),
        None => return SsoError::UnknownUpstream("saml-idp".into()).into_response(),
    };
    go_upstream(&sso, accepted).await
}

/// `POST /sso/saml-idp/sso`: an AuthnRequest by HTTP-POST.
pub(super) async fn sso_post(State(sso): State<Arc<Sso>>, body: Bytes) -> Response {
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let one = |key: &str| -> Result<Option<&str>, SsoError> {
        let mut values = form
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(SsoError::Unusable(format!("{key} is given more than once")));
        }
        Ok(first)
    };
    let (request, relay) = match (one("SAMLRequest"), one("RelayState")) {
        (Ok(Some(r)), Ok(relay)) => (r, relay),
        (Ok(None), _) => {
            return SsoError::BadRequest("the form carries no SAMLRequest".into()).into_response()
        }
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let accepted = match &sso.saml_idp {
        Some(idp) => idp
            .idp
            .accept_post(request, relay, instant(sso.clock.now_ms())),
        None => return SsoError::UnknownUpstream("saml-idp".into()).into_response(),
    };
    go_upstream(&sso, accepted).await
}

async fn go_upstream(sso: &Sso, accepted: Result<SpRequest, idsync_saml::SamlError>) -> Response {
    let request = match accepted {
        Ok(r) => r,
        Err(e) => {
            return SsoError::BadRequest(format!("the SAML sign-in request was refused: {e}"))
                .into_response()
        }
    };
    match upstream::start(sso, Downstream::Saml(request)).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}
