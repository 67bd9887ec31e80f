//! Engine tests: real store (SQLite in a temp dir), the scriptable test target, an in-memory
//! source.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use idsync_connectors::targets::test::{Fault, TestTarget};
use idsync_core::*;
use idsync_engine::*;
use idsync_store::{RunStatus, Store};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "engine/crowd_nested.rs"]
mod crowd_nested;
#[path = "engine/deprovision.rs"]
mod deprovision;
#[path = "engine/failures.rs"]
mod failures;
#[path = "engine/inactive.rs"]
mod inactive;
#[path = "engine/login.rs"]
mod login;
#[path = "engine/login_nesting.rs"]
mod login_nesting;
#[path = "engine/service.rs"]
mod service;

/// A source whose snapshot the test edits.
struct MemorySource(Mutex<Snapshot>);

#[async_trait]
impl Source for MemorySource {
    fn describe(&self) -> String {
        "memory".into()
    }
    async fn read(&self, _cursor: Option<&str>) -> Result<SourceRead, SourceError> {
        Ok(SourceRead::Full {
            snapshot: self.0.lock().unwrap().clone(),
            cursor: None,
        })
    }
}

fn people(n: usize) -> Snapshot {
    let users: Vec<User> = (0..n)
        .map(|i| {
            let mut u = User::new(format!("id-{i:05}"), format!("user{i}@example.com"));
            u.display_name = Some(format!("User {i}"));
            u.emails = vec![Email {
                value: format!("user{i}@example.com"),
                kind: Some("work".into()),
                primary: true,
                display: None,
            }];
            u
        })
        .collect();
    let groups = vec![
        Group::new("g-all", "everyone"),
        Group::new("g-eng", "engineering"),
        Group::new("g-team", "team"),
    ];
    let mut memberships = vec![
        Membership {
            group: "g-all".into(),
            member: MemberRef::group("g-eng"),
        },
        Membership {
            group: "g-eng".into(),
            member: MemberRef::group("g-team"),
        },
    ];
    for (i, u) in users.iter().enumerate() {
        let g = if i % 2 == 0 { "g-team" } else { "g-all" };
        memberships.push(Membership {
            group: g.into(),
            member: MemberRef::user(u.source_id.clone()),
        });
    }
    Snapshot {
        users,
        groups,
        memberships,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    rt: Runtime,
    source: Arc<MemorySource>,
    target: Arc<TestTarget>,
}

async fn fixture(snapshot: Snapshot, target: TestTarget) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("idsync.db")).await.unwrap();
    let mut rt = Runtime::new(store, Arc::new(SystemClock));
    let source = Arc::new(MemorySource(Mutex::new(snapshot)));
    let target = Arc::new(target);
    rt.sources.insert(
        "hr".into(),
        SourceEntry {
            name: "hr".into(),
            directory: "hr".into(),
            interval: None,
            source: source.clone(),
        },
    );
    rt.targets
        .insert("app".into(), TargetEntry::new("app", target.clone(), 0.0));
    rt.flows.insert(
        "hr-to-app".into(),
        FlowEntry {
            spec: FlowSpec {
                name: "hr-to-app".into(),
                directory: "hr".into(),
                target: "app".into(),
                plan: PlanOptions::default(),
                concurrency: 8,
                backoff: Backoff {
                    max_retries: 4,
                    base: Duration::from_millis(1),
                    max: Duration::from_millis(20),
                },
                deletion_threshold: DeletionThreshold::default(),
                mapping: idsync_core::mapping::Mapping::default(),
                scope: idsync_core::scope::Scope::default(),
                only_users: None,
                inactivity: None,
                memberships: idsync_core::scope::MembershipPolicy::default(),
                groups: idsync_core::groups::GroupRules::default(),
                nested_groups: false,
            },
            source: Some("hr".into()),
            enabled: true,
            full_reconcile_interval: None,
        },
    );
    Fixture {
        _dir: dir,
        rt,
        source,
        target,
    }
}

async fn sync(f: &Fixture, mode: Mode) -> RunReport {
    f.rt.sync("hr-to-app", mode, false, &NoProgress)
        .await
        .unwrap()
}

/// Poll `ready` every 10 ms until it holds; fail with `what` after 10 s.
async fn until<F, Fut>(what: &str, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ready().await {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

type TargetView = (
    Vec<(String, bool, Option<String>)>,
    Vec<(String, Vec<String>)>,
);

/// The target's state in the ledger's terms: userName -> (active, displayName) and
/// group displayName -> sorted member userNames.
fn target_view(t: &TestTarget) -> TargetView {
    let s = t.state();
    let name_of = |id: &str| {
        s.users
            .iter()
            .find(|u| u.target_id == id)
            .map(|u| u.user.user_name.clone())
            .unwrap()
    };
    let mut users: Vec<_> = s
        .users
        .iter()
        .map(|u| {
            (
                u.user.user_name.clone(),
                u.user.active,
                u.user.display_name.clone(),
            )
        })
        .collect();
    users.sort();
    let mut groups: Vec<_> = s
        .groups
        .iter()
        .map(|g| {
            let mut m: Vec<String> = g.members.iter().map(|id| name_of(id)).collect();
            m.sort();
            (g.group.display_name.clone(), m)
        })
        .collect();
    groups.sort();
    (users, groups)
}

/// The target's user with this userName: (userName, active, displayName).
fn target_user(f: &Fixture, name: &str) -> Option<(String, bool, Option<String>)> {
    target_view(&f.target).0.into_iter().find(|u| u.0 == name)
}

/// The display names of the target's groups that have this user (by userName) as a member.
fn groups_of(f: &Fixture, name: &str) -> Vec<String> {
    target_view(&f.target)
        .1
        .into_iter()
        .filter(|g| g.1.iter().any(|m| m == name))
        .map(|g| g.0)
        .collect()
}

async fn assert_ledger_matches_target(f: &Fixture) {
    let ledger = f.rt.store.load_ledger("hr-to-app").await.unwrap();
    let real = f.target.state();
    assert_eq!(
        ledger.users.len(),
        real.users.len(),
        "users in ledger vs target"
    );
    for u in &real.users {
        let l = ledger
            .users
            .values()
            .find(|l| l.target_id == u.target_id)
            .expect("target user unknown to the ledger");
        assert_eq!(l.user.user_name, u.user.user_name);
        assert_eq!(l.user.active, u.user.active);
    }
    for g in &real.groups {
        let (key, _) = ledger
            .groups
            .iter()
            .find(|(_, l)| l.target_id == g.target_id)
            .expect("group unknown to ledger");
        let mut want: Vec<&str> = ledger
            .members
            .get(key)
            .map(|s| {
                s.iter()
                    .map(|k| ledger.users[&**k].target_id.as_str())
                    .collect()
            })
            .unwrap_or_default();
        let mut have: Vec<&str> = g.members.iter().map(String::as_str).collect();
        want.sort();
        have.sort();
        assert_eq!(want, have, "members of {}", g.group.display_name);
    }
}

#[tokio::test]
async fn full_sync_then_nothing_to_do() {
    let f = fixture(people(50), TestTarget::new()).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(r.count("create_user.applied"), 50);
    assert_eq!(r.count("create_group.applied"), 3);
    let (users, groups) = target_view(&f.target);
    assert_eq!(users.len(), 50);
    // Nested groups flattened: everyone holds all 50, engineering and team the even half.
    assert_eq!(groups[0].0, "engineering");
    assert_eq!(groups[0].1.len(), 25);
    assert_eq!(groups[1].0, "everyone");
    assert_eq!(groups[1].1.len(), 50);
    assert_eq!(groups[2].1.len(), 25);
    assert_ledger_matches_target(&f).await;

    let again = sync(&f, Mode::Full).await;
    assert_eq!(
        again.count("planned"),
        0,
        "a second run right after a successful one plans nothing"
    );
    assert_eq!(f.target.apply_calls(), r.count("applied") as u64);

    // History and provisioning log.
    let runs = f.rt.store.list_runs(Some("hr-to-app"), 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].id, r.run_id);
    assert_eq!(runs[1].trigger, "manual");
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    assert_eq!(ops.len() as i64, r.count("planned"));
    let ada = ops
        .iter()
        .find(|o| o.object == "user7@example.com")
        .unwrap();
    assert_eq!(
        (
            ada.action.as_str(),
            ada.outcome.as_str(),
            ada.reason.as_str()
        ),
        ("create_user", "applied", "new in the source")
    );
    assert_eq!(
        f.rt.store.flow_cursor("hr-to-app").await.unwrap(),
        f.rt.store.last_seq("hr").await.unwrap()
    );
}

#[tokio::test]
async fn changes_in_the_source_reach_the_target() {
    let f = fixture(people(20), TestTarget::new()).await;
    sync(&f, Mode::Full).await;
    {
        let mut s = f.source.0.lock().unwrap();
        s.users[0].display_name = Some("Renamed".into());
        s.users[0].user_name = "renamed@example.com".into();
        s.users[1].active = false;
        s.users.retain(|u| u.source_id != "id-00002");
        s.memberships.retain(|m| m.member.id != "id-00004");
        s.memberships.push(Membership {
            group: "g-team".into(),
            member: MemberRef::user("id-00003"),
        });
    }
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded);
    let (users, groups) = target_view(&f.target);
    assert!(users.contains(&("renamed@example.com".into(), true, Some("Renamed".into()))));
    assert!(
        !users.iter().any(|u| u.0 == "user0@example.com"),
        "a rename keeps the object"
    );
    assert!(users.contains(&("user1@example.com".into(), false, Some("User 1".into()))));
    // Removed from the source: disabled by default, still there.
    assert!(users.contains(&("user2@example.com".into(), false, Some("User 2".into()))));
    let team = &groups.iter().find(|g| g.0 == "team").unwrap().1;
    assert!(team.contains(&"user3@example.com".to_string()));
    assert!(!team.contains(&"user4@example.com".to_string()));
    assert!(!groups
        .iter()
        .any(|g| g.1.contains(&"user2@example.com".to_string())));
    assert_ledger_matches_target(&f).await;
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    let removed = ops
        .iter()
        .find(|o| o.key == "id-00002" && o.action == "disable_user")
        .unwrap();
    assert_eq!(removed.reason, "no longer in the source");
    assert_eq!(sync(&f, Mode::Full).await.count("planned"), 0);
}

#[tokio::test]
async fn incremental_runs_from_memory_do_what_a_load_from_the_store_would() {
    let f = fixture(people(40), TestTarget::new()).await;
    let first = sync(&f, Mode::Full).await;
    assert_eq!(first.count("from_memory.directory"), 0);
    fn user(i: usize) -> User {
        let mut u = User::new(format!("id-{i:05}"), format!("user{i}@example.com"));
        u.display_name = Some(format!("User {i}"));
        u
    }
    fn member(g: &str, m: MemberRef) -> Membership {
        Membership {
            group: g.into(),
            member: m,
        }
    }
    type Edit = Box<dyn Fn(&mut Snapshot)>;
    let rounds: Vec<(&str, Edit)> = vec![
        (
            "rename, disable, delete a user; move one between groups",
            Box::new(|s: &mut Snapshot| {
                s.users[0].display_name = Some("Renamed".into());
                s.users[1].active = false;
                s.users.retain(|u| u.source_id != "id-00002");
                s.memberships.retain(|m| m.member.id != "id-00004");
                s.memberships
                    .push(member("g-all", MemberRef::user("id-00004")));
            }),
        ),
        (
            "the deleted user comes back with no groups, a new one joins the nested team",
            Box::new(|s: &mut Snapshot| {
                s.users.push(user(2));
                s.users.push(user(40));
                s.memberships
                    .push(member("g-team", MemberRef::user("id-00040")));
            }),
        ),
        (
            "the nested team group is deleted; a new group takes two users",
            Box::new(|s: &mut Snapshot| {
                s.groups.retain(|g| g.source_id != "g-team");
                s.memberships
                    .retain(|m| m.group != "g-team" && m.member.id != "g-team");
                s.groups.push(Group::new("g-new", "newcomers"));
                s.memberships
                    .push(member("g-new", MemberRef::user("id-00006")));
                s.memberships
                    .push(member("g-new", MemberRef::user("id-00007")));
            }),
        ),
    ];
    for (what, edit) in rounds {
        edit(&mut f.source.0.lock().unwrap());
        f.rt.ingest("hr").await.unwrap();
        let inc = sync(&f, Mode::Incremental).await;
        assert_eq!(inc.status, RunStatus::Succeeded, "{what}");
        assert_eq!(inc.count("from_memory.directory"), 1, "{what}");
        assert_eq!(inc.count("from_memory.ledger"), 1, "{what}");
        assert!(inc.count("applied") > 0, "{what}");
        // A full run loads everything from the store: it finds nothing left to do.
        let full = sync(&f, Mode::Full).await;
        assert_eq!(full.count("from_memory.directory"), 0, "{what}");
        assert_eq!(full.count("planned"), 0, "{what}: {:?}", full.plan);
        assert_ledger_matches_target(&f).await;
    }
    let (users, groups) = target_view(&f.target);
    assert!(users.contains(&("user0@example.com".into(), true, Some("Renamed".into()))));
    assert!(users.contains(&("user2@example.com".into(), true, Some("User 2".into()))));
    assert_eq!(
        groups
            .iter()
            .find(|g| g.0 == "newcomers")
            .map(|g| g.1.clone()),
        Some(vec![
            "user6@example.com".to_string(),
            "user7@example.com".to_string()
        ])
    );

    // A push deletes user 9 and creates it again at once (as SCIM clients may): the store drops
    // the user's memberships with the delete, so the user is in no group any more.
    let nine = f.source.0.lock().unwrap().users[8].clone();
    assert_eq!(nine.source_id, "id-00009");
    f.rt.store
        .apply_changes(
            "hr",
            "scim",
            &[
                Change::DeleteUser {
                    source_id: "id-00009".into(),
                },
                Change::UpsertUser { user: nine },
            ],
            None,
            0,
        )
        .await
        .unwrap();
    // (The source agrees, so the runs' own reads of it change nothing more.)
    f.source
        .0
        .lock()
        .unwrap()
        .memberships
        .retain(|m| m.member.id != "id-00009");
    let inc = sync(&f, Mode::Incremental).await;
    assert_eq!(inc.count("from_memory.directory"), 1);
    assert_eq!(inc.count("remove_members.applied"), 1, "{:?}", inc.plan);
    assert!(groups_of(&f, "user9@example.com").is_empty());
    assert_eq!(sync(&f, Mode::Full).await.count("planned"), 0);

    // Another writer changes the ledger (here: it forgets user 5): the next incremental run
    // sees the version move, loads the ledger from the store, and provisions user 5 again.
    let mut ledger = f.rt.store.load_ledger("hr-to-app").await.unwrap();
    ledger.users.remove("id-00005");
    for m in ledger.members.values_mut() {
        m.remove("id-00005");
    }
    f.rt.store
        .replace_ledger("hr-to-app", &ledger)
        .await
        .unwrap();
    f.source.0.lock().unwrap().users[3].display_name = Some("Touched".into());
    f.rt.ingest("hr").await.unwrap();
    let inc = sync(&f, Mode::Incremental).await;
    assert_eq!(inc.count("from_memory.directory"), 1);
    assert_eq!(inc.count("from_memory.ledger"), 0);
    assert_eq!(inc.count("create_user.applied"), 1, "{:?}", inc.plan);
}
