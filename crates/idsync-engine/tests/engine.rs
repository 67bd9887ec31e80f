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
#[path = "engine/inactive.rs"]
mod inactive;
#[path = "engine/login.rs"]
mod login;

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

#[tokio::test]
async fn deprovisions_above_the_threshold_wait_for_approve_or_reject() {
    let mut f = fixture(people(40), TestTarget::new()).await;
    f.rt.flows
        .get_mut("hr-to-app")
        .unwrap()
        .spec
        .deletion_threshold = DeletionThreshold {
        count: Some(5),
        percent: Some(50.0),
    };
    sync(&f, Mode::Full).await;
    let active = |f: &Fixture, name: &str| target_user(f, name).map(|u| u.1);
    let in_everyone = |f: &Fixture, name: &str| groups_of(f, name).iter().any(|g| g == "everyone");

    // Three users leave: below the threshold, deprovisioned at once.
    f.source
        .0
        .lock()
        .unwrap()
        .users
        .retain(|u| !["id-00000", "id-00001", "id-00002"].contains(&u.source_id.as_str()));
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(r.count("disable_user.applied"), 3);
    assert_eq!(active(&f, "user0@example.com"), Some(false));

    // Ten more leave (a bad day in the source) while someone is renamed: the rename is applied,
    // the ten keep their accounts and their groups.
    {
        let mut s = f.source.0.lock().unwrap();
        s.users.retain(|u| {
            let n: usize = u.source_id[3..].parse().unwrap();
            !(10..20).contains(&n)
        });
        s.users[0].display_name = Some("Renamed".into());
    }
    let held = sync(&f, Mode::Full).await;
    assert_eq!(held.status, RunStatus::Held, "{:?}", held.counts);
    assert_eq!(held.count("held"), 10);
    assert_eq!(held.count("update_user.applied"), 1);
    assert!(
        held.plan
            .warnings
            .iter()
            .any(|w| w.contains("deletion threshold")),
        "{:?}",
        held.plan.warnings
    );
    assert_eq!(active(&f, "user11@example.com"), Some(true));
    assert!(in_everyone(&f, "user11@example.com"));
    let log = f.rt.store.run_ops(&held.run_id).await.unwrap();
    assert_eq!(
        log.iter()
            .filter(|o| o.outcome == "held" && o.action == "disable_user")
            .count(),
        10
    );

    // While the hold waits, later runs hold too; the latest hold supersedes the earlier one.
    let again = sync(&f, Mode::Full).await;
    assert_eq!(again.status, RunStatus::Held);
    let first = f.rt.store.get_run(&held.run_id).await.unwrap().unwrap();
    assert_eq!(first.resolution.as_deref(), Some("superseded"));
    let err =
        f.rt.approve(&held.run_id, &NoProgress)
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains(&again.run_id), "{err}");

    // Reject: nothing deprovisioned; the next run judges again, and holds again.
    let rejected = f.rt.reject(&again.run_id).await.unwrap();
    assert_eq!(rejected.resolution.as_deref(), Some("rejected"));
    assert_eq!(active(&f, "user11@example.com"), Some(true));
    let third = sync(&f, Mode::Full).await;
    assert_eq!(third.status, RunStatus::Held);

    // Approve: the ten are deprovisioned and leave their groups; the flow stops waiting.
    let approved = f.rt.approve(&third.run_id, &NoProgress).await.unwrap();
    assert_eq!(
        approved.status,
        RunStatus::Succeeded,
        "{:?}",
        approved.counts
    );
    assert_eq!(approved.count("disable_user.applied"), 10);
    assert_eq!(active(&f, "user11@example.com"), Some(false));
    assert!(!in_everyone(&f, "user11@example.com"));
    let third = f.rt.store.get_run(&third.run_id).await.unwrap().unwrap();
    assert_eq!(third.resolution.as_deref(), Some("approved"));
    assert!(f
        .rt
        .store
        .pending_hold("hr-to-app")
        .await
        .unwrap()
        .is_none());
    assert_eq!(sync(&f, Mode::Full).await.count("planned"), 0);
    assert_ledger_matches_target(&f).await;
}

#[tokio::test]
async fn deprovisioning_policy_memberships_kept_by_rule_reenabled_on_return_or_left_alone() {
    use idsync_core::scope::{GroupPattern, MembershipPolicy};
    let mut f = fixture(people(6), TestTarget::new()).await;
    // Disable, remove memberships except in "engineering" (nested: the even users' group).
    f.rt.flows.get_mut("hr-to-app").unwrap().spec.memberships = MembershipPolicy {
        keep: false,
        keep_in: vec![GroupPattern::parse("regex:^eng").unwrap()],
    };
    sync(&f, Mode::Full).await;
    assert_eq!(
        groups_of(&f, "user2@example.com"),
        ["engineering", "everyone", "team"]
    );
    let two = f.source.0.lock().unwrap().users[2].clone();
    f.source
        .0
        .lock()
        .unwrap()
        .users
        .retain(|u| u.source_id != "id-00002");
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("disable_user.applied"), 1);
    assert_eq!(
        groups_of(&f, "user2@example.com"),
        ["engineering"],
        "kept where the rule says"
    );
    // Back in the source: enabled again, and in its groups again.
    f.source.0.lock().unwrap().users.push(two);
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("update_user.applied"), 1, "{:?}", r.plan);
    let back = target_user(&f, "user2@example.com").unwrap();
    assert!(back.1, "active again");
    assert_eq!(
        groups_of(&f, "user2@example.com"),
        ["engineering", "everyone", "team"]
    );

    // deprovision = "none": a user who leaves is left as the target has it.
    {
        let spec = &mut f.rt.flows.get_mut("hr-to-app").unwrap().spec;
        spec.plan.deprovision = DeprovisionAction::Nothing;
        spec.memberships = MembershipPolicy {
            keep: true,
            keep_in: Vec::new(),
        };
    }
    f.source
        .0
        .lock()
        .unwrap()
        .users
        .retain(|u| u.source_id != "id-00003");
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("planned"), 0, "{:?}", r.plan);
    let three = target_user(&f, "user3@example.com").unwrap();
    assert!(three.1, "still active");
    assert_eq!(groups_of(&f, "user3@example.com"), ["everyone"]);
}

#[tokio::test]
async fn deprovisioning_deletes_after_a_grace_period_or_anonymizes_reversibly() {
    let mut f = fixture(people(6), TestTarget::new()).await;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    f.rt.clock = clock.clone();
    f.rt.flows
        .get_mut("hr-to-app")
        .unwrap()
        .spec
        .plan
        .deprovision = DeprovisionAction::DeleteAfter { days: 30 };
    sync(&f, Mode::Full).await;
    f.source
        .0
        .lock()
        .unwrap()
        .users
        .retain(|u| u.source_id != "id-00002");
    assert_eq!(sync(&f, Mode::Full).await.count("disable_user.applied"), 1);
    clock.advance(29 * 86_400_000);
    assert_eq!(
        sync(&f, Mode::Full).await.count("planned"),
        0,
        "within the grace period"
    );
    clock.advance(2 * 86_400_000);
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("delete_user.applied"), 1, "{:?}", r.plan);
    let log = f.rt.store.run_ops(&r.run_id).await.unwrap();
    assert_eq!(
        log[0].reason,
        "disabled for more than the grace period of 30 days"
    );
    assert_eq!(f.target.users_named("user2@example.com"), 0);

    // Anonymize: placeholders in the target, the real values in the ledger, back on return.
    f.rt.flows
        .get_mut("hr-to-app")
        .unwrap()
        .spec
        .plan
        .deprovision = DeprovisionAction::Anonymize;
    let four = f.source.0.lock().unwrap().users[3].clone();
    assert_eq!(four.source_id, "id-00004");
    f.source
        .0
        .lock()
        .unwrap()
        .users
        .retain(|u| u.source_id != "id-00004");
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("disable_user.applied"), 1, "{:?}", r.plan);
    let users = target_view(&f.target).0;
    assert!(
        !users.iter().any(|u| u.0 == "user4@example.com"),
        "{users:?}"
    );
    let anon = users
        .iter()
        .find(|u| u.0.starts_with("deprovisioned-") && u.0.ends_with("@example.com"))
        .unwrap();
    assert_eq!((anon.1, anon.2.as_deref()), (false, Some("Former user")));
    let ledger = f.rt.store.load_ledger("hr-to-app").await.unwrap();
    let kept = ledger.users["id-00004"].original.as_ref().unwrap();
    assert_eq!(kept.user_name, "user4@example.com");
    assert_eq!(kept.display_name.as_deref(), Some("User 4"));
    assert_eq!(
        sync(&f, Mode::Full).await.count("planned"),
        0,
        "anonymized once"
    );
    f.source.0.lock().unwrap().users.push(four);
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("update_user.applied"), 1, "{:?}", r.plan);
    let back = target_user(&f, "user4@example.com").unwrap();
    assert_eq!((back.1, back.2.as_deref()), (true, Some("User 4")));
    assert!(
        f.rt.store.load_ledger("hr-to-app").await.unwrap().users["id-00004"]
            .original
            .is_none()
    );
    assert_ledger_matches_target(&f).await;
}

#[tokio::test]
async fn select_unique_value_asks_the_target_for_values_idsync_did_not_give() {
    use idsync_core::mapping::{Apply, Mapping};
    let mut f = fixture(people(1), TestTarget::new()).await;
    f.rt.flows.get_mut("hr-to-app").unwrap().spec.mapping = Mapping::compile(&[(
        "userName".to_string(),
        r#"SelectUniqueValue("handmade@example.com", Append("idsync-", [userName]))"#.to_string(),
        Apply::OnCreate,
    )])
    .unwrap();
    // Someone made a user by hand in the application with the first candidate.
    let made = f
        .target
        .apply(&TargetOp::CreateUser {
            user: User::new("by-hand", "handmade@example.com"),
        })
        .await;
    assert!(matches!(made, Outcome::Applied { .. }), "{made:?}");
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("create_user.applied"), 1, "{:?}", r.plan);
    assert_eq!(f.target.users_named("idsync-user0@example.com"), 1);
    assert_eq!(
        f.target.users_named("handmade@example.com"),
        1,
        "the hand-made user is left alone"
    );
    // Once created, the value stays (on create only), and nothing more is asked or planned.
    assert_eq!(sync(&f, Mode::Full).await.count("planned"), 0);
}

#[tokio::test]
async fn members_added_by_hand_stay_when_the_flow_keeps_them_and_go_when_authoritative() {
    use idsync_core::groups::{group_key, GroupRules};
    let mut f = fixture(people(6), TestTarget::new()).await;
    f.rt.flows.get_mut("hr-to-app").unwrap().spec.groups = GroupRules {
        keep_manual: true,
        default_all: vec!["all-staff".into()],
        ..GroupRules::default()
    };
    sync(&f, Mode::Full).await;
    let ledger = f.rt.store.load_ledger("hr-to-app").await.unwrap();
    let team = ledger.groups[&group_key("team")].target_id.clone();
    // user1 (odd: not in "team") is added to "team" by hand in the application.
    let u1 = ledger.users["id-00001"].target_id.clone();
    let added = f
        .target
        .apply(&TargetOp::AddMembers {
            group_id: team.clone(),
            user_ids: vec![u1.clone()],
        })
        .await;
    assert!(matches!(added, Outcome::Applied { .. }));
    let in_team = |f: &Fixture| {
        groups_of(f, "user1@example.com")
            .iter()
            .any(|g| g == "team")
    };
    // Reconciles see the hand-made membership and leave it; so do ordinary runs after them.
    for mode in [Mode::Reconcile, Mode::Reconcile, Mode::Full] {
        let r = sync(&f, mode).await;
        assert_eq!(
            r.count("remove_members.applied"),
            0,
            "{mode:?}: {:?}",
            r.plan
        );
        assert!(in_team(&f), "{mode:?}");
    }
    // Authoritative: the next reconcile takes it out.
    f.rt.flows
        .get_mut("hr-to-app")
        .unwrap()
        .spec
        .groups
        .keep_manual = false;
    let r = sync(&f, Mode::Reconcile).await;
    assert_eq!(r.count("remove_members.applied"), 1, "{:?}", r.plan);
    assert!(!in_team(&f));
}

/// A target that keeps saying "slow down" (429 with Retry-After) is waited for: the waits are
/// shared by every operation and do not use up an operation's retries, nor count as failures of
/// the target, so a sync into a throttling target ends with everything applied.
#[tokio::test]
async fn a_target_that_keeps_throttling_is_waited_for_not_failed() {
    let t = TestTarget::new();
    // More throttled answers in a row than an operation has retries (5).
    t.fail_next(
        20,
        Fault::TooManyRequests {
            retry_after: Duration::from_millis(2),
        },
    );
    let f = fixture(people(12), t).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.counts);
    assert_eq!(r.count("create_user.applied"), 12);
    assert_eq!(r.count("create_user.failed"), 0);
    assert_eq!(f.target.user_count(), 12);
    assert_ledger_matches_target(&f).await;
}

#[tokio::test]
async fn retryable_errors_are_retried_and_permanent_ones_recorded() {
    let t = TestTarget::new();
    t.fail_next(
        6,
        Fault::TooManyRequests {
            retry_after: Duration::from_millis(5),
        },
    );
    t.fail_next(2, Fault::ServerError(503));
    t.reject_user_names(&["user1[0-9]@example\\.com".to_string()])
        .unwrap();
    let f = fixture(people(30), t).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::PartiallyFailed);
    assert_eq!(r.count("create_user.failed"), 10, "user10..user19 rejected");
    assert_eq!(r.count("create_user.applied"), 20);
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    let rejected: Vec<_> = ops
        .iter()
        .filter(|o| o.outcome == "rejected" && o.action == "create_user")
        .collect();
    assert_eq!(rejected.len(), 10);
    assert!(rejected
        .iter()
        .all(|o| o.error.as_deref().is_some_and(|e| !e.is_empty())));
    // Their memberships could not be added: recorded, not fatal.
    assert!(ops
        .iter()
        .any(|o| o.action == "add_members" && o.outcome == "rejected"));
    assert_eq!(f.target.user_count(), 20);
    assert_ledger_matches_target(&f).await;
    // The next run tries the rejected ones again and only those.
    f.target.reject_user_names(&[]).unwrap();
    let again = sync(&f, Mode::Full).await;
    assert_eq!(again.status, RunStatus::Succeeded);
    assert_eq!(again.count("create_user.applied"), 10);
    assert_ledger_matches_target(&f).await;
}

#[tokio::test]
async fn exhausted_retries_fail_the_operation_not_the_run() {
    let t = TestTarget::new();
    t.fail_next(1000, Fault::ServerError(503));
    let f = fixture(people(3), t).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.count("applied"), 0);
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    assert!(ops.iter().all(|o| o.outcome != "applied"));
    assert!(ops
        .iter()
        .any(|o| o.outcome == "failed" && o.error.as_deref().unwrap_or("").contains("503")));
    assert!(f
        .rt
        .store
        .load_ledger("hr-to-app")
        .await
        .unwrap()
        .users
        .is_empty());
}

#[tokio::test]
async fn a_create_that_timed_out_after_applying_is_not_duplicated() {
    let t = TestTarget::new();
    t.fail_next(5, Fault::TimeoutAfterApply);
    let f = fixture(people(10), t).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded);
    for i in 0..10 {
        assert_eq!(f.target.users_named(&format!("user{i}@example.com")), 1);
    }
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    assert!(
        ops.iter().any(|o| o.outcome == "linked"),
        "the retried create found and linked the first one"
    );
    assert_ledger_matches_target(&f).await;
}

/// A first sync into an empty target creates without searching it first (two requests less
/// per object); once the target holds users, every create searches and links what it finds.
#[tokio::test]
async fn creates_search_the_target_only_when_it_holds_something() {
    let f = fixture(people(10), TestTarget::new()).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(f.target.user_count(), 10);
    assert_eq!(f.target.searches(), 0);

    // Another target already holding one of the users (made by hand).
    let t = TestTarget::new();
    let mut existing = people(1).users[0].clone();
    existing.source_id = "made-by-hand".into();
    assert!(matches!(
        t.apply(&TargetOp::CreateUser { user: existing }).await,
        Outcome::Applied { .. }
    ));
    let f = fixture(people(10), t).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded);
    assert!(f.target.searches() >= 10, "{}", f.target.searches());
    assert_eq!(f.target.users_named("user0@example.com"), 1);
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    assert_eq!(ops.iter().filter(|o| o.outcome == "linked").count(), 1);
    assert_ledger_matches_target(&f).await;
}

#[tokio::test]
async fn reconcile_repairs_changes_made_by_hand_in_the_target() {
    let f = fixture(people(10), TestTarget::new()).await;
    sync(&f, Mode::Full).await;
    let ledger = f.rt.store.load_ledger("hr-to-app").await.unwrap();
    let u0 = ledger.users["id-00000"].target_id.clone();
    let u1 = ledger.users["id-00001"].target_id.clone();
    let u2 = ledger.users["id-00002"].target_id.clone();
    let team = ledger.groups["g-team"].target_id.clone();
    f.target
        .hand_update_user(&u0, |u| u.display_name = Some("Edited by hand".into()));
    f.target.hand_delete_user(&u1);
    f.target.hand_remove_member(&team, &u2);

    // An ordinary run trusts the ledger and sees nothing.
    assert_eq!(sync(&f, Mode::Full).await.count("planned"), 0);
    let r = sync(&f, Mode::Reconcile).await;
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(r.count("update_user.applied"), 1);
    assert_eq!(r.count("create_user.applied"), 1);
    assert!(r.count("add_members.applied") >= 1);
    let (users, groups) = target_view(&f.target);
    assert!(users.contains(&("user0@example.com".into(), true, Some("User 0".into()))));
    assert!(users.iter().any(|u| u.0 == "user1@example.com"));
    assert!(groups
        .iter()
        .find(|g| g.0 == "team")
        .unwrap()
        .1
        .contains(&"user2@example.com".to_string()));
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    assert!(ops
        .iter()
        .any(|o| o.reason == "changed by hand in the target: displayName"));
    assert_ledger_matches_target(&f).await;
    assert_eq!(sync(&f, Mode::Reconcile).await.count("planned"), 0);
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let f = fixture(people(5), TestTarget::new()).await;
    let r =
        f.rt.sync("hr-to-app", Mode::Full, true, &NoProgress)
            .await
            .unwrap();
    assert_eq!(r.plan.counts()["create_user"], 5);
    assert_eq!(f.target.apply_calls(), 0);
    assert!(f.rt.store.list_runs(None, 10).await.unwrap().is_empty());
    assert_eq!(f.rt.store.flow_cursor("hr-to-app").await.unwrap(), 0);
}

#[tokio::test]
async fn rate_limit_paces_operations() {
    let f = fixture(people(4), TestTarget::new()).await;
    let mut rt = f.rt;
    // 20 ops/s towards the target: the 4 users, 3 groups and their memberships take time.
    let app = rt.targets["app"].target.clone();
    rt.targets
        .insert("app".into(), TargetEntry::new("app", app, 20.0));
    let started = std::time::Instant::now();
    let r = rt
        .sync("hr-to-app", Mode::Full, false, &NoProgress)
        .await
        .unwrap();
    let n = r.count("applied");
    assert!(n >= 10);
    // n operations at 20/s cannot finish faster than (n-1)/20 s.
    assert!(started.elapsed() >= Duration::from_millis(((n - 1) * 50) as u64));
}

#[tokio::test]
async fn a_push_reaches_the_target_through_the_service() {
    let f = fixture(people(3), TestTarget::new()).await;
    let target = f.target.clone();
    let rt = Arc::new(f.rt);
    let svc = Service::new(rt.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = svc.start(stop_rx);
    // A push source writes straight into the directory and says so.
    let mut u = User::new("pushed-1", "pushed@example.com");
    u.display_name = Some("Pushed".into());
    rt.store
        .apply_changes("hr", "scim", &[Change::UpsertUser { user: u }], None, 0)
        .await
        .unwrap();
    svc.notify("hr", Trigger::Push);
    let t = &target;
    until("the pushed user never reached the target", || async move {
        t.users_named("pushed@example.com") > 0
    })
    .await;
    let runs = rt.store.list_runs(Some("hr-to-app"), 5).await.unwrap();
    assert_eq!(runs[0].trigger, "push");
    assert_eq!(runs[0].mode, "incremental");
    stop_tx.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn a_quarantined_flow_waits_out_its_backoff_then_a_good_run_ends_it() {
    let mut f = fixture(people(3), TestTarget::new()).await;
    let clock = Arc::new(ManualClock::new(1_000_000));
    f.rt.clock = clock.clone();
    let target = f.target.clone();
    let rt = Arc::new(f.rt);
    // Three bad runs in a row (recorded as the runtime records them) quarantine the flow.
    for i in 0..3 {
        let (h, entered) = rt
            .store
            .record_flow_failure(
                "hr-to-app",
                "hr",
                "HTTP 401: the API key expired",
                1_000_000,
                3,
            )
            .await
            .unwrap();
        assert_eq!((h.failures, entered), (i + 1, i == 2));
    }
    assert_eq!(quarantine_backoff_ms(3), 300_000);
    assert_eq!(quarantine_backoff_ms(5), 1_200_000);
    assert_eq!(quarantine_backoff_ms(40), 86_400_000);

    let svc = Service::new(rt.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = svc.start(stop_rx);
    let mut u = User::new("pushed-1", "pushed@example.com");
    u.display_name = Some("Pushed".into());
    rt.store
        .apply_changes("hr", "scim", &[Change::UpsertUser { user: u }], None, 0)
        .await
        .unwrap();
    svc.notify("hr", Trigger::Push);
    // Within the backoff the follower sees the change and leaves the flow alone.
    let metrics = &svc.metrics;
    until("the follower never looked", || async move {
        metrics.quarantine_skips("hr-to-app") >= 2
    })
    .await;
    assert_eq!(target.users_named("pushed@example.com"), 0);
    assert!(rt
        .store
        .list_runs(Some("hr-to-app"), 5)
        .await
        .unwrap()
        .is_empty());
    // Five minutes later it tries again; the run is good, and the quarantine ends.
    clock.advance(300_000);
    let t = &target;
    until("no run after the backoff", || async move {
        t.users_named("pushed@example.com") > 0
    })
    .await;
    let store = &rt.store;
    until("still quarantined after a good run", || async move {
        store
            .flow_health("hr-to-app")
            .await
            .unwrap()
            .quarantined_ms
            .is_none()
    })
    .await;
    assert_eq!(rt.store.flow_health("hr-to-app").await.unwrap().failures, 0);
    stop_tx.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn a_failed_source_read_changes_nothing() {
    struct Broken;
    #[async_trait]
    impl Source for Broken {
        fn describe(&self) -> String {
            "broken".into()
        }
        async fn read(&self, _: Option<&str>) -> Result<SourceRead, SourceError> {
            Err(SourceError::Unavailable("HTTP 503 on page 3".into()))
        }
    }
    let mut f = fixture(people(5), TestTarget::new()).await;
    sync(&f, Mode::Full).await;
    f.rt.sources.get_mut("hr").unwrap().source = Arc::new(Broken);
    let err =
        f.rt.sync("hr-to-app", Mode::Full, false, &NoProgress)
            .await
            .unwrap_err();
    assert!(err.to_string().contains("HTTP 503 on page 3"), "{err}");
    assert_eq!(
        f.rt.store.load_directory("hr").await.unwrap().users.len(),
        5
    );
    assert_eq!(
        target_view(&f.target).0.iter().filter(|u| u.1).count(),
        5,
        "nobody deprovisioned"
    );
}

#[tokio::test]
async fn the_conformance_kit_passes_against_the_test_target() {
    let t = TestTarget::new();
    let results = idsync_connectors::testkit::run_all(&t, "kit").await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(results.len() >= 10);
}

#[tokio::test]
async fn objects_the_target_skips_are_logged_not_failed() {
    let t = TestTarget::new();
    t.skip_user_names(&["^user[0-2]@".to_string()]).unwrap();
    let f = fixture(people(6), t).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.counts);
    assert_eq!(r.count("create_user.skipped"), 3);
    assert_eq!(r.count("failed"), 0);
    // Each planned operation counts once; the skipped users' memberships are skipped too, and
    // counted as members.
    assert_eq!(r.count("skipped"), 3, "{:?}", r.counts);
    assert_eq!(
        r.count("applied") + r.count("failed") + r.count("skipped"),
        r.count("planned"),
        "{:?}",
        r.counts
    );
    assert!(
        r.count("members.skipped") >= 3,
        "the skipped users' memberships are skipped too: {:?}",
        r.counts
    );
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    assert!(ops
        .iter()
        .any(|o| o.outcome == "skipped" && o.action == "add_members"));
    assert!(ops
        .iter()
        .filter(|o| o.outcome == "skipped" && o.action == "create_user")
        .all(|o| o.error.as_deref().is_some_and(|e| e.contains("outside"))));
    assert_eq!(f.target.user_count(), 3);
    assert_ledger_matches_target(&f).await;
}

#[tokio::test]
async fn a_source_on_an_interval_is_read_and_provisioned_by_the_service() {
    let mut f = fixture(people(2), TestTarget::new()).await;
    if let Some(src) = f.rt.sources.get_mut("hr") {
        src.interval = Some(Duration::from_millis(50));
    }
    let (source, target) = (f.source.clone(), f.target.clone());
    let rt = Arc::new(f.rt);
    let svc = Service::new(rt.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = svc.start(stop_rx);
    let wait = |what: &'static str, name: &'static str| {
        let target = target.clone();
        async move {
            let t = &target;
            until(&format!("{what} never reached the target"), || async move {
                t.users_named(name) > 0
            })
            .await;
        }
    };
    wait("the first read", "user1@example.com").await;
    source
        .0
        .lock()
        .unwrap()
        .users
        .push(User::new("late", "late@example.com"));
    wait("a user added to the source later", "late@example.com").await;
    let runs = rt.store.list_runs(Some("hr-to-app"), 10).await.unwrap();
    assert!(runs.iter().all(|r| r.trigger == "schedule"), "{runs:?}");
    stop_tx.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
}

/// A Graph read that fails half-way (5xx on every next page, after the delta link expired and a
/// full read was needed) changes nothing: no partial snapshot is taken as the directory, so
/// nobody is deprovisioned.
#[tokio::test]
async fn a_graph_read_failing_mid_paging_deprovisions_nobody() {
    use idsync_connectors::sources::msgraph::client::{
        Cloud, Credential, GraphClient, GraphConfig,
    };
    use idsync_connectors::sources::msgraph::{GraphSource, GraphSourceConfig};
    use idsync_sim::graph::{self, Faults, GraphSimOptions, TenantSpec};
    let opts = GraphSimOptions {
        spec: TenantSpec {
            users: 120,
            groups: 6,
            memberships: 200,
            ..TenantSpec::default()
        },
        max_page: 25,
        ..GraphSimOptions::default()
    };
    let sim = graph::start(opts.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    let mut cfg = GraphConfig::new(
        &sim.tenant_id,
        &opts.reader.client_id,
        Credential::Secret(opts.reader.client_secret.clone()),
        Cloud::Global,
    );
    cfg.authority = sim.root.clone();
    cfg.graph = sim.root.clone();
    cfg.max_retries = 2;
    cfg.max_backoff = Duration::from_millis(5);
    let source = GraphSource::new(
        GraphClient::new(cfg, Arc::new(SystemClock)).unwrap(),
        GraphSourceConfig::default(),
    );
    let f = fixture(Snapshot::default(), TestTarget::new()).await;
    let mut rt = f.rt;
    rt.sources.insert(
        "hr".into(),
        SourceEntry {
            name: "hr".into(),
            directory: "hr".into(),
            interval: None,
            source: Arc::new(source),
        },
    );
    let first = rt
        .sync("hr-to-app", Mode::Full, false, &NoProgress)
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    let active = |t: &TestTarget| t.state().users.iter().filter(|u| u.user.active).count();
    assert_eq!(f.target.state().users.len(), 120);
    let enabled = active(&f.target);
    assert!(enabled > 100, "most simulated users are enabled");

    sim.state.expire_delta_links();
    sim.state.set_faults(Faults {
        fail_next: 1000,
        fail_match: "skiptoken".into(),
        error_status: 502,
        ..Faults::default()
    });
    let err = rt
        .sync("hr-to-app", Mode::Full, false, &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("502"), "{err}");
    // The failed read is in the history, and the directory is whole.
    let reads = rt.store.list_runs(Some("source:hr"), 10).await.unwrap();
    assert_eq!(reads[0].status, RunStatus::Failed);
    assert_eq!(rt.store.directory_counts("hr").await.unwrap().users, 120);
    let plan = rt.sync("hr-to-app", Mode::Full, true, &NoProgress).await;
    assert!(
        plan.is_err(),
        "the dry run reads the source too, and fails the same way"
    );
    let run = rt
        .run(
            "hr-to-app",
            RunOptions {
                trigger: Trigger::Manual,
                mode: Mode::Full,
                dry_run: false,
            },
            false,
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(run.plan.deprovisions(), 0);
    assert_eq!(active(&f.target), enabled);

    // When Graph recovers, the next read is whole again.
    sim.state.set_faults(Faults::default());
    let again = rt
        .sync("hr-to-app", Mode::Full, false, &NoProgress)
        .await
        .unwrap();
    assert_eq!(again.status, RunStatus::Succeeded);
    assert_eq!(active(&f.target), enabled);
}
