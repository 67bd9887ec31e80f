//! What the relying party reads from tokens of each style, built with npm `jose`: Entra's group
//! overage in both its forms, B2C's `acr` (older compatibility setting) and `emails`, absent or
//! empty claims left absent, and a PS256 signature.

use std::sync::Arc;

use idsync_core::ManualClock;
use idsync_oidc::rp::{Groups, IdpStyle, RelyingParty, RpConfig, RpError};
use serde_json::{json, Value};

use crate::support::{forge, FakeIdp};

const NOW_S: i64 = 1_800_000_000;

async fn rp_for(idp: &FakeIdp, style: IdpStyle) -> RelyingParty {
    let mut config = RpConfig::new(&idp.issuer, "app", "s", "http://127.0.0.1:9/cb");
    config.style = style;
    RelyingParty::discover(
        config,
        reqwest::Client::new(),
        Arc::new(ManualClock::new(NOW_S * 1000)),
    )
    .await
    .unwrap()
}

fn payload(issuer: &str, extra: Value) -> Value {
    let mut base = json!({"iss": issuer, "aud": "app", "iat": NOW_S, "exp": NOW_S + 300,
                          "nonce": "n", "sub": "subject-1"});
    for (k, v) in extra.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

#[tokio::test]
async fn rp_reads_each_styles_claims() {
    let keys = forge(json!([{"op": "keys", "alg": "PS256"}])).await;
    let key = &keys[0];
    let idp = FakeIdp::start(json!({"keys": [key["public"]]})).await;
    let tid = "aaaabbbb-0000-cccc-1111-dddd2222eeee";
    let entra = rp_for(
        &idp,
        IdpStyle::EntraId {
            tenant_id: tid.to_owned(),
        },
    )
    .await;
    let b2c = rp_for(
        &idp,
        IdpStyle::AzureAdB2c {
            policy: "B2C_1_SignUpSignIn".to_owned(),
        },
    )
    .await;
    let generic = rp_for(&idp, IdpStyle::Generic).await;

    let entra_base = json!({"oid": "oid-1", "tid": tid});
    let with = |extra: Value| {
        let mut p = payload(&idp.issuer, entra_base.clone());
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        json!({"op": "sign", "alg": "PS256", "key": key["private"],
               "header": {"kid": key["private"]["kid"]}, "payload": p})
    };
    let tokens = forge(json!([
        with(json!({"hasgroups": true})),
        with(json!({"groups": ["g1"], "_claim_names": {"groups": "src1"},
                    "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/oid-1/getMemberObjects"}}})),
        with(json!({"groups": [], "name": "", "email": "  "})),
        // B2C: the policy in acr, another case; emails; a groups claim that is not read.
        {"op": "sign", "alg": "PS256", "key": key["private"], "header": {"kid": key["private"]["kid"]},
         "payload": payload(&idp.issuer, json!({"acr": "b2c_1_signupsignin", "emails": ["e@example.org"], "groups": ["x"]}))},
        {"op": "sign", "alg": "PS256", "key": key["private"], "header": {"kid": key["private"]["kid"]},
         "payload": payload(&idp.issuer, json!({"emails": ["e@example.org"]}))},
        {"op": "sign", "alg": "PS256", "key": key["private"], "header": {"kid": key["private"]["kid"]},
         "payload": payload(&idp.issuer, json!({"groups": ["admins", "staff"], "preferred_username": "u"}))},
    ]))
    .await;
    let t = |i: usize| tokens[i]["token"].as_str().unwrap().to_owned();

    let c = entra.validate_id_token(&t(0), "n").await.unwrap();
    assert_eq!(c.groups, Groups::Overage, "hasgroups");
    assert_eq!(c.subject, "oid-1");
    let c = entra.validate_id_token(&t(1), "n").await.unwrap();
    assert_eq!(
        c.groups,
        Groups::Overage,
        "_claim_names wins over a partial list"
    );
    let c = entra.validate_id_token(&t(2), "n").await.unwrap();
    assert_eq!(
        c.groups,
        Groups::Listed(vec![]),
        "an empty list is a list: no groups"
    );
    assert_eq!(
        (c.display_name, c.email),
        (None, None),
        "empty strings are absent"
    );

    let c = b2c.validate_id_token(&t(3), "n").await.unwrap();
    assert_eq!(c.policy.as_deref(), Some("b2c_1_signupsignin"));
    assert_eq!(c.email.as_deref(), Some("e@example.org"));
    assert_eq!(c.groups, Groups::Absent);
    assert_eq!(c.subject, "subject-1");
    let err = b2c.validate_id_token(&t(4), "n").await.unwrap_err();
    assert_eq!(
        err,
        RpError::MissingClaim("tfp"),
        "a B2C token without its user flow"
    );

    let c = generic.validate_id_token(&t(5), "n").await.unwrap();
    assert_eq!(
        c.groups,
        Groups::Listed(vec!["admins".into(), "staff".into()])
    );
    assert_eq!(c.username.as_deref(), Some("u"));
    // An Entra relying party refuses a token without tid.
    let err = entra.validate_id_token(&t(5), "n").await.unwrap_err();
    assert_eq!(err, RpError::MissingClaim("tid"));
}

#[tokio::test]
async fn rp_settings_are_checked_before_any_request() {
    let clock = Arc::new(ManualClock::new(NOW_S * 1000));
    let discover = |config: RpConfig| {
        let clock = clock.clone();
        async move {
            RelyingParty::discover(config, reqwest::Client::new(), clock)
                .await
                .unwrap_err()
        }
    };
    let base = || {
        RpConfig::new(
            "https://login.example.com/t/v2.0",
            "app",
            "s",
            "https://idsync.example.com/cb",
        )
    };
    let mut skew = base();
    skew.clock_skew_s = 601;
    assert!(matches!(discover(skew).await, RpError::Config(ref m) if m.contains("clock_skew_s")));
    let plain = RpConfig::new(
        "http://login.example.com/t/v2.0",
        "app",
        "s",
        "https://idsync.example.com/cb",
    );
    assert!(matches!(discover(plain).await, RpError::Config(ref m) if m.contains("https")));
    let mut interval = base();
    interval.jwks_refetch_interval_s = 0;
    assert!(matches!(discover(interval).await, RpError::Config(_)));
    let mut tenant = base();
    tenant.style = IdpStyle::EntraId {
        tenant_id: String::new(),
    };
    assert!(matches!(discover(tenant).await, RpError::Config(_)));
    // The helpers build Microsoft's authorities and issuers.
    let b2c = RpConfig::azure_ad_b2c(
        "contoso",
        "aaaabbbb-0000-cccc-1111-dddd2222eeee",
        "B2C_1_signin",
        "app",
        "s",
        "https://idsync.example.com/cb",
    );
    assert_eq!(
        b2c.authority,
        "https://contoso.b2clogin.com/contoso.onmicrosoft.com/B2C_1_signin/v2.0/"
    );
    assert_eq!(
        b2c.issuer,
        "https://contoso.b2clogin.com/aaaabbbb-0000-cccc-1111-dddd2222eeee/v2.0/"
    );
    let entra = RpConfig::entra_id(
        "aaaabbbb-0000-cccc-1111-dddd2222eeee",
        "app",
        "s",
        "https://idsync.example.com/cb",
    );
    assert_eq!(
        entra.issuer,
        "https://login.microsoftonline.com/aaaabbbb-0000-cccc-1111-dddd2222eeee/v2.0"
    );
    assert_eq!(entra.authority, entra.issuer);
    assert!(
        !format!("{entra:?}").contains("\"s\""),
        "Debug does not show the secret"
    );
}
