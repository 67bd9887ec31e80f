//! The token endpoint (authorization code grant only) and the userinfo endpoint.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::response::Params;
use super::store::AccessGrant;
use super::{Client, Provider, Response};
use crate::pkce::{
    hash_secret, pkce_challenge, random_token, secrets_equal, verifier_is_well_formed,
};

fn token_error(status: u16, error: &str, description: &str) -> Response {
    Response::no_store(
        status,
        json!({"error": error, "error_description": description}),
    )
}

fn invalid_client(basic: bool) -> Response {
    let mut response = token_error(401, "invalid_client", "client authentication failed");
    if let (true, Response::Json { headers, .. }) = (basic, &mut response) {
        headers.push(("www-authenticate", r#"Basic realm="idsync""#.to_owned()));
    }
    response
}

/// `Authorization: Basic` → (id, secret), both form-urlencoded inside (RFC 6749 §2.3.1).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?;
    h.get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
        .and_then(|_| h.get(7..))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl Provider {
    /// The client id a token request names (its Basic user, else its form's `client_id`),
    /// when it is a registered client: what failed authentications are counted under.
    pub fn token_client_id(
        &self,
        form: &[(String, String)],
        authorization: Option<&str>,
    ) -> Option<String> {
        let basic = authorization
            .filter(|h| {
                h.get(..6)
                    .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic "))
            })
            .and_then(basic_credentials)
            .map(|(id, _)| id);
        let id = basic.or_else(|| {
            form.iter()
                .find(|(k, _)| k == "client_id")
                .map(|(_, v)| v.clone())
        })?;
        self.clients.contains_key(&id).then_some(id)
    }

    /// Authenticates the client: HTTP Basic or the form's `client_id`/`client_secret` (not
    /// both), or a public client by its `client_id` alone. Secrets compared in constant time.
    fn authenticate(
        &self,
        params: &Params<'_>,
        authorization: Option<&str>,
    ) -> Result<&Client, Response> {
        let form_id = params
            .get("client_id")
            .map_err(|()| token_error(400, "invalid_request", "client_id is repeated"))?;
        let form_secret = params
            .get("client_secret")
            .map_err(|()| token_error(400, "invalid_request", "client_secret is repeated"))?;
        let basic = authorization.filter(|h| {
            h.get(..6)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic "))
        });
        let (id, secret, via_basic) = match (basic, form_secret) {
            (Some(_), Some(_)) => {
                return Err(token_error(
                    400,
                    "invalid_request",
                    "the client authenticated in two ways",
                ))
            }
            (Some(header), None) => {
                let (id, secret) = basic_credentials(header).ok_or_else(|| invalid_client(true))?;
                if form_id.is_some_and(|f| f != id) {
                    return Err(token_error(
                        400,
                        "invalid_request",
                        "client_id differs from the Basic user",
                    ));
                }
                (id, Some(secret), true)
            }
            (None, secret) => {
                let id = form_id.ok_or_else(|| invalid_client(false))?;
                (id.to_owned(), secret.map(str::to_owned), false)
            }
        };
        let client = self.clients.get(&id);
        let ok = match (
            client.and_then(|c| c.client_secret.as_deref()),
            secret.as_deref(),
        ) {
            (Some(expected), Some(given)) => secrets_equal(expected, given),
            // A public client sends no secret; one that sends a secret is not public.
            (None, None) => client.is_some(),
            _ => false,
        };
        match (ok, client) {
            (true, Some(client)) => Ok(client),
            _ => {
                tracing::warn!(client_id = %id, "token request with failed client authentication");
                Err(invalid_client(via_basic))
            }
        }
    }

    /// `POST {token_endpoint}` with its form (decoded pairs) and the `Authorization` header.
    pub async fn token(&self, form: &[(String, String)], authorization: Option<&str>) -> Response {
        let params = Params::new(form);
        if let Some(name) = params.repeated() {
            return token_error(
                400,
                "invalid_request",
                &format!("parameter {name} is repeated"),
            );
        }
        let get = |name: &str| params.get(name).ok().flatten();
        match get("grant_type") {
            Some("authorization_code") => {}
            Some(_) => {
                return token_error(
                    400,
                    "unsupported_grant_type",
                    "only authorization_code is supported",
                )
            }
            None => return token_error(400, "invalid_request", "grant_type is missing"),
        }
        let client = match self.authenticate(&params, authorization) {
            Ok(client) => client,
            Err(response) => return response,
        };
        let Some(code) = get("code") else {
            return token_error(400, "invalid_request", "code is missing");
        };
        let code_hash = hash_secret(code);
        let redeemed = match self.store.redeem_code(&code_hash).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "the provider store failed redeeming a code");
                return token_error(500, "server_error", "the code could not be checked");
            }
        };
        let invalid_grant = |why: &str| token_error(400, "invalid_grant", why);
        let Some(redeemed) = redeemed else {
            return invalid_grant("the code is not valid");
        };
        let grant = redeemed.grant;
        if redeemed.already_used {
            // RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for.
            let revoked = self.store.revoke_code_tokens(&code_hash).await.unwrap_or(0);
            tracing::warn!(client_id = %grant.client_id, revoked, "an authorization code was replayed: its tokens are revoked");
            return invalid_grant("the code was already used");
        }
        let now = self.clock.now_ms();
        if now >= grant.expires_at_ms {
            return invalid_grant("the code expired");
        }
        if grant.client_id != client.client_id {
            tracing::warn!(code_client = %grant.client_id, client_id = %client.client_id, "a code was presented by another client");
            return invalid_grant("the code was issued to another client");
        }
        if get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
            return invalid_grant("redirect_uri is not the one of the authorization request");
        }
        match (&grant.code_challenge, get("code_verifier")) {
            (Some(challenge), Some(verifier)) => {
                if !verifier_is_well_formed(verifier)
                    || !secrets_equal(&pkce_challenge(verifier), challenge)
                {
                    return invalid_grant("the PKCE code_verifier does not match");
                }
            }
            (Some(_), None) => return invalid_grant("the PKCE code_verifier is missing"),
            (None, Some(_)) => {
                return invalid_grant("a code_verifier for a request without a code_challenge")
            }
            (None, None) => {}
        }
        self.issue_tokens(client, &code_hash, grant, now).await
    }

    async fn issue_tokens(
        &self,
        client: &Client,
        code_hash: &str,
        grant: super::CodeGrant,
        now: i64,
    ) -> Response {
        let access_token = random_token();
        let access = AccessGrant {
            client_id: client.client_id.clone(),
            code_hash: code_hash.to_owned(),
            user: grant.user.clone(),
            scope: grant.scope.clone(),
            expires_at_ms: now + self.config.access_token_ttl_s * 1000,
        };
        if let Err(e) = self
            .store
            .put_access_token(&hash_secret(&access_token), &access)
            .await
        {
            tracing::error!(error = %e, "the provider store failed keeping an access token");
            return token_error(500, "server_error", "the token could not be issued");
        }
        let now_s = now.div_euclid(1000);
        let mut claims = grant.user.claims();
        claims.insert("iss".into(), json!(self.config.issuer));
        claims.insert("aud".into(), json!(client.client_id));
        claims.insert("iat".into(), json!(now_s));
        claims.insert("exp".into(), json!(now_s + self.config.id_token_ttl_s));
        claims.insert("auth_time".into(), json!(grant.auth_time_s));
        if let Some(nonce) = &grant.nonce {
            claims.insert("nonce".into(), json!(nonce));
        }
        // at_hash: the left half of SHA-256 of the access token (OpenID Connect Core §3.1.3.6).
        let digest = ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes());
        claims.insert(
            "at_hash".into(),
            json!(crate::b64::encode(&digest.as_ref()[..16])),
        );
        let keys = self.loaded();
        let id_token = match crate::jose::sign_rs256(&keys.signer, &keys.set.current.kid, &claims) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "signing an ID token failed");
                return token_error(500, "server_error", "the token could not be signed");
            }
        };
        tracing::info!(client_id = %client.client_id, subject = %grant.user.subject, "issued an ID token");
        Response::no_store(
            200,
            json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": self.config.access_token_ttl_s,
                "id_token": id_token,
                "scope": grant.scope.join(" "),
            }),
        )
    }

    /// `GET`/`POST {userinfo_endpoint}` with the `Authorization: Bearer` header.
    pub async fn userinfo(&self, authorization: Option<&str>) -> Response {
        let unauthorized = |challenge: &str| Response::Json {
            status: 401,
            body: Value::Null,
            headers: vec![("www-authenticate", challenge.to_owned())],
        };
        let Some(token) = bearer(authorization) else {
            return unauthorized(r#"Bearer realm="idsync""#);
        };
        let invalid = || unauthorized(r#"Bearer realm="idsync", error="invalid_token""#);
        let grant = match self.store.access_token(&hash_secret(token)).await {
            Ok(Some(g)) => g,
            Ok(None) => return invalid(),
            Err(e) => {
                tracing::error!(error = %e, "the provider store failed reading an access token");
                return Response::json(500, json!({"error": "server_error"}));
            }
        };
        if self.clock.now_ms() >= grant.expires_at_ms {
            return invalid();
        }
        Response::Json {
            status: 200,
            body: Value::Object(grant.user.claims()),
            headers: vec![("cache-control", "no-store".to_owned())],
        }
    }
}
