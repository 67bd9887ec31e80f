//! The upstream identity providers: starting a sign-in there for a product's authorization
//! request (kept in the store under the upstream login's state), and the callback that finishes
//! it, provisions the user just in time and sends the browser back to the product with a code.

use super::respond::{redirect, SsoError};
use super::{jit, Downstream, Sso};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use idsync_config::{SsoUpstreamConfig, UpstreamStyle};
use idsync_core::Clock;
use idsync_oidc::rp::{
    Callback, ClientAuth, IdpStyle, PendingLogin, RelyingParty, RpConfig, RpError,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Connecting to an identity provider takes at most this (or the upstream's `timeout`, when
/// shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One `[sso.upstreams.<name>]`: its relying party, discovered at the first sign-in.
pub(crate) struct Upstream {
    pub config: SsoUpstreamConfig,
    rp_config: RpConfig,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    rp: OnceCell<Arc<RelyingParty>>,
}

/// What is kept while the user signs in upstream.
#[derive(Serialize, Deserialize)]
struct Pending {
    login: PendingLogin,
    request: Downstream,
    /// The hash of the browser's binding cookie: the answer must come back in the browser that
    /// started the sign-in (a sign-in link handed to someone else finishes nowhere).
    browser: String,
}

/// The binding cookie of the sign-in whose upstream state is `state`: its own name, so that
/// sign-ins in several tabs do not undo each other.
fn binding_cookie(state: &str) -> String {
    let h = idsync_oidc::pkce_challenge(state);
    let tag: String = h
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    format!("idsync_sso_{tag}")
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// `Set-Cookie` for the binding cookie (an empty value with `Max-Age=0` removes it).
fn set_cookie(sso: &Sso, upstream: &str, name: &str, value: &str, max_age_s: i64) -> String {
    let secure = if sso.issuer().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{name}={value}; Path={}/sso/upstream/{upstream}/callback; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}",
        sso.prefix
    )
}

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

impl Upstream {
    pub(crate) fn new(
        u: &SsoUpstreamConfig,
        issuer: &str,
        login_timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let redirect_uri = format!("{issuer}/sso/upstream/{}/callback", u.name);
        let mut rp = RpConfig::new(
            u.authority.clone(),
            u.client_id.clone(),
            u.client_secret.expose().to_string(),
            redirect_uri,
        );
        rp.issuer = u.issuer.clone();
        rp.scopes = u.scopes.clone();
        rp.client_auth = if u.client_auth_basic {
            ClientAuth::ClientSecretBasic
        } else {
            ClientAuth::ClientSecretPost
        };
        rp.style = match &u.style {
            UpstreamStyle::Entra { tenant_id } => IdpStyle::EntraId {
                tenant_id: tenant_id.clone(),
            },
            UpstreamStyle::B2c { policy } => IdpStyle::AzureAdB2c {
                policy: policy.clone(),
            },
            UpstreamStyle::Generic => IdpStyle::Generic,
        };
        rp.clock_skew_s = i64::try_from(u.clock_skew.as_secs()).unwrap_or(120);
        rp.login_max_age_s = i64::try_from(login_timeout.as_secs()).unwrap_or(600);
        rp.validate().map_err(|e| e.to_string())?;
        let mut http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(u.timeout))
            .timeout(u.timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &u.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read ca_file {}: {e}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| format!("ca_file {} is not a PEM certificate: {e}", ca.display()))?;
            http = http.add_root_certificate(cert);
        }
        let http = http
            .build()
            .map_err(|e| format!("cannot make the HTTP client: {e}"))?;
        Ok(Self {
            config: u.clone(),
            rp_config: rp,
            http,
            clock,
            rp: OnceCell::new(),
        })
    }

    /// The relying party, its discovery read the first time (again after a failure).
    async fn rp(&self) -> Result<&Arc<RelyingParty>, RpError> {
        self.rp
            .get_or_try_init(|| async {
                let rp = RelyingParty::discover(
                    self.rp_config.clone(),
                    self.http.clone(),
                    Arc::clone(&self.clock),
                )
                .await?;
                tracing::info!(upstream = %self.config.name, issuer = %self.config.issuer, "read the identity provider's discovery");
                Ok(Arc::new(rp))
            })
            .await
    }
}

/// A checked authorization request: start the sign-in at the product's upstream.
pub(super) async fn start(sso: &Sso, request: Downstream) -> Result<Response, SsoError> {
    let product = sso.product_of(&request)?;
    if let Some(saml) = sso.saml_upstreams.get(&product.upstream) {
        return super::saml::start(sso, saml, product, request).await;
    }
    let up = sso
        .upstreams
        .get(&product.upstream)
        .ok_or_else(|| SsoError::UnknownUpstream(product.upstream.clone()))?;
    let rp = up.rp().await.map_err(SsoError::UpstreamUnavailable)?;
    let mut extra = Vec::new();
    match &request {
        Downstream::Oidc(r) => {
            if let Some(hint) = &r.login_hint {
                extra.push(("login_hint", hint.as_str()));
            }
            if let Some(prompt) = r.prompt.as_deref().filter(|p| *p == "login") {
                extra.push(("prompt", prompt));
            }
        }
        Downstream::Saml(r) if r.force_authn => extra.push(("prompt", "login")),
        Downstream::Saml(_) | Downstream::SamlUnsolicited { .. } => {}
    }
    let (url, login) = rp.start_login_with(&extra);
    let state = login.state.clone();
    let browser = idsync_oidc::random_token();
    let data = serde_json::to_string(&Pending {
        login,
        request,
        browser: idsync_oidc::pkce_challenge(&browser),
    })
    .map_err(|e| SsoError::Internal(e.to_string()))?;
    let expires = sso.clock.now_ms().saturating_add(sso.login_timeout_ms);
    sso.svc
        .runtime
        .store
        .put_sso_pending(&state, &up.config.name, &data, expires)
        .await?;
    tracing::info!(product = %product.name, upstream = %up.config.name, "sign-in started at the identity provider");
    let cookie = set_cookie(
        sso,
        &up.config.name,
        &binding_cookie(&state),
        &browser,
        sso.login_timeout_ms / 1000,
    );
    Ok(with_cookie(redirect(&url), &cookie))
}

/// `GET /sso/upstream/<name>/callback`.
pub(super) async fn callback(
    State(sso): State<Arc<Sso>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let resp = match finish(&sso, &name, &query, &headers).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    };
    // The binding cookie has done its work, whatever the outcome.
    match Callback::from_query(&query).state {
        Some(state) if sso.upstreams.contains_key(&name) => {
            let gone = set_cookie(&sso, &name, &binding_cookie(&state), "", 0);
            with_cookie(resp, &gone)
        }
        _ => resp,
    }
}

async fn finish(
    sso: &Sso,
    name: &str,
    query: &str,
    headers: &HeaderMap,
) -> Result<Response, SsoError> {
    let began = std::time::Instant::now();
    let up = sso
        .upstreams
        .get(name)
        .ok_or_else(|| SsoError::UnknownUpstream(name.to_string()))?;
    let callback = Callback::from_query(query);
    let state = callback.state.as_deref().ok_or(SsoError::UnknownLogin)?;
    let pending: Pending = sso.take_pending(state, name).await?;
    let browser = cookie(headers, &binding_cookie(state)).map(idsync_oidc::pkce_challenge);
    if browser.as_deref() != Some(pending.browser.as_str()) {
        return Err(SsoError::OtherBrowser);
    }
    // The time spent waiting on the identity provider: its discovery (the first time), the
    // code exchange and its keys (when the token's key is new).
    let upstream_began = std::time::Instant::now();
    let rp = up.rp().await.map_err(SsoError::UpstreamUnavailable)?;
    let login = rp
        .finish_login(&pending.login, &callback)
        .await
        .map_err(|e| match e {
            RpError::Http { .. } | RpError::HttpStatus { .. } | RpError::BadDocument { .. } => {
                SsoError::UpstreamUnavailable(e)
            }
            e => SsoError::Upstream(e),
        })?;
    let upstream_ms = millis(upstream_began.elapsed());
    let product = sso.product_of(&pending.request)?;
    let provision_began = std::time::Instant::now();
    let (user, flows_wait) = jit::provision(
        sso,
        jit::login_of(up, &login.claims),
        name,
        &login.claims.subject,
        product,
    )
    .await?;
    let provision_ms = millis(provision_began.elapsed());
    let answer = sso.answer(&pending.request, user).await?;
    // The times of the sign-in, for admins and the sso_latency benchmark: idsync's own time
    // is total_ms - upstream_ms; provision_ms is the just-in-time part, of which flows_ms the
    // wait for the user's flows' runs (login_wait bounds it).
    tracing::info!(
        product = %product.name,
        upstream = %name,
        subject = %login.claims.subject,
        upstream_ms,
        provision_ms,
        flows_ms = millis(flows_wait),
        total_ms = millis(began.elapsed()),
        "signed in: back to the product"
    );
    Ok(answer)
}

/// A duration in milliseconds with a fraction (a log field).
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
