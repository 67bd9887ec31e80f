//! Nested groups for a target that serves them (issue 17, decision 0033): the flat desired
//! state turned into direct members and child groups, the plan of group-in-group edges, and
//! the property that the nesting served is exactly the flat membership.

use idsync_core::groups::{apply_group_rules, GroupRules};
use idsync_core::nesting::{effective, flattened, nest};
use idsync_core::scope::GroupPattern;
use idsync_core::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn keys(xs: &[&str]) -> BTreeSet<Key> {
    xs.iter().map(|s| Key::from(*s)).collect()
}

fn names(xs: &[&str]) -> BTreeSet<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

fn m(g: &str, member: MemberRef) -> Membership {
    Membership {
        group: g.into(),
        member,
    }
}

/// a > b > c, each with a user of its own, and d alone.
fn three_deep() -> Snapshot {
    Snapshot {
        users: ["u1", "u2", "u3", "u4"]
            .iter()
            .map(|u| User::new(*u, *u))
            .collect(),
        groups: ["a", "b", "c", "d"]
            .iter()
            .map(|g| Group::new(*g, *g))
            .collect(),
        memberships: vec![
            m("a", MemberRef::group("b")),
            m("b", MemberRef::group("c")),
            m("a", MemberRef::user("u1")),
            m("b", MemberRef::user("u2")),
            m("c", MemberRef::user("u3")),
            m("d", MemberRef::user("u4")),
        ],
    }
}

fn apply(ledger: &mut LedgerState, plan: &Plan) {
    for op in &plan.operations {
        ledger.record(op, Some(&op.key), 0);
    }
}

#[test]
fn a_nested_flow_serves_direct_members_and_child_groups_where_a_flat_one_flattens() {
    let s = three_deep();
    let flat = desired_state(&s);
    // Every other target: flattened, no child groups.
    assert_eq!(flat.members["a"], keys(&["u1", "u2", "u3"]));
    assert!(flat.child_groups.is_empty());
    let flat_plan = plan(&flat, &LedgerState::default(), &PlanOptions::default());
    assert!(!flat_plan
        .operations
        .iter()
        .any(|o| matches!(o.action, Action::AddChildGroups { .. })));

    let mut d = flat.clone();
    let nested = nest(&mut d, &s, &GroupRules::default(), &LedgerState::default());
    assert_eq!(d.members["a"], keys(&["u1"]));
    assert_eq!(d.members["b"], keys(&["u2"]));
    assert_eq!(d.members["c"], keys(&["u3"]));
    assert_eq!(d.child_groups["a"], names(&["b"]));
    assert_eq!(d.child_groups["b"], names(&["c"]));
    assert_eq!(d.child_groups.len(), 2);
    assert_eq!(nested.edges, 2);
    assert_eq!(nested.lifted, 0);

    let p = plan(&d, &LedgerState::default(), &PlanOptions::default());
    let nests: Vec<(&str, &Vec<String>, &Reason)> = p
        .operations
        .iter()
        .filter_map(|o| match &o.action {
            Action::AddChildGroups { groups, .. } => Some((o.key.as_str(), groups, &o.reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        nests,
        vec![
            ("a", &vec!["b".to_string()], &Reason::ChildGroupsAdded),
            ("b", &vec!["c".to_string()], &Reason::ChildGroupsAdded)
        ]
    );
    // After the groups exist, with the memberships.
    assert!(p
        .operations
        .iter()
        .all(|o| !matches!(o.action, Action::AddChildGroups { .. }) || o.action.phase() == 3));
    let add_a: Vec<&Vec<Key>> = p
        .operations
        .iter()
        .filter_map(|o| match &o.action {
            Action::AddMembers { users, .. } if o.key == "a" => Some(users),
            _ => None,
        })
        .collect();
    assert_eq!(add_a, vec![&vec![Key::from("u1")]]);
    assert_eq!(
        p.operations
            .iter()
            .find(|o| matches!(o.action, Action::AddChildGroups { .. }))
            .map(Operation::describe)
            .as_deref(),
        Some("nest 1 group(s) in group a: groups nested in the source")
    );

    // Applied, the ledger serves the flat membership nested, and plans nothing more.
    let mut ledger = LedgerState::default();
    apply(&mut ledger, &p);
    assert_eq!(ledger.child_groups, d.child_groups);
    assert_eq!(flattened(&ledger).members, flat.members);
    assert!(plan(&d, &ledger, &PlanOptions::default()).is_empty());
}

#[test]
fn a_child_group_outside_the_flow_is_looked_through_and_its_users_lifted_into_the_parent() {
    let s = three_deep();
    let rules = GroupRules {
        exclude: vec![GroupPattern::parse("b").unwrap()],
        ..GroupRules::default()
    };
    let mut d = desired_state(&s);
    apply_group_rules(&mut d, &LedgerState::default(), &rules);
    let flat = d.clone();
    assert_eq!(flat.members["name:a"], keys(&["u1", "u2", "u3"]));
    let nested = nest(&mut d, &s, &rules, &LedgerState::default());
    // b is not served: c hangs under a, and b's own user is a direct member of a.
    assert_eq!(d.child_groups["name:a"], names(&["name:c"]));
    assert_eq!(d.members["name:a"], keys(&["u1", "u2"]));
    assert_eq!(d.members["name:c"], keys(&["u3"]));
    assert_eq!(nested.lifted, 1);
    assert_eq!(
        effective(&d.members, &d.child_groups)["name:a"],
        flat.members["name:a"]
    );
}

#[test]
fn cycles_are_kept_and_serve_the_flat_membership() {
    let mut s = three_deep();
    s.memberships.push(m("c", MemberRef::group("b"))); // b <-> c
    s.memberships.push(m("d", MemberRef::group("d"))); // a group in itself
    let flat = desired_state(&s);
    let mut d = flat.clone();
    let nested = nest(&mut d, &s, &GroupRules::default(), &LedgerState::default());
    assert_eq!(d.child_groups["b"], names(&["c"]));
    assert_eq!(d.child_groups["c"], names(&["b"]));
    // Never its own child.
    assert!(!d.child_groups.contains_key("d"));
    assert_eq!(d.members["b"], keys(&["u2"]));
    assert_eq!(d.members["c"], keys(&["u3"]));
    assert_eq!(nested.lifted, 0);
    let served = effective(&d.members, &d.child_groups);
    for (g, want) in &flat.members {
        assert_eq!(&served[g], want, "group {g}");
    }
}

#[test]
fn a_rule_that_gives_the_child_more_members_than_the_parent_drops_the_edge() {
    let mut s = three_deep();
    s.groups.push(Group::new("x", "x"));
    s.users.push(User::new("u5", "u5"));
    s.memberships.push(m("x", MemberRef::user("u5")));
    // b and x both feed target group B: B has u5, which a does not.
    let rules = GroupRules {
        map: [
            ("a".to_string(), vec!["A".to_string()]),
            ("b".to_string(), vec!["B".to_string()]),
            ("x".to_string(), vec!["B".to_string()]),
        ]
        .into(),
        ..GroupRules::default()
    };
    let mut d = desired_state(&s);
    apply_group_rules(&mut d, &LedgerState::default(), &rules);
    let flat = d.clone();
    let nested = nest(&mut d, &s, &rules, &LedgerState::default());
    assert_eq!(
        nested.dropped,
        vec![("name:a".to_string(), "name:b".to_string())]
    );
    // a keeps its users directly; B still holds c.
    assert!(!d.child_groups.contains_key("name:a"));
    assert_eq!(d.child_groups["name:b"], names(&["name:c"]));
    assert_eq!(d.members["name:a"], flat.members["name:a"]);
}

#[test]
fn nesting_removed_in_the_source_is_taken_out_with_its_reason() {
    let s = three_deep();
    let mut d = desired_state(&s);
    nest(&mut d, &s, &GroupRules::default(), &LedgerState::default());
    let mut ledger = LedgerState::default();
    apply(
        &mut ledger,
        &plan(&d, &LedgerState::default(), &PlanOptions::default()),
    );
    // c leaves b and becomes a direct member of d.
    let mut s2 = s.clone();
    s2.memberships.retain(|x| x.member != MemberRef::group("c"));
    s2.memberships.push(m("d", MemberRef::group("c")));
    let mut d2 = desired_state(&s2);
    nest(&mut d2, &s2, &GroupRules::default(), &flattened(&ledger));
    let p = plan(&d2, &ledger, &PlanOptions::default());
    let edges: Vec<(String, &str, String)> = p
        .operations
        .iter()
        .filter_map(|o| match &o.action {
            Action::AddChildGroups { groups, .. } => Some((o.key.clone(), "add", groups.join(","))),
            Action::RemoveChildGroups { groups, .. } => {
                Some((o.key.clone(), "remove", groups.join(",")))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        edges,
        vec![
            ("b".to_string(), "remove", "c".to_string()),
            ("d".to_string(), "add", "c".to_string())
        ]
    );
    assert!(p
        .operations
        .iter()
        .any(|o| o.reason == Reason::ChildGroupsRemoved
            && o.describe()
                == "take 1 nested group(s) out of group b: groups no longer nested in the source"));
    apply(&mut ledger, &p);
    assert!(plan(&d2, &ledger, &PlanOptions::default()).is_empty());
    // A deleted group leaves every nesting.
    let del = Operation {
        key: "c".into(),
        action: Action::DeleteGroup {
            before: Group::new("c", "c"),
        },
        reason: Reason::RemovedFromSource,
    };
    ledger.record(&del, None, 0);
    assert!(!ledger.child_groups.values().any(|s| s.contains("c")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the nesting (cycles included) and whichever groups the rules leave out, the
    /// nested membership served is the flat one for every group, and applying the plan
    /// reaches the desired state, nesting included, from any earlier one.
    #[test]
    fn the_nesting_served_is_the_flat_membership(
        before in super::snapshot_strategy(),
        after in super::snapshot_strategy(),
        excluded in prop::collection::btree_set(0usize..6, 0..3),
    ) {
        let rules = GroupRules {
            exclude: excluded
                .iter()
                .map(|g| GroupPattern::parse(&format!("regex:^Group {g}( |$)")).unwrap())
                .collect(),
            ..GroupRules::default()
        };
        let desired = |s: &Snapshot, ledger: &LedgerState| {
            let mut d = desired_state(s);
            apply_group_rules(&mut d, &flattened(ledger), &rules);
            let flat = d.clone();
            nest(&mut d, s, &rules, ledger);
            (flat, d)
        };
        let mut ledger = LedgerState::default();
        for s in [&before, &after] {
            let (flat, d) = desired(s, &ledger);
            let served = effective(&d.members, &d.child_groups);
            let empty = BTreeSet::new();
            for g in d.groups.keys() {
                prop_assert_eq!(
                    served.get(g).unwrap_or(&empty),
                    flat.members.get(g).unwrap_or(&empty),
                    "group {}", g
                );
            }
            for (p, cs) in &d.child_groups {
                prop_assert!(d.groups.contains_key(p) && !cs.contains(p));
                prop_assert!(cs.iter().all(|c| d.groups.contains_key(c)));
            }
            let p = plan(&d, &ledger, &PlanOptions::default());
            apply(&mut ledger, &p);
            // Groups the flow no longer has stay in the target as they were (group_deletion
            // keep): compared are the flow's groups.
            let ours = |m: &BTreeMap<String, BTreeSet<String>>| -> BTreeMap<String, BTreeSet<String>> {
                m.iter().filter(|(g, _)| d.groups.contains_key(*g)).map(|(g, c)| (g.clone(), c.clone())).collect()
            };
            prop_assert_eq!(ours(&ledger.child_groups), d.child_groups.clone());
            let members: BTreeMap<String, BTreeSet<Key>> = ledger
                .members
                .iter()
                .filter(|(g, _)| d.groups.contains_key(*g))
                .map(|(g, m)| (g.clone(), m.clone()))
                .collect();
            prop_assert_eq!(&members, &d.members);
            prop_assert!(plan(&d, &ledger, &PlanOptions::default()).is_empty());
        }
    }
}
