//! The Confluence Data Center target against the Confluence simulator: the connector kit
//! (Confluence 9 over HTTPS with a token; 8.3 with Basic), deactivation by the admin user API
//! (8.4 and later) and by the access groups (before 8.4), verified matching, the versions that
//! lack a call, nested groups refused.

use idsync_connectors::targets::atlassian_dc::{Auth, ClientConfig};
use idsync_connectors::targets::confluence::{
    ConfluenceTarget, ConfluenceTargetConfig, Deactivation,
};
use idsync_connectors::testkit;
use idsync_core::*;
use idsync_sim::confluence::{self, ConfluenceSimOptions, RunningConfluenceSim, Version};
use std::sync::Arc;
use std::time::Duration;

fn config(sim: &RunningConfluenceSim, auth: Auth) -> ConfluenceTargetConfig {
    ConfluenceTargetConfig {
        client: ClientConfig {
            base_url: sim.root.clone(),
            auth,
            ca_file: sim.ca_pem.clone(),
            timeout: Duration::from_secs(10),
            concurrency: 4,
        },
        default_groups: Vec::new(),
        deactivation: Deactivation::Auto,
        access_groups: vec!["confluence-users".into()],
        record_prefix: "idsync-access-removed-".into(),
    }
}

fn token() -> Auth {
    Auth::Token("sim-confluence-pat".into())
}

fn basic() -> Auth {
    Auth::Basic {
        user: "admin".into(),
        password: "admin".into(),
    }
}

async fn sim(opts: ConfluenceSimOptions) -> RunningConfluenceSim {
    confluence::start(opts, Arc::new(SystemClock))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn confluence_target_passes_the_kit_over_https_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = sim(ConfluenceSimOptions {
        tls: true,
        cert_dir: Some(dir.path().to_path_buf()),
        version: Version(8, 9, 0),
        ..ConfluenceSimOptions::default()
    })
    .await;
    let t = ConfluenceTarget::new(config(&s, token())).unwrap();
    report_confluence(testkit::run_all(&t, "kit").await);
    s.stop().await;
}

/// The kit's cases Confluence cannot pass, and why: its REST API cannot look a user up by
/// email. (Users are compared with what Confluence can hold, its `project_user`: no given or
/// family name.)
const CONFLUENCE_CANNOT: &[(&str, &str)] = &[("find_user", "find_user by email")];

/// Every kit case passes but those Confluence cannot, which fail for that reason only.
fn report_confluence(results: Vec<(&'static str, Result<(), testkit::KitFailure>)>) {
    let mut wrong = Vec::new();
    for (n, r) in &results {
        let cannot = CONFLUENCE_CANNOT.iter().find(|(c, _)| c == n);
        match (r, cannot) {
            (Ok(()), None) => {}
            (Err(e), Some((_, why))) if e.0.starts_with(why) => {}
            (Ok(()), Some(_)) => {
                wrong.push(format!("{n}: passed; CONFLUENCE_CANNOT is out of date"))
            }
            (Err(e), _) => wrong.push(format!("{n}: {e}")),
        }
    }
    assert!(wrong.is_empty(), "kit:\n{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn confluence_target_passes_the_kit_on_confluence_8_3_with_basic() {
    let s = sim(ConfluenceSimOptions {
        version: Version(8, 3, 4),
        ..ConfluenceSimOptions::default()
    })
    .await;
    let t = ConfluenceTarget::new(config(&s, basic())).unwrap();
    report_confluence(testkit::run_all(&t, "old").await);
    s.stop().await;
}

fn person(n: &str) -> User {
    let mut u = User::new(format!("{n}-src"), format!("{n}@example.com"));
    u.display_name = Some(format!("Person {n}"));
    u.emails = vec![Email {
        value: format!("{n}@example.com"),
        kind: None,
        primary: true,
        display: None,
    }];
    u
}

async fn created(t: &ConfluenceTarget, u: &User) -> String {
    match t.apply(&TargetOp::CreateUser { user: u.clone() }).await {
        Outcome::Applied {
            target_id: Some(id),
        } => id,
        other => panic!("create {}: {other:?}", u.user_name),
    }
}

async fn observed(t: &ConfluenceTarget, id: &str) -> User {
    t.read_state()
        .await
        .unwrap()
        .users
        .into_iter()
        .find(|u| u.target_id == id)
        .map(|u| u.user)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn confluence_before_8_4_disables_by_the_access_groups_and_gives_them_back() {
    let s = sim(ConfluenceSimOptions {
        version: Version(8, 3, 4),
        ..ConfluenceSimOptions::default()
    })
    .await;
    let t = ConfluenceTarget::new(config(&s, token())).unwrap();
    let note = t.disable_note().await.unwrap().unwrap();
    assert!(
        note.contains("no deactivation call before 8.4") && note.contains("confluence-users"),
        "{note}"
    );
    let u = person("dana");
    let id = created(&t, &u).await;
    let mut off = u.clone();
    off.active = false;
    let op = TargetOp::UpdateUser {
        target_id: id.clone(),
        before: u.clone(),
        after: off.clone(),
    };
    assert!(matches!(t.apply(&op).await, Outcome::Applied { .. }));
    {
        let d = s.state.directory.read().unwrap();
        assert_eq!(
            d.groups_of(&id),
            vec!["idsync-access-removed-confluence-users"],
            "access removed, and recorded"
        );
        assert!(
            d.by_key(&id).unwrap().active,
            "the account itself stays active"
        );
    }
    let snap = t.read_state().await.unwrap();
    assert!(
        snap.groups
            .iter()
            .all(|g| !g.target_id.starts_with("idsync-access-removed-")),
        "record groups are not the flow's groups"
    );
    assert!(!observed(&t, &id).await.active, "reads as disabled");
    let back = TargetOp::UpdateUser {
        target_id: id.clone(),
        before: off,
        after: u,
    };
    assert!(matches!(t.apply(&back).await, Outcome::Applied { .. }));
    assert_eq!(
        s.state.directory.read().unwrap().groups_of(&id),
        vec!["confluence-users"],
        "a returning user gets its access back"
    );
    assert!(observed(&t, &id).await.active);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn confluence_9_disables_with_the_admin_api_and_refuses_what_it_cannot_change() {
    let s = sim(ConfluenceSimOptions::default()).await;
    let t = ConfluenceTarget::new(config(&s, token())).unwrap();
    t.health().await.unwrap();
    let note = t.disable_note().await.unwrap().unwrap();
    assert!(
        note.contains("Confluence 9.2.3") && note.contains("/disable"),
        "{note}"
    );
    let u = person("Erin");
    let id = created(&t, &u).await;
    assert_eq!(
        s.state.directory.read().unwrap().by_key(&id).unwrap().email,
        "Erin@example.com"
    );
    let mut seen = observed(&t, &id).await;
    seen.source_id = u.source_id.clone();
    assert_eq!(seen.user_name, "erin@example.com");
    assert_eq!(
        t.project_user(u.clone()),
        t.project_observed_user(seen),
        "nothing to chase"
    );
    let mut off = u.clone();
    off.active = false;
    let op = TargetOp::UpdateUser {
        target_id: id.clone(),
        before: u.clone(),
        after: off,
    };
    assert!(matches!(t.apply(&op).await, Outcome::Applied { .. }));
    assert!(
        !s.state
            .directory
            .read()
            .unwrap()
            .by_key(&id)
            .unwrap()
            .active
    );
    assert!(!observed(&t, &id).await.active);
    let mut renamed = u.clone();
    renamed.display_name = Some("Erin Other".into());
    let op = TargetOp::UpdateUser {
        target_id: id.clone(),
        before: u.clone(),
        after: renamed,
    };
    match t.apply(&op).await {
        Outcome::Rejected { reason } => assert!(
            reason.contains("Confluence 9.2.3 has no call to change a user's display name"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    let mut moved = u.clone();
    moved.user_name = "erin2@example.com".into();
    let op = TargetOp::UpdateUser {
        target_id: id.clone(),
        before: u.clone(),
        after: moved,
    };
    match t.apply(&op).await {
        Outcome::Rejected { reason } => assert!(reason.contains("cannot rename users"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let nested = TargetOp::AddChildGroups {
        group_id: "confluence-users".into(),
        child_ids: vec!["confluence-administrators".into()],
    };
    assert!(matches!(t.apply(&nested).await, Outcome::Rejected { .. }));
    // Matching is verified and case-insensitive; an email is not a username.
    let mut upper = u.clone();
    upper.user_name = "ERIN@example.com".into();
    let m = t.find_user_match(&upper).await.unwrap().unwrap();
    assert_eq!(m.target_id, id);
    let mut stranger = u.clone();
    stranger.user_name = "someone-else".into();
    assert_eq!(t.find_user(&stranger).await.unwrap(), None);
    assert!(matches!(
        t.apply(&TargetOp::DeleteUser {
            target_id: id.clone()
        })
        .await,
        Outcome::Applied { .. }
    ));
    assert!(s.state.directory.read().unwrap().by_key(&id).is_none());
    s.stop().await;
}
