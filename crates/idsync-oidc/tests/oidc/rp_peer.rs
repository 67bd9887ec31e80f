//! The relying party against npm oidc-provider: discovery, the code flow through its login and
//! consent pages, its real ID tokens in the Entra ID and B2C styles, and its key rotation.

use std::sync::Arc;

use idsync_core::{Clock, ManualClock, SystemClock};
use idsync_oidc::rp::{Callback, ClientAuth, Groups, IdpStyle, RelyingParty, RpConfig, RpError};

use crate::support::{Browser, Upstream};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const REDIRECT: &str = "http://127.0.0.1:9/sso/callback";

fn entra_config(issuer: &str) -> RpConfig {
    let mut config = RpConfig::new(issuer, "idsync", "upstream-secret-post", REDIRECT);
    config.style = IdpStyle::EntraId {
        tenant_id: TENANT.to_owned(),
    };
    config
}

async fn login(rp: &RelyingParty, user: &str) -> Result<idsync_oidc::rp::Login, RpError> {
    let (url, pending) = rp.start_login();
    let back = Browser::new().sign_in(&url, user, REDIRECT).await;
    let query = url::Url::parse(&back)
        .unwrap()
        .query()
        .unwrap_or("")
        .to_owned();
    rp.finish_login(&pending, &Callback::from_query(&query))
        .await
}

#[tokio::test]
async fn rp_signs_in_at_an_entra_style_provider() {
    let upstream = Upstream::start("entra", REDIRECT).await;
    let rp = RelyingParty::discover(
        entra_config(&upstream.issuer),
        reqwest::Client::new(),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();

    let alice = login(&rp, "alice").await.unwrap().claims;
    assert_eq!(
        alice.subject, "00000000-0000-0000-0000-00000000a11c",
        "the subject is oid"
    );
    assert_eq!(alice.sub, "alice", "sub is kept beside it");
    assert_eq!(alice.tenant_id.as_deref(), Some(TENANT));
    assert_eq!(alice.username.as_deref(), Some("alice@contoso.example"));
    assert_eq!(alice.email.as_deref(), Some("alice@contoso.example"));
    assert_eq!(alice.display_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(
        alice.groups,
        Groups::Listed(vec![
            "6f1b0c2e-0000-0000-0000-000000000001".to_owned(),
            "6f1b0c2e-0000-0000-0000-000000000002".to_owned()
        ])
    );
    assert_eq!(alice.roles, Some(vec!["Jira.Admin".to_owned()]));

    // Too many groups: the token names the claim's source instead; the caller asks Graph.
    let bob = login(&rp, "bob").await.unwrap().claims;
    assert_eq!(bob.groups, Groups::Overage);
    assert_eq!(bob.email, None, "an absent claim is absent, not empty");

    // A user of another tenant, through the same provider: refused.
    let mallory = login(&rp, "mallory").await.unwrap_err();
    assert!(
        matches!(mallory, RpError::WrongTenant { ref found, .. } if found == "11111111-2222-3333-4444-555555555555"),
        "{mallory:?}"
    );
}

#[tokio::test]
async fn rp_authenticates_with_client_secret_basic() {
    let upstream = Upstream::start("entra", REDIRECT).await;
    let mut config = entra_config(&upstream.issuer);
    config.client_id = "idsync-basic".to_owned();
    config.client_secret = "upstream-secret-basic".to_owned();
    config.client_auth = ClientAuth::ClientSecretBasic;
    let rp = RelyingParty::discover(config, reqwest::Client::new(), Arc::new(SystemClock))
        .await
        .unwrap();
    let alice = login(&rp, "alice").await.unwrap().claims;
    assert_eq!(alice.subject, "00000000-0000-0000-0000-00000000a11c");
}

#[tokio::test]
async fn rp_signs_in_through_a_b2c_style_user_flow() {
    let upstream = Upstream::start("b2c", REDIRECT).await;
    let mut config = RpConfig::new(&upstream.issuer, "idsync", "upstream-secret-post", REDIRECT);
    config.style = IdpStyle::AzureAdB2c {
        policy: "B2C_1_signin".to_owned(),
    };
    config.scopes = vec!["profile".to_owned()];
    let rp = RelyingParty::discover(config, reqwest::Client::new(), Arc::new(SystemClock))
        .await
        .unwrap();

    let carol = login(&rp, "carol").await.unwrap().claims;
    assert_eq!(carol.subject, "carol", "the subject is sub, not oid");
    assert_eq!(
        carol.email.as_deref(),
        Some("carol@example.org"),
        "the first of emails"
    );
    assert_eq!(carol.policy.as_deref(), Some("B2C_1_signin"));
    assert_eq!(carol.display_name.as_deref(), Some("Carol Customer"));
    assert_eq!(carol.given_name.as_deref(), Some("Carol"));
    assert_eq!(carol.groups, Groups::Absent, "B2C sends no groups");
    assert_eq!(carol.username, None);

    // A token from another user flow of the same tenant is refused.
    let dave = login(&rp, "dave").await.unwrap_err();
    assert!(
        matches!(dave, RpError::WrongPolicy { ref found, .. } if found == "B2C_1_other_flow"),
        "{dave:?}"
    );
}

#[tokio::test]
async fn rp_follows_the_providers_key_rotation() {
    let upstream = Upstream::start("entra", REDIRECT).await;
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
    let rp = RelyingParty::discover(
        entra_config(&upstream.issuer),
        reqwest::Client::new(),
        clock.clone(),
    )
    .await
    .unwrap();
    login(&rp, "alice").await.unwrap();
    assert_eq!(upstream.jwks_reads().await, 1);

    let new_kid = upstream.rotate().await;
    // Within the refetch interval the unknown kid does not reach the provider: refused.
    let err = login(&rp, "alice").await.unwrap_err();
    assert!(
        matches!(err, RpError::Token(idsync_oidc::JoseError::UnknownKey { kid: Some(ref k), .. }) if *k == new_kid),
        "{err:?}"
    );
    assert_eq!(upstream.jwks_reads().await, 1);

    // Once the interval has passed, the unknown kid makes the relying party read the JWKS again.
    clock.advance(61_000);
    let alice = login(&rp, "alice").await.unwrap().claims;
    assert_eq!(alice.subject, "00000000-0000-0000-0000-00000000a11c");
    assert_eq!(upstream.jwks_reads().await, 2);
    assert_eq!(rp.jwks_fetches().await, 2);
    // And the next login needs no fetch.
    login(&rp, "alice").await.unwrap();
    assert_eq!(upstream.jwks_reads().await, 2);
}

#[tokio::test]
async fn rp_refuses_a_provider_whose_discovery_names_another_issuer() {
    let upstream = Upstream::start("entra", REDIRECT).await;
    let mut config = entra_config(&upstream.issuer);
    config.issuer = format!("{}/", upstream.issuer);
    let err = RelyingParty::discover(config, reqwest::Client::new(), Arc::new(SystemClock))
        .await
        .unwrap_err();
    assert!(matches!(err, RpError::IssuerMismatch { .. }), "{err:?}");
}
