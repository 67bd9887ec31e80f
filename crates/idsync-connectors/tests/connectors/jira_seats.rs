//! Jira's licence seats as the target reads them (decision 0039): the application roles with
//! a seat limit and the groups that grant each, what existing users hold, and what a
//! returning user gets back: the groups it is still in when deactivated with `"active"` (8.3
//! and later), the groups recorded in its property when its access was removed (before 8.3).

use idsync_connectors::targets::atlassian_dc::{Auth, ClientConfig};
use idsync_connectors::targets::jira::{Deactivation, JiraTarget, JiraTargetConfig};
use idsync_core::*;
use idsync_sim::jira::{self, AppRole, JiraSimOptions, RunningJiraSim, Version};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

async fn sim(version: Version) -> RunningJiraSim {
    let opts = JiraSimOptions {
        version,
        roles: vec![
            AppRole::software(Some(5)),
            AppRole {
                key: "jira-servicedesk".into(),
                name: "Jira Service Management".into(),
                groups: vec!["jira-servicedesk-users".into()],
                default_groups: vec!["jira-servicedesk-users".into()],
                seats: None,
                selected_by_default: false,
            },
        ],
        ..JiraSimOptions::default()
    };
    jira::start(opts, Arc::new(SystemClock)).await.unwrap()
}

fn target(sim: &RunningJiraSim) -> JiraTarget {
    JiraTarget::new(JiraTargetConfig {
        client: ClientConfig {
            base_url: sim.root.clone(),
            auth: Auth::Token("sim-jira-pat".into()),
            ca_file: None,
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
    })
    .unwrap()
}

async fn created(t: &JiraTarget, name: &str) -> String {
    let mut u = User::new(format!("{name}-src"), name);
    u.emails = vec![Email {
        value: format!("{name}@example.com"),
        kind: None,
        primary: true,
        display: None,
    }];
    match t.apply(&TargetOp::CreateUser { user: u }).await {
        Outcome::Applied {
            target_id: Some(id),
        } => id,
        other => panic!("create {name}: {other:?}"),
    }
}

async fn disable(t: &JiraTarget, key: &str, name: &str) {
    let on = User::new(format!("{name}-src"), name);
    let mut off = on.clone();
    off.active = false;
    let op = TargetOp::UpdateUser {
        target_id: key.into(),
        before: on,
        after: off,
    };
    let o = t.apply(&op).await;
    assert!(
        matches!(o, Outcome::Applied { .. }),
        "disable {name}: {o:?}"
    );
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn seat_roles_and_holders_say_what_users_hold_and_get_back() {
    let s = sim(Version(9, 12, 2)).await;
    let t = target(&s);
    let ann = created(&t, "ann").await;
    let bob = created(&t, "bob").await;

    // The unlimited role counts nothing; Jira Software: 5 seats, the administrator, Ann and
    // Bob take three.
    let roles = t.seat_roles().await.unwrap();
    assert_eq!(roles.len(), 1, "{roles:?}");
    let sw = &roles[0];
    assert_eq!(
        (sw.application.as_str(), sw.total, sw.remaining),
        ("Jira Software", 5, 2)
    );
    assert_eq!(
        sw.groups,
        set(&["jira-administrators", "jira-software-users"])
    );
    assert!(sw.new_users, "selected by default");

    // Bob deactivated (8.3 and later: "active" false) keeps his groups and frees his seat:
    // enabled, he gets them back.
    disable(&t, &bob, "bob").await;
    assert_eq!(t.seat_roles().await.unwrap()[0].remaining, 3);
    let holders = t
        .seat_holders(&[ann.clone(), bob.clone(), "JIRAUSER-none".into()])
        .await
        .unwrap();
    assert_eq!(holders.len(), 2, "a user Jira does not know is left out");
    assert_eq!(
        holders[&ann],
        SeatHolder {
            active: true,
            holds: set(&["Jira Software"]),
            returns_with: BTreeSet::new(),
        }
    );
    assert_eq!(
        holders[&bob],
        SeatHolder {
            active: false,
            holds: BTreeSet::new(),
            returns_with: set(&["jira-software-users"]),
        }
    );
    s.stop().await;
}

#[tokio::test]
async fn before_8_3_a_user_whose_access_was_removed_gets_back_the_recorded_groups() {
    let s = sim(Version(8, 2, 0)).await;
    let t = target(&s);
    let cy = created(&t, "cy").await;
    disable(&t, &cy, "cy").await;
    assert_eq!(t.seat_roles().await.unwrap()[0].remaining, 4, "seat freed");
    let holders = t.seat_holders(std::slice::from_ref(&cy)).await.unwrap();
    assert_eq!(
        holders[&cy],
        SeatHolder {
            active: true,
            holds: BTreeSet::new(),
            returns_with: set(&["jira-software-users"]),
        },
        "the account stays active in no group that grants access; its property says which"
    );
    s.stop().await;
}
