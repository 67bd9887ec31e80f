//! Logins over a directory with nesting (issue 19, item 3; decision 0042): the groups a login
//! gives the user through nesting and group rules are what its run provisions, and a groups
//! claim listing nested groups too (Entra's) keeps the directory's nesting.

use super::login::{flows, in_target, login, login_runtime, store_in};
use super::*;
use serde_json::json;

/// A directory a reader filled, with nesting: ann in `platform`, in `eng`, in `staff`; bob in
/// `sales`, in `staff`; other users in `sales` or `ops` (in `staff` too).
fn nested_directory() -> Snapshot {
    let group = |m: &str, g: &str| Membership {
        group: g.into(),
        member: MemberRef::group(m),
    };
    let user = |u: &str, g: &str| Membership {
        group: g.into(),
        member: MemberRef::user(u),
    };
    let mut users = vec![
        User::new("oid-ann", "ann@example.com"),
        User::new("oid-bob", "bob@example.com"),
    ];
    let mut memberships = vec![
        user("oid-ann", "g-platform"),
        group("g-platform", "g-eng"),
        group("g-eng", "g-staff"),
        user("oid-bob", "g-sales"),
        group("g-sales", "g-staff"),
        group("g-ops", "g-staff"),
    ];
    for i in 0..20 {
        let id = format!("oid-other-{i}");
        users.push(User::new(id.clone(), format!("other{i}@example.com")));
        memberships.push(user(&id, if i % 2 == 0 { "g-sales" } else { "g-ops" }));
    }
    Snapshot {
        users,
        groups: vec![
            Group::new("g-platform", "platform"),
            Group::new("g-eng", "eng"),
            Group::new("g-staff", "staff"),
            Group::new("g-sales", "sales"),
            Group::new("g-ops", "ops"),
        ],
        memberships,
    }
}

/// The rules of the test below: `eng` mapped to two names, required `staff`, everyone in
/// `everyone`, new users (and only they) in `newcomers` when `newcomers` is set.
fn nested_rules(s: &mut FlowSpec, newcomers: bool) {
    s.groups
        .map
        .insert("eng".into(), vec!["Engineering".into(), "Builders".into()]);
    s.groups
        .required
        .push(idsync_core::scope::GroupPattern::parse("staff").unwrap());
    s.groups.default_all.push("everyone".into());
    if newcomers {
        s.groups.default_new.push("newcomers".into());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logins_groups_follow_nesting_and_group_rules_as_the_run_provisions_them() {
    let dir = tempfile::tempdir().unwrap();
    let target = Arc::new(TestTarget::new());
    let store = store_in(&dir).await;
    store
        .replace_directory("web", "web", &nested_directory(), None, 1)
        .await
        .unwrap();
    // Bob is provisioned while the flow has no `newcomers` rule.
    let rt = login_runtime(
        store,
        target.clone(),
        true,
        None,
        Duration::from_secs(10),
        |s| nested_rules(s, false),
    );
    let out = rt
        .login(login("oid-bob", json!({}), Some(&["g-sales"])))
        .await
        .unwrap();
    assert_eq!(flows(&out)[0].groups, vec!["everyone", "sales", "staff"]);
    rt.login_runs_done().await;
    drop(rt);

    // Then new users join `newcomers`; bob, already there, does not.
    let rt = login_runtime(
        store_in(&dir).await,
        target.clone(),
        true,
        None,
        Duration::from_secs(10),
        |s| nested_rules(s, true),
    );
    let out = rt
        .login(login("oid-ann", json!({}), Some(&["g-platform"])))
        .await
        .unwrap();
    let f = flows(&out);
    assert!(
        matches!(f[0].run, FlowRun::Finished { .. }),
        "{:?}",
        f[0].run
    );
    // Through platform < eng < staff: eng by its two mapped names, staff by nesting.
    assert_eq!(
        f[0].groups,
        vec![
            "Builders",
            "Engineering",
            "everyone",
            "newcomers",
            "platform",
            "staff"
        ]
    );
    // What the product receives is what the run provisioned.
    let (_, _, mut provisioned) = in_target(&target, "ann@example.com").unwrap();
    provisioned.sort_by_key(|n| n.to_lowercase());
    assert_eq!(f[0].groups, provisioned);

    let out = rt
        .login(login("oid-bob", json!({}), Some(&["g-sales"])))
        .await
        .unwrap();
    let f = flows(&out);
    assert_eq!(f[0].groups, vec!["everyone", "sales", "staff"]);
    let (_, _, mut provisioned) = in_target(&target, "bob@example.com").unwrap();
    provisioned.sort_by_key(|n| n.to_lowercase());
    assert_eq!(f[0].groups, provisioned);

    // Bob moves from sales to ops: out of sales, still in staff through ops, and sales stays
    // for its other members.
    let out = rt
        .login(login("oid-bob", json!({}), Some(&["g-ops"])))
        .await
        .unwrap();
    assert_eq!(flows(&out)[0].groups, vec!["everyone", "ops", "staff"]);
    let (_, _, provisioned) = in_target(&target, "bob@example.com").unwrap();
    assert_eq!(provisioned, vec!["everyone", "ops", "staff"]);
    assert!(target
        .state()
        .groups
        .iter()
        .any(|g| g.group.display_name == "sales"));
    rt.login_runs_done().await;

    // The login runs (planned on their users' slice) left ann and bob where a plan of the
    // whole directory wants them: it has nothing for them, only for the users never logged in.
    let whole = rt
        .run(
            "web-to-app",
            RunOptions {
                trigger: Trigger::Manual,
                mode: Mode::Full,
                dry_run: true,
            },
            false,
            &NoProgress,
        )
        .await
        .unwrap();
    let about = |k: &str| {
        whole.plan.operations.iter().any(|o| {
            o.key == k
                || matches!(&o.action, Action::AddMembers { users, .. } | Action::RemoveMembers { users, .. } if users.iter().any(|u| &**u == k))
        })
    };
    assert!(!about("oid-ann") && !about("oid-bob"), "{:#?}", whole.plan);
    assert!(about("oid-other-0"), "{:#?}", whole.plan);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_run_for_a_target_serving_nested_groups_leaves_nothing_for_a_whole_plan() {
    let dir = tempfile::tempdir().unwrap();
    let target = Arc::new(TestTarget::new());
    // A directory without groups in groups, a flow that would serve them.
    let rt = login_runtime(
        store_in(&dir).await,
        target.clone(),
        false,
        None,
        Duration::from_secs(10),
        |s| {
            s.nested_groups = true;
            s.groups.default_all.push("everyone".into());
        },
    );
    for (who, groups) in [
        ("oid-a", vec!["g1", "g2"]),
        ("oid-b", vec!["g2"]),
        ("oid-a", vec!["g2"]),
    ] {
        let out = rt
            .login(login(who, json!({}), Some(&groups)))
            .await
            .unwrap();
        let mut want: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        want.insert(0, "everyone".into());
        assert_eq!(flows(&out)[0].groups, want);
        let (_, _, provisioned) = in_target(&target, who).unwrap();
        assert_eq!(provisioned, want);
    }
    rt.login_runs_done().await;
    let whole = rt
        .run(
            "web-to-app",
            RunOptions {
                trigger: Trigger::Manual,
                mode: Mode::Full,
                dry_run: true,
            },
            false,
            &NoProgress,
        )
        .await
        .unwrap();
    assert!(whole.plan.operations.is_empty(), "{:#?}", whole.plan);
}

/// The user's direct groups in the directory, by id.
async fn direct_groups(rt: &Runtime, user: &str) -> Vec<String> {
    let mut g: Vec<String> = rt
        .store
        .member_of("web", user)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    g.sort();
    g
}

#[tokio::test(flavor = "multi_thread")]
async fn an_entra_groups_claim_with_the_nested_groups_keeps_the_directorys_nesting() {
    // Entra's `groups` claim lists every group the user is in, through nesting too: ann, in
    // platform < eng < staff, signs in with all three. Her direct membership stays platform;
    // she is not made a direct member of eng and staff.
    let dir = tempfile::tempdir().unwrap();
    let target = Arc::new(TestTarget::new());
    let store = store_in(&dir).await;
    store
        .replace_directory("web", "web", &nested_directory(), None, 1)
        .await
        .unwrap();
    let rt = login_runtime(
        store,
        target.clone(),
        true,
        None,
        Duration::from_secs(10),
        |_| {},
    );
    let all = ["g-platform", "g-eng", "g-staff"];
    let out = rt
        .login(login("oid-ann", json!({}), Some(&all)))
        .await
        .unwrap();
    assert_eq!(flows(&out)[0].groups, vec!["eng", "platform", "staff"]);
    assert_eq!(direct_groups(&rt, "oid-ann").await, vec!["g-platform"]);

    // She leaves platform for eng: the claim holds eng and staff. Her direct group becomes
    // eng (staff follows through nesting), and platform loses her.
    let out = rt
        .login(login("oid-ann", json!({}), Some(&["g-staff", "g-eng"])))
        .await
        .unwrap();
    assert_eq!(flows(&out)[0].groups, vec!["eng", "staff"]);
    assert_eq!(direct_groups(&rt, "oid-ann").await, vec!["g-eng"]);

    // A user with no group yet, whose claim lists a group and the one above it, joins the
    // lower one only; a claim of one top group makes it her only group.
    let out = rt
        .login(login(
            "oid-other-0",
            json!({}),
            Some(&["g-ops", "g-staff", "g-sales"]),
        ))
        .await
        .unwrap();
    assert_eq!(flows(&out)[0].groups, vec!["ops", "sales", "staff"]);
    assert_eq!(
        direct_groups(&rt, "oid-other-0").await,
        vec!["g-ops", "g-sales"]
    );
    rt.login(login("oid-other-0", json!({}), Some(&["g-staff"])))
        .await
        .unwrap();
    assert_eq!(direct_groups(&rt, "oid-other-0").await, vec!["g-staff"]);
    rt.login_runs_done().await;
}
