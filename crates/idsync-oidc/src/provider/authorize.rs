//! The authorization endpoint: which client, where to send the answer (exact match only), what
//! it asks for; then, once the server has signed the user in, a single-use code bound to the
//! client, the redirect URI and the PKCE challenge.

use serde::{Deserialize, Serialize};

use super::response::Params;
use super::store::CodeGrant;
use super::{Provider, ProviderError, Response, UserInfo};
use crate::pkce::{hash_secret, random_token};

/// A valid authorization request, waiting for the user to be signed in. Serialisable: the server
/// keeps it across the upstream login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub scope: Vec<String>,
    pub code_challenge: Option<String>,
    pub prompt: Option<String>,
    pub login_hint: Option<String>,
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{}", query.finish())
}

impl Provider {
    fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: &str,
        description: &str,
    ) -> Response {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.config.issuer));
        tracing::info!(
            error,
            description,
            redirect_uri,
            "authorization request refused"
        );
        Response::Redirect {
            location: with_query(redirect_uri, &pairs),
        }
    }

    /// `GET {authorization_endpoint}` with its query parameters (decoded pairs, in order).
    ///
    /// `Err` is the answer to render: an error page when the client or the redirect URI is not
    /// known (never a redirect there: no open redirect), an error redirect to the registered URI
    /// for anything else. `Ok` is a request to sign the user in for.
    pub fn authorize(&self, pairs: &[(String, String)]) -> Result<AuthorizationRequest, Response> {
        let params = Params::new(pairs);
        let page = |msg: &str| Response::error_page(400, "Sign-in request refused", msg);
        let client_id = match params.get("client_id") {
            Ok(Some(id)) => id,
            Ok(None) => return Err(page("The request names no client (client_id).")),
            Err(()) => return Err(page("The request names client_id more than once.")),
        };
        let Some(client) = self.clients.get(client_id) else {
            tracing::warn!(client_id, "authorization request for an unknown client");
            return Err(page("The request names a client that is not registered."));
        };
        let redirect_uri = match params.get("redirect_uri") {
            Ok(Some(uri)) => uri,
            Ok(None) => return Err(page("The request names no redirect URI (redirect_uri).")),
            Err(()) => return Err(page("The request names redirect_uri more than once.")),
        };
        if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
            tracing::warn!(
                client_id,
                redirect_uri,
                "authorization request with an unregistered redirect URI"
            );
            return Err(page(
                "The redirect URI is not one registered for this client.",
            ));
        }
        // From here on errors go back to the client's registered URI, with its state.
        let state = params.get("state").ok().flatten();
        let fail = |error: &str, description: &str| {
            Err(self.error_redirect(redirect_uri, state, error, description))
        };
        if let Some(name) = params.repeated() {
            return fail("invalid_request", &format!("parameter {name} is repeated"));
        }
        let get = |name: &str| params.get(name).ok().flatten();
        if get("request").is_some() {
            return fail("request_not_supported", "request objects are not supported");
        }
        if get("request_uri").is_some() {
            return fail("request_uri_not_supported", "request_uri is not supported");
        }
        match get("response_type") {
            Some("code") => {}
            Some(_) => {
                return fail(
                    "unsupported_response_type",
                    "only response_type=code is supported",
                )
            }
            None => return fail("invalid_request", "response_type is missing"),
        }
        if get("response_mode").is_some_and(|m| m != "query") {
            return fail("invalid_request", "only response_mode=query is supported");
        }
        let scope: Vec<String> = get("scope")
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if !scope.iter().any(|s| s == "openid") {
            return fail("invalid_scope", "the openid scope is required");
        }
        let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
            (None, None) if client.pkce_required() => {
                return fail(
                    "invalid_request",
                    "PKCE (code_challenge with S256) is required",
                )
            }
            (None, None) => None,
            (Some(c), Some("S256")) => {
                let well_formed = c.len() == 43
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !well_formed {
                    return fail("invalid_request", "code_challenge is not an S256 challenge");
                }
                Some(c.to_owned())
            }
            (Some(_), _) => return fail("invalid_request", "code_challenge_method must be S256"),
            (None, Some(_)) => return fail("invalid_request", "code_challenge is missing"),
        };
        Ok(AuthorizationRequest {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            state: state.map(str::to_owned),
            nonce: get("nonce").map(str::to_owned),
            scope,
            code_challenge,
            prompt: get("prompt").map(str::to_owned),
            login_hint: get("login_hint").map(str::to_owned),
        })
    }

    /// The user is signed in: issues a single-use code and redirects back to the client with
    /// it, the state and the issuer (RFC 9207).
    pub async fn issue_code(
        &self,
        request: &AuthorizationRequest,
        user: UserInfo,
    ) -> Result<Response, ProviderError> {
        let now = self.clock.now_ms();
        let code = random_token();
        let code_ttl = self.config.code_ttl_s * 1000;
        let grant = CodeGrant {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            scope: request.scope.clone(),
            user,
            auth_time_s: now.div_euclid(1000),
            expires_at_ms: now + code_ttl,
            retain_until_ms: now + code_ttl + self.config.access_token_ttl_s * 1000,
        };
        self.store.purge(now).await?;
        self.store.put_code(&hash_secret(&code), &grant).await?;
        let mut pairs = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            pairs.push(("state", state));
        }
        pairs.push(("iss", &self.config.issuer));
        Ok(Response::Redirect {
            location: with_query(&request.redirect_uri, &pairs),
        })
    }

    /// The user could not be signed in (or is not allowed): an error redirect to the client
    /// (`access_denied`, `login_required`...).
    pub fn refuse(
        &self,
        request: &AuthorizationRequest,
        error: &str,
        description: &str,
    ) -> Response {
        self.error_redirect(
            &request.redirect_uri,
            request.state.as_deref(),
            error,
            description,
        )
    }
}
