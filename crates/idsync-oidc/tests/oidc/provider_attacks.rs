//! Attacks on the provider that must fail: a redirect URI not registered (an error page, never
//! a redirect), a replayed code (and the tokens it bought revoked), a code used by another
//! client, without or with a wrong PKCE verifier, with another redirect URI, or too late, and
//! wrong client secrets. Handlers are called directly: they are framework-neutral.

use std::sync::Arc;

use idsync_core::ManualClock;
use idsync_oidc::pkce_challenge;
use idsync_oidc::provider::{
    AuthorizationRequest, Client, MemoryStore, Provider, ProviderConfig, Response, UserInfo,
};
use idsync_oidc::rp::{IdpStyle, ProviderMetadata, RelyingParty, RpConfig};
use serde_json::Value;

const ISSUER: &str = "https://idsync.example.com/oidc";
const JIRA_CB: &str = "https://jira.example.com/plugins/servlet/oidc/callback";
const WIKI_CB: &str = "https://wiki.example.com/plugins/servlet/oidc/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

async fn provider(clock: Arc<ManualClock>) -> Provider {
    Provider::start(
        ProviderConfig::new(ISSUER),
        vec![
            Client {
                client_id: "jira".into(),
                client_secret: Some("jira-secret".into()),
                redirect_uris: vec![JIRA_CB.into()],
                require_pkce: true,
            },
            Client {
                client_id: "wiki".into(),
                client_secret: Some("wiki-secret".into()),
                redirect_uris: vec![WIKI_CB.into()],
                require_pkce: false,
            },
        ],
        Arc::new(MemoryStore::new()),
        clock,
    )
    .await
    .unwrap()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn auth_params(client: &str, redirect: &str) -> Vec<(String, String)> {
    let challenge = pkce_challenge(VERIFIER);
    pairs(&[
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("scope", "openid profile email"),
        ("state", "st-1"),
        ("nonce", "no-1"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ])
}

fn user() -> UserInfo {
    UserInfo {
        subject: "ann".into(),
        username: Some("ann".into()),
        email: None,
        display_name: Some("Ann".into()),
        groups: vec!["jira-users".into()],
    }
}

fn location(answer: &Response) -> url::Url {
    match answer {
        Response::Redirect { location } => url::Url::parse(location).unwrap(),
        other => panic!("expected a redirect, got {other:?}"),
    }
}

fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn code_for(p: &Provider, request: &AuthorizationRequest) -> String {
    let answer = p.issue_code(request, user()).await.unwrap();
    let url = location(&answer);
    assert_eq!(query(&url, "state").as_deref(), Some("st-1"));
    assert_eq!(query(&url, "iss").as_deref(), Some(ISSUER));
    query(&url, "code").unwrap()
}

fn token_form(
    code: &str,
    client: &str,
    secret: &str,
    redirect: &str,
    verifier: Option<&str>,
) -> Vec<(String, String)> {
    let mut form = pairs(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("client_id", client),
        ("client_secret", secret),
    ]);
    if let Some(v) = verifier {
        form.push(("code_verifier".into(), v.into()));
    }
    form
}

/// Builds a token request's form for a code.
type FormFor = Box<dyn Fn(&str) -> Vec<(String, String)>>;

fn json_of(answer: &Response) -> (u16, Value) {
    match answer {
        Response::Json { status, body, .. } => (*status, body.clone()),
        other => panic!("expected JSON, got {other:?}"),
    }
}

#[tokio::test]
async fn provider_never_redirects_to_an_unregistered_uri() {
    let p = provider(Arc::new(ManualClock::new(1_800_000_000_000))).await;
    let unregistered = [
        "https://evil.example.com/plugins/servlet/oidc/callback",
        "https://jira.example.com/plugins/servlet/oidc/callback/",
        "https://jira.example.com/plugins/servlet/oidc/callbackx",
        "https://jira.example.com/plugins/servlet/oidc/callback?next=https://evil.example.com",
        "https://jira.example.com/plugins/servlet/oidc/callback/../../../evil",
        "http://jira.example.com/plugins/servlet/oidc/callback",
        "https://JIRA.example.com/plugins/servlet/oidc/callback",
        "https://jira.example.com:8443/plugins/servlet/oidc/callback",
        "https://jira.example.com.evil.example/plugins/servlet/oidc/callback",
        WIKI_CB,
        "",
    ];
    for uri in unregistered {
        let answer = p.authorize(&auth_params("jira", uri)).unwrap_err();
        assert!(
            matches!(answer, Response::ErrorPage { status: 400, .. }),
            "{uri:?}: {answer:?}"
        );
    }
    // Unknown or missing client, repeated client_id or redirect_uri: error pages too.
    let answer = p.authorize(&auth_params("nobody", JIRA_CB)).unwrap_err();
    assert!(matches!(answer, Response::ErrorPage { .. }), "{answer:?}");
    let mut missing = auth_params("jira", JIRA_CB);
    missing.retain(|(k, _)| k != "client_id");
    assert!(matches!(
        p.authorize(&missing).unwrap_err(),
        Response::ErrorPage { .. }
    ));
    let mut twice = auth_params("jira", JIRA_CB);
    twice.push(("redirect_uri".into(), "https://evil.example.com/".into()));
    assert!(matches!(
        p.authorize(&twice).unwrap_err(),
        Response::ErrorPage { .. }
    ));

    // The registered URI, exactly: accepted.
    let request = p.authorize(&auth_params("jira", JIRA_CB)).unwrap();
    assert_eq!(request.redirect_uri, JIRA_CB);
    assert_eq!(request.state.as_deref(), Some("st-1"));
}

#[tokio::test]
async fn provider_refuses_bad_requests_back_to_the_registered_uri() {
    let p = provider(Arc::new(ManualClock::new(1_800_000_000_000))).await;
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        // PKCE required for jira: no challenge.
        (
            auth_params("jira", JIRA_CB)
                .into_iter()
                .filter(|(k, _)| !k.starts_with("code_challenge"))
                .collect(),
            "invalid_request",
        ),
        // The plain method is not accepted.
        (
            auth_params("jira", JIRA_CB)
                .into_iter()
                .map(|(k, v)| {
                    if k == "code_challenge_method" {
                        (k, "plain".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            "invalid_request",
        ),
        (
            auth_params("jira", JIRA_CB)
                .into_iter()
                .map(|(k, v)| {
                    if k == "response_type" {
                        (k, "token".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            "unsupported_response_type",
        ),
        (
            auth_params("jira", JIRA_CB)
                .into_iter()
                .map(|(k, v)| {
                    if k == "scope" {
                        (k, "profile".into())
                    } else {
                        (k, v)
                    }
                })
                .collect(),
            "invalid_scope",
        ),
    ];
    for (params, error) in cases {
        let url = location(&p.authorize(&params).unwrap_err());
        assert!(url.as_str().starts_with(JIRA_CB), "{url}");
        assert_eq!(query(&url, "error").as_deref(), Some(error), "{url}");
        assert_eq!(
            query(&url, "state").as_deref(),
            Some("st-1"),
            "state passed back"
        );
        assert!(query(&url, "code").is_none());
    }
    // PKCE is optional for wiki (a per-client setting).
    let no_pkce: Vec<_> = auth_params("wiki", WIKI_CB)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("code_challenge"))
        .collect();
    assert!(p.authorize(&no_pkce).is_ok());
}

#[tokio::test]
async fn provider_codes_are_single_use_and_bound_to_client_uri_and_verifier() {
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let p = provider(clock.clone()).await;
    let jira = p.authorize(&auth_params("jira", JIRA_CB)).unwrap();

    // Without the verifier, with a wrong one, with another redirect URI, by another client
    // (authenticated with its own secret): each burns the code it tried.
    let attempts: Vec<(&str, FormFor)> = vec![
        (
            "no verifier",
            Box::new(|c| token_form(c, "jira", "jira-secret", JIRA_CB, None)),
        ),
        (
            "wrong verifier",
            Box::new(|c| {
                token_form(
                    c,
                    "jira",
                    "jira-secret",
                    JIRA_CB,
                    Some("wrong-verifier-wrong-verifier-wrong-verifier-0"),
                )
            }),
        ),
        (
            "other redirect",
            Box::new(|c| token_form(c, "jira", "jira-secret", WIKI_CB, Some(VERIFIER))),
        ),
        (
            "other client",
            Box::new(|c| token_form(c, "wiki", "wiki-secret", JIRA_CB, Some(VERIFIER))),
        ),
    ];
    for (what, form) in &attempts {
        let code = code_for(&p, &jira).await;
        let (status, body) = json_of(&p.token(&form(&code), None).await);
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{what}: {body}"
        );
        // The legitimate redemption afterwards fails too: the code is spent.
        let (status, _) = json_of(
            &p.token(
                &token_form(&code, "jira", "jira-secret", JIRA_CB, Some(VERIFIER)),
                None,
            )
            .await,
        );
        assert_eq!(status, 400, "{what}: the code is spent");
    }

    // The right client, URI and verifier: tokens.
    let code = code_for(&p, &jira).await;
    let good = token_form(&code, "jira", "jira-secret", JIRA_CB, Some(VERIFIER));
    let (status, tokens) = json_of(&p.token(&good, None).await);
    assert_eq!(status, 200, "{tokens}");
    let access = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    let (status, info) = json_of(&p.userinfo(Some(&access)).await);
    assert_eq!((status, info["sub"].as_str()), (200, Some("ann")));
    assert!(info.get("email").is_none(), "an absent attribute is absent");

    // The ID token verifies with the published JWKS (the crate's own relying party, offline).
    let id_token = tokens["id_token"].as_str().unwrap();
    let claims = validate_with_jwks(&p, clock.clone(), "jira", id_token, "no-1").await;
    assert_eq!(claims.username.as_deref(), Some("ann"));
    assert_eq!(claims.raw["groups"], serde_json::json!(["jira-users"]));

    // The same code again: refused, and the access token it bought is revoked.
    let (status, body) = json_of(&p.token(&good, None).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = json_of(&p.userinfo(Some(&access)).await);
    assert_eq!(status, 401, "the replay revoked the access token");

    // A code used after its 60 s.
    let code = code_for(&p, &jira).await;
    clock.advance(60_000);
    let late = token_form(&code, "jira", "jira-secret", JIRA_CB, Some(VERIFIER));
    let (status, body) = json_of(&p.token(&late, None).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // An access token after its lifetime.
    let code = code_for(&p, &jira).await;
    let (_, tokens) = json_of(
        &p.token(
            &token_form(&code, "jira", "jira-secret", JIRA_CB, Some(VERIFIER)),
            None,
        )
        .await,
    );
    let access = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    clock.advance(600_000);
    assert_eq!(json_of(&p.userinfo(Some(&access)).await).0, 401);
    assert_eq!(json_of(&p.userinfo(None).await).0, 401);
}

#[tokio::test]
async fn provider_authenticates_clients() {
    let p = provider(Arc::new(ManualClock::new(1_800_000_000_000))).await;
    let jira = p.authorize(&auth_params("jira", JIRA_CB)).unwrap();
    let code = code_for(&p, &jira).await;
    // Wrong secret in the body, and in HTTP Basic (with its challenge).
    let (status, body) = json_of(
        &p.token(
            &token_form(&code, "jira", "wiki-secret", JIRA_CB, Some(VERIFIER)),
            None,
        )
        .await,
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let form = pairs(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", JIRA_CB),
        ("code_verifier", VERIFIER),
    ]);
    use base64::Engine;
    let basic = |id: &str, secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    };
    match p.token(&form, Some(&basic("jira", "nope"))).await {
        Response::Json {
            status, headers, ..
        } => {
            assert_eq!(status, 401);
            assert!(headers.iter().any(|(k, _)| *k == "www-authenticate"));
        }
        other => panic!("{other:?}"),
    }
    // Two ways at once is a malformed request.
    let mut both = form.clone();
    both.push(("client_secret".into(), "jira-secret".into()));
    let (status, body) = json_of(&p.token(&both, Some(&basic("jira", "jira-secret"))).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // A failed client authentication does not spend the code: the right secret still works.
    let (status, body) = json_of(&p.token(&form, Some(&basic("jira", "jira-secret"))).await);
    assert_eq!(status, 200, "{body}");
    // Odd Authorization headers are refused, not a panic.
    for header in ["Bé", "Basicé", "Basic !!!", "Bearerx", ""] {
        assert_eq!(
            json_of(&p.token(&form, Some(header)).await).0,
            401,
            "{header:?}"
        );
        assert_eq!(
            json_of(&p.userinfo(Some(header)).await).0,
            401,
            "{header:?}"
        );
    }
    // Other grant types are not served.
    let (status, body) = json_of(&p.token(&pairs(&[("grant_type", "password")]), None).await);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
}

/// Validates `token` with the crate's relying party, configured from the provider's own
/// discovery and JWKS documents (served from a local listener).
pub async fn validate_with_jwks(
    p: &Provider,
    clock: Arc<ManualClock>,
    client: &str,
    token: &str,
    nonce: &str,
) -> idsync_oidc::rp::LoginClaims {
    let jwks = match p.jwks() {
        Response::Json { body, .. } => body,
        other => panic!("{other:?}"),
    };
    let (listener, base) = crate::support::listen().await;
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let j = jwks.clone();
            async move { axum::Json(j) }
        }),
    );
    let _served = crate::support::serve(listener, app);
    let mut config = RpConfig::new(base.clone(), client, "unused", "http://127.0.0.1:9/cb");
    config.issuer = ISSUER.to_owned();
    config.style = IdpStyle::Generic;
    let metadata = ProviderMetadata {
        issuer: ISSUER.to_owned(),
        authorization_endpoint: format!("{base}/authorize"),
        token_endpoint: format!("{base}/token"),
        jwks_uri: format!("{base}/jwks"),
        userinfo_endpoint: None,
        authorization_response_iss_parameter_supported: true,
    };
    let rp = RelyingParty::with_metadata(config, metadata, reqwest::Client::new(), clock).unwrap();
    rp.validate_id_token(token, nonce).await.unwrap()
}
