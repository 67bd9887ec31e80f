use idsync_core::scope::{apply_scope, Clause, Scope, ScopeError};
use idsync_core::*;

fn user(dept: Option<&str>, upn: &str, active: bool, level: &str) -> User {
    let mut u = User::new(upn, upn);
    u.department = dept.map(str::to_string);
    u.active = active;
    u.custom
        .insert("level".into(), AttrValue::String(level.into()));
    u
}

fn c(attr: &str, op: &str, value: Option<&str>) -> Clause {
    Clause::new(attr, op, value, None).unwrap()
}

#[test]
fn every_operator_truth_table() {
    let sales = user(Some("Sales"), "ann@contoso.com", true, "7");
    let none = user(None, "bob@fabrikam.com", false, "12");
    let cases: Vec<(Clause, bool, bool)> = vec![
        (c("department", "equals", Some("sales")), true, false),
        (c("department", "not_equals", Some("Sales")), false, true),
        (c("accountEnabled", "is_true", None), true, false),
        (c("accountEnabled", "is_false", None), false, true),
        (c("department", "is_null", None), false, true),
        (c("department", "is_not_null", None), true, false),
        (
            c("userPrincipalName", "regex_match", Some("^[a-b]nn@")),
            true,
            false,
        ),
        (
            c("userPrincipalName", "not_regex_match", Some("contoso")),
            false,
            true,
        ),
        (
            c("userPrincipalName", "ends_with", Some("@CONTOSO.com")),
            true,
            false,
        ),
        (
            c("userPrincipalName", "starts_with", Some("bob")),
            false,
            true,
        ),
        // Numbers compare as numbers: 12 > 9 although "12" < "9" as text.
        (c("level", "greater_than", Some("9")), false, true),
        (c("level", "less_than", Some("9")), true, false),
        (
            Clause::new(
                "department",
                "in",
                None,
                Some(&["HR".into(), "sales".into()]),
            )
            .unwrap(),
            true,
            false,
        ),
        (
            Clause::new("department", "not_in", None, Some(&["HR".into()])).unwrap(),
            true,
            true,
        ),
    ];
    for (clause, for_sales, for_none) in cases {
        assert_eq!(
            clause.test(&sales).0,
            for_sales,
            "{} for Sales",
            clause.describe()
        );
        assert_eq!(
            clause.test(&none).0,
            for_none,
            "{} for no department",
            clause.describe()
        );
    }
    assert_eq!(
        Clause::new("x", "resembles", Some("y"), None).unwrap_err(),
        ScopeError::UnknownOperator("resembles".into())
    );
    assert_eq!(
        Clause::new("x", "equals", None, None).unwrap_err(),
        ScopeError::MissingValue("equals".into())
    );
    assert!(matches!(
        Clause::new("x", "regex_match", Some("("), None),
        Err(ScopeError::BadRegex(..))
    ));
}

#[test]
fn and_within_a_group_or_across_groups_and_leaving_scope_deprovisions() {
    // (department = Sales AND enabled) OR (upn ends with @fabrikam.com)
    let scope = Scope {
        groups: vec![
            vec![
                c("department", "equals", Some("Sales")),
                c("accountEnabled", "is_true", None),
            ],
            vec![c("userPrincipalName", "ends_with", Some("@fabrikam.com"))],
        ],
    };
    let a = user(Some("Sales"), "a@contoso.com", true, "1");
    let b = user(Some("Sales"), "b@contoso.com", false, "1");
    let f = user(Some("HR"), "f@fabrikam.com", true, "1");
    let h = user(Some("HR"), "h@contoso.com", true, "1");
    let v = scope.verdict(&a);
    assert!(v.in_scope);
    assert_eq!(
        v.reason,
        "scoping group 1 holds: department equals \"Sales\" and accountEnabled is true"
    );
    assert!(!scope.verdict(&b).in_scope);
    assert!(scope.verdict(&f).in_scope);
    let v = scope.verdict(&h);
    assert!(!v.in_scope);
    assert_eq!(v.reason, "out of scope: group 1: not department equals \"Sales\" (it is \"HR\"); group 2: not userPrincipalName ends with \"@fabrikam.com\" (it is \"h@contoso.com\")");

    // In a flow: users out of scope leave the desired state and their groups, so the plan
    // deprovisions them by the flow's policy.
    let snapshot = Snapshot {
        users: vec![a.clone(), b.clone(), f.clone(), h.clone()],
        groups: vec![Group::new("g", "all")],
        memberships: [&a, &b, &f, &h]
            .iter()
            .map(|u| Membership {
                group: "g".into(),
                member: MemberRef::user(u.source_id.clone()),
            })
            .collect(),
    };
    let mut desired = desired_state(&snapshot);
    let out = apply_scope(&mut desired, &scope);
    assert_eq!(out.len(), 2);
    assert!(out["h@contoso.com"].starts_with("out of scope: group 1"));
    let kept: Vec<&str> = desired.users.keys().map(String::as_str).collect();
    assert_eq!(kept, ["a@contoso.com", "f@fabrikam.com"]);
    assert_eq!(desired.members["g"].len(), 2);
    let mut ledger = LedgerState::default();
    for u in &snapshot.users {
        ledger.users.insert(
            u.source_id.clone(),
            LedgerUser::new(format!("t-{}", u.source_id), u.clone()),
        );
    }
    let mut p = plan(&desired, &ledger, &PlanOptions::default());
    idsync_core::scope::explain_out_of_scope(&mut p, &out);
    assert!(p.operations.iter().any(|o| o
        .describe()
        .contains("left the flow's scope (out of scope: group 1")));
    let disabled: Vec<&str> = p
        .operations
        .iter()
        .filter(|o| o.action.is_deprovision())
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(
        disabled,
        ["h@contoso.com"],
        "b was disabled already; h leaves scope"
    );
    // No scope: everyone.
    assert!(Scope::default().verdict(&h).in_scope);
}
