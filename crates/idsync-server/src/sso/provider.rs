//! The OpenID provider's endpoints: discovery, JWKS, authorization (which hands the sign-in to
//! the product's upstream), token and userinfo. The protocol is `idsync_oidc::provider`'s;
//! here only the HTTP around it.

use super::respond::render;
use super::{upstream, Sso};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw).into_owned().collect()
}

fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

pub(super) async fn discovery(State(sso): State<Arc<Sso>>) -> Response {
    render(sso.provider.discovery())
}

pub(super) async fn jwks(State(sso): State<Arc<Sso>>) -> Response {
    render(sso.provider.jwks())
}

/// `GET /sso/oidc/authorize`: an unknown client or unregistered redirect URI is a page, other
/// faults an error redirect (the provider decides); a good request goes to the upstream.
pub(super) async fn authorize(State(sso): State<Arc<Sso>>, RawQuery(query): RawQuery) -> Response {
    let pairs = pairs(query.unwrap_or_default().as_bytes());
    let request = match sso.provider.authorize(&pairs) {
        Ok(r) => r,
        Err(answer) => return render(answer),
    };
    match upstream::start(&sso, super::Downstream::Oidc(request)).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

pub(super) async fn token(
    State(sso): State<Arc<Sso>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    render(sso.provider.token(&form, authorization(&headers)).await)
}

pub(super) async fn userinfo(State(sso): State<Arc<Sso>>, headers: HeaderMap) -> Response {
    render(sso.provider.userinfo(authorization(&headers)).await)
}
