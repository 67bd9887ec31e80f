//! Jira licence seats for every grant of application access, through the binary against
//! `idsync sim jira` (decision 0039): an existing user added to a group that grants a Jira
//! application role, and a returning user enabled, take seats as a new user does; a user is
//! counted once however many groups grant it the role, and a user who holds the role takes
//! no new seat. What is over the limit is held for approval, with the seats left.

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

fn run_id(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("run ")?.split(':').next())
        .unwrap()
        .to_string()
}

fn remaining(jira: &Jira) -> i64 {
    let roles = jira.get("applicationrole");
    let role = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "jira-software")
        .unwrap()
        .clone();
    role["remainingSeats"].as_i64().unwrap()
}

fn append(dir: &Path, file: &str, lines: &str) {
    let path = dir.join(file);
    let mut csv = std::fs::read_to_string(&path).unwrap();
    csv.push_str(lines);
    std::fs::write(&path, csv).unwrap();
}

#[test]
fn jira_seats_count_existing_users_added_to_access_groups_and_returning_users() {
    let dir = tempfile::tempdir().unwrap();
    // Five Jira Software seats; the administrator takes one.
    let (_sim, root) = jira_sim(dir.path(), &["--seats", "5"]);
    let jira = Jira::new(dir.path(), &root);
    write_people_csv(dir.path(), 3);
    write_jira_config(dir.path(), &root, "");
    assert!(sync(dir.path(), &["sync", "hr-to-jira"]).contains("succeeded"));
    assert_eq!(remaining(&jira), 1);

    // By hand in Jira: user0 and user2 lose Jira Software; user1 keeps it through
    // jira-administrators only; two contractors take seats. One seat is left.
    for (method, path, body) in [
        (
            reqwest::Method::DELETE,
            "group/user?groupname=jira-software-users&username=user0@example.com",
            None,
        ),
        (
            reqwest::Method::DELETE,
            "group/user?groupname=jira-software-users&username=user2@example.com",
            None,
        ),
        (
            reqwest::Method::POST,
            "group/user?groupname=jira-administrators",
            Some(json!({"name": "user1@example.com"})),
        ),
        (
            reqwest::Method::DELETE,
            "group/user?groupname=jira-software-users&username=user1@example.com",
            None,
        ),
        (
            reqwest::Method::POST,
            "user",
            Some(
                json!({"name": "contractor1", "emailAddress": "c1@example.com", "displayName": "C1"}),
            ),
        ),
        (
            reqwest::Method::POST,
            "user",
            Some(
                json!({"name": "contractor2", "emailAddress": "c2@example.com", "displayName": "C2"}),
            ),
        ),
    ] {
        let (s, v) = jira.send(method.clone(), path, body);
        assert!(s == 200 || s == 201, "{method} {path}: {s} {v}");
    }
    assert_eq!(remaining(&jira), 1);

    // The source now gives all three Jira Software (user0 through two groups that grant it).
    append(
        dir.path(),
        "groups.csv",
        "g-sw,jira-software-users,\ng-adm,jira-administrators,\n",
    );
    append(
        dir.path(),
        "memberships.csv",
        "g-sw,id-000000,user\ng-adm,id-000000,user\ng-sw,id-000001,user\ng-sw,id-000002,user\n",
    );
    let plan = sync(dir.path(), &["plan", "hr-to-jira"]);
    assert!(
        plan.contains("note: Jira Software: 1 of 5 licence seats left; this plan adds 2 existing users to groups that grant it, who take one each"),
        "user1 holds the role already; user0 counts once: {plan}"
    );
    let o = run_jira(dir.path(), &["sync", "hr-to-jira"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains("2 existing users to add to groups that grant it but Jira Software has 1 of 5 licence seats left: the 1 over the limit (and their memberships) are held"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o)
            .contains("1 users were not given application access (no licence seats left for them)"),
        "{}",
        text(&o)
    );
    let held = run_id(&o);
    let members = jira.members("jira-software-users");
    assert!(
        members.contains(&"user0@example.com".to_string()),
        "{members:?}"
    );
    assert!(
        members.contains(&"user1@example.com".to_string()),
        "{members:?}"
    );
    assert!(
        !members.contains(&"user2@example.com".to_string()),
        "held: {members:?}"
    );
    assert_eq!(remaining(&jira), 0, "never more access than seats");
    let log = text(&run_jira(dir.path(), &["log", &held]));
    assert!(log.contains("over the target's licence seats"), "{log}");

    // Approved: user2 gets it (over the limit, the admin's call).
    let o = run_jira(dir.path(), &["approve", &held]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(jira
        .members("jira-software-users")
        .contains(&"user2@example.com".to_string()));
    assert_eq!(remaining(&jira), -1);

    // user0 leaves (disabled: its seat is freed), a contractor goes, then user0 returns:
    // one seat is needed, none is left, so the return is held.
    let users = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    let memberships = std::fs::read_to_string(dir.path().join("memberships.csv")).unwrap();
    edit_csv(dir.path(), |csv| without(&csv, "id-000000"));
    let kept: String = memberships
        .lines()
        .filter(|l| !l.contains("id-000000"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("memberships.csv"), kept).unwrap();
    assert!(sync(dir.path(), &["sync", "hr-to-jira"]).contains("succeeded"));
    assert_eq!(jira.user("user0@example.com").unwrap()["active"], false);
    assert_eq!(remaining(&jira), 0);
    std::fs::write(dir.path().join("users.csv"), &users).unwrap();
    std::fs::write(dir.path().join("memberships.csv"), &memberships).unwrap();
    let o = run_jira(dir.path(), &["sync", "hr-to-jira"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o)
            .contains("1 returning user to enable but Jira Software has 0 of 5 licence seats left"),
        "{}",
        text(&o)
    );
    assert_eq!(jira.user("user0@example.com").unwrap()["active"], false);
    assert_eq!(remaining(&jira), 0);

    // A seat is freed by hand: the next run enables user0 and ends the hold.
    let (s, v) = jira.send(reqwest::Method::DELETE, "user?username=contractor1", None);
    assert!(s == 204 || s == 200, "{s} {v}");
    let out = sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(jira.user("user0@example.com").unwrap()["active"], true);
    assert_eq!(remaining(&jira), 0);
    assert!(sync(dir.path(), &["plan", "hr-to-jira"]).contains("nothing to do"));
}
