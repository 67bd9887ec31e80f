//! The demo's simulated product: a small "Jira" page on its own port that signs its users in
//! through idsync's OpenID provider, as Atlassian's SSO app does (authorization code with PKCE,
//! the ID token validated with idsync's JWKS), and shows who arrived with which group names.

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use idsync_core::SystemClock;
use idsync_oidc::rp::{Callback, Groups, IdpStyle, PendingLogin, RelyingParty, RpConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// How the product is registered at idsync.
pub(crate) struct ProductConfig {
    /// idsync's issuer.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// `http://<product>/callback`.
    pub redirect_uri: String,
}

struct Product {
    config: RpConfig,
    rp: OnceCell<Arc<RelyingParty>>,
    /// Sign-ins under way, by state (a demo: bounded by dropping the oldest past 1,000).
    pending: Mutex<HashMap<String, PendingLogin>>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Jira (simulated)</title></head><body><h1>Jira (simulated product)</h1>{body}</body></html>"
        )),
    )
        .into_response()
}

/// The product's routes: `/` (a "Log in" button), `/login`, `/callback`.
pub(crate) fn router(c: ProductConfig) -> Router {
    let mut config = RpConfig::new(
        c.issuer.clone(),
        c.client_id,
        c.client_secret,
        c.redirect_uri,
    );
    config.issuer = c.issuer;
    config.style = IdpStyle::Generic;
    config.scopes = vec!["profile".into(), "email".into(), "groups".into()];
    let product = Arc::new(Product {
        config,
        rp: OnceCell::new(),
        pending: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .with_state(product)
}

async fn home() -> Response {
    page(
        StatusCode::OK,
        "<p>Not signed in.</p><form method=\"get\" action=\"/login\"><button type=\"submit\" id=\"login\">Log in</button></form>",
    )
}

impl Product {
    async fn rp(&self) -> Result<&Arc<RelyingParty>, String> {
        self.rp
            .get_or_try_init(|| async {
                let http = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(std::time::Duration::from_secs(30))
                    .build()
                    .map_err(|e| e.to_string())?;
                RelyingParty::discover(self.config.clone(), http, Arc::new(SystemClock))
                    .await
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .await
    }
}

async fn login(State(p): State<Arc<Product>>) -> Response {
    let rp = match p.rp().await {
        Ok(rp) => rp,
        Err(e) => {
            return page(
                StatusCode::BAD_GATEWAY,
                &format!("<p>idsync cannot be reached: {}</p>", escape(&e)),
            )
        }
    };
    let (url, pending) = rp.start_login();
    if let Ok(mut m) = p.pending.lock() {
        if m.len() >= 1000 {
            m.clear();
        }
        m.insert(pending.state.clone(), pending);
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response()
}

async fn callback(State(p): State<Arc<Product>>, RawQuery(query): RawQuery) -> Response {
    let cb = Callback::from_query(query.as_deref().unwrap_or_default());
    let pending = cb
        .state
        .as_ref()
        .and_then(|s| p.pending.lock().ok().and_then(|mut m| m.remove(s)));
    let Some(pending) = pending else {
        return page(
            StatusCode::BAD_REQUEST,
            "<p>No sign-in of this product's is waiting for this answer.</p>",
        );
    };
    let rp = match p.rp().await {
        Ok(rp) => rp,
        Err(e) => return page(StatusCode::BAD_GATEWAY, &escape(&e)),
    };
    let login = match rp.finish_login(&pending, &cb).await {
        Ok(l) => l,
        Err(e) => {
            return page(
                StatusCode::FORBIDDEN,
                &format!(
                    "<p id=\"refused\">Sign-in refused: {}</p>",
                    escape(&e.to_string())
                ),
            )
        }
    };
    let c = login.claims;
    let groups = match &c.groups {
        Groups::Listed(g) => g.clone(),
        Groups::Absent | Groups::Overage => Vec::new(),
    };
    let items: String = groups
        .iter()
        .map(|g| format!("<li class=\"group\">{}</li>", escape(g)))
        .collect();
    page(
        StatusCode::OK,
        &format!(
            "<p>Signed in as <b id=\"user\">{}</b> ({}, {}), through idsync.</p><p>Groups (names, as idsync's flow provisioned them):</p><ul id=\"groups\">{items}</ul><p><a href=\"/\">Back</a></p>",
            escape(&c.subject),
            escape(c.display_name.as_deref().unwrap_or("")),
            escape(c.email.as_deref().unwrap_or("")),
        ),
    )
}
