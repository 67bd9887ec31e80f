//! The provider's signing keys: generated once and kept in the store, rotated as a function of
//! time with the previous key published during the overlap, serialisable without showing the
//! private key in `Debug`.

use std::sync::Arc;

use idsync_core::ManualClock;
use idsync_oidc::provider::{
    Client, MemoryStore, Provider, ProviderConfig, ProviderStore, Response,
};
use idsync_oidc::{KeyRotation, KeySet};
use serde_json::Value;

const HOUR: i64 = 3_600_000;

fn kids(p: &Provider) -> Vec<String> {
    match p.jwks() {
        Response::Json { body, .. } => body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                assert_eq!(k["kty"], "RSA");
                assert_eq!(k["alg"], "RS256");
                assert_eq!(k["use"], "sig");
                assert!(k.get("d").is_none(), "no private member is published");
                k["kid"].as_str().unwrap().to_owned()
            })
            .collect(),
        other => panic!("{other:?}"),
    }
}

fn header_kid(id_token: &str) -> String {
    use base64::Engine;
    let header = id_token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    header["kid"].as_str().unwrap().to_owned()
}

async fn sign_in(p: &Provider) -> String {
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = idsync_oidc::pkce_challenge(verifier);
    let params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", "jira"),
        ("redirect_uri", "https://jira.example.com/cb"),
        ("scope", "openid"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let request = p.authorize(&params).unwrap();
    let user = idsync_oidc::provider::UserInfo {
        subject: "ann".into(),
        username: None,
        email: None,
        display_name: None,
        groups: vec![],
    };
    let Response::Redirect { location } = p.issue_code(&request, user).await.unwrap() else {
        panic!()
    };
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let form: Vec<(String, String)> = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://jira.example.com/cb"),
        ("code_verifier", verifier),
        ("client_id", "jira"),
        ("client_secret", "s"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    match p.token(&form, None).await {
        Response::Json {
            status: 200, body, ..
        } => body["id_token"].as_str().unwrap().to_owned(),
        other => panic!("{other:?}"),
    }
}

async fn start(store: Arc<MemoryStore>, clock: Arc<ManualClock>) -> Provider {
    let mut config = ProviderConfig::new("https://idsync.example.com/oidc");
    config.key_rotation = KeyRotation {
        period_ms: 24 * HOUR,
        overlap_ms: 2 * HOUR,
    };
    Provider::start(
        config,
        vec![Client {
            client_id: "jira".into(),
            client_secret: Some("s".into()),
            redirect_uris: vec!["https://jira.example.com/cb".into()],
            require_pkce: true,
        }],
        store,
        clock,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn provider_keys_rotate_with_overlap_and_survive_a_restart() {
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let p = start(store.clone(), clock.clone()).await;
    let first = kids(&p);
    assert_eq!(first.len(), 1);
    assert_eq!(header_kid(&sign_in(&p).await), first[0]);
    assert_eq!(store.load_keys().await.unwrap().unwrap(), p.key_set());

    // A restart with the same store keeps the key.
    let again = start(store.clone(), clock.clone()).await;
    assert_eq!(kids(&again), first);

    // Not due yet: nothing changes.
    clock.advance(23 * HOUR);
    assert!(!p.maintain_keys().await.unwrap());
    assert_eq!(kids(&p), first);

    // Due: a new key signs, the previous one stays published (second).
    clock.advance(HOUR);
    assert!(p.maintain_keys().await.unwrap());
    let rotated = kids(&p);
    assert_eq!(rotated.len(), 2);
    assert_ne!(rotated[0], first[0]);
    assert_eq!(rotated[1], first[0]);
    assert_eq!(header_kid(&sign_in(&p).await), rotated[0]);
    assert_eq!(
        store.load_keys().await.unwrap().unwrap(),
        p.key_set(),
        "stored"
    );

    // After the overlap the previous key is withdrawn.
    clock.advance(2 * HOUR - 1);
    assert!(!p.maintain_keys().await.unwrap());
    assert_eq!(kids(&p).len(), 2);
    clock.advance(1);
    assert!(p.maintain_keys().await.unwrap());
    assert_eq!(kids(&p), vec![rotated[0].clone()]);
}

#[tokio::test]
async fn provider_key_sets_serialise_without_showing_the_private_key() {
    let set = KeySet::generate(1_800_000_000_000).unwrap();
    let json = serde_json::to_string(&set).unwrap();
    let back: KeySet = serde_json::from_str(&json).unwrap();
    assert_eq!(back, set);
    back.current.key_pair().unwrap();
    let debug = format!("{set:?}");
    assert!(debug.contains(&set.current.kid));
    let private: Value = serde_json::from_str(&json).unwrap();
    let pkcs8 = private["current"]["pkcs8"].as_str().unwrap();
    assert!(!debug.contains(pkcs8));
    // A stored key whose kid does not match its key material is refused.
    let mut tampered: Value = private.clone();
    tampered["current"]["kid"] = Value::String("another".into());
    let tampered: KeySet = serde_json::from_value(tampered).unwrap();
    assert!(tampered.current.key_pair().is_err());
    // Rotation settings are checked.
    assert!(KeyRotation {
        period_ms: HOUR,
        overlap_ms: HOUR
    }
    .validate()
    .is_err());
}
