//! Entra's side of the simulator: the OpenID configuration and the token endpoint (client
//! secrets and certificate assertions, scopes, unknown tenants and apps in Entra's words).

use super::api::GraphResponse;
use super::assertion;
use super::server::{root_of, SimState, Token};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::Rng;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(super) fn known_tenant(st: &SimState, tenant: &str) -> bool {
    st.tenant
        .read()
        .map(|t| {
            t.id == tenant
                || t.domains.iter().any(|d| d.eq_ignore_ascii_case(tenant))
                || tenant == "organizations"
        })
        .unwrap_or(false)
}

fn aad_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({
            "error": error,
            "error_description": description,
            "error_codes": [],
            "timestamp": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "trace_id": uuid::Uuid::new_v4().to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string()
        })),
    )
        .into_response()
}

pub(super) async fn openid_configuration(
    State(st): State<Arc<SimState>>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !known_tenant(&st, &tenant) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        );
    }
    let root = root_of(&uri, &headers, &st);
    let tid = st.tenant.read().map(|t| t.id.clone()).unwrap_or_default();
    Json(json!({
        "token_endpoint": format!("{root}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{root}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{root}/{tid}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{root}/oidc/userinfo"),
        "authorization_endpoint": format!("{root}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{root}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{root}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "preferred_username", "name", "tid", "ver", "email", "oid", "groups", "roles"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net"
    }))
    .into_response()
}

pub(super) async fn token(
    State(st): State<Arc<SimState>>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let cut = st
        .faults
        .lock()
        .map(|mut f| {
            let pattern = f.reset_match.clone();
            super::faults::take(&mut f.reset_next, &pattern, uri.path())
        })
        .unwrap_or(false);
    if cut {
        st.resets.fetch_add(1, Ordering::Relaxed);
        return super::faults::broken(&GraphResponse::json(
            200,
            json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": "cut-off"}),
        ));
    }
    if !known_tenant(&st, &tenant) {
        return aad_error(StatusCode::BAD_REQUEST, "invalid_request", &format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."));
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) == Some("authorization_code") {
        // A user's sign-in (signin.rs): the web app authenticates with its secret.
        let app = match secret_client(&st, &form, &headers) {
            Ok(app) => app,
            Err(r) => return *r,
        };
        let issuer = super::signin::issuer(&st, &uri, &headers);
        return super::signin::redeem(&st, &form, &app.client_id, &issuer);
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return aad_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type: the simulator serves client_credentials and authorization_code.");
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    if !scope.ends_with("/.default") {
        return aad_error(StatusCode::BAD_REQUEST, "invalid_scope", &format!("AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."));
    }
    // The resource: Graph by its name or app id, or this simulator by the address it was
    // reached at (what `<graph_url>/.default` gives).
    let resource = scope.trim_end_matches("/.default").trim_end_matches('/');
    let here = root_of(&uri, &headers, &st);
    if ![
        "https://graph.microsoft.com",
        "00000003-0000-0000-c000-000000000000",
        here.as_str(),
    ]
    .contains(&resource)
    {
        return aad_error(StatusCode::BAD_REQUEST, "invalid_resource", &format!("AADSTS500011: The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."));
    }
    let find_app = |client_id: &str| {
        [&st.opts.reader, &st.opts.admin]
            .into_iter()
            .find(|a| a.client_id == client_id)
            .cloned()
    };
    let unknown_app = |client_id: &str| {
        aad_error(StatusCode::BAD_REQUEST, "unauthorized_client", &format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory."))
    };
    let app = if let Some(assertion) = form.get("client_assertion") {
        // private_key_jwt: a client assertion signed with a registered certificate.
        if form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return aad_error(StatusCode::BAD_REQUEST, "invalid_request", "AADSTS50027: client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.");
        }
        let Some(client_id) = form
            .get("client_id")
            .cloned()
            .or_else(|| assertion::issuer(assertion))
        else {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'client_id'.",
            );
        };
        let Some(app) = find_app(&client_id) else {
            return unknown_app(&client_id);
        };
        let audience = format!(
            "{}/{tenant}/oauth2/v2.0/token",
            root_of(&uri, &headers, &st)
        );
        let now_s = st.clock.now_ms() / 1000;
        let verdict = match st.assertions.lock() {
            Ok(mut seen) => assertion::verify(
                assertion,
                &client_id,
                &app.certificates,
                &audience,
                now_s,
                &mut seen,
            ),
            Err(_) => {
                return aad_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "assertion cache poisoned",
                )
            }
        };
        if let Err(r) = verdict {
            return aad_error(StatusCode::UNAUTHORIZED, r.error, &r.description);
        }
        app
    } else {
        match secret_client(&st, &form, &headers) {
            Ok(app) => app,
            Err(r) => return *r,
        }
    };
    let now = st.clock.now_ms();
    let expires_in = 3599;
    let tid = st.tenant.read().map(|t| t.id.clone()).unwrap_or_default();
    let claims = json!({
        "aud": "https://graph.microsoft.com",
        "iss": format!("https://sts.windows.net/{tid}/"),
        "iat": now / 1000,
        "nbf": now / 1000,
        "exp": now / 1000 + expires_in,
        "appid": app.client_id,
        "tid": tid,
        "roles": app.roles,
        "idtyp": "app",
        "ver": "1.0"
    });
    let mut sig = [0u8; 32];
    if let Ok(mut r) = st.rng.lock() {
        r.fill(&mut sig);
    }
    let jwt = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"RS256","kid":"sim"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    );
    if let Ok(mut t) = st.tokens.lock() {
        t.retain(|_, v| v.expires_ms > now);
        t.insert(
            jwt.clone(),
            Token {
                roles: app.roles.clone(),
                client_id: app.client_id.clone(),
                expires_ms: now + expires_in * 1000,
            },
        );
    }
    st.issued.fetch_add(1, Ordering::Relaxed);
    Json(json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": jwt})).into_response()
}

/// The app a token request authenticates as with its secret: `client_secret_post`, or
/// `client_secret_basic` in the Authorization header.
fn secret_client(
    st: &SimState,
    form: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<super::server::App, Box<Response>> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        });
    let (client_id, secret) = match (form.get("client_id"), form.get("client_secret"), basic) {
        (Some(id), Some(s), _) => (id.clone(), s.clone()),
        (_, _, Some((id, s))) => (id, s),
        (Some(_), None, None) => {
            return Err(Box::new(aad_error(StatusCode::UNAUTHORIZED, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")));
        }
        _ => {
            return Err(Box::new(aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'client_id'.",
            )))
        }
    };
    let Some(app) = [&st.opts.reader, &st.opts.admin]
        .into_iter()
        .find(|a| a.client_id == client_id)
        .cloned()
    else {
        return Err(Box::new(aad_error(StatusCode::BAD_REQUEST, "unauthorized_client", &format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory."))));
    };
    if app.client_secret != secret {
        return Err(Box::new(aad_error(StatusCode::UNAUTHORIZED, "invalid_client", &format!("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."))));
    }
    Ok(app)
}
