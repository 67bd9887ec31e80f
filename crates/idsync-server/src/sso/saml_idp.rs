//! idsync as the SAML 2.0 identity provider of the products registered in
//! `[sso.saml_clients.<name>]`: its metadata at `{issuer}/sso/saml-idp/metadata`, its SSO
//! endpoint at `{issuer}/sso/saml-idp/sso` (an AuthnRequest by HTTP-Redirect or HTTP-POST, from
//! a registered service provider only, answered at its registered ACS URL only), the sign-in
//! at the product's upstream, and the signed Response delivered by an auto-posting form.
//! An IdP-initiated sign-in starts at `{issuer}/sso/saml-idp/init?sp=<entity id>`.
//! The signing keys are made, sealed in the store and rotated with overlap in `saml_keys.rs`.

use super::respond::{page, SsoError};
use super::saml_keys::{self, instant};
use super::{Downstream, Peer, Sso};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use idsync_config::SsoConfig;
use idsync_oidc::provider::UserInfo;
use idsync_saml::{
    IdentityProvider, IdentityProviderConfig, KeyRollover, NameIdFormat, RegisteredSp, SamlUser,
    SpRequest,
};
use idsync_store::{Keyring, Store};
use std::sync::{Arc, RwLock};

fn duration(d: std::time::Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// The identity provider, when products are registered with it: rebuilt with the keys of
/// the moment at every key change.
pub(crate) struct SamlIdp {
    idp: RwLock<Arc<IdentityProvider>>,
    rollover: KeyRollover,
    store: Store,
    keyring: Keyring,
    /// The certificates' common name: the IdP's entity id.
    common_name: String,
    /// One maintenance at a time.
    maintaining: tokio::sync::Mutex<()>,
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
        let rollover = KeyRollover::new(
            duration(config.saml_key_rotation),
            duration(config.saml_key_overlap),
        )
        .map_err(|e| e.to_string())?;
        let entity_id = format!("{issuer}/sso/saml-idp");
        let (keys, changed) =
            saml_keys::maintain(store, keyring, rollover, &entity_id, now_ms).await?;
        if changed {
            tracing::info!("made or rotated the SAML identity provider's signing key");
        }
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
            entity_id: entity_id.clone(),
            sso_url: format!("{issuer}/sso/saml-idp/sso"),
            signing_key: keys.current.clone(),
            also_published: keys.also_published(),
            service_providers,
            assertion_lifetime: time::Duration::minutes(5),
            request_max_age: time::Duration::minutes(10),
            clock_skew: time::Duration::minutes(2),
        })
        .map_err(|e| e.to_string())?;
        Ok(Some(Self {
            idp: RwLock::new(Arc::new(idp)),
            rollover,
            store: store.clone(),
            keyring: keyring.clone(),
            common_name: entity_id,
            maintaining: tokio::sync::Mutex::new(()),
        }))
    }

    /// The identity provider with the keys of the moment.
    pub(crate) fn idp(&self) -> Arc<IdentityProvider> {
        match self.idp.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Brings the signing keys to `now_ms` (the store's, which another process may have
    /// rotated): the next key published ahead, switched to at its activation, the replaced one
    /// dropped after the overlap. Returns whether the keys in use changed.
    pub(crate) async fn maintain_keys(&self, now_ms: i64) -> Result<bool, String> {
        let _one = self.maintaining.lock().await;
        let (keys, changed) = saml_keys::maintain(
            &self.store,
            &self.keyring,
            self.rollover,
            &self.common_name,
            now_ms,
        )
        .await?;
        let current = self.idp();
        let in_use = current.config();
        if in_use.signing_key.certificate() == keys.current.certificate()
            && in_use.also_published == keys.also_published()
        {
            return Ok(false);
        }
        let mut config = in_use.clone();
        config.signing_key = keys.current.clone();
        config.also_published = keys.also_published();
        let idp = Arc::new(IdentityProvider::new(config).map_err(|e| e.to_string())?);
        match self.idp.write() {
            Ok(mut guard) => *guard = idp,
            Err(poisoned) => *poisoned.into_inner() = idp,
        }
        tracing::info!(
            rotated = changed,
            published = keys.also_published().len() + 1,
            "the SAML identity provider's signing keys changed"
        );
        Ok(true)
    }

    /// The signed Response for `request`, as an auto-posting page.
    pub(crate) fn respond(
        &self,
        request: &SpRequest,
        user: UserInfo,
        now_ms: i64,
    ) -> Result<Response, SsoError> {
        let form = self
            .idp()
            .respond(
                request,
                &saml_user(user, now_ms),
                instant(now_ms),
                &mut rand::rngs::OsRng,
            )
            .map_err(|e| SsoError::Internal(e.to_string()))?;
        Ok(posting_page(&form))
    }

    /// An unsolicited signed Response (IdP-initiated) to the registered service provider's
    /// ACS URL, as an auto-posting page.
    pub(crate) fn respond_unsolicited(
        &self,
        sp_entity_id: &str,
        relay_state: Option<&str>,
        user: UserInfo,
        now_ms: i64,
    ) -> Result<Response, SsoError> {
        let form = self
            .idp()
            .respond_unsolicited(
                sp_entity_id,
                relay_state,
                &saml_user(user, now_ms),
                instant(now_ms),
                &mut rand::rngs::OsRng,
            )
            .map_err(|e| SsoError::Internal(e.to_string()))?;
        Ok(posting_page(&form))
    }
}

/// The user a Response describes: NameID and `username` the user name.
fn saml_user(user: UserInfo, now_ms: i64) -> SamlUser {
    let username = user
        .username
        .clone()
        .unwrap_or_else(|| user.subject.clone());
    SamlUser {
        name_id: username.clone(),
        username,
        email: user.email,
        display_name: user.display_name,
        groups: user.groups,
        session_index: format!("_{}", idsync_oidc::random_token()),
        authn_instant: instant(now_ms),
    }
}

/// The auto-posting page of a Response: its script runs under a nonce of this page only.
fn posting_page(form: &idsync_saml::PostForm) -> Response {
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
    resp
}

/// `GET /sso/saml-idp/metadata`.
pub(super) async fn metadata(State(sso): State<Arc<Sso>>) -> Response {
    match &sso.saml_idp {
        Some(idp) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            idp.idp().metadata_xml(),
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
    Peer(peer): Peer,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let accepted = match &sso.saml_idp {
        Some(idp) => idp
            .idp()
            .accept_redirect(&query, instant(sso.clock.now_ms())),
        None => return SsoError::UnknownUpstream("saml-idp".into()).into_response(),
    };
    go_upstream(&sso, peer, accepted).await
}

/// `POST /sso/saml-idp/sso`: an AuthnRequest by HTTP-POST.
pub(super) async fn sso_post(
    State(sso): State<Arc<Sso>>,
    Peer(peer): Peer,
    body: Bytes,
) -> Response {
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
            .idp()
            .accept_post(request, relay, instant(sso.clock.now_ms())),
        None => return SsoError::UnknownUpstream("saml-idp".into()).into_response(),
    };
    go_upstream(&sso, peer, accepted).await
}

async fn go_upstream(
    sso: &Sso,
    peer: Option<std::net::IpAddr>,
    accepted: Result<SpRequest, idsync_saml::SamlError>,
) -> Response {
    let request = match accepted {
        Ok(r) => r,
        Err(e) => {
            return SsoError::BadRequest(format!("the SAML sign-in request was refused: {e}"))
                .into_response()
        }
    };
    sso.start_sign_in(peer, Downstream::Saml(request)).await
}

/// The longest RelayState of an IdP-initiated sign-in: the SAML bindings' limit (80 bytes,
/// SAML 2.0 Bindings 3.4.3 and 3.5.3).
const MAX_INIT_RELAY_STATE: usize = 80;

/// Whether `relay` is a path on the product's own site ("/browse/ENG-1"): a relative path,
/// not a scheme-relative URL ("//evil.example") nor one a browser reads as such ("/\\evil"),
/// no control characters or spaces. Anything else could send the user elsewhere after the
/// product accepts the sign-in.
fn relative_path(relay: &str) -> bool {
    relay.starts_with('/')
        && !relay.starts_with("//")
        && !relay.contains('\\')
        && !relay.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// `GET /sso/saml-idp/init?sp=<entity id>[&RelayState=/path]`: an IdP-initiated sign-in (the
/// "user access URL" of Entra's gallery apps, the link on a portal). The user signs in at the
/// product's upstream and is provisioned as in an SP-initiated sign-in; the product then
/// receives an unsolicited signed Response (no InResponseTo) at its registered ACS URL only.
pub(super) async fn init(
    State(sso): State<Arc<Sso>>,
    Peer(peer): Peer,
    RawQuery(query): RawQuery,
) -> Response {
    match check_init(&sso, query.as_deref().unwrap_or_default()) {
        Ok(request) => sso.start_sign_in(peer, request).await,
        Err(e) => e.into_response(),
    }
}

fn check_init(sso: &Sso, query: &str) -> Result<Downstream, SsoError> {
    if sso.saml_idp.is_none() {
        return Err(SsoError::UnknownUpstream("saml-idp".into()));
    }
    let mut sp = None;
    let mut relay = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.as_ref() {
            "sp" => &mut sp,
            "RelayState" => &mut relay,
            _ => continue,
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(SsoError::BadRequest(format!("{k} is given more than once")));
        }
    }
    let sp = sp.ok_or_else(|| {
        SsoError::BadRequest("the sign-in names no product (sp=<its entity id>)".into())
    })?;
    if !sso.saml_products.contains_key(&sp) {
        return Err(SsoError::BadRequest(format!(
            "{sp:?} is not a product registered in [sso.saml_clients]"
        )));
    }
    let relay = relay.filter(|r| !r.is_empty());
    if let Some(r) = &relay {
        if r.len() > MAX_INIT_RELAY_STATE {
            return Err(SsoError::BadRequest(format!(
                "the RelayState is longer than {MAX_INIT_RELAY_STATE} bytes"
            )));
        }
        if !relative_path(r) {
            return Err(SsoError::BadRequest(
                "the RelayState must be a path on the product's site (\"/...\")".into(),
            ));
        }
    }
    Ok(Downstream::SamlUnsolicited {
        sp_entity_id: sp,
        relay_state: relay,
    })
}

#[cfg(test)]
mod tests {
    use super::relative_path;

    #[test]
    fn a_relay_state_is_a_path_on_the_products_site() {
        for ok in ["/", "/browse/ENG-1", "/wiki/spaces/ENG?x=1#top"] {
            assert!(relative_path(ok), "{ok}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "browse/ENG-1",
            "/a b",
            "/a\nb",
            "",
        ] {
            assert!(!relative_path(bad), "{bad:?}");
        }
    }
}
