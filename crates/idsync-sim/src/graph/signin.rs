//! Entra's user sign-in, as the v2 endpoints offer it to a web application (decision 0046): the
//! authorize endpoint with a login page (every user of the tenant signs in with the simulator's
//! one password), the authorization code flow with PKCE, and ID tokens signed RS256 with a key
//! published in the tenant's JWKS, carrying Entra's claims (`oid`, `tid`, `preferred_username`,
//! `name`, `email`, `groups` as object ids, and the `_claim_names` group overage past a limit).

use super::server::{root_of, SimState};
use super::tenant::Kind;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::Rng;
use ring::signature::RsaKeyPair;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// How users sign in to the simulated tenant.
#[derive(Debug, Clone)]
pub struct SignInOptions {
    /// The password of every user (the simulator prints it).
    pub password: String,
    /// Redirect URIs registered on the tenant's apps (Entra's "Web" platform redirect URIs);
    /// more can be added while it runs ([`SimState::register_redirect_uri`]).
    pub redirect_uris: Vec<String>,
    /// The most group ids an ID token carries; past it, `_claim_names` points at Graph (Entra's
    /// limit for JWTs is 200).
    pub groups_limit: usize,
}

impl Default for SignInOptions {
    fn default() -> Self {
        Self {
            password: DEFAULT_PASSWORD.into(),
            redirect_uris: Vec::new(),
            groups_limit: 200,
        }
    }
}

/// The password every simulated user signs in with, unless told otherwise.
pub const DEFAULT_PASSWORD: &str = "Demo-Passw0rd";

/// Authorization codes live this long (Entra's: about 10 minutes).
const CODE_TTL_MS: i64 = 10 * 60 * 1000;
/// ID tokens are valid this long (Entra's default: one hour).
const ID_TOKEN_TTL_S: i64 = 3600;

/// What a code was issued for.
#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: Option<(String, String)>,
    nonce: Option<String>,
    scope: String,
    user: String,
    expires_ms: i64,
}

/// The sign-in's state: the signing key, registered redirect URIs, codes issued.
pub struct SignIn {
    key: RsaKeyPair,
    kid: String,
    /// The public key's modulus and exponent, big-endian.
    n: Vec<u8>,
    e: Vec<u8>,
    redirect_uris: RwLock<Vec<String>>,
    codes: Mutex<HashMap<String, Grant>>,
    /// Codes already redeemed (Entra answers AADSTS54005 to a second redemption).
    used: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn").field("kid", &self.kid).finish()
    }
}

impl SignIn {
    /// A new RSA 2048 signing key (slow: call off the async threads).
    pub(super) fn generate(redirect_uris: Vec<String>) -> Result<Self, String> {
        use rsa::pkcs8::EncodePrivateKey;
        use rsa::traits::PublicKeyParts;
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
            .map_err(|e| format!("cannot make the signing key: {e}"))?;
        let der = private
            .to_pkcs8_der()
            .map_err(|e| format!("cannot encode the signing key: {e}"))?;
        let key = RsaKeyPair::from_pkcs8(der.as_bytes())
            .map_err(|e| format!("cannot load the signing key: {e}"))?;
        let (n, e) = (private.n().to_bytes_be(), private.e().to_bytes_be());
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(&n)[..15]);
        Ok(Self {
            key,
            kid,
            n,
            e,
            redirect_uris: RwLock::new(redirect_uris),
            codes: Mutex::new(HashMap::new()),
            used: Mutex::new(HashMap::new()),
        })
    }

    pub(super) fn register(&self, uri: &str) {
        if let Ok(mut u) = self.redirect_uris.write() {
            if !u.iter().any(|x| x == uri) {
                u.push(uri.to_string());
            }
        }
    }

    fn registered(&self, uri: &str) -> bool {
        self.redirect_uris
            .read()
            .map(|u| u.iter().any(|x| x == uri))
            .unwrap_or(false)
    }

    /// The public key as a JWK (RSA modulus and exponent from the key pair's public key).
    fn jwk(&self, issuer: &str) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "e": URL_SAFE_NO_PAD.encode(&self.e),
            "issuer": issuer,
        })
    }

    fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| "cannot sign the ID token".to_string())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A page of Entra's in place of a redirect: the request cannot be answered at its redirect URI.
fn error_page(status: StatusCode, code: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in to your account</title></head><body><h1>Sorry, but we're having trouble signing you in.</h1><p id=\"error\">{code}: {}</p></body></html>",
        escape(text)
    );
    (status, no_store(), Html(body)).into_response()
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store, no-cache"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ]
}

fn aad_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "error": error,
            "error_description": description,
            "error_codes": [],
            "trace_id": uuid::Uuid::new_v4().to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string()
        })),
    )
        .into_response()
}

/// The parameters of an authorization request (from the query, or the login form's hidden
/// fields), with every check Entra makes before it shows its login page.
struct AuthRequest {
    params: Vec<(String, String)>,
}

impl AuthRequest {
    fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Checks the client and the redirect URI (failures are pages), then the rest (failures
    /// are redirects with `error`, as Entra answers them).
    fn check(&self, st: &SimState, tenant: &str) -> Result<(), Box<Response>> {
        if !super::login::known_tenant(st, tenant) {
            return Err(Box::new(error_page(
                StatusCode::BAD_REQUEST,
                "AADSTS90002",
                &format!("Tenant '{tenant}' not found."),
            )));
        }
        let Some(client_id) = self.get("client_id") else {
            return Err(Box::new(error_page(
                StatusCode::BAD_REQUEST,
                "AADSTS900144",
                "The request body must contain the following parameter: 'client_id'.",
            )));
        };
        if find_app(st, client_id).is_none() {
            return Err(Box::new(error_page(
                StatusCode::BAD_REQUEST,
                "AADSTS700016",
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory."
                ),
            )));
        }
        let redirect_uri = self.get("redirect_uri").unwrap_or_default();
        if !st.sign_in.registered(redirect_uri) {
            return Err(Box::new(error_page(StatusCode::BAD_REQUEST, "AADSTS50011", &format!("The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'."))));
        }
        let fail = |error: &str, text: &str| Err(Box::new(self.error_redirect(error, text)));
        if self.get("response_type") != Some("code") {
            return fail("unsupported_response_type", "AADSTS700054: the simulator serves the authorization code flow (response_type=code).");
        }
        match self.get("response_mode") {
            None | Some("query") => {}
            Some(m) => {
                return fail(
                    "invalid_request",
                    &format!(
                        "AADSTS900352: the simulator answers with response_mode=query, not {m}."
                    ),
                )
            }
        }
        if !self
            .get("scope")
            .unwrap_or_default()
            .split(' ')
            .any(|s| s == "openid")
        {
            return fail(
                "invalid_scope",
                "AADSTS900144: the scope must contain openid for a sign-in.",
            );
        }
        match (
            self.get("code_challenge"),
            self.get("code_challenge_method"),
        ) {
            (Some(_), Some("S256" | "plain") | None) | (None, None) => Ok(()),
            (Some(_), Some(m)) => fail(
                "invalid_request",
                &format!("AADSTS501491: Invalid code_challenge_method '{m}'."),
            ),
            (None, Some(_)) => fail(
                "invalid_request",
                "AADSTS501491: code_challenge_method without code_challenge.",
            ),
        }
    }

    fn error_redirect(&self, error: &str, description: &str) -> Response {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        ser.append_pair("error", error);
        ser.append_pair("error_description", description);
        if let Some(s) = self.get("state") {
            ser.append_pair("state", s);
        }
        redirect(self.get("redirect_uri").unwrap_or_default(), &ser.finish())
    }
}

fn redirect(uri: &str, query: &str) -> Response {
    let sep = if uri.contains('?') { '&' } else { '?' };
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, format!("{uri}{sep}{query}")),
            (header::CACHE_CONTROL, "no-store, no-cache".to_string()),
        ],
    )
        .into_response()
}

fn find_app(st: &SimState, client_id: &str) -> Option<super::server::App> {
    [&st.opts.reader, &st.opts.admin]
        .into_iter()
        .find(|a| a.client_id == client_id)
        .cloned()
}

/// Parameters carried from the authorize request to the login form and back.
const CARRIED: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

fn login_page(
    st: &SimState,
    tenant: &str,
    req: &AuthRequest,
    user: &str,
    problem: Option<&str>,
) -> Response {
    let name = st
        .tenant
        .read()
        .map(|t| t.display_name.clone())
        .unwrap_or_default();
    let hidden: String = CARRIED
        .iter()
        .filter_map(|k| req.get(k).map(|v| (k, v)))
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                escape(v)
            )
        })
        .collect();
    let problem = problem.map_or_else(String::new, |p| {
        format!(
            "<div id=\"passwordError\" role=\"alert\">{}</div>",
            escape(p)
        )
    });
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign in to your account</title></head><body>\
<h1>Sign in</h1><p>{org} (simulated Microsoft Entra tenant)</p>{problem}\
<form method=\"post\" action=\"/{tenant}/login\" id=\"credentials\">{hidden}\
<label>Email, phone, or Skype <input type=\"email\" name=\"login\" id=\"i0116\" value=\"{user}\" autocomplete=\"username\"></label>\
<label>Password <input type=\"password\" name=\"passwd\" id=\"i0118\" autocomplete=\"current-password\"></label>\
<input type=\"submit\" id=\"idSIButton9\" value=\"Sign in\"></form></body></html>",
        org = escape(&name),
        tenant = escape(tenant),
        user = escape(user),
    );
    (StatusCode::OK, no_store(), Html(body)).into_response()
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: the login page, once the request is one Entra takes.
pub(super) async fn authorize(
    State(st): State<Arc<SimState>>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params: Vec<(String, String)> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let req = AuthRequest { params };
    if let Err(r) = req.check(&st, &tenant) {
        return *r;
    }
    let hint = req.get("login_hint").unwrap_or_default().to_string();
    login_page(&st, &tenant, &req, &hint, None)
}

/// `POST /{tenant}/login`: the login form. Right credentials: a code to the redirect URI.
pub(super) async fn login(
    State(st): State<Arc<SimState>>,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let params: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (login, password) = (field("login"), field("passwd"));
    let req = AuthRequest {
        params: params
            .iter()
            .filter(|(k, _)| CARRIED.contains(&k.as_str()))
            .cloned()
            .collect(),
    };
    if let Err(r) = req.check(&st, &tenant) {
        return *r;
    }
    let found = st.tenant.read().ok().and_then(|t| {
        t.objects(Kind::User).iter().find_map(|(id, o)| {
            let matches = ["userPrincipalName", "mail"].iter().any(|k| {
                o.props
                    .get(*k)
                    .and_then(Value::as_str)
                    .is_some_and(|v| !login.is_empty() && v.eq_ignore_ascii_case(login.trim()))
            });
            matches.then(|| {
                (
                    id.clone(),
                    o.props.get("accountEnabled") != Some(&json!(false)),
                )
            })
        })
    });
    let password_ok = password == st.opts.sign_in.password;
    let user = match found {
        Some((id, enabled)) if password_ok => {
            if !enabled {
                return login_page(
                    &st,
                    &tenant,
                    &req,
                    &login,
                    Some("AADSTS50057: The user account is disabled."),
                );
            }
            id
        }
        Some(_) => {
            return login_page(&st, &tenant, &req, &login, Some("AADSTS50126: Error validating credentials due to invalid username or password."));
        }
        None => {
            return login_page(
                &st,
                &tenant,
                &req,
                &login,
                Some("AADSTS50034: The user account does not exist in this directory."),
            );
        }
    };
    let mut raw = [0u8; 32];
    if let Ok(mut r) = st.rng.lock() {
        r.fill(&mut raw);
    }
    let code = format!("1.A{}", URL_SAFE_NO_PAD.encode(raw));
    let now = st.clock.now_ms();
    let grant = Grant {
        client_id: req.get("client_id").unwrap_or_default().to_string(),
        redirect_uri: req.get("redirect_uri").unwrap_or_default().to_string(),
        challenge: req.get("code_challenge").map(|c| {
            (
                c.to_string(),
                req.get("code_challenge_method")
                    .unwrap_or("plain")
                    .to_string(),
            )
        }),
        nonce: req.get("nonce").map(str::to_string),
        scope: req.get("scope").unwrap_or_default().to_string(),
        user,
        expires_ms: now + CODE_TTL_MS,
    };
    if let Ok(mut c) = st.sign_in.codes.lock() {
        c.retain(|_, g| g.expires_ms > now);
        c.insert(code.clone(), grant);
    }
    let mut ser = form_urlencoded::Serializer::new(String::new());
    ser.append_pair("code", &code);
    if let Some(s) = req.get("state") {
        ser.append_pair("state", s);
    }
    ser.append_pair("session_state", &uuid::Uuid::new_v4().to_string());
    redirect(req.get("redirect_uri").unwrap_or_default(), &ser.finish())
}

/// `GET /{tenant}/discovery/v2.0/keys`: the key ID tokens are signed with.
pub(super) async fn keys(
    State(st): State<Arc<SimState>>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if !super::login::known_tenant(&st, &tenant) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        );
    }
    let issuer = issuer(&st, &uri, &headers);
    Json(json!({"keys": [st.sign_in.jwk(&issuer)]})).into_response()
}

/// Entra v2's issuer shape, `https://login.microsoftonline.com/{tid}/v2.0`, on the simulator's root.
pub(super) fn issuer(st: &SimState, uri: &Uri, headers: &HeaderMap) -> String {
    let tid = st.tenant.read().map(|t| t.id.clone()).unwrap_or_default();
    format!("{}/{tid}/v2.0", root_of(uri, headers, st))
}

/// `grant_type=authorization_code` at the token endpoint: the client authenticated by
/// `authenticate` (the token endpoint's own check), the code redeemed once, PKCE verified.
pub(super) fn redeem(
    st: &SimState,
    form: &HashMap<String, String>,
    client_id: &str,
    issuer: &str,
) -> Response {
    let Some(code) = form.get("code") else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'code'.",
        );
    };
    let now = st.clock.now_ms();
    let taken = st
        .sign_in
        .codes
        .lock()
        .ok()
        .and_then(|mut c| c.remove(code));
    let Some(grant) = taken else {
        let used = st
            .sign_in
            .used
            .lock()
            .map(|u| u.contains_key(code))
            .unwrap_or(false);
        return if used {
            aad_error(StatusCode::BAD_REQUEST, "invalid_grant", "AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
        } else {
            aad_error(StatusCode::BAD_REQUEST, "invalid_grant", "AADSTS9002313: Invalid request. Request is malformed or invalid: the code is not one the simulator issued.")
        };
    };
    if let Ok(mut u) = st.sign_in.used.lock() {
        u.retain(|_, exp| *exp > now);
        u.insert(code.clone(), grant.expires_ms);
    }
    if grant.expires_ms <= now {
        return aad_error(StatusCode::BAD_REQUEST, "invalid_grant", "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity.");
    }
    if grant.client_id != client_id {
        return aad_error(StatusCode::BAD_REQUEST, "invalid_grant", "AADSTS70000: The provided value for the 'code' parameter is not valid: it was issued to another application.");
    }
    if form.get("redirect_uri").map(String::as_str) != Some(grant.redirect_uri.as_str()) {
        return aad_error(StatusCode::BAD_REQUEST, "invalid_grant", "AADSTS500112: The reply address does not match the reply address provided when requesting the authorization code.");
    }
    if let Some((challenge, method)) = &grant.challenge {
        let Some(verifier) = form.get("code_verifier") else {
            return aad_error(StatusCode::BAD_REQUEST, "invalid_request", "AADSTS50148: The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.");
        };
        let computed = if method == "S256" {
            URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
        } else {
            verifier.clone()
        };
        if computed != *challenge {
            return aad_error(StatusCode::BAD_REQUEST, "invalid_grant", "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.");
        }
    }
    let claims = match id_token_claims(st, &grant, issuer, now / 1000) {
        Some(c) => c,
        None => {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "AADSTS50034: The user account does not exist in this directory.",
            )
        }
    };
    let id_token = match st.sign_in.sign(&claims) {
        Ok(t) => t,
        Err(e) => return aad_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e),
    };
    let mut raw = [0u8; 32];
    if let Ok(mut r) = st.rng.lock() {
        r.fill(&mut raw);
    }
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "token_type": "Bearer",
            "scope": grant.scope,
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": URL_SAFE_NO_PAD.encode(raw),
            "id_token": id_token,
        })),
    )
        .into_response()
}

/// The ID token of `grant`'s user, as Entra's v2 endpoint makes it for an app whose
/// `groupMembershipClaims` is `SecurityGroup`: the user's security groups, transitively.
fn id_token_claims(st: &SimState, grant: &Grant, issuer: &str, now_s: i64) -> Option<Value> {
    let t = st.tenant.read().ok()?;
    let user = t.get(Kind::User, &grant.user)?;
    let prop = |k: &str| {
        user.props
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let tid = t.id.clone();
    let groups: Vec<String> = t
        .transitive_member_of(&grant.user)
        .into_iter()
        .filter(|g| {
            t.get(Kind::Group, g)
                .and_then(|o| o.props.get("securityEnabled"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
        .collect();
    let scopes: Vec<&str> = grant.scope.split(' ').collect();
    let mut c = Map::new();
    c.insert("aud".into(), json!(grant.client_id));
    c.insert("iss".into(), json!(issuer));
    c.insert("iat".into(), json!(now_s));
    c.insert("nbf".into(), json!(now_s));
    c.insert("exp".into(), json!(now_s + ID_TOKEN_TTL_S));
    if let Some(n) = &grant.nonce {
        c.insert("nonce".into(), json!(n));
    }
    c.insert("oid".into(), json!(grant.user));
    c.insert("tid".into(), json!(tid));
    // `sub` is pairwise: the same user has another `sub` in every application.
    let pairwise = Sha256::digest(format!("{}|{}", grant.user, grant.client_id).as_bytes());
    c.insert("sub".into(), json!(URL_SAFE_NO_PAD.encode(pairwise)));
    c.insert("ver".into(), json!("2.0"));
    c.insert("uti".into(), json!(URL_SAFE_NO_PAD.encode(&pairwise[..16])));
    if scopes.contains(&"profile") {
        if let Some(v) = prop("displayName") {
            c.insert("name".into(), json!(v));
        }
        if let Some(v) = prop("userPrincipalName") {
            c.insert("preferred_username".into(), json!(v));
        }
    }
    if scopes.contains(&"email") {
        if let Some(v) = prop("mail") {
            c.insert("email".into(), json!(v));
        }
    }
    if groups.len() > st.opts.sign_in.groups_limit {
        // Group overage: the groups are left out and Graph is named as where to read them.
        c.insert("_claim_names".into(), json!({"groups": "src1"}));
        c.insert(
            "_claim_sources".into(),
            json!({"src1": {"endpoint": format!("https://graph.windows.net/{tid}/users/{}/getMemberObjects", grant.user)}}),
        );
    } else {
        c.insert("groups".into(), json!(groups));
    }
    Some(Value::Object(c))
}
