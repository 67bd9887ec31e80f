//! The Jira Data Center target against the Jira simulator: the connector kit, user properties,
//! deactivation by `"active"` (8.3 and later) and by application-access groups (before 8.3),
//! verified matching, Basic and the custom CA, and the rate limiter's 429s.

use idsync_connectors::targets::atlassian_dc::{Auth, ClientConfig};
use idsync_connectors::targets::jira::{Deactivation, JiraTarget, JiraTargetConfig};
use idsync_connectors::testkit;
use idsync_core::*;
use idsync_sim::jira::{self, JiraSimOptions, RateLimit, RunningJiraSim, Version};
use std::sync::Arc;
use std::time::Duration;

fn config(sim: &RunningJiraSim, auth: Auth) -> JiraTargetConfig {
    JiraTargetConfig {
        client: ClientConfig {
            base_url: sim.root.clone(),
            auth,
            ca_file: sim.ca_pem.clone(),
            timeout: Duration::from_secs(10),
            concurrency: 4,
        },
        default_groups: Vec::new(),
        properties: true,
        property_key: "idsync".into(),
        deactivation: Deactivation::Auto,
        access_groups: Vec::new(),
        lead_fallback: None,
        default_groups_on_create: true,
    }
}

fn token() -> Auth {
    Auth::Token("sim-jira-pat".into())
}

async fn sim(opts: JiraSimOptions) -> RunningJiraSim {
    jira::start(opts, Arc::new(SystemClock)).await.unwrap()
}

fn report(results: Vec<(&'static str, Result<(), testkit::KitFailure>)>) {
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    assert!(failed.is_empty(), "kit failures:\n{}", failed.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_target_passes_the_kit_over_https_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = sim(JiraSimOptions {
        tls: true,
        cert_dir: Some(dir.path().to_path_buf()),
        ..JiraSimOptions::default()
    })
    .await;
    let t = JiraTarget::new(config(&s, token())).unwrap();
    report(testkit::run_all(&t, "kit").await);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jira_target_passes_the_kit_on_jira_8_2_with_basic() {
    let s = sim(JiraSimOptions {
        version: Version(8, 2, 0),
        ..JiraSimOptions::default()
    })
    .await;
    let t = JiraTarget::new(config(
        &s,
        Auth::Basic {
            user: "admin".into(),
            password: "admin".into(),
        },
    ))
    .unwrap();
    report(testkit::run_all(&t, "old").await);
    s.stop().await;
}

fn person(n: &str) -> User {
    let mut u = User::new(format!("{n}-src"), format!("{n}@example.com"));
    u.display_name = Some(format!("Person {n}"));
    u.name.given_name = Some(n.into());
    u.name.family_name = Some("Person".into());
    u.title = Some("Engineer".into());
    u.emails = vec![Email {
        value: format!("{n}@example.com"),
        kind: Some("work".into()),
        primary: true,
        display: None,
    }];
    u
}

async fn created(t: &JiraTarget, u: &User) -> String {
    match t.apply(&TargetOp::CreateUser { user: u.clone() }).await {
        Outcome::Applied {
            target_id: Some(id),
        } => id,
        other => panic!("create {}: {other:?}", u.user_name),
    }
}

#[tokio::test]
async fn before_8_3_disabling_removes_application_access_and_gives_it_back() {
    let s = sim(JiraSimOptions {
        version: Version(8, 2, 0),
        ..JiraSimOptions::default()
    })
    .await;
    let t = JiraTarget::new(config(&s, token())).unwrap();
    let u = person("ann");
    let key = created(&t, &u).await;
    let groups_of = |s: &RunningJiraSim| {
        let d = s.state.directory.read().unwrap();
        d.groups_of(d.by_key(&key).unwrap())
    };
    assert_eq!(groups_of(&s), vec!["jira-software-users".to_string()]);
    let mut off = u.clone();
    off.active = false;
    let op = TargetOp::UpdateUser {
        target_id: key.clone(),
        before: u.clone(),
        after: off.clone(),
    };
    assert!(matches!(t.apply(&op).await, Outcome::Applied { .. }));
    assert!(groups_of(&s).is_empty(), "access removed");
    {
        let d = s.state.directory.read().unwrap();
        let ju = d.user(d.by_key(&key).unwrap()).unwrap();
        assert!(
            ju.active,
            "Jira 8.2 has no deactivation: the account stays active"
        );
        assert_eq!(
            ju.properties["idsync"]["accessRemoved"],
            serde_json::json!(["jira-software-users"])
        );
    }
    let state = t.read_state().await.unwrap();
    let read = state.users.iter().find(|r| r.target_id == key).unwrap();
    assert!(!read.user.active, "reads back as disabled");
    let back = TargetOp::UpdateUser {
        target_id: key.clone(),
        before: off,
        after: u.clone(),
    };
    assert!(matches!(t.apply(&back).await, Outcome::Applied { .. }));
    assert_eq!(groups_of(&s), vec!["jira-software-users".to_string()]);
    let state = t.read_state().await.unwrap();
    let read = state.users.iter().find(|r| r.target_id == key).unwrap();
    assert!(read.user.active);
    assert_eq!(
        read.user.title.as_deref(),
        Some("Engineer"),
        "from the property"
    );
    s.stop().await;
}

#[tokio::test]
async fn forcing_active_on_8_2_is_refused_after_reading_back() {
    let s = sim(JiraSimOptions {
        version: Version(8, 2, 0),
        ..JiraSimOptions::default()
    })
    .await;
    let mut cfg = config(&s, token());
    cfg.deactivation = Deactivation::Active;
    let t = JiraTarget::new(cfg).unwrap();
    let u = person("bob");
    let key = created(&t, &u).await;
    let mut off = u.clone();
    off.active = false;
    match t
        .apply(&TargetOp::UpdateUser {
            target_id: key,
            before: u,
            after: off,
        })
        .await
    {
        Outcome::Rejected { reason } => assert!(reason.contains("still active"), "{reason}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    s.stop().await;
}

#[tokio::test]
async fn matching_verifies_and_two_email_matches_conflict() {
    let s = sim(JiraSimOptions::default()).await;
    let t = JiraTarget::new(config(&s, token())).unwrap();
    let http = reqwest::Client::new();
    for name in ["cy.one", "cy.two"] {
        let r = http
            .post(format!("{}/rest/api/2/user", s.root))
            .bearer_auth("sim-jira-pat")
            .json(&serde_json::json!({"name": name, "emailAddress": "cy@example.com", "displayName": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let mut cy = person("cy");
    cy.user_name = "cy.one".into();
    let m = t.find_user_match(&cy).await.unwrap().unwrap();
    assert_eq!(m.by.as_deref(), Some("userName \"cy.one\""));
    cy.user_name = "cy".into();
    match t.find_user_match(&cy).await {
        Err(TargetError::Ambiguous { candidates, .. }) => assert_eq!(candidates.len(), 2),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // "cy.o" is a prefix of a username, not a username: no match.
    let mut prefix = person("nobody");
    prefix.user_name = "cy.o".into();
    assert_eq!(t.find_user(&prefix).await.unwrap(), None);
    s.stop().await;
}

#[tokio::test]
async fn a_429_is_retryable_with_its_wait_and_the_next_request_waits_for_a_token() {
    let s = sim(JiraSimOptions {
        rate_limit: Some(RateLimit {
            max: 1,
            fill: 1,
            interval_secs: 2,
        }),
        ..JiraSimOptions::default()
    })
    .await;
    let t = JiraTarget::new(config(&s, token())).unwrap();
    // Someone else takes the bucket's one token; idsync's next request meets a 429.
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/rest/api/2/myself", s.root))
        .bearer_auth("sim-jira-pat")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    match t
        .apply(&TargetOp::CreateGroup {
            group: Group::new("g", "limited"),
            members: Vec::new(),
        })
        .await
    {
        Outcome::Retryable {
            retry_after: Some(d),
            reason,
        } => {
            assert!(d.as_secs() >= 1 && d.as_secs() <= 2, "{d:?}");
            assert!(reason.contains("429"), "{reason}");
        }
        other => panic!("expected Retryable with a wait, got {other:?}"),
    }
    // X-RateLimit-Remaining 0 with Retry-After: the next request waits for the token
    // instead of meeting another 429.
    assert_eq!(
        t.find_group(&Group::new("g", "limited")).await.unwrap(),
        None
    );
    assert_eq!(s.state.stats().throttled, 1);
    s.stop().await;
}

#[tokio::test]
async fn created_users_join_the_default_groups_and_properties_can_be_off() {
    let s = sim(JiraSimOptions::default()).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/rest/api/2/group", s.root))
        .bearer_auth("sim-jira-pat")
        .json(&serde_json::json!({"name": "SSO-Users"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut cfg = config(&s, token());
    cfg.default_groups = vec!["sso-users".into()];
    cfg.properties = false;
    let t = JiraTarget::new(cfg).unwrap();
    let u = person("dee");
    let key = created(&t, &u).await;
    {
        let d = s.state.directory.read().unwrap();
        let id = d.by_key(&key).unwrap();
        assert_eq!(
            d.groups_of(id),
            vec!["jira-software-users".to_string(), "SSO-Users".to_string()]
        );
        assert!(
            d.user(id).unwrap().properties.is_empty(),
            "properties = false writes none"
        );
    }
    assert_eq!(
        t.project_user(u).title,
        None,
        "and a title is not something it holds"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_group_picker_that_shows_only_part_cannot_say_a_group_is_missing() {
    let s = sim(JiraSimOptions::default()).await;
    {
        let mut d = s.state.directory.write().unwrap();
        for i in 0..1001 {
            d.create_group(&format!("team-{i:04}")).unwrap();
        }
    }
    let t = JiraTarget::new(config(&s, token())).unwrap();
    assert_eq!(
        t.find_group(&Group::new("g", "TEAM-0005")).await.unwrap(),
        Some("team-0005".to_string())
    );
    match t.find_group(&Group::new("g", "team")).await {
        Err(TargetError::CannotMatch(why)) => assert!(why.contains("1000 of 1001"), "{why}"),
        other => panic!("expected CannotMatch, got {other:?}"),
    }
    s.stop().await;
}
