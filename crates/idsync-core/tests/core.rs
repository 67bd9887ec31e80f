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

mod mappings {
    use idsync_core::mapping::{
        apply_mapping, eval, expr, Apply, EvalError, Mapping, MappingError, Value,
    };
    use idsync_core::*;

    fn ada() -> User {
        let mut u = User::new("obj-1", "ada.lovelace@contoso.com");
        u.display_name = Some("Ada Lovelace".into());
        u.name.given_name = Some("Ada".into());
        u.name.family_name = Some("Lovelace".into());
        u.department = Some("Analytical Engines".into());
        u.emails = vec![Email {
            value: "ada@contoso.com".into(),
            kind: Some("work".into()),
            primary: true,
            display: None,
        }];
        u.custom.insert(
            "extension_abc_costCenter".into(),
            AttrValue::String("CC-42".into()),
        );
        u.custom.insert(
            "proxyAddresses".into(),
            AttrValue::Multi(vec![
                AttrValue::String("smtp:a@contoso.com".into()),
                AttrValue::String("SMTP:ada@contoso.com".into()),
            ]),
        );
        u
    }

    struct Cx {
        user: User,
        taken: Vec<String>,
    }
    impl eval::Context for Cx {
        fn attribute(&self, name: &str) -> Value {
            mapping::get(&self.user, name)
        }
        fn is_free(&mut self, value: &str) -> bool {
            !self.taken.iter().any(|t| t == value)
        }
    }

    fn run_on(u: User, text: &str) -> Result<Value, EvalError> {
        let e = expr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        eval::check(&e, true).unwrap_or_else(|e| panic!("{text}: {e}"));
        eval::eval(
            &e,
            &mut Cx {
                user: u,
                taken: vec!["ada".into(), "alovelace".into()],
            },
        )
    }

    fn s(text: &str) -> String {
        match run_on(ada(), text) {
            Ok(Value::Str(s)) => s,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn every_function_with_its_edge_cases() {
        // Join / Append, with nulls skipped and multi-valued attributes flattened.
        assert_eq!(s(r#"Join(" ", [givenName], [surname])"#), "Ada Lovelace");
        assert_eq!(
            s(r#"Join(", ", [givenName], [nickName], [surname])"#),
            "Ada, Lovelace"
        );
        assert_eq!(
            s(r#"Join(";", [proxyAddresses])"#),
            "smtp:a@contoso.com;SMTP:ada@contoso.com"
        );
        assert_eq!(
            s(r#"Append([givenName], "@example.org")"#),
            "Ada@example.org"
        );
        assert_eq!(s(r#"AppendString([nickName], "x")"#), "x");
        // Switch and IIF, with comparisons and Entra's string booleans.
        assert_eq!(
            s(r#"Switch([department], "Other", "Sales", "S", "Analytical Engines", "AE")"#),
            "AE"
        );
        assert_eq!(s(r#"Switch([title], "none", "CEO", "C")"#), "none");
        assert_eq!(
            s(r#"Switch([accountEnabled], "x", "True", "enabled", "False", "disabled")"#),
            "enabled"
        );
        assert_eq!(s(r#"IIF([givenName]="Ada", "yes", "no")"#), "yes");
        assert_eq!(s(r#"IIF([givenName]<>"Ada", "yes", "no")"#), "no");
        assert_eq!(
            s(r#"IIF(IsPresent([title]), [title], "no title")"#),
            "no title"
        );
        assert_eq!(
            s(r#"IIF(Not(IsNullOrEmpty([department])), "has", "none")"#),
            "has"
        );
        assert!(
            run_on(ada(), r#"IIF([givenName], "a", "b")"#).is_err(),
            "a condition must be true or false"
        );
        // Coalesce.
        assert_eq!(
            s(r#"Coalesce([title], [nickName], [department], "x")"#),
            "Analytical Engines"
        );
        assert_eq!(
            run_on(ada(), "Coalesce([title], [nickName])").unwrap(),
            Value::Null
        );
        // Case, Left, Mid (Entra counts from 1), StripSpaces.
        assert_eq!(
            s("ToLower([userPrincipalName])"),
            "ada.lovelace@contoso.com"
        );
        assert_eq!(s(r#"ToUpper([surname], "en-US")"#), "LOVELACE");
        assert_eq!(s(r#"ToUpper("straße")"#), "STRASSE");
        assert_eq!(s("Left([givenName], 1)"), "A");
        assert_eq!(s("Left([givenName], 10)"), "Ada");
        assert_eq!(s("Mid([surname], 2, 3)"), "ove");
        assert_eq!(s("Mid([surname], 7, 10)"), "ce");
        assert_eq!(run_on(ada(), "Left([title], 2)").unwrap(), Value::Null);
        assert_eq!(s("StripSpaces([department])"), "AnalyticalEngines");
        // NormalizeDiacritics: accents and the letters NFD leaves alone.
        assert_eq!(
            s(r#"NormalizeDiacritics("Zoë Ærøskøbing Łódź Straße Ñandú")"#),
            "Zoe AEroskobing Lodz Strasse Nandu"
        );
        // Split gives a multi-valued result, Join takes it back.
        assert_eq!(
            run_on(ada(), r#"Split("a,b,,c", ",")"#).unwrap(),
            Value::List(vec!["a".into(), "b".into(), "".into(), "c".into()])
        );
        assert_eq!(s(r#"Join("-", Split("a,b,,c", ","))"#), "a-b-c");
        // Replace: literal, regex, and a named group (Entra's example strips the mail domain).
        assert_eq!(
            s(r#"Replace([userPrincipalName], "@contoso.com", , , "@fabrikam.com", , )"#),
            "ada.lovelace@fabrikam.com"
        );
        assert_eq!(
            s(r#"Replace([department], , "[aeiou]", , "_", , )"#),
            "An_lyt_c_l Eng_n_s"
        );
        assert_eq!(
            s(r#"Replace([mail], , "(?<Suffix>@(.)*)", "Suffix", "", , )"#),
            "ada"
        );
        assert_eq!(
            s(r#"Replace("a$b", , "\$", , "$1", , )"#),
            "a$1b",
            "the replacement is literal"
        );
        // FormatDateTime with .NET formats (AD's generalized time to ISO).
        assert_eq!(
            s(r#"FormatDateTime("20261125143005.0Z", , "yyyyMMddHHmmss.fZ", "yyyy-MM-dd")"#),
            "2026-11-25"
        );
        assert_eq!(
            s(
                r#"FormatDateTime("25/11/2026 09:05", "dd/MM/yyyy HH:mm", "yyyy-MM-dd'T'HH:mm:ss'Z'")"#
            ),
            "2026-11-25T09:05:00Z"
        );
        assert!(run_on(
            ada(),
            r#"FormatDateTime("2026-13-01", , "yyyy-MM-dd", "yyyy")"#
        )
        .is_err());
        assert!(run_on(
            ada(),
            r#"FormatDateTime("yesterday", , "yyyy-MM-dd", "yyyy")"#
        )
        .is_err());
        // SelectUniqueValue tries candidates in order.
        assert_eq!(
            s(
                r#"SelectUniqueValue(ToLower([givenName]), ToLower(Join("", Left([givenName], 1), [surname])), ToLower(Join(".", [givenName], [surname])))"#
            ),
            "ada.lovelace"
        );
        assert_eq!(
            run_on(ada(), r#"SelectUniqueValue(ToLower([givenName]))"#),
            Err(EvalError::NoUniqueValue(1))
        );
        // Attributes by Graph or SCIM name, extension attributes by their source name.
        assert_eq!(s("[extension_abc_costCenter]"), "CC-42");
        assert_eq!(s("[name.familyName]"), "Lovelace");
        assert_eq!(s(r#"[emails[type eq "work"].value]"#), "ada@contoso.com");
        assert_eq!(
            run_on(ada(), "[IsSoftDeleted]").unwrap(),
            Value::Bool(false)
        );
        assert_eq!(run_on(ada(), "[noSuchAttribute]").unwrap(), Value::Null);
        // Empty and unicode inputs.
        let mut empty = User::new("obj-2", "");
        empty.display_name = Some(String::new());
        assert_eq!(
            run_on(empty.clone(), r#"Join(" ", [givenName], [surname])"#).unwrap(),
            Value::Str(String::new())
        );
        assert_eq!(
            run_on(empty, r#"Coalesce([displayName], "fallback")"#).unwrap(),
            Value::Str("fallback".into())
        );
        assert_eq!(s(r#"Left("日本語テキスト", 3)"#), "日本語");
    }

    #[test]
    fn errors_name_the_attribute_and_the_position() {
        let rules = |pairs: &[(&str, &str)]| -> Vec<(String, String, Apply)> {
            pairs
                .iter()
                .map(|(a, e)| (a.to_string(), e.to_string(), Apply::Always))
                .collect()
        };
        let errs = Mapping::compile(&rules(&[
            ("displayName", r#"Join(" ", [givenName], [surname]"#),
            ("title", r#"Frobnicate([jobTitle])"#),
            ("department", r#"Left([department])"#),
            ("nickName", r#"Replace([x], , "(", , "y", , )"#),
            ("userName", r#"ToLower(SelectUniqueValue([a], [b]))"#),
            ("shoeSize", "[x]"),
            ("externalId", r#""unclosed"#),
        ]))
        .unwrap_err();
        let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(errs.len(), 7, "{text:?}");
        assert!(
            text[0].starts_with("displayName: at column 1: the call of Join is not closed"),
            "{}",
            text[0]
        );
        assert!(
            text[1].starts_with("title: at column 1: unknown function Frobnicate"),
            "{}",
            text[1]
        );
        assert!(
            text[2].contains("Left takes 2 arguments, not 1"),
            "{}",
            text[2]
        );
        assert!(
            text[3].contains("is not a regular expression"),
            "{}",
            text[3]
        );
        assert!(
            text[4].contains("at column 9: SelectUniqueValue must be the whole expression"),
            "{}",
            text[4]
        );
        assert!(matches!(&errs[5], MappingError::UnknownTarget(t) if t == "shoeSize"));
        assert!(text[6].contains("a string is not closed"), "{}", text[6]);
        // No input panics or nests without end.
        assert!(expr::parse(&"f(".repeat(10_000)).is_err());
        for junk in [
            "",
            "(",
            "[",
            "\"",
            ",",
            "f(,",
            "[a]=",
            "IIF([a]=[b]=[c], 1, 2)",
            "-",
            "1.2.3",
        ] {
            let _ = expr::parse(junk);
        }
    }

    #[test]
    fn a_flow_mapping_applies_on_create_only_attributes_once() {
        let mapping = Mapping::compile(&[
            (
                "displayName".to_string(),
                r#"Join(" ", [surname], [givenName])"#.to_string(),
                Apply::Always,
            ),
            (
                "userName".to_string(),
                r#"SelectUniqueValue(ToLower(Join(".", [givenName], [surname])), ToLower(Join(".", [givenName], [surname], "2")))"#.to_string(),
                Apply::OnCreate,
            ),
            (
                "urn:ietf:params:scim:schemas:extension:acme:2.0:User:costCenterCode".to_string(),
                "[extension_abc_costCenter]".to_string(),
                Apply::Always,
            ),
        ])
        .unwrap();
        let mut twin = ada();
        twin.source_id = "obj-9".into();
        let snapshot = Snapshot {
            users: vec![ada(), twin],
            groups: vec![],
            memberships: vec![],
        };
        let mut desired = desired_state(&snapshot);
        let failed = apply_mapping(
            &mut desired,
            &LedgerState::default(),
            &mapping,
            &Default::default(),
        );
        assert!(failed.is_empty(), "{failed:?}");
        let a = &desired.users["obj-1"];
        assert_eq!(a.display_name.as_deref(), Some("Lovelace Ada"));
        assert_eq!(a.user_name, "ada.lovelace");
        // Two Ada Lovelaces: the second candidate is taken by the second one.
        assert_eq!(desired.users["obj-9"].user_name, "ada.lovelace.2");
        assert_eq!(
            a.custom
                .get("urn:ietf:params:scim:schemas:extension:acme:2.0:User:costCenterCode"),
            Some(&AttrValue::String("CC-42".into()))
        );
        // Once created, an on-create attribute keeps what the target got, while the others follow.
        let mut ledger = LedgerState::default();
        for (k, u) in &desired.users {
            ledger
                .users
                .insert(k.clone(), LedgerUser::new(format!("t-{k}"), u.clone()));
        }
        let mut renamed = ada();
        renamed.name.family_name = Some("King".into());
        let mut desired = desired_state(&Snapshot {
            users: vec![renamed],
            groups: vec![],
            memberships: vec![],
        });
        apply_mapping(&mut desired, &ledger, &mapping, &Default::default());
        assert_eq!(desired.users["obj-1"].user_name, "ada.lovelace");
        assert_eq!(
            desired.users["obj-1"].display_name.as_deref(),
            Some("King Ada")
        );
    }

    #[test]
    fn a_user_that_cannot_be_mapped_is_left_as_the_target_has_it() {
        let mapping = Mapping::compile(&[(
            "userName".to_string(),
            r#"SelectUniqueValue([givenName])"#.to_string(),
            Apply::Always,
        )])
        .unwrap();
        let mut other = ada();
        other.source_id = "obj-2".into();
        let mut ledger = LedgerState::default();
        let mut known = ada();
        known.user_name = "Ada".into();
        ledger
            .users
            .insert("obj-2".into(), LedgerUser::new("t2", known.clone()));
        let mut desired = desired_state(&Snapshot {
            users: vec![ada(), other],
            groups: vec![],
            memberships: vec![],
        });
        let failed = apply_mapping(&mut desired, &ledger, &mapping, &Default::default());
        // obj-2 holds "Ada" already; obj-1 is new and finds no free value: left out, with why.
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].key, "obj-1");
        assert!(!desired.users.contains_key("obj-1"));
        assert_eq!(desired.users["obj-2"].user_name, "Ada");
    }
}

// ------------------------------------------------------------------ scoping filters

mod scoping {
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
}

// ------------------------------------------------------------------ group rules

mod group_rules {
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
}
