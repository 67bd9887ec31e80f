//! The Jira target's matching against one listing per run (decision 0040): a run that
//! creates many users matches them against one paged listing of Jira's users instead of two
//! searches each, with the same rules (any case, two email matches a conflict); the listing
//! follows the run's own creates, renames and deletes; a create whose attempt failed searches
//! Jira again; a run that creates one searches.

use idsync_connectors::targets::atlassian_dc::{Auth, ClientConfig};
use idsync_connectors::targets::jira::{Deactivation, JiraTarget, JiraTargetConfig};
use idsync_core::*;
use idsync_sim::jira::{self, JiraSimOptions, RunningJiraSim};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn config(sim: &RunningJiraSim) -> JiraTargetConfig {
    JiraTargetConfig {
        client: ClientConfig {
            base_url: sim.root.clone(),
            auth: Auth::Token("sim-jira-pat".into()),
            ca_file: None,
            timeout: Duration::from_secs(10),
            concurrency: 4,
        },
        default_groups: Vec::new(),
        properties: false,
        property_key: "idsync".into(),
        deactivation: Deactivation::Auto,
        access_groups: Vec::new(),
        lead_fallback: None,
        default_groups_on_create: true,
    }
}

fn person(n: &str) -> User {
    let mut u = User::new(format!("{n}-src"), n);
    u.display_name = Some(format!("Person {n}"));
    u.emails = vec![Email {
        value: format!("{n}@example.com"),
        kind: None,
        primary: true,
        display: None,
    }];
    u
}

async fn by_hand(s: &RunningJiraSim, name: &str, email: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/rest/api/2/user", s.root))
        .bearer_auth("sim-jira-pat")
        .json(&json!({"name": name, "emailAddress": email, "displayName": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{name}");
}

#[tokio::test]
async fn many_creates_are_matched_against_one_listing_with_the_search_rules() {
    let s = jira::start(JiraSimOptions::default(), Arc::new(SystemClock))
        .await
        .unwrap();
    let t = JiraTarget::new(config(&s)).unwrap();
    // In Jira already: Ann (by username, another case), a user with Bob's email, and two
    // with Cy's.
    by_hand(&s, "ANN", "ann.old@example.com").await;
    by_hand(&s, "robert", "bob@example.com").await;
    by_hand(&s, "cy.one", "cy@example.com").await;
    by_hand(&s, "cy.two", "CY@example.com").await;

    let people: Vec<User> = (0..50).map(|i| person(&format!("new{i}"))).collect();
    t.expect_creates(people.len() + 3, 0);
    let before = t.requests();
    let m = t.find_user_match(&person("ann")).await.unwrap().unwrap();
    assert_eq!(m.by.as_deref(), Some("userName \"ann\""));
    let m = t.find_user_match(&person("bob")).await.unwrap().unwrap();
    assert_eq!(m.by.as_deref(), Some("email \"bob@example.com\""));
    match t.find_user_match(&person("cy")).await {
        Err(TargetError::Ambiguous { candidates, .. }) => assert_eq!(candidates.len(), 2),
        other => panic!("expected a conflict, got {other:?}"),
    }
    for p in &people {
        assert_eq!(t.find_user(p).await.unwrap(), None, "{}", p.user_name);
    }
    // 53 matches: one probe and the listing (5 users: one page and the empty one), not 106.
    assert_eq!(t.requests() - before, 3, "one listing for the run");

    // The listing follows the run's creates, renames and deletes.
    let id = match t
        .apply(&TargetOp::CreateUser {
            user: people[0].clone(),
        })
        .await
    {
        Outcome::Applied {
            target_id: Some(id),
        } => id,
        other => panic!("{other:?}"),
    };
    let found = t.find_user(&people[0]).await.unwrap();
    assert_eq!(found.as_deref(), Some(id.as_str()), "created by this run");
    let mut renamed = people[0].clone();
    renamed.user_name = "new0.renamed".into();
    let o = t
        .apply(&TargetOp::UpdateUser {
            target_id: id.clone(),
            before: people[0].clone(),
            after: renamed.clone(),
        })
        .await;
    assert!(matches!(o, Outcome::Applied { .. }), "{o:?}");
    let mut old_name = people[0].clone();
    old_name.emails.clear();
    assert_eq!(t.find_user(&old_name).await.unwrap(), None, "renamed away");
    assert_eq!(
        t.find_user(&renamed).await.unwrap().as_deref(),
        Some(id.as_str())
    );
    let o = t
        .apply(&TargetOp::DeleteUser {
            target_id: id.clone(),
        })
        .await;
    assert!(matches!(o, Outcome::Applied { .. }), "{o:?}");
    assert_eq!(t.find_user(&renamed).await.unwrap(), None, "deleted");

    // A create whose answer was lost may have been applied: its retry searches Jira.
    by_hand(&s, "new1", "new1@example.com").await;
    let r = reqwest::Client::new()
        .post(format!("{}/_sim/faults", s.root))
        .json(&json!({"fail_next": 1, "fail_match": "POST /rest/api/2/user", "error_status": 500}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let o = t
        .apply(&TargetOp::CreateUser {
            user: people[1].clone(),
        })
        .await;
    assert!(matches!(o, Outcome::Retryable { .. }), "{o:?}");
    let m = t.find_user_match(&people[1]).await.unwrap();
    assert!(m.is_some(), "the retry finds what the lost attempt made");

    // The next run lists Jira as it is then (a create repeated after a crash finds the
    // first one); a run that creates one user searches (2 requests, no listing).
    t.end_run();
    t.expect_creates(2, 0);
    assert!(t.find_user(&people[1]).await.unwrap().is_some());
    t.end_run();
    t.expect_creates(1, 0);
    let before = t.requests();
    assert_eq!(t.find_user(&people[2]).await.unwrap(), None);
    assert_eq!(
        t.requests() - before,
        2,
        "a username lookup and an email search"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_run_that_creates_several_groups_lists_them_in_one_request() {
    let s = jira::start(JiraSimOptions::default(), Arc::new(SystemClock))
        .await
        .unwrap();
    let t = JiraTarget::new(config(&s)).unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/rest/api/2/group", s.root))
        .bearer_auth("sim-jira-pat")
        .json(&json!({"name": "Staff"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    t.expect_creates(0, 3);
    let before = t.requests();
    assert_eq!(
        t.find_group(&Group::new("s", "staff"))
            .await
            .unwrap()
            .as_deref(),
        Some("Staff"),
        "any case"
    );
    for g in ["one", "two"] {
        assert_eq!(t.find_group(&Group::new(g, g)).await.unwrap(), None);
    }
    assert_eq!(
        t.requests() - before,
        1,
        "one group picker listing, not one per group"
    );
    // One group: searched by name.
    t.end_run();
    t.expect_creates(0, 1);
    let before = t.requests();
    assert_eq!(t.find_group(&Group::new("x", "x")).await.unwrap(), None);
    assert_eq!(t.requests() - before, 1);
    s.stop().await;
}
