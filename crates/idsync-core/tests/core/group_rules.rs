use idsync_core::groups::{
    apply_group_rules, forget_manual_members, group_key, GroupRules, Unmatched,
};
use idsync_core::scope::GroupPattern;
use idsync_core::*;

/// An Entra-like directory: "AAD-Jira-Users", "AAD-Confluence-Users", "Sales", "Test-Team",
/// and a group known only by its id (as B2C sends them).
fn directory() -> Snapshot {
    let users: Vec<User> = (0..6)
        .map(|i| User::new(format!("u{i}"), format!("user{i}@contoso.com")))
        .collect();
    let groups = vec![
        Group::new("g-jira", "AAD-Jira-Users"),
        Group::new("g-conf", "AAD-Confluence-Users"),
        Group::new("g-sales", "Sales"),
        Group::new("g-test", "Test-Team"),
        Group::new("9f1c", "9f1c"),
    ];
    let m = |g: &str, u: usize| Membership {
        group: g.into(),
        member: MemberRef::user(format!("u{u}")),
    };
    Snapshot {
        users,
        groups,
        memberships: vec![
            m("g-jira", 0),
            m("g-jira", 1),
            m("g-conf", 1),
            m("g-conf", 2),
            m("g-sales", 3),
            m("g-test", 4),
            m("9f1c", 5),
        ],
    }
}

fn names(d: &DesiredState) -> Vec<(String, Vec<String>)> {
    d.groups
        .iter()
        .map(|(k, g)| {
            let m: Vec<String> = d
                .members
                .get(k)
                .map(|s| s.iter().map(|u| u.to_string()).collect())
                .unwrap_or_default();
            (g.display_name.clone(), m)
        })
        .collect()
}

#[test]
fn on_the_fly_with_regex_renames_filters_defaults_and_an_id_table() {
    let rules = GroupRules {
        rename: vec![(regex::Regex::new("^AAD-(.*)$").unwrap(), "$1".into())],
        exclude: vec![GroupPattern::parse("regex:^Test-").unwrap()],
        names: [("9f1c".to_string(), "Partners".to_string())].into(),
        default_all: vec!["all-staff".into()],
        ..GroupRules::default()
    };
    let mut d = desired_state(&directory());
    let out = apply_group_rules(&mut d, &LedgerState::default(), &rules);
    assert!(out.is_empty());
    assert_eq!(
        names(&d),
        vec![
            (
                "all-staff".into(),
                (0..6).map(|i| format!("u{i}")).collect()
            ),
            ("Confluence-Users".into(), vec!["u1".into(), "u2".into()]),
            ("Jira-Users".into(), vec!["u0".into(), "u1".into()]),
            ("Partners".into(), vec!["u5".into()]),
            ("Sales".into(), vec!["u3".into()]),
        ]
    );
    assert!(d.groups.contains_key(&group_key("jira-users")));
}

#[test]
fn manual_mapping_one_to_many_many_to_one_and_the_unmatched_policies() {
    let mut rules = GroupRules {
        manual: true,
        map: [
            (
                "AAD-Jira-Users".to_string(),
                vec![
                    "jira-software-users".to_string(),
                    "jira-servicedesk-users".to_string(),
                ],
            ),
            (
                "AAD-Confluence-Users".to_string(),
                vec![
                    "jira-software-users".to_string(),
                    "confluence-users".to_string(),
                ],
            ),
        ]
        .into(),
        ..GroupRules::default()
    };
    let mut d = desired_state(&directory());
    apply_group_rules(&mut d, &LedgerState::default(), &rules);
    assert_eq!(
        names(&d),
        vec![
            ("confluence-users".into(), vec!["u1".into(), "u2".into()]),
            (
                "jira-servicedesk-users".into(),
                vec!["u0".into(), "u1".into()]
            ),
            (
                "jira-software-users".into(),
                vec!["u0".into(), "u1".into(), "u2".into()]
            ),
        ],
        "unmatched groups are ignored by default in manual mode"
    );
    assert_eq!(d.users.len(), 6, "ignoring a group leaves its members in");

    rules.unmatched = Unmatched::Keep;
    let mut d = desired_state(&directory());
    apply_group_rules(&mut d, &LedgerState::default(), &rules);
    assert!(names(&d).iter().any(|(n, _)| n == "Sales"));

    rules.unmatched = Unmatched::LeaveOut;
    let mut d = desired_state(&directory());
    let out = apply_group_rules(&mut d, &LedgerState::default(), &rules);
    assert_eq!(out.keys().cloned().collect::<Vec<_>>(), ["u3", "u4", "u5"]);
    assert!(out["u3"].contains("\"Sales\""), "{out:?}");
    assert_eq!(d.users.len(), 3);

    // Clear: a member of an unmatched group gets no group at all.
    let mut dir = directory();
    dir.memberships.push(Membership {
        group: "g-sales".into(),
        member: MemberRef::user("u0"),
    });
    rules.unmatched = Unmatched::Clear;
    let mut d = desired_state(&dir);
    apply_group_rules(&mut d, &LedgerState::default(), &rules);
    assert!(!names(&d).iter().any(|(_, m)| m.contains(&"u0".to_string())));
    assert!(d.users.contains_key("u0"), "cleared, not left out");
}

#[test]
fn required_groups_default_groups_for_new_users_and_manual_members_kept() {
    let rules = GroupRules {
        required: vec![GroupPattern::parse("regex:^AAD-").unwrap()],
        default_new: vec!["welcome".into()],
        ..GroupRules::default()
    };
    let mut ledger = LedgerState::default();
    // u1 exists in the target already, without "welcome"; u0 is new.
    ledger.users.insert(
        "u1".into(),
        LedgerUser::new("t1", User::new("u1", "user1@contoso.com")),
    );
    let mut d = desired_state(&directory());
    let out = apply_group_rules(&mut d, &ledger, &rules);
    assert_eq!(out.keys().cloned().collect::<Vec<_>>(), ["u3", "u4", "u5"]);
    assert_eq!(out["u4"], "not a member of a required group");
    let welcome = d.members.get(&group_key("welcome")).unwrap();
    assert!(welcome.contains("u0") && welcome.contains("u2") && !welcome.contains("u1"));

    // Hand-made members found by a reconcile are not idsync's: the ledger forgets them,
    // so no plan removes them; what idsync made or wants stays in the ledger.
    let mut observed = LedgerState::default();
    observed.members.insert(
        group_key("welcome"),
        [Key::from("u1"), Key::from("u0"), Key::from("u9")].into(),
    );
    let mut recorded = LedgerState::default();
    recorded
        .members
        .insert(group_key("welcome"), [Key::from("u9")].into());
    forget_manual_members(&mut observed, &recorded, &d);
    let kept: Vec<String> = observed.members[&group_key("welcome")]
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(
        kept,
        ["u0", "u9"],
        "u0 is wanted, u9 idsync made; u1 was added by hand"
    );
}
