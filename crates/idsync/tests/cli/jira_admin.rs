//! The Jira target's admin-side settings through the binary, against `idsync sim jira`:
//! licence seats (creations over the seats left are held for approval, decision 0039) and the
//! lead fallback a user deletion needs, and default groups for every user.

use super::jira::{edit_csv, jira_sim, sync, without, write_jira_config, Jira, TOKEN};
use super::{idsync, text, write_people_csv};
use serde_json::json;
use std::path::Path;
use std::process::Output;

fn run_jira(dir: &Path, args: &[&str]) -> Output {
    idsync()
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("IDSYNC_TEST_JIRA_TOKEN", TOKEN)
        .output()
        .unwrap()
}

/// The run id a `sync` or `approve` printed first.
fn run_id(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("run ")?.split(':').next())
        .unwrap()
        .to_string()
}

fn software_role(jira: &Jira) -> serde_json::Value {
    jira.get("applicationrole")
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "jira-software")
        .unwrap()
        .clone()
}

#[test]
fn jira_licence_seats_hold_the_creations_over_the_limit_until_approved() {
    let dir = tempfile::tempdir().unwrap();
    // Four Jira Software seats; the administrator takes one.
    let (_sim, root) = jira_sim(dir.path(), &["--seats", "4"]);
    let jira = Jira::new(dir.path(), &root);
    write_people_csv(dir.path(), 6);
    write_jira_config(dir.path(), &root, "");

    let plan = sync(dir.path(), &["plan", "hr-to-jira"]);
    assert!(
        plan.contains("note: Jira Software: 3 of 4 licence seats left; this plan creates 6 active users, who take one each"),
        "the plan says how many seats are left: {plan}"
    );
    assert!(
        plan.contains("6 users to create but Jira Software has 3 of 4 licence seats left: the 3 over the limit (and their memberships) are held"),
        "{plan}"
    );

    // The sync creates three and holds three, with their memberships.
    let o = run_jira(dir.path(), &["sync", "hr-to-jira"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains("3 users were not created (no licence seats left for them)"),
        "{}",
        text(&o)
    );
    let first = run_id(&o);
    assert_eq!(jira.users().len(), 4, "{:?}", jira.users());
    let role = software_role(&jira);
    assert_eq!(role["userCount"], 4, "{role}");
    assert_eq!(role["remainingSeats"], 0, "{role}");
    assert_eq!(
        jira.members("everyone").len(),
        3,
        "memberships of the created users only"
    );
    let log = text(&run_jira(dir.path(), &["log", &first]));
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("create_user") && l.contains("held"))
            .count(),
        3,
        "{log}"
    );
    assert!(log.contains("over the target's licence seats"), "{log}");
    let runs = text(&run_jira(dir.path(), &["runs", "--flow", "hr-to-jira"]));
    assert!(runs.contains("held (waiting)"), "{runs}");

    // Reject: nothing is created; the next run judges again and holds again.
    let o = run_jira(dir.path(), &["reject", &first]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(jira.users().len(), 4);
    let o = run_jira(dir.path(), &["sync", "hr-to-jira"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let second = run_id(&o);
    assert!(
        text(&o).contains("3 users to create but Jira Software has 0 of 4 licence seats left"),
        "{}",
        text(&o)
    );
    assert_eq!(jira.users().len(), 4);

    // Approve (the admin has bought seats, or accepts the overage): the three are created
    // and join their groups.
    let o = run_jira(dir.path(), &["approve", &second]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("created 3 users"), "{}", text(&o));
    assert_eq!(jira.users().len(), 7, "{:?}", jira.users());
    assert_eq!(jira.members("everyone").len(), 6);
    assert_eq!(jira.members("engineering").len(), 2);
    let runs = text(&run_jira(dir.path(), &["runs", "--flow", "hr-to-jira"]));
    assert!(runs.contains("held (approved)"), "{runs}");
    assert!(runs.contains("held (rejected)"), "{runs}");
    assert!(sync(dir.path(), &["plan", "hr-to-jira"]).contains("nothing to do"));
}

/// Add `line` to the Jira target's table.
fn target_setting(dir: &Path, line: &str) {
    let path = dir.join("idsync.toml");
    let toml = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        toml.replace(
            "\n[flows.hr-to-jira]",
            &format!("{line}\n\n[flows.hr-to-jira]"),
        ),
    )
    .unwrap();
}

#[test]
fn jira_deleting_a_project_lead_names_the_projects_or_hands_them_to_the_lead_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = jira_sim(dir.path(), &[]);
    let jira = Jira::new(dir.path(), &root);
    write_people_csv(dir.path(), 3);
    write_jira_config(dir.path(), &root, "deprovision = \"delete\"");
    assert!(sync(dir.path(), &["sync", "hr-to-jira"]).contains("succeeded"));
    // By hand in Jira: user1 leads project ABC and a component of project OPS.
    for (body, path) in [
        (
            json!({"key": "ABC", "name": "Alpha", "lead": "user1@example.com", "projectTypeKey": "software"}),
            "project",
        ),
        (
            json!({"key": "OPS", "name": "Operations", "lead": "admin", "projectTypeKey": "software"}),
            "project",
        ),
        (
            json!({"project": "OPS", "name": "Backend", "leadUserName": "user1@example.com"}),
            "component",
        ),
    ] {
        let (s, v) = jira.send(reqwest::Method::POST, path, Some(body));
        assert_eq!(s, 201, "{v}");
    }

    // user1 leaves the source: without a fallback Jira refuses, and the log says why.
    edit_csv(dir.path(), |csv| without(&csv, "id-000001"));
    let o = run_jira(dir.path(), &["sync", "hr-to-jira"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let failed = run_id(&o);
    assert!(jira.user("user1@example.com").is_some(), "still there");
    let log = text(&run_jira(dir.path(), &["log", &failed]));
    assert!(
        log.contains("Jira refuses to delete user1@example.com: it leads the projects ABC; set lead_fallback on the target"),
        "{log}"
    );

    // With a fallback: ABC and the component go to the admin, then user1 is deleted.
    target_setting(dir.path(), "lead_fallback = \"admin\"");
    let out = sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(jira.user("user1@example.com").is_none(), "deleted");
    assert_eq!(jira.get("project/ABC")["lead"]["name"], "admin");
    let components = jira.get("project/OPS/components");
    assert_eq!(components[0]["lead"]["name"], "admin", "{components}");
    assert!(sync(dir.path(), &["plan", "hr-to-jira"]).contains("nothing to do"));
}

#[test]
fn jira_lead_fallback_must_name_someone() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 1);
    write_jira_config(dir.path(), "https://jira.example.com", "");
    target_setting(dir.path(), "lead_fallback = \" \"");
    let o = run_jira(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("targets.jira.lead_fallback") && text(&o).contains("must not be empty"),
        "{}",
        text(&o)
    );
}

#[test]
fn jira_default_groups_for_every_user_keep_the_groups_users_have() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = jira_sim(dir.path(), &[]);
    let jira = Jira::new(dir.path(), &root);
    write_people_csv(dir.path(), 3);
    write_jira_config(dir.path(), &root, "");
    target_setting(
        dir.path(),
        "default_groups = [\"staff\"]\ndefault_groups_for = \"all\"",
    );
    // Already in Jira: user0, without application access, in a group made by hand.
    let (s, v) = jira.send(
        reqwest::Method::POST,
        "user",
        Some(json!({"name": "user0@example.com", "emailAddress": "user0@example.com", "displayName": "Legacy", "applicationKeys": []})),
    );
    assert_eq!(s, 201, "{v}");
    for (path, body) in [
        ("group", json!({"name": "legacy"})),
        (
            "group/user?groupname=legacy",
            json!({"name": "user0@example.com"}),
        ),
    ] {
        let (s, v) = jira.send(reqwest::Method::POST, path, Some(body));
        assert_eq!(s, 201, "{v}");
    }

    let out = sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(out.contains("succeeded"), "{out}");
    for i in 0..3 {
        assert!(
            jira.groups_of(&format!("user{i}@example.com"))
                .contains(&"staff".to_string()),
            "user{i} is in the default group"
        );
    }
    assert!(
        jira.groups_of("user0@example.com")
            .contains(&"legacy".to_string()),
        "the adopted user keeps the group it had"
    );

    // Taken out of it by hand: a reconcile puts it back; the administrator, whom the flow
    // does not provision, is left alone.
    let (s, _) = jira.send(
        reqwest::Method::DELETE,
        "group/user?groupname=staff&username=user1@example.com",
        None,
    );
    assert_eq!(s, 200);
    let (s, _) = jira.send(
        reqwest::Method::POST,
        "group/user?groupname=staff",
        Some(json!({"name": "admin"})),
    );
    assert_eq!(s, 201);
    let out = sync(dir.path(), &["sync", "hr-to-jira", "--full"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(jira
        .groups_of("user1@example.com")
        .contains(&"staff".to_string()));
    assert!(jira.members("staff").contains(&"admin".to_string()));
    assert!(jira
        .groups_of("user0@example.com")
        .contains(&"legacy".to_string()));
}

#[test]
fn jira_disabling_a_project_or_component_lead_names_them_or_hands_them_to_the_lead_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = jira_sim(dir.path(), &[]);
    let jira = Jira::new(dir.path(), &root);
    write_people_csv(dir.path(), 4);
    // The default deprovision: disable (Jira 9: "active": false).
    write_jira_config(dir.path(), &root, "");
    assert!(sync(dir.path(), &["sync", "hr-to-jira"]).contains("succeeded"));
    // By hand in Jira: user1 leads project ABC; user2 leads a component of project OPS.
    for (body, path) in [
        (
            json!({"key": "ABC", "name": "Alpha", "lead": "user1@example.com", "projectTypeKey": "software"}),
            "project",
        ),
        (
            json!({"key": "OPS", "name": "Operations", "lead": "admin", "projectTypeKey": "software"}),
            "project",
        ),
        (
            json!({"project": "OPS", "name": "Backend", "leadUserName": "user2@example.com"}),
            "component",
        ),
    ] {
        let (s, v) = jira.send(reqwest::Method::POST, path, Some(body));
        assert_eq!(s, 201, "{v}");
    }

    // Both leave the source: Jira refuses to deactivate a project or a component lead, and
    // the log names what each leads and the setting to use.
    edit_csv(dir.path(), |csv| {
        without(&without(&csv, "id-000001"), "id-000002")
    });
    let o = run_jira(dir.path(), &["sync", "hr-to-jira"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let failed = run_id(&o);
    for name in ["user1@example.com", "user2@example.com"] {
        assert_eq!(
            jira.user(name).unwrap()["active"],
            true,
            "{name} stays active"
        );
    }
    let log = text(&run_jira(dir.path(), &["log", &failed]));
    assert!(
        log.contains("Jira refuses to deactivate user1@example.com: it leads the projects ABC; set lead_fallback on the target"),
        "{log}"
    );
    assert!(
        log.contains("Jira refuses to deactivate user2@example.com: it leads components of the projects OPS (Backend); set lead_fallback on the target"),
        "{log}"
    );

    // With a fallback: the project and the component go to the admin, then both are
    // deactivated.
    target_setting(dir.path(), "lead_fallback = \"admin\"");
    let out = sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(out.contains("succeeded"), "{out}");
    for name in ["user1@example.com", "user2@example.com"] {
        assert_eq!(
            jira.user(name).unwrap()["active"],
            false,
            "{name} deactivated"
        );
    }
    assert_eq!(jira.get("project/ABC")["lead"]["name"], "admin");
    let components = jira.get("project/OPS/components");
    assert_eq!(components[0]["lead"]["name"], "admin", "{components}");
    assert!(sync(dir.path(), &["plan", "hr-to-jira"]).contains("nothing to do"));
}
