//! The OpenID provider's endpoints: discovery, JWKS, authorization (which hands the sign-in to
//! the product's upstream), token and userinfo. The protocol is `idsync_oidc::provider`'s;
//! here only the HTTP around it.

use super::respond::render;
use super::{Peer, Sso};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use idsync_oidc::provider::Response as OpResponse;
use serde_json::json;
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
pub(super) async fn authorize(
    State(sso): State<Arc<Sso>>,
    Peer(peer): Peer,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = pairs(query.unwrap_or_default().as_bytes());
    let request = match sso.provider.authorize(&pairs) {
        Ok(r) => r,
        Err(answer) => return render(answer),
    };
    sso.start_sign_in(peer, super::Downstream::Oidc(request))
        .await
}

/// `POST /sso/oidc/token`. Failed client authentications count against the address and the
/// client id; over their limit a request is refused (429, `Retry-After`) before its secret is
/// checked. Successes count nothing.
pub(super) async fn token(
    State(sso): State<Arc<Sso>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = pairs(&body);
    let auth = authorization(&headers);
    let client = sso.provider.token_client_id(&form, auth);
    if let Some(retry_after) = sso.limits.token_throttled(peer, client.as_deref()) {
        tracing::warn!(peer = ?peer, client_id = ?client, "token request refused: too many failed client authentications");
        let mut resp = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({
                "error": "invalid_client",
                "error_description": format!("too many failed client authentications: retry after {retry_after} s"),
            })),
        )
            .into_response();
        let h = resp.headers_mut();
        h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return resp;
    }
    let answer = sso.provider.token(&form, auth).await;
    if matches!(&answer, OpResponse::Json { status: 401, body, .. } if body["error"] == "invalid_client")
    {
        sso.limits.token_failed(peer, client.as_deref());
    }
    render(answer)
}

pub(super) async fn userinfo(State(sso): State<Arc<Sso>>, headers: HeaderMap) -> Response {
    render(sso.provider.userinfo(authorization(&headers)).await)
}
