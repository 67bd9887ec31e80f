//! Property tests of the diff/plan logic and of membership flattening.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use idsync_core::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

#[path = "core/keeps.rs"]
mod keeps;
#[path = "core/members.rs"]
mod members;
#[path = "core/nesting.rs"]
mod nesting;

const USERS: usize = 12;
const GROUPS: usize = 6;

fn user_strategy(i: usize) -> impl Strategy<Value = User> {
    (
        any::<bool>(),
        prop::option::of("[a-c]{1,2}"),
        prop::option::of("[A-Z][a-z]{0,3}"),
        prop::bool::weighted(0.8),
        prop::option::of(0i64..3),
    )
        .prop_map(move |(rename, dept, given, active, level)| {
            let mut u = User::new(
                format!("u{i}"),
                if rename {
                    format!("user{i}.renamed")
                } else {
                    format!("user{i}")
                },
            );
            u.department = dept;
            u.name.given_name = given;
            u.active = active;
            u.emails = vec![Email {
                value: format!("user{i}@example.com"),
                kind: Some("work".into()),
                primary: true,
                display: None,
            }];
            if let Some(l) = level {
                u.custom.insert("level".into(), AttrValue::Integer(l));
            }
            u
        })
}

fn snapshot_strategy() -> impl Strategy<Value = Snapshot> {
    let users = (0..USERS)
        .map(|i| prop::option::weighted(0.75, user_strategy(i)))
        .collect::<Vec<_>>();
    let groups = (0..GROUPS)
        .map(|i| {
            prop::option::weighted(
                0.8,
                (any::<bool>(), prop::option::of("[a-z]{0,4}")).prop_map(move |(r, d)| {
                    let mut g = Group::new(
                        format!("g{i}"),
                        if r {
                            format!("Group {i} (renamed)")
                        } else {
                            format!("Group {i}")
                        },
                    );
                    g.description = d;
                    g
                }),
            )
        })
        .collect::<Vec<_>>();
    let memberships =
        prop::collection::vec((0..GROUPS, any::<bool>(), 0..USERS.max(GROUPS)), 0..40);
    (users, groups, memberships).prop_map(|(users, groups, ms)| {
        let users: Vec<User> = users.into_iter().flatten().collect();
        let groups: Vec<Group> = groups.into_iter().flatten().collect();
        let memberships = ms
            .into_iter()
            .map(|(g, is_group, m)| Membership {
                group: format!("g{g}"),
                member: if is_group {
                    MemberRef::group(format!("g{}", m % GROUPS))
                } else {
                    MemberRef::user(format!("u{}", m % USERS))
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

fn options_strategy() -> impl Strategy<Value = PlanOptions> {
    (
        any::<bool>(),
        any::<bool>(),
        1usize..5,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(del_users, del_groups, batch, renames, recreate, members_in_create)| PlanOptions {
                deprovision: if del_users {
                    DeprovisionAction::Delete
                } else {
                    DeprovisionAction::Disable
                },
                group_deletion: if del_groups {
                    GroupDeletion::Delete
                } else {
                    GroupDeletion::Keep
                },
                member_batch: batch,
                now_ms: 0,
                reconcile: false,
                can_rename_groups: renames,
                group_rename: if recreate {
                    GroupRename::Recreate
                } else {
                    GroupRename::Keep
                },
                members_in_create,
            },
        )
}

/// Apply a plan to a ledger as a target that accepts everything would.
fn apply(ledger: &mut LedgerState, plan: &Plan) {
    for op in &plan.operations {
        let id = format!("t-{}", op.key);
        ledger.record(op, Some(&id), 0);
    }
}

fn ledger_from(desired: &DesiredState) -> LedgerState {
    let mut l = LedgerState::default();
    let p = plan(desired, &l, &PlanOptions::default());
    apply(&mut l, &p);
    l
}

/// Transitive closure by fixpoint iteration: the obviously-correct reference.
fn naive_effective(s: &Snapshot) -> BTreeMap<String, BTreeSet<Key>> {
    let users: BTreeSet<&str> = s.users.iter().map(|u| u.source_id.as_str()).collect();
    let groups: BTreeSet<&str> = s.groups.iter().map(|g| g.source_id.as_str()).collect();
    let mut eff: BTreeMap<String, BTreeSet<Key>> = groups
        .iter()
        .map(|g| (g.to_string(), BTreeSet::new()))
        .collect();
    loop {
        let mut changed = false;
        for m in &s.memberships {
            if !groups.contains(m.group.as_str()) {
                continue;
            }
            let add: BTreeSet<Key> = match m.member.kind {
                MemberKind::User if users.contains(m.member.id.as_str()) => {
                    [Key::from(m.member.id.as_str())].into()
                }
                MemberKind::Group => eff.get(&m.member.id).cloned().unwrap_or_default(),
                _ => BTreeSet::new(),
            };
            let set = eff.get_mut(&m.group).unwrap();
            for a in add {
                changed |= set.insert(a);
            }
        }
        if !changed {
            return eff;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn applying_a_plan_reaches_the_desired_state(
        before in snapshot_strategy(),
        after in snapshot_strategy(),
        opts in options_strategy(),
    ) {
        let desired = desired_state(&after);
        let mut ledger = ledger_from(&desired_state(&before));
        let old_names: BTreeMap<String, String> = ledger.groups.iter().map(|(k, g)| (k.clone(), g.group.display_name.clone())).collect();
        let p = plan(&desired, &ledger, &opts);
        apply(&mut ledger, &p);

        // Every desired object is in the ledger with the desired values and members.
        for (k, u) in &desired.users {
            prop_assert_eq!(&ledger.users[k].user, u);
        }
        for (k, g) in &desired.groups {
            // A target that cannot rename keeps the old name under the "keep" policy, and
            // says so in the plan.
            let mut want = g.clone();
            if let Some(old) = old_names.get(k).filter(|o| **o != g.display_name) {
                if !opts.can_rename_groups && opts.group_rename == GroupRename::Keep {
                    want.display_name = old.clone();
                    prop_assert!(p.warnings.iter().any(|w| w.contains(old.as_str())));
                }
            }
            prop_assert_eq!(&ledger.groups[k].group, &want);
            let empty = BTreeSet::new();
            prop_assert_eq!(ledger.members.get(k).unwrap_or(&empty), desired.members.get(k).unwrap_or(&empty));
        }
        // Users gone from the source are disabled or deleted, by policy.
        for (k, u) in &ledger.users {
            if !desired.users.contains_key(k) {
                prop_assert_eq!(opts.deprovision, DeprovisionAction::Disable);
                prop_assert!(!u.user.active);
            }
        }
        // Groups gone from the source are deleted only when the policy says so.
        for k in ledger.groups.keys() {
            if !desired.groups.contains_key(k) {
                prop_assert_eq!(opts.group_deletion, GroupDeletion::Keep);
            }
        }
        // The deprovision count is what the plan's operations say.
        prop_assert_eq!(p.deprovisions(), p.operations.iter().filter(|o| matches!(o.action, Action::DisableUser{..} | Action::DeleteUser{..})).count());
        // Batches respect the bound.
        for op in &p.operations {
            if let Action::AddMembers { users, .. } | Action::RemoveMembers { users, .. } = &op.action {
                prop_assert!(!users.is_empty() && users.len() <= opts.member_batch);
            }
        }
        // Idempotent: planning again right after applying yields nothing.
        let again = plan(&desired, &ledger, &opts);
        prop_assert!(again.is_empty(), "second plan not empty: {:?}", again.operations);
    }

    #[test]
    fn plan_of_a_state_against_itself_is_empty(s in snapshot_strategy(), opts in options_strategy()) {
        let desired = desired_state(&s);
        let ledger = ledger_from(&desired);
        prop_assert!(plan(&desired, &ledger, &opts).is_empty());
    }

    #[test]
    fn nested_memberships_flatten_like_the_fixpoint(s in snapshot_strategy()) {
        let got = effective_members(&s.groups, &s.users, &s.memberships);
        prop_assert_eq!(got, naive_effective(&s));
    }

    #[test]
    fn phases_are_ordered(before in snapshot_strategy(), after in snapshot_strategy(), opts in options_strategy()) {
        let p = plan(&desired_state(&after), &ledger_from(&desired_state(&before)), &opts);
        let phases: Vec<u8> = p.operations.iter().map(|o| o.action.phase()).collect();
        let mut sorted = phases.clone();
        sorted.sort();
        prop_assert_eq!(phases, sorted);
    }
}

#[test]
fn rename_keeps_the_object_and_reports_the_attribute() {
    let mut s = Snapshot {
        users: vec![User::new("obj-1", "ada@example.com")],
        groups: vec![Group::new("grp-1", "Engineering")],
        memberships: vec![],
    };
    let ledger = ledger_from(&desired_state(&s));
    s.users[0].user_name = "ada.lovelace@example.com".into();
    s.groups[0].display_name = "R&D".into();
    let p = plan(&desired_state(&s), &ledger, &PlanOptions::default());
    let actions: Vec<&str> = p.operations.iter().map(|o| o.action.name()).collect();
    assert_eq!(actions, vec!["update_group", "update_user"]);
    assert_eq!(
        p.operations[1].reason,
        Reason::ChangedInSource(vec!["userName".into()])
    );
    assert_eq!(
        p.operations[1].describe(),
        "update user ada.lovelace@example.com (userName): changed in the source: userName"
    );
}

#[test]
fn disabled_and_removed_users_have_their_own_reasons() {
    let mut s = Snapshot {
        users: vec![
            User::new("a", "a"),
            User::new("b", "b"),
            User::new("c", "c"),
        ],
        ..Snapshot::default()
    };
    let ledger = ledger_from(&desired_state(&s));
    s.users[0].active = false;
    s.users.remove(1);
    let p = plan(&desired_state(&s), &ledger, &PlanOptions::default());
    let got: Vec<(&str, &str, Reason)> = p
        .operations
        .iter()
        .map(|o| (o.key.as_str(), o.action.name(), o.reason.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", "disable_user", Reason::DisabledInSource),
            ("b", "disable_user", Reason::RemovedFromSource),
        ]
    );
    assert_eq!(p.deprovisions(), 2);
}

#[test]
fn reconcile_repairs_drift_seen_in_the_target() {
    let s = Snapshot {
        users: vec![User::new("a", "a"), User::new("b", "b")],
        groups: vec![Group::new("g", "G")],
        memberships: vec![
            Membership {
                group: "g".into(),
                member: MemberRef::user("a"),
            },
            Membership {
                group: "g".into(),
                member: MemberRef::user("b"),
            },
        ],
    };
    let desired = desired_state(&s);
    let ledger = ledger_from(&desired);
    // In the target, by hand: a's display name changed, b deleted, b's membership gone, and an
    // unmanaged user exists.
    let mut a = ledger.users["a"].user.clone();
    a.display_name = Some("Hand edited".into());
    let real = TargetSnapshot {
        users: vec![
            RemoteUser {
                target_id: "t-a".into(),
                user: a,
            },
            RemoteUser {
                target_id: "other".into(),
                user: User::new("x", "stranger"),
            },
        ],
        groups: vec![RemoteGroup {
            target_id: "t-g".into(),
            group: Group::new("ignored", "G"),
            members: vec!["t-a".into(), "other".into()],
        }],
    };
    let observed = observed_ledger(&ledger, &real);
    let p = plan(
        &desired,
        &observed,
        &PlanOptions {
            reconcile: true,
            ..PlanOptions::default()
        },
    );
    let got: Vec<(&str, &str, Reason)> = p
        .operations
        .iter()
        .map(|o| (o.key.as_str(), o.action.name(), o.reason.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "a",
                "update_user",
                Reason::ChangedInTarget(vec!["displayName".into()])
            ),
            ("b", "create_user", Reason::MissingInTarget),
            ("g", "add_members", Reason::MembershipsRemovedInTarget),
        ]
    );
}

#[test]
fn deletion_threshold_by_count_and_by_share() {
    let t = DeletionThreshold {
        count: Some(10),
        percent: Some(5.0),
    };
    assert!(!t.exceeded(10, 1000), "10 of 1000 is at the count and 1%");
    assert!(t.exceeded(11, 1000), "above the count");
    assert!(t.exceeded(6, 100), "6% of 100 is above 5%");
    assert!(!t.exceeded(5, 100), "exactly 5% is not above");
    assert!(!t.exceeded(3, 0), "no share of nothing");
    let off = DeletionThreshold {
        count: None,
        percent: None,
    };
    assert!(!off.exceeded(1_000_000, 10));
    assert!(DeletionThreshold::default().exceeded(501, 1_000_000));
}

#[test]
fn holding_deprovisions_keeps_held_users_in_their_groups() {
    let u = |id: &str| User::new(id, format!("{id}@example.com"));
    let op = |key: &str, action: Action| Operation {
        key: key.into(),
        action,
        reason: Reason::RemovedFromSource,
    };
    let disable = |id: &str| {
        let mut after = u(id);
        after.active = false;
        op(
            id,
            Action::DisableUser {
                before: u(id),
                after,
            },
        )
    };
    let mut p = Plan {
        notes: Vec::new(),
        operations: vec![
            op("new", Action::CreateUser { user: u("new") }),
            op(
                "g1",
                Action::RemoveMembers {
                    group: "one".into(),
                    users: vec![Key::from("a"), Key::from("b"), Key::from("c")],
                },
            ),
            op(
                "g2",
                Action::RemoveMembers {
                    group: "two".into(),
                    users: vec![Key::from("a")],
                },
            ),
            disable("a"),
            disable("b"),
        ],
        warnings: Vec::new(),
    };
    let approved: std::collections::BTreeSet<String> = ["b".to_string()].into();
    let held = p.hold_deprovisions(&approved);
    // a is held with both its group removals; b (approved) and c (still in the source, just
    // leaving group one) go ahead.
    let names = |ops: &[Operation]| -> Vec<(String, String, usize)> {
        ops.iter()
            .map(|o| {
                let n = match &o.action {
                    Action::RemoveMembers { users, .. } => users.len(),
                    _ => 1,
                };
                (o.key.clone(), o.action.name().to_string(), n)
            })
            .collect()
    };
    assert_eq!(
        names(&held),
        vec![
            ("g1".into(), "remove_members".into(), 1),
            ("g2".into(), "remove_members".into(), 1),
            ("a".into(), "disable_user".into(), 1)
        ]
    );
    assert_eq!(
        names(&p.operations),
        vec![
            ("new".into(), "create_user".into(), 1),
            ("g1".into(), "remove_members".into(), 2),
            ("b".into(), "disable_user".into(), 1)
        ]
    );
}

// ------------------------------------------------------------------ attribute mappings

#[path = "core/mappings.rs"]
mod mappings;

// ------------------------------------------------------------------ scoping filters

#[path = "core/scoping.rs"]
mod scoping;

// ------------------------------------------------------------------ group rules

#[path = "core/group_rules.rs"]
mod group_rules;
