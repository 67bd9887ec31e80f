//! The provider against npm openid-client (6.x), a real OpenID client library: discovery, the
//! code flow with PKCE, state and nonce, the ID token's signature and claims, and userinfo.

use std::sync::Arc;

use idsync_core::SystemClock;
use idsync_oidc::provider::{Client, MemoryStore, Provider, ProviderConfig, UserInfo};
use serde_json::json;

use crate::support::{listen, mount_provider, openid_client};

const REDIRECT: &str = "http://127.0.0.1:9/plugins/servlet/oidc/callback";

fn jira_user() -> UserInfo {
    UserInfo {
        subject: "ann".into(),
        username: Some("ann".into()),
        email: Some("ann@example.com".into()),
        display_name: Some("Ann Example".into()),
        groups: vec!["jira-software-users".into(), "Confluence Admins".into()],
    }
}

#[tokio::test]
async fn provider_signs_a_user_in_to_openid_client() {
    let (listener, base) = listen().await;
    let issuer = format!("{base}/oidc");
    let provider = Provider::start(
        ProviderConfig::new(&issuer),
        vec![
            Client {
                client_id: "jira".into(),
                client_secret: Some("jira-secret".into()),
                redirect_uris: vec![REDIRECT.into()],
                require_pkce: true,
            },
            Client {
                client_id: "confluence".into(),
                client_secret: Some("confluence-secret".into()),
                redirect_uris: vec![REDIRECT.into()],
                require_pkce: false,
            },
        ],
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let _served = mount_provider(listener, Arc::new(provider), jira_user());

    for (client, secret, auth) in [
        ("jira", "jira-secret", "post"),
        ("confluence", "confluence-secret", "basic"),
    ] {
        let answer = openid_client(&issuer, client, secret, auth, REDIRECT)
            .await
            .unwrap_or_else(|e| panic!("openid-client ({client}, {auth}) failed: {e}"));
        let claims = &answer["claims"];
        assert_eq!(claims["iss"], json!(issuer));
        assert_eq!(claims["aud"], json!(client));
        assert_eq!(claims["sub"], json!("ann"));
        assert_eq!(claims["preferred_username"], json!("ann"));
        assert_eq!(claims["email"], json!("ann@example.com"));
        assert_eq!(claims["name"], json!("Ann Example"));
        assert_eq!(
            claims["groups"],
            json!(["jira-software-users", "Confluence Admins"])
        );
        assert!(claims["at_hash"].is_string());
        let userinfo = &answer["userinfo"];
        assert_eq!(userinfo["sub"], json!("ann"));
        assert_eq!(userinfo["email"], json!("ann@example.com"));
        assert_eq!(
            userinfo["groups"],
            json!(["jira-software-users", "Confluence Admins"])
        );
    }

    // A wrong secret: openid-client reports the token endpoint's invalid_client.
    let err = openid_client(&issuer, "jira", "not-the-secret", "post", REDIRECT)
        .await
        .unwrap_err();
    assert!(err.contains("invalid_client"), "{err}");
}

#[tokio::test]
async fn provider_and_relying_party_of_this_crate_sign_in_end_to_end() {
    let (listener, base) = listen().await;
    let issuer = format!("{base}/oidc");
    let provider = Provider::start(
        ProviderConfig::new(&issuer),
        vec![Client {
            client_id: "bitbucket".into(),
            client_secret: Some("bb-secret".into()),
            redirect_uris: vec![REDIRECT.into()],
            require_pkce: true,
        }],
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let _served = mount_provider(listener, Arc::new(provider), jira_user());
    let mut config = idsync_oidc::rp::RpConfig::new(&issuer, "bitbucket", "bb-secret", REDIRECT);
    config.client_auth = idsync_oidc::rp::ClientAuth::ClientSecretBasic;
    let rp = idsync_oidc::rp::RelyingParty::discover(
        config,
        reqwest::Client::new(),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let (url, pending) = rp.start_login();
    let answer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    let back = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let callback = idsync_oidc::rp::Callback::from_query(back.query().unwrap());
    assert_eq!(callback.iss.as_deref(), Some(issuer.as_str()));
    let login = rp.finish_login(&pending, &callback).await.unwrap();
    assert_eq!(login.claims.subject, "ann");
    assert_eq!(
        login.claims.groups,
        idsync_oidc::rp::Groups::Listed(vec![
            "jira-software-users".into(),
            "Confluence Admins".into()
        ])
    );
}
