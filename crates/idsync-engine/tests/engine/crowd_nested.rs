//! Issue 17 (nested groups, decision 0033): one source, one flow to a flat target (the test
//! target, as SCIM targets have groups) and one to a served crowd target with nested groups,
//! both with the same scope and group rules. Whatever the nesting (cycles included) and
//! whichever groups the rules leave out, every user's nested groups as the crowd target serves
//! them (`user/group/nested` through idsync-crowd's handler, on a directory built from the
//! flow's ledger as the server builds it) are the groups the flat target gives it.

use super::MemorySource;
use idsync_connectors::targets::test::TestTarget;
use idsync_core::groups::GroupRules;
use idsync_core::scope::{Clause, GroupPattern, Scope};
use idsync_core::*;
use idsync_engine::*;
use idsync_store::Store;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

const USERS: usize = 8;
const GROUPS: usize = 5;

fn snapshot_strategy() -> impl Strategy<Value = Snapshot> {
    (
        prop::collection::vec(any::<bool>(), USERS),
        prop::collection::vec((0..GROUPS, any::<bool>(), 0..USERS), 0..30),
    )
        .prop_map(|(in_scope, ms)| {
            let users = (0..USERS)
                .map(|i| {
                    let mut u = User::new(format!("u{i}"), format!("user{i}"));
                    u.department = Some(if in_scope[i] { "in" } else { "out" }.into());
                    u
                })
                .collect();
            let groups = (0..GROUPS)
                .map(|i| Group::new(format!("g{i}"), format!("group{i}")))
                .collect();
            let memberships = ms
                .into_iter()
                .map(|(g, is_group, m)| Membership {
                    group: format!("g{g}"),
                    member: if is_group {
                        MemberRef::group(format!("g{}", m % GROUPS))
                    } else {
                        MemberRef::user(format!("u{m}"))
                    },
                })
                .collect();
            Snapshot {
                users,
                groups,
                memberships,
            }
        })
}

fn flow(name: &str, target: &str, nested: bool, excluded: &BTreeSet<usize>) -> FlowEntry {
    FlowEntry {
        spec: FlowSpec {
            name: name.into(),
            directory: "hr".into(),
            target: target.into(),
            plan: PlanOptions::default(),
            concurrency: 4,
            backoff: Backoff::default(),
            deletion_threshold: DeletionThreshold {
                count: None,
                percent: None,
            },
            mapping: idsync_core::mapping::Mapping::default(),
            scope: Scope {
                groups: vec![vec![
                    Clause::new("department", "equals", Some("in"), None).unwrap()
                ]],
            },
            only_users: None,
            inactivity: None,
            memberships: idsync_core::scope::MembershipPolicy::default(),
            groups: GroupRules {
                exclude: excluded
                    .iter()
                    .map(|g| GroupPattern::parse(&format!("group{g}")).unwrap())
                    .collect(),
                ..GroupRules::default()
            },
            nested_groups: nested,
        },
        source: Some("hr".into()),
        enabled: true,
        full_reconcile_interval: None,
    }
}

/// Each active user's groups in the flat target, by names.
fn flat_groups(t: &TestTarget) -> BTreeMap<String, BTreeSet<String>> {
    let s = t.state();
    s.users
        .iter()
        .filter(|u| u.user.active)
        .map(|u| {
            let groups = s
                .groups
                .iter()
                .filter(|g| g.members.contains(&u.target_id))
                .map(|g| g.group.display_name.clone())
                .collect();
            (u.user.user_name.clone(), groups)
        })
        .collect()
}

/// Each active user's nested groups as the crowd target serves them.
async fn served_groups(store: &Store) -> BTreeMap<String, BTreeSet<String>> {
    let ledger = store.load_ledger("hr-to-dc").await.unwrap();
    let members = ledger
        .members
        .iter()
        .flat_map(|(g, us)| us.iter().map(move |u| (g.clone(), u.to_string())))
        .collect();
    let children = ledger
        .child_groups
        .iter()
        .flat_map(|(g, cs)| cs.iter().map(move |c| (g.clone(), c.clone())))
        .collect();
    let active: Vec<String> = ledger
        .users
        .values()
        .filter(|u| u.user.active)
        .map(|u| u.user.user_name.clone())
        .collect();
    let users = ledger.users.into_iter().map(|(k, u)| (k, u.user)).collect();
    let groups = ledger
        .groups
        .into_iter()
        .map(|(k, g)| (k, g.group))
        .collect();
    let dir = idsync_crowd::Directory::build(users, groups, members, children);
    let events = idsync_crowd::EventLog::new("e".into(), 1);
    active
        .into_iter()
        .map(|name| {
            let query = vec![
                ("username".to_string(), name.clone()),
                ("max-results".to_string(), "1000".to_string()),
            ];
            let req = idsync_crowd::Request {
                method: "GET",
                path: "user/group/nested",
                query: &query,
                base_url: "http://127.0.0.1/crowd/dc/rest/usermanagement/1",
                accept: idsync_crowd::Format::Json,
                content_type: idsync_crowd::Format::Json,
                body: &[],
            };
            let res = idsync_crowd::handle(&req, &dir, &events);
            assert_eq!(res.status, 200, "{}", String::from_utf8_lossy(&res.body));
            let v: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
            let groups = v["groups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["name"].as_str().unwrap().to_string())
                .collect();
            (name, groups)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn served_nested_membership_is_the_flows_effective_membership(
        before in snapshot_strategy(),
        after in snapshot_strategy(),
        excluded in prop::collection::btree_set(0..GROUPS, 0..3),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&dir.path().join("idsync.db")).await.unwrap();
            let mut r = Runtime::new(store, Arc::new(SystemClock));
            let source = Arc::new(MemorySource(Mutex::new(before)));
            r.sources.insert(
                "hr".into(),
                SourceEntry {
                    name: "hr".into(),
                    directory: "hr".into(),
                    interval: None,
                    source: source.clone(),
                },
            );
            let flat = Arc::new(TestTarget::new());
            r.targets.insert("app".into(), TargetEntry::new("app", flat.clone(), 0.0));
            let mut served = TargetEntry::new("dc", Arc::new(ServedTarget::new("dc")), 0.0);
            served.served = true;
            r.targets.insert("dc".into(), served);
            r.flows.insert("hr-to-app".into(), flow("hr-to-app", "app", false, &excluded));
            r.flows.insert("hr-to-dc".into(), flow("hr-to-dc", "dc", true, &excluded));
            for round in 0..2 {
                if round == 1 {
                    *source.0.lock().unwrap() = after.clone();
                }
                let snapshot = source.0.lock().unwrap().clone();
                for f in ["hr-to-app", "hr-to-dc"] {
                    let report = r.sync(f, Mode::Full, false, &NoProgress).await.unwrap();
                    assert_eq!(report.count("failed"), 0, "{f}: {:?}", report.counts);
                }
                let want = flat_groups(&flat);
                let got = served_groups(&r.store).await;
                assert_eq!(got, want, "round {round}");
                // And it is served nested: every edge of the source between two groups the
                // rules keep is a child group (rules that only leave groups out never give a
                // child members its parent lacks).
                let key = |g: &str| {
                    if excluded.is_empty() {
                        g.to_string()
                    } else {
                        format!("name:group{}", &g[1..])
                    }
                };
                let kept = |g: &str| !excluded.iter().any(|e| g == format!("g{e}"));
                let ledger = r.store.load_ledger("hr-to-dc").await.unwrap();
                for m in &snapshot.memberships {
                    if m.member.kind == MemberKind::Group
                        && m.member.id != m.group
                        && kept(&m.group)
                        && kept(&m.member.id)
                    {
                        assert!(
                            ledger
                                .child_groups
                                .get(&key(&m.group))
                                .is_some_and(|c| c.contains(&key(&m.member.id))),
                            "round {round}: {} in {} not served nested: {:?}",
                            m.member.id,
                            m.group,
                            ledger.child_groups
                        );
                    }
                }
            }
        });
    }
}
