//! A group created with its first members (issue 16, item 4): where the target takes them in
//! the create, the plan gives the create its first batch, places it after the users, and
//! leaves only the rest to `AddMembers`; recording it puts those members in the ledger.

use idsync_core::*;
use std::collections::BTreeSet;

fn desired(members: usize) -> DesiredState {
    let mut d = DesiredState::default();
    let mut set = BTreeSet::new();
    for i in 0..members {
        let key = format!("u{i}");
        d.users
            .insert(key.clone(), User::new(key.clone(), format!("user{i}")));
        set.insert(Key::from(key));
    }
    d.groups.insert("g".into(), Group::new("g", "eng"));
    d.members.insert("g".into(), set);
    d
}

#[test]
fn the_first_members_go_with_the_create_after_the_users() {
    let opts = PlanOptions {
        member_batch: 2,
        members_in_create: true,
        ..PlanOptions::default()
    };
    let p = plan(&desired(3), &LedgerState::default(), &opts);
    let names: Vec<&str> = p.operations.iter().map(|o| o.action.name()).collect();
    assert_eq!(
        names,
        [
            "create_user",
            "create_user",
            "create_user",
            "create_group",
            "add_members"
        ]
    );
    let Action::CreateGroup { members, .. } = &p.operations[3].action else {
        panic!("{:?}", p.operations[3]);
    };
    assert_eq!(members.len(), 2);
    assert!(p.operations[3]
        .describe()
        .contains("create group eng with 2 member(s)"));
    let mut ledger = LedgerState::default();
    for op in &p.operations {
        ledger.record(op, Some("t"), 0);
    }
    assert_eq!(ledger.members.get("g").map(BTreeSet::len), Some(3));
    assert!(plan(&desired(3), &ledger, &opts).is_empty());

    // Without it, as before: the group first, empty, and every member added after.
    let p = plan(
        &desired(3),
        &LedgerState::default(),
        &PlanOptions::default(),
    );
    assert_eq!(p.operations[0].action.name(), "create_group");
    assert!(
        matches!(&p.operations[0].action, Action::CreateGroup { members, .. } if members.is_empty())
    );
    assert_eq!(p.counts().get("add_members"), Some(&1));
    // A group without members is created before the users, as before.
    let p = plan(&desired(0), &LedgerState::default(), &opts);
    assert_eq!(p.operations[0].action.phase(), 0);
}
