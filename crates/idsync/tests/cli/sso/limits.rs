//! A client that starts sign-ins or guesses a product's secret in a loop, through `idsync
//! serve`: starts are limited per address (429 with `Retry-After`), sign-ins in progress are
//! capped (503 with `Retry-After`), and failed client authentications at the token endpoint
//! are limited before the secret is checked. The upstream is SAML (its AuthnRequest needs no
//! identity provider running).

use super::peers::{PRODUCT_CB, PRODUCT_SECRET};
use super::saml::{idp_metadata, key_pair};
use super::{run_env, serve_logged};
use crate::{free_port, text};
use reqwest::blocking::{Client, Response};

fn http() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `idsync serve` with one product (`jira`) signing in at a SAML upstream, with `[sso]` keys
/// `limits`: (the server, its directory, the issuer).
fn serve(limits: &str) -> (crate::Server, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert) = key_pair(dir.path(), "idp");
    std::fs::write(dir.path().join("idp.xml"), idp_metadata(&cert)).unwrap();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!(
            r#"[store]
path = "idsync.db"
secret_key = "${{env:IDSYNC_KEY}}"

[sources.web]
type = "login"

[targets.app]
type = "test"
journal = "app.jsonl"

[flows.to-app]
source = "web"
target = "app"

[sso]
issuer = "{issuer}"
{limits}

[sso.upstreams.idp]
style = "saml"
metadata = "idp.xml"
source = "web"

[sso.clients.jira]
client_id = "jira"
client_secret = "{PRODUCT_SECRET}"
redirect_uris = ["{PRODUCT_CB}"]
upstream = "idp"
flow = "to-app"
"#
        ),
    )
    .unwrap();
    let env = [("IDSYNC_KEY", super::STORE_KEY.to_owned())];
    let o = run_env(dir.path(), &env, &["config", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let server = serve_logged(dir.path(), port, &env);
    (server, dir, issuer)
}

/// The product's authorization request, as a browser brings it.
fn authorize(http: &Client, issuer: &str, n: usize) -> Response {
    http.get(format!("{issuer}/sso/oidc/authorize"))
        .query(&[
            ("client_id", "jira"),
            ("redirect_uri", PRODUCT_CB),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", &format!("product-state-{n}")),
            ("nonce", "n"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .unwrap()
}

fn retry_after(resp: &Response) -> u64 {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {:?}", resp.headers()))
}

#[test]
fn sso_sign_ins_started_in_a_loop_are_limited_per_address_and_in_progress() {
    let (_server, _dir, issuer) =
        serve("sign_in_rate = 0.01\nsign_in_burst = 3\nmax_pending_sign_ins = 2");
    let http = http();
    for n in 0..2 {
        let resp = authorize(&http, &issuer, n);
        assert_eq!(resp.status().as_u16(), 303, "{}", resp.text().unwrap());
    }
    // Two sign-ins are in progress: the store is full.
    let full = authorize(&http, &issuer, 2);
    assert_eq!(full.status().as_u16(), 503);
    assert_eq!(retry_after(&full), 60);
    assert!(full.headers().get("location").is_none());
    assert!(full.headers().get("set-cookie").is_none(), "nothing stored");
    let body = full.text().unwrap();
    assert!(
        body.contains("too many sign-ins are in progress (at most 2)"),
        "{body}"
    );
    // The address has used its burst of 3 starts: 429, one start per 100 s.
    let limited = authorize(&http, &issuer, 3);
    assert_eq!(limited.status().as_u16(), 429);
    let wait = retry_after(&limited);
    assert!((1..=100).contains(&wait), "{wait}");
    assert!(limited.headers().get("location").is_none());
    let body = limited.text().unwrap();
    assert!(
        body.contains("too many sign-ins were started from your network address"),
        "{body}"
    );
}

#[test]
fn sso_token_endpoint_limits_failed_client_authentications_before_checking_the_secret() {
    let (_server, _dir, issuer) = serve("");
    let http = http();
    let token = format!("{issuer}/sso/oidc/token");
    let redeem = |secret: &str| {
        http.post(&token)
            .basic_auth("jira", Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", "no-such-code"),
                ("redirect_uri", PRODUCT_CB),
                (
                    "code_verifier",
                    "dBjftJeZ4CVP-mJ92K9qsk7e0j5hi8V8IiGCkUwYpUxoS-9R",
                ),
            ])
            .send()
            .unwrap()
    };
    // Authenticated requests count nothing, however many.
    for _ in 0..15 {
        let resp = redeem(PRODUCT_SECRET);
        assert_eq!(resp.status().as_u16(), 400, "{}", resp.text().unwrap());
    }
    for n in 0..10 {
        let resp = redeem(&format!("guess-{n}"));
        assert_eq!(resp.status().as_u16(), 401, "guess {n}");
    }
    let resp = redeem("guess-10");
    assert_eq!(resp.status().as_u16(), 429);
    let wait = retry_after(&resp);
    assert!((1..=6).contains(&wait), "{wait}");
    let answer: serde_json::Value = resp.json().unwrap();
    assert_eq!(answer["error"], "invalid_client");
    // Refused before the secret is checked: the right one too, until the wait is over.
    assert_eq!(redeem(PRODUCT_SECRET).status().as_u16(), 429);
}
