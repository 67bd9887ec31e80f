//! The basics through the binary: config check errors, plan, sync, runs and log, held
//! deprovisions, mappings, scoping, group rules, exit codes.

use super::*;

#[test]
fn config_check_reports_every_error_with_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("idsync.toml"),
        r#"[store]
path = "x.db"
colour = "blue"

[targets.app]
type = "test"
journal = "t.jsonl"

[flows.f]
source = "nowhere"
target = "app"
deprovision = "shred"
"#,
    )
    .unwrap();
    let o = run(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(":3:") && err.contains("store.colour"), "{err}");
    assert!(
        err.contains(":10:") && err.contains("flows.f.source"),
        "{err}"
    );
    assert!(
        err.contains(":12:") && err.contains("flows.f.deprovision"),
        "{err}"
    );

    write_people_csv(dir.path(), 3);
    write_config(dir.path(), "");
    let o = run(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn plan_sync_runs_and_log_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 30);
    write_config(dir.path(), "");

    let o = run(dir.path(), &["plan", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("create user user7@example.com: new in the source"),
        "{out}"
    );
    assert!(out.contains("30 create_user"), "{out}");

    let o = run(dir.path(), &["plan", "hr-to-app", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["operations"].as_array().unwrap().len(), 30 + 2 + 2);

    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("succeeded (34 planned, 34 applied, 0 failed)"),
        "{out}"
    );
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    assert_eq!(target.user_count(), 30);

    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(0 planned"),
        "{}",
        text(&o)
    );

    // A change in the file, seen in the plan with its reason, then applied.
    let csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    std::fs::write(
        dir.path().join("users.csv"),
        csv.replace("Number 5,", "Fifth,"),
    )
    .unwrap();
    let o = run(dir.path(), &["plan", "hr-to-app"]);
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("update user user5@example.com (name): changed in the source: name"),
        "{}",
        text(&o)
    );
    assert_eq!(
        run(dir.path(), &["sync", "hr-to-app"]).status.code(),
        Some(0)
    );

    let o = run(dir.path(), &["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let first = runs[2]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["counts"]["update_user.applied"], 1);

    let o = run(dir.path(), &["log", &first]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().filter(|l| l.contains("create_user")).count(),
        30,
        "{out}"
    );

    let o = run(dir.path(), &["log", "no-such-run"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(dir.path(), &["sync", "no-such-flow"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn held_deprovisions_are_approved_or_rejected_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 30);
    write_config(dir.path(), "deletion_threshold = 2");
    assert_eq!(
        run(dir.path(), &["sync", "hr-to-app"]).status.code(),
        Some(0)
    );
    // Five users leave the file: above the threshold of 2.
    write_people_csv(dir.path(), 25);
    let held_id = |o: &Output| {
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("run ")?.split(':').next())
            .unwrap()
            .to_string();
        (out, id)
    };
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let (out, first) = held_id(&o);
    assert!(out.contains("held (0 planned"), "{out}");
    assert!(out.contains("5 users were not deprovisioned"), "{out}");
    assert!(
        out.contains("above the flow's deletion threshold (2 users)"),
        "{out}"
    );
    let target = || TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    let active = |t: &TestTarget| t.state().users.iter().filter(|u| u.user.active).count();
    assert_eq!(active(&target()), 30);
    let o = run(dir.path(), &["runs", "--flow", "hr-to-app"]);
    assert!(text(&o).contains("held (waiting)"), "{}", text(&o));
    let o = run(dir.path(), &["log", &first]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("disable_user") && l.contains("held"))
            .count(),
        5,
        "{}",
        text(&o)
    );

    // Reject: nobody is disabled; the next sync holds again.
    let o = run(dir.path(), &["reject", &first]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("rejected"), "{}", text(&o));
    assert_eq!(active(&target()), 30);
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let (_, second) = held_id(&o);
    let o = run(dir.path(), &["approve", &first]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("not waiting for approval: it was rejected"),
        "{}",
        text(&o)
    );

    // Approve: the five are disabled.
    let o = run(dir.path(), &["approve", &second]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("deprovisioned 5 users"), "{}", text(&o));
    assert_eq!(active(&target()), 25);
    let o = run(dir.path(), &["runs", "--flow", "hr-to-app"]);
    assert!(text(&o).contains("held (approved)"), "{}", text(&o));
    assert!(text(&o).contains("held (rejected)"), "{}", text(&o));

    // The same through the admin API of the running service.
    write_people_csv(dir.path(), 20);
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let (_, third) = held_id(&o);
    let port = free_port();
    let _server = serve(dir.path(), port, &[]);
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let http = reqwest::blocking::Client::new();
    let r = http
        .post(format!("{base}/runs/{third}/approve"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["counts"]["disable_user.applied"], 5, "{v}");
    assert_eq!(active(&target()), 20);
    let r = http
        .post(format!("{base}/runs/{third}/reject"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 409, "an answered hold cannot be answered again");
}

#[test]
fn attribute_mappings_shape_what_the_target_gets() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 6);
    // A broken expression is a config error naming the flow, the attribute, line and column.
    write_config(
        dir.path(),
        "[flows.hr-to-app.mapping]\ndisplayName = 'Join(\" \", [surname], [givenName]'\n",
    );
    let o = run(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(
            "flows.hr-to-app.mapping.displayName: at column 1: the call of Join is not closed"
        ),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("idsync.toml:19:15:"), "{}", text(&o));

    write_config(
        dir.path(),
        r#"[flows.hr-to-app.mapping]
displayName = 'Join(", ", [surname], [givenName])'
title = 'Switch([department], "Staff", "Dept 1", "Engineer", "Dept 2", "Manager")'
nickName = { expression = 'ToLower(Join(".", [givenName], Replace([surname], " ", , , "", , )))', apply = "on_create" }
"#,
    );
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let user = |name: &str| {
        TestTarget::read_journal(&dir.path().join("target.jsonl"))
            .unwrap()
            .state()
            .users
            .into_iter()
            .find(|u| u.user.user_name == name)
            .unwrap()
            .user
    };
    let u1 = user("user1@example.com");
    assert_eq!(u1.display_name.as_deref(), Some("Number 1, User"));
    assert_eq!(u1.title.as_deref(), Some("Engineer"));
    assert_eq!(u1.nick_name.as_deref(), Some("user.number1"));
    assert_eq!(user("user3@example.com").title.as_deref(), Some("Staff"));

    // A change in the source: mapped-always attributes follow, on-create ones stay.
    let csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    std::fs::write(
        dir.path().join("users.csv"),
        csv.replace("Number 1,", "Uno,"),
    )
    .unwrap();
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert!(text(&o).contains("1 applied"), "{}", text(&o));
    let u1 = user("user1@example.com");
    assert_eq!(u1.display_name.as_deref(), Some("Uno, User"));
    assert_eq!(u1.nick_name.as_deref(), Some("user.number1"));
}

#[test]
fn scoping_provision_on_demand_and_plan_explain() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 12);
    write_config(
        dir.path(),
        r#"[[flows.hr-to-app.scope]]
clauses = [{ attribute = "department", operator = "in", values = ["Dept 1", "Dept 2"] }]
"#,
    );
    let target = || TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();

    // One user, now, with every step said.
    let o = run(
        dir.path(),
        &["provision", "hr-to-app", "--user", "USER1@example.com"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains(r#"scope:     in scope: scoping group 1 holds: department is one of ["Dept 1", "Dept 2"]"#), "{out}");
    assert!(out.contains("mapping:   none"), "{out}");
    assert!(out.contains("target:    not provisioned yet"), "{out}");
    assert!(
        out.contains("operation: create_user user1@example.com: new in the source -> applied"),
        "{out}"
    );
    assert!(out.contains("operation: add_members everyone"), "{out}");
    assert_eq!(target().user_count(), 1, "only that user");
    let o = run(
        dir.path(),
        &["provision", "hr-to-app", "--user", "user1@example.com"],
    );
    assert!(text(&o).contains("target:    known as "), "{}", text(&o));
    assert!(text(&o).contains("operations: none"), "{}", text(&o));
    let o = run(
        dir.path(),
        &["provision", "hr-to-app", "--user", "user3@example.com"],
    );
    assert!(text(&o).contains(r#"scope:     OUT OF SCOPE: out of scope: group 1: not department is one of ["Dept 1", "Dept 2"] (it is "Dept 3")"#), "{}", text(&o));
    assert_eq!(target().user_count(), 1);
    let o = run(
        dir.path(),
        &["provision", "hr-to-app", "--user", "nobody@example.com"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("no user \"nobody@example.com\""),
        "{}",
        text(&o)
    );

    // The flow: only users in scope (departments 1 and 2: users 1, 2, 8, 9).
    assert_eq!(
        run(dir.path(), &["sync", "hr-to-app"]).status.code(),
        Some(0)
    );
    assert_eq!(target().user_count(), 4);

    // Leaving scope, and a change, explained.
    let csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    let csv = csv
        .replace("user1@example.com,Dept 1", "user1@example.com,Dept 5")
        .replace("Number 2,", "Deux,");
    std::fs::write(dir.path().join("users.csv"), csv).unwrap();
    let o = run(dir.path(), &["plan", "hr-to-app", "--explain"]);
    let out = text(&o);
    assert!(out.contains(r#"disable user user1@example.com: left the flow's scope (out of scope: group 1: not department is one of ["Dept 1", "Dept 2"] (it is "Dept 5"))"#), "{out}");
    assert!(out.contains(r#"active: true -> false"#), "{out}");
    assert!(out.contains(r#"name: {"familyName":"Number 2","givenName":"User"} -> {"familyName":"Deux","givenName":"User"}"#), "{out}");
    assert!(out.contains("users: id-000001"), "{out}");
}

#[test]
fn group_rules_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 9);
    write_config(
        dir.path(),
        r#"[flows.hr-to-app.groups]
mode = "manual"
map = { "everyone" = ["all-staff", "jira-users"] }
default_groups = ["confluence-users"]
rename = [{ pattern = "(", replacement = "x" }]
"#,
    );
    let o = run(dir.path(), &["config", "check"]);
    assert!(
        text(&o).contains("flows.hr-to-app.groups.rename[0]: \"(\" is not a regular expression"),
        "{}",
        text(&o)
    );
    write_config(
        dir.path(),
        r#"[flows.hr-to-app.groups]
mode = "manual"
map = { "everyone" = ["all-staff", "jira-users"] }
default_groups = ["confluence-users"]
unmatched = "ignore"
"#,
    );
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let state = TestTarget::read_journal(&dir.path().join("target.jsonl"))
        .unwrap()
        .state();
    let mut groups: Vec<(String, usize)> = state
        .groups
        .iter()
        .map(|g| (g.group.display_name.clone(), g.members.len()))
        .collect();
    groups.sort();
    // "everyone" holds engineering (nested): all 9 users; "engineering" is not mapped: ignored.
    assert_eq!(
        groups,
        [
            ("all-staff".to_string(), 9),
            ("confluence-users".to_string(), 9),
            ("jira-users".to_string(), 9)
        ]
    );
}

#[test]
fn rejected_operations_give_exit_code_3_and_a_log() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 5);
    write_config(dir.path(), "");
    with_test_target_keys(dir.path(), "reject_user_names = [\"^user3@\"]");
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("idsync log "));
}

#[test]
fn missing_source_file_is_exit_code_4() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "");
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("users.csv"), "{}", text(&o));
}
