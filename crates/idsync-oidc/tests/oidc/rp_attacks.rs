//! Attacks on the relying party that must fail, with tokens built by npm `jose`: `alg: none`,
//! HS256 keyed with the provider's public key, a key the provider never published, another
//! issuer or tenant, a wrong audience, expired or not yet valid beyond the skew, a mismatched
//! nonce or state, and a flood of made-up key ids.

use std::sync::Arc;

use idsync_core::ManualClock;
use idsync_oidc::rp::{Callback, IdpStyle, RelyingParty, RpConfig, RpError};
use idsync_oidc::JoseError;
use serde_json::{json, Value};

use crate::support::{forge, FakeIdp};

const TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
const CLIENT: &str = "idsync-client";
const NOW_S: i64 = 1_800_000_000;
const NONCE: &str = "nonce-of-this-login";

struct Setup {
    idp: FakeIdp,
    rp: RelyingParty,
    clock: Arc<ManualClock>,
    rsa: Value,
    ec: Value,
    attacker: Value,
}

async fn setup() -> Setup {
    let keys = forge(json!([
        {"op": "keys", "alg": "RS256"},
        {"op": "keys", "alg": "ES256"},
        {"op": "keys", "alg": "RS256"},
    ]))
    .await;
    let (rsa, ec, attacker) = (keys[0].clone(), keys[1].clone(), keys[2].clone());
    let idp = FakeIdp::start(json!({"keys": [rsa["public"], ec["public"]]})).await;
    let clock = Arc::new(ManualClock::new(NOW_S * 1000));
    let mut config = RpConfig::new(&idp.issuer, CLIENT, "s3cret", "http://127.0.0.1:9/cb");
    config.style = IdpStyle::EntraId {
        tenant_id: TENANT.to_owned(),
    };
    let rp = RelyingParty::discover(config, reqwest::Client::new(), clock.clone())
        .await
        .unwrap();
    Setup {
        idp,
        rp,
        clock,
        rsa,
        ec,
        attacker,
    }
}

fn claims(issuer: &str) -> Value {
    json!({
        "iss": issuer, "aud": CLIENT, "iat": NOW_S, "exp": NOW_S + 600, "nonce": NONCE,
        "sub": "pairwise", "oid": "00000000-0000-0000-0000-0000000000aa", "tid": TENANT,
        "preferred_username": "ann@contoso.example",
    })
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn sign(key: &Value, payload: Value) -> Value {
    let alg = key["private"]["alg"].clone();
    json!({"op": "sign", "alg": alg, "key": key["private"], "header": {"kid": key["private"]["kid"]}, "payload": payload})
}

#[tokio::test]
async fn rp_accepts_well_signed_tokens_and_refuses_forged_ones() {
    let s = setup().await;
    let base = claims(&s.idp.issuer);
    let kid = s.rsa["private"]["kid"].clone();
    let tokens = forge(json!([
        sign(&s.rsa, base.clone()),
        sign(&s.ec, base.clone()),
        {"op": "none", "payload": base},
        // HS256 keyed with the provider's public key, PEM and JWK `n`, naming its kid.
        {"op": "hmac", "secret": s.rsa["publicPem"], "header": {"kid": kid}, "payload": base},
        {"op": "hmac", "secret": s.rsa["public"]["n"], "header": {"kid": kid}, "payload": base},
        // The attacker's key, under the provider's kid and under its own.
        {"op": "sign", "alg": "RS256", "key": s.attacker["private"], "header": {"kid": kid}, "payload": base},
        sign(&s.attacker, base.clone()),
    ]))
    .await;
    let token = |i: usize| tokens[i]["token"].as_str().unwrap().to_owned();

    let ok = s.rp.validate_id_token(&token(0), NONCE).await.unwrap();
    assert_eq!(ok.subject, "00000000-0000-0000-0000-0000000000aa");
    s.rp.validate_id_token(&token(1), NONCE).await.unwrap();

    let err = s.rp.validate_id_token(&token(2), NONCE).await.unwrap_err();
    assert_eq!(
        err,
        RpError::Token(JoseError::AlgorithmNotAllowed("none".into()))
    );
    for i in [3, 4] {
        let err = s.rp.validate_id_token(&token(i), NONCE).await.unwrap_err();
        assert_eq!(
            err,
            RpError::Token(JoseError::AlgorithmNotAllowed("HS256".into()))
        );
    }
    let err = s.rp.validate_id_token(&token(5), NONCE).await.unwrap_err();
    assert_eq!(err, RpError::Token(JoseError::BadSignature));
    let err = s.rp.validate_id_token(&token(6), NONCE).await.unwrap_err();
    assert!(
        matches!(err, RpError::Token(JoseError::UnknownKey { .. })),
        "{err:?}"
    );

    // A token whose payload was changed after signing.
    let good = token(0);
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut payload: Value = serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
        payload["oid"] = json!("00000000-0000-0000-0000-00000000ad31");
        engine.encode(payload.to_string())
    };
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    let err = s.rp.validate_id_token(&tampered, NONCE).await.unwrap_err();
    assert_eq!(err, RpError::Token(JoseError::BadSignature));
}

#[tokio::test]
async fn rp_refuses_tokens_for_someone_else_or_out_of_time() {
    let s = setup().await;
    let base = claims(&s.idp.issuer);
    let cases = [
        // (changes, what must be said)
        (
            json!({"iss": "https://login.microsoftonline.com/other/v2.0"}),
            "issuer",
        ),
        (
            json!({"tid": "11111111-2222-3333-4444-555555555555"}),
            "tenant",
        ),
        (json!({"aud": "another-application"}), "audience"),
        (json!({"aud": ["another-application", CLIENT]}), "azp"),
        (
            json!({"aud": ["another-application", CLIENT], "azp": "another-application"}),
            "azp",
        ),
        (json!({"exp": NOW_S - 121}), "expired"),
        (json!({"nbf": NOW_S + 121}), "not yet valid"),
        (json!({"iat": NOW_S + 121}), "future"),
        (json!({"nonce": "another-login"}), "nonce"),
        (json!({"nonce": null}), "nonce"),
        (json!({"exp": null}), "exp"),
        (json!({"oid": null}), "oid"),
    ];
    let batch: Vec<Value> = cases
        .iter()
        .map(|(changes, _)| sign(&s.rsa, with(base.clone(), changes.clone())))
        .collect();
    // Within the skew (120 s) on either side: accepted.
    let lenient = forge(json!([
        sign(&s.rsa, with(base.clone(), json!({"exp": NOW_S - 119}))),
        sign(
            &s.rsa,
            with(
                base.clone(),
                json!({"nbf": NOW_S + 119, "iat": NOW_S + 119})
            )
        ),
        sign(
            &s.rsa,
            with(
                base.clone(),
                json!({"aud": ["another-application", CLIENT], "azp": CLIENT})
            )
        ),
    ]))
    .await;
    for t in &lenient {
        s.rp.validate_id_token(t["token"].as_str().unwrap(), NONCE)
            .await
            .unwrap();
    }
    let tokens = forge(Value::Array(batch)).await;
    for ((_, what), token) in cases.iter().zip(&tokens) {
        let err =
            s.rp.validate_id_token(token["token"].as_str().unwrap(), NONCE)
                .await
                .unwrap_err();
        let ok = match *what {
            "issuer" => matches!(err, RpError::WrongIssuer { .. }),
            "tenant" => matches!(err, RpError::WrongTenant { .. }),
            "audience" => matches!(err, RpError::WrongAudience { .. }),
            "azp" => matches!(err, RpError::WrongAuthorizedParty { .. }),
            "expired" => matches!(err, RpError::Expired { .. }),
            "not yet valid" => matches!(err, RpError::NotYetValid { .. }),
            "future" => matches!(err, RpError::IssuedInFuture { .. }),
            "nonce" => err == RpError::NonceMismatch,
            "exp" => err == RpError::MissingClaim("exp"),
            "oid" => err == RpError::MissingClaim("oid"),
            _ => false,
        };
        assert!(ok, "{what}: {err:?}");
    }
    // The clock is a parameter: the token accepted now is expired 10 minutes and 121 s later.
    let good = forge(json!([sign(&s.rsa, base.clone())])).await;
    let good = good[0]["token"].as_str().unwrap();
    s.rp.validate_id_token(good, NONCE).await.unwrap();
    s.clock.advance((600 + 121) * 1000);
    let err = s.rp.validate_id_token(good, NONCE).await.unwrap_err();
    assert!(matches!(err, RpError::Expired { .. }), "{err:?}");
}

#[tokio::test]
async fn rp_checks_state_issuer_and_the_token_it_is_answered() {
    let s = setup().await;
    let (url, pending) = s.rp.start_login();
    let query: Vec<(String, String)> = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(param("code_challenge_method"), "S256");
    assert_eq!(
        param("code_challenge"),
        idsync_oidc::pkce_challenge(&pending.code_verifier)
    );
    assert_eq!(param("state"), pending.state);
    assert_eq!(param("nonce"), pending.nonce);
    assert_eq!(param("scope"), "openid profile email");

    // A mismatched state: refused before the code is sent anywhere.
    let wrong_state = Callback {
        code: Some("code".into()),
        state: Some("another-login".into()),
        ..Callback::default()
    };
    assert_eq!(
        s.rp.finish_login(&pending, &wrong_state).await.unwrap_err(),
        RpError::StateMismatch
    );
    let no_state = Callback {
        code: Some("code".into()),
        ..Callback::default()
    };
    assert_eq!(
        s.rp.finish_login(&pending, &no_state).await.unwrap_err(),
        RpError::StateMismatch
    );
    // An answer naming another issuer (mix-up, RFC 9207).
    let other_iss = Callback {
        code: Some("code".into()),
        state: Some(pending.state.clone()),
        iss: Some("https://evil.example".into()),
        ..Callback::default()
    };
    assert!(matches!(
        s.rp.finish_login(&pending, &other_iss).await.unwrap_err(),
        RpError::IssuerMismatch { .. }
    ));
    assert!(s.idp.state.lock().unwrap().token_forms.is_empty());

    // The provider's error is reported as such.
    let denied = Callback::from_query(&format!(
        "error=access_denied&error_description=AADB2C90091&state={}",
        pending.state
    ));
    assert_eq!(
        s.rp.finish_login(&pending, &denied).await.unwrap_err(),
        RpError::ProviderError {
            error: "access_denied".into(),
            description: Some("AADB2C90091".into())
        }
    );

    // The token endpoint answers a token with another nonce (a token from another login).
    let base = claims(&s.idp.issuer);
    let tokens = forge(json!([
        sign(&s.rsa, with(base.clone(), json!({"nonce": pending.nonce}))),
        sign(&s.rsa, base),
        {"op": "none", "payload": with(claims(&s.idp.issuer), json!({"nonce": pending.nonce}))},
    ]))
    .await;
    let callback = Callback {
        code: Some("the-code".into()),
        state: Some(pending.state.clone()),
        ..Callback::default()
    };
    s.idp.state.lock().unwrap().id_token = tokens[1]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.rp.finish_login(&pending, &callback).await.unwrap_err(),
        RpError::NonceMismatch
    );
    s.idp.state.lock().unwrap().id_token = tokens[2]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.rp.finish_login(&pending, &callback).await.unwrap_err(),
        RpError::Token(JoseError::AlgorithmNotAllowed("none".into()))
    );
    s.idp.state.lock().unwrap().id_token = tokens[0]["token"].as_str().unwrap().to_owned();
    let login = s.rp.finish_login(&pending, &callback).await.unwrap();
    assert_eq!(
        login.claims.username.as_deref(),
        Some("ann@contoso.example")
    );
    // What the token endpoint was sent: the code, the PKCE verifier, the secret in the body.
    let form = s
        .idp
        .state
        .lock()
        .unwrap()
        .token_forms
        .last()
        .unwrap()
        .clone();
    assert_eq!(form["code"], "the-code");
    assert_eq!(form["code_verifier"], pending.code_verifier);
    assert_eq!(form["client_secret"], "s3cret");
    assert_eq!(form["redirect_uri"], "http://127.0.0.1:9/cb");

    // A login answered too late is refused.
    s.clock.advance(601_000);
    assert_eq!(
        s.rp.finish_login(&pending, &callback).await.unwrap_err(),
        RpError::LoginExpired { max_age_s: 600 }
    );
}

#[tokio::test]
async fn rp_a_flood_of_unknown_key_ids_reaches_the_provider_once_per_interval() {
    let s = setup().await;
    let base = claims(&s.idp.issuer);
    let batch: Vec<Value> = (0..40)
        .map(|i| {
            json!({"op": "sign", "alg": "RS256", "key": s.attacker["private"],
                   "header": {"kid": format!("made-up-{i}")}, "payload": base})
        })
        .collect();
    let tokens = forge(Value::Array(batch)).await;
    // The first validation fetches the JWKS (nothing cached yet).
    let first = forge(json!([sign(&s.rsa, base.clone())])).await;
    s.rp.validate_id_token(first[0]["token"].as_str().unwrap(), NONCE)
        .await
        .unwrap();
    assert_eq!(s.idp.state.lock().unwrap().jwks_reads, 1);
    for (i, t) in tokens.iter().enumerate() {
        if i == 20 {
            s.clock.advance(60_000);
        }
        let err =
            s.rp.validate_id_token(t["token"].as_str().unwrap(), NONCE)
                .await
                .unwrap_err();
        assert!(
            matches!(err, RpError::Token(JoseError::UnknownKey { .. })),
            "{err:?}"
        );
    }
    // 40 unknown kids over two intervals: one refetch in the second.
    assert_eq!(s.idp.state.lock().unwrap().jwks_reads, 2);
}

#[tokio::test]
async fn rp_sends_client_secret_basic_form_encoded() {
    let keys = forge(json!([{"op": "keys", "alg": "RS256"}])).await;
    let idp = FakeIdp::start(json!({"keys": [keys[0]["public"]]})).await;
    let clock = Arc::new(ManualClock::new(NOW_S * 1000));
    let mut config = RpConfig::new(
        &idp.issuer,
        "client:1",
        "p@ss word",
        "http://127.0.0.1:9/cb",
    );
    config.client_auth = idsync_oidc::rp::ClientAuth::ClientSecretBasic;
    let rp = RelyingParty::discover(config, reqwest::Client::new(), clock)
        .await
        .unwrap();
    let (_, pending) = rp.start_login();
    let payload = with(
        claims(&idp.issuer),
        json!({"aud": "client:1", "nonce": pending.nonce}),
    );
    let token = forge(json!([sign(&keys[0], payload)])).await;
    idp.state.lock().unwrap().id_token = token[0]["token"].as_str().unwrap().to_owned();
    let callback = Callback {
        code: Some("c".into()),
        state: Some(pending.state.clone()),
        ..Callback::default()
    };
    let login = rp.finish_login(&pending, &callback).await.unwrap();
    assert_eq!(
        login.claims.subject, "pairwise",
        "a generic provider's subject is sub"
    );
    let state = idp.state.lock().unwrap();
    let header = state.token_authorization.last().unwrap().clone().unwrap();
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(header.strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "client%3A1:p%40ss+word"
    );
    assert!(!state
        .token_forms
        .last()
        .unwrap()
        .contains_key("client_secret"));
}
