//! Logins through the binary (issue 19, items 3 and 4): `idsync login`, the config keys of
//! login sources and of `inactive_after`, and a plan that deprovisions users without a recent
//! login, with the reason.

use super::*;

const DAY: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn config_check_names_the_login_and_inactivity_keys_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("idsync.toml"),
        r#"[store]
path = "x.db"

[sources.web]
type = "login"
interval = "5m"
graph = "hr"
colour = "blue"

[sources.hr]
type = "file"
path = "people.json"
login_wait = "5s"

[targets.app]
type = "test"
journal = "t.jsonl"

[flows.f]
source = "web"
target = "app"
inactive_after = "36h"

[flows.g]
source = "web"
target = "app"
inactive_exempt = ["admins"]
"#,
    )
    .unwrap();
    let o = run(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for (line, key) in [
        (":6:", "sources.web.interval"),
        (":7:", "sources.web.graph"),
        (":8:", "sources.web.colour"),
        (":13:", "sources.hr.login_wait"),
        (":22:", "flows.f.inactive_after"),
        (":27:", "flows.g.inactive_exempt"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(line) && l.contains(key)),
            "{key} at {line}: {err}"
        );
    }
    assert!(err.contains("no msgraph source named \"hr\""), "{err}");
}

#[test]
fn a_plan_deprovisions_users_without_a_login_for_n_days_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 6);
    write_config(
        dir.path(),
        "inactive_after = \"90d\"\ninactive_exempt = [\"engineering\"]",
    );
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Introducing the setting disables nobody.
    let o = run(dir.path(), &["plan", "hr-to-app"]);
    assert!(!text(&o).contains("disable user"), "{}", text(&o));

    // user1 last logged in 97 days ago; user3 (engineering: exempt) 200 days ago.
    let last = now_ms() - 97 * DAY - 3_600_000;
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = idsync_store::Store::open(&dir.path().join("idsync.db"))
            .await
            .unwrap();
        store
            .record_login("hr", "hr", "id-000001", &[], last)
            .await
            .unwrap();
        store
            .record_login("hr", "hr", "id-000003", &[], now_ms() - 200 * DAY)
            .await
            .unwrap();
        store.close().await;
    });
    let o = run(dir.path(), &["plan", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let want = format!(
        "disable user user1@example.com: no login for 97 days; last login {}",
        idsync_core::inactivity::date(last)
    );
    assert!(out.contains(&want), "{want}\n{out}");
    assert!(!out.contains("user3@example.com"), "{out}");
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    let active = |name: &str| {
        target
            .state()
            .users
            .iter()
            .find(|u| u.user.user_name == name)
            .unwrap()
            .user
            .active
    };
    assert!(!active("user1@example.com"));
    assert!(active("user3@example.com") && active("user2@example.com"));
}

fn write_login_config(dir: &Path) {
    std::fs::write(
        dir.join("idsync.toml"),
        r#"[store]
path = "idsync.db"

[sources.web]
type = "login"
login_wait = "20s"

[targets.app]
type = "test"
journal = "target.jsonl"

[flows.web-to-app]
source = "web"
target = "app"
inactive_after = "30d"

[[flows.web-to-app.scope]]
clauses = [{ attribute = "department", operator = "equals", value = "R&D" }]

[flows.web-to-app.groups]
names = { "9f1c0c2e" = "Partners" }
"#,
    )
    .unwrap();
}

#[test]
fn idsync_login_creates_provisions_names_groups_and_refuses_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    write_login_config(dir.path());
    let o = run(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::write(
        dir.path().join("ann.json"),
        r#"{"attributes": {"userName": "ann@example.com", "displayName": "Ann", "department": "R&D"}, "groups": ["9f1c0c2e"]}"#,
    )
    .unwrap();
    let o = run(
        dir.path(),
        &[
            "login",
            "--source",
            "web",
            "--subject",
            "oid-ann",
            "--claims",
            &dir.path().join("ann.json").to_string_lossy(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("ann@example.com (source id oid-ann, new: created just in time)"),
        "{out}"
    );
    assert!(out.contains("login:   allowed"), "{out}");
    assert!(
        out.contains("flow web-to-app -> app: groups Partners; run "),
        "{out}"
    );
    assert!(out.contains(" succeeded"), "{out}");
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    let s = target.state();
    let ann = s
        .users
        .iter()
        .find(|u| u.user.user_name == "ann@example.com")
        .unwrap();
    assert!(ann.user.active);
    let partners = s
        .groups
        .iter()
        .find(|g| g.group.display_name == "Partners")
        .unwrap();
    assert!(partners.members.contains(&ann.target_id));

    // Out of the flow's scope: refused, with why, nothing created.
    std::fs::write(
        dir.path().join("bob.json"),
        r#"{"attributes": {"userName": "bob@example.com", "department": "Sales"}}"#,
    )
    .unwrap();
    let o = run(
        dir.path(),
        &[
            "login",
            "--source",
            "web",
            "--subject",
            "oid-bob",
            "--claims",
            &dir.path().join("bob.json").to_string_lossy(),
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["allowed"], false, "{v}");
    assert!(v["refused"].as_str().unwrap().contains("department"), "{v}");
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    assert_eq!(target.state().users.len(), 1);

    // A bad claims file is named, and nothing happens.
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"attributes": {}, "grups": []}"#,
    )
    .unwrap();
    let o = run(
        dir.path(),
        &[
            "login",
            "--source",
            "web",
            "--subject",
            "oid-cy",
            "--claims",
            &dir.path().join("bad.json").to_string_lossy(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("unknown key \"grups\""), "{}", text(&o));
    // The login is in the audit log.
    let o = run(dir.path(), &["audit"]);
    assert!(text(&o).contains("user.login"), "{}", text(&o));
}
