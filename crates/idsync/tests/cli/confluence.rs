//! The Confluence Data Center target through the binary, against `idsync sim confluence`
//! (HTTPS, its CA in `ca_file`, a personal access token): full sync, change, membership change,
//! disable and return, delete, reconcile after hand edits, adoption of existing users by
//! username; on Confluence 8.3, disabling by the access groups; on 9, a display-name change
//! refused with the reason.

use super::{idsync, text, write_people_csv, Server};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;

const TOKEN: &str = "sim-confluence-pat";

/// `idsync sim confluence --https` started from the binary: the server and its base URL.
fn confluence_sim(dir: &Path, extra: &[&str]) -> (Server, String) {
    let mut child = idsync()
        .args(["sim", "confluence", "--https", "--cert-dir"])
        .arg(dir.join("sim"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child, None);
    let mut root = String::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.split(" simulator on ").nth(1) {
            root = rest.split_whitespace().next().unwrap().to_string();
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    assert!(root.starts_with("https://127.0.0.1:"), "{root}");
    (server, root)
}

fn write_confluence_config(dir: &Path, root: &str, flow_extra: &str) {
    std::fs::write(
        dir.join("idsync.toml"),
        format!(
            "[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.wiki]\ntype = \"confluence\"\nurl = \"{root}\"\ntoken = \"${{env:IDSYNC_TEST_CONFLUENCE_TOKEN}}\"\nca_file = \"{}\"\n\n[flows.hr-to-wiki]\nsource = \"hr\"\ntarget = \"wiki\"\n{flow_extra}\n",
            dir.join("sim/ca.pem").display()
        ),
    )
    .unwrap();
}

struct Confluence {
    root: String,
    http: reqwest::blocking::Client,
}

impl Confluence {
    fn new(dir: &Path, root: &str) -> Confluence {
        let ca = std::fs::read(dir.join("sim/ca.pem")).unwrap();
        let http = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        Confluence {
            root: root.to_string(),
            http,
        }
    }
    fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.root))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    fn get(&self, path: &str) -> Value {
        let (s, v) = self.send(reqwest::Method::GET, path, None);
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }
    fn user(&self, name: &str) -> Option<Value> {
        let (s, v) = self.send(
            reqwest::Method::GET,
            &format!("/rest/api/user?username={name}&expand=status"),
            None,
        );
        (s == 200).then_some(v)
    }
    fn rpc(&self, method: &str, params: Value) -> Value {
        let (s, v) = self.send(
            reqwest::Method::POST,
            "/rpc/json-rpc/confluenceservice-v2",
            Some(json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})),
        );
        assert_eq!(s, 200, "{v}");
        v
    }
    fn email(&self, name: &str) -> String {
        self.rpc("getUser", json!([name]))["result"]["email"]
            .as_str()
            .unwrap()
            .to_string()
    }
    fn users(&self) -> Vec<String> {
        self.get("/rest/api/user/list?limit=200")["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect()
    }
    fn members(&self, group: &str) -> Vec<String> {
        let mut m: Vec<String> = self.get(&format!("/rest/api/group/{group}/member?limit=200"))
            ["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_string())
            .collect();
        m.sort();
        m
    }
}

fn sync(dir: &Path, args: &[&str]) -> String {
    let o = idsync()
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("IDSYNC_TEST_CONFLUENCE_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn edit_csv(dir: &Path, f: impl FnOnce(String) -> String) {
    let path = dir.join("users.csv");
    let csv = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, f(csv)).unwrap();
}

fn without(csv: &str, id: &str) -> String {
    csv.lines()
        .filter(|l| !l.starts_with(id))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn confluence_life_cycle_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = confluence_sim(dir.path(), &["--version", "8.9.0"]);
    let wiki = Confluence::new(dir.path(), &root);
    write_people_csv(dir.path(), 6);
    write_confluence_config(dir.path(), &root, "");
    let o = idsync()
        .arg("--config")
        .arg(dir.path().join("idsync.toml"))
        .args(["config", "check"])
        .env("IDSYNC_TEST_CONFLUENCE_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Full sync: 6 users (with the admin, 7), 2 groups, nested groups flattened.
    let out = sync(dir.path(), &["sync", "hr-to-wiki"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(wiki.users().len(), 7, "{:?}", wiki.users());
    let u1 = wiki.user("user1@example.com").unwrap();
    assert_eq!(u1["displayName"], "User Number 1");
    assert_eq!(wiki.email("user1@example.com"), "user1@example.com");
    assert_eq!(wiki.members("everyone").len(), 6);
    assert_eq!(wiki.members("engineering").len(), 2);
    assert!(sync(dir.path(), &["sync", "hr-to-wiki"]).contains("(0 planned"));

    // A change (the display name, through JSON-RPC editUser) and a membership change.
    edit_csv(dir.path(), |csv| {
        csv.replace("User,Number 1,", "Ada,Number 1,").replace(
            "id-000002,user2@example.com,User,Number 2,user2@example.com,Dept 2,g-all",
            "id-000002,user2@example.com,User,Number 2,user2@example.com,Dept 2,g-eng",
        )
    });
    let out = sync(dir.path(), &["sync", "hr-to-wiki"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(
        wiki.user("user1@example.com").unwrap()["displayName"],
        "Ada Number 1"
    );
    assert!(wiki
        .members("engineering")
        .contains(&"user2@example.com".to_string()));

    // Disable: user5 leaves the source; Confluence 8.9 has the admin user API.
    let before5 = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    edit_csv(dir.path(), |csv| without(&csv, "id-000005"));
    let plan = sync(dir.path(), &["plan", "hr-to-wiki"]);
    assert!(
        plan.contains("note: Confluence 8.9.0: users are disabled with the admin user API"),
        "the plan says how: {plan}"
    );
    sync(dir.path(), &["sync", "hr-to-wiki"]);
    assert_eq!(
        wiki.user("user5@example.com").unwrap()["status"],
        "Deactivated"
    );
    assert!(!wiki
        .members("everyone")
        .contains(&"user5@example.com".to_string()));

    // And return: active again, back in its group.
    std::fs::write(dir.path().join("users.csv"), &before5).unwrap();
    let out = sync(dir.path(), &["sync", "hr-to-wiki"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(wiki.user("user5@example.com").unwrap()["status"], "Active");
    assert!(wiki
        .members("everyone")
        .contains(&"user5@example.com".to_string()));

    // Delete, where the flow says so (a long task in Confluence).
    write_confluence_config(dir.path(), &root, "deprovision = \"delete\"");
    edit_csv(dir.path(), |csv| without(&csv, "id-000004"));
    let out = sync(dir.path(), &["sync", "hr-to-wiki"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(wiki.user("user4@example.com").is_none(), "deleted");

    // By hand in Confluence: a display name and email changed, a user deleted, a membership
    // removed. A plain sync trusts the ledger; a reconcile (--full) repairs all three.
    let r = wiki.rpc(
        "editUser",
        json!([{"name": "user1@example.com", "fullname": "Edited by hand", "email": "hand@example.org"}]),
    );
    assert_eq!(r["result"], true, "{r}");
    let (s, v) = wiki.send(
        reqwest::Method::DELETE,
        "/rest/api/admin/user/user3@example.com",
        None,
    );
    assert_eq!(s, 202, "{v}");
    let (s, _) = wiki.send(
        reqwest::Method::DELETE,
        "/rest/api/user/user2@example.com/group/engineering",
        None,
    );
    assert_eq!(s, 204);
    assert!(sync(dir.path(), &["sync", "hr-to-wiki"]).contains("(0 planned"));
    let out = sync(dir.path(), &["sync", "hr-to-wiki", "--full"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(
        wiki.user("user1@example.com").unwrap()["displayName"],
        "Ada Number 1"
    );
    assert_eq!(wiki.email("user1@example.com"), "user1@example.com");
    assert!(
        wiki.user("user3@example.com").is_some(),
        "the deleted user was created again"
    );
    assert!(wiki
        .members("engineering")
        .contains(&"user2@example.com".to_string()));
    let again = sync(dir.path(), &["plan", "hr-to-wiki", "--full"]);
    assert!(
        again.contains("nothing to do"),
        "a second reconcile finds nothing: {again}"
    );
}

#[test]
fn confluence_adopts_existing_users_by_username() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = confluence_sim(dir.path(), &[]);
    let wiki = Confluence::new(dir.path(), &root);
    write_people_csv(dir.path(), 3);
    write_confluence_config(dir.path(), &root, "");
    // Already in Confluence before idsync: user0, under its username in another case.
    let (s, v) = wiki.send(
        reqwest::Method::POST,
        "/rest/api/admin/user",
        Some(json!({"userName": "USER0@example.com", "fullName": "User Number 0", "email": "user0@example.com", "password": "p", "notifyViaEmail": false})),
    );
    assert_eq!(s, 200, "{v}");
    let key = v["userKey"].as_str().unwrap().to_string();
    let out = sync(dir.path(), &["sync", "hr-to-wiki"]);
    assert!(out.contains("succeeded"), "{out}");
    let users = wiki.users();
    assert_eq!(users.len(), 4, "admin + 3, nothing duplicated: {users:?}");
    assert_eq!(
        wiki.user("user0@example.com").unwrap()["userKey"],
        key.as_str(),
        "the existing account, matched by username (any case)"
    );
    let runs: Value = serde_json::from_str(&sync(dir.path(), &["runs", "--json"])).unwrap();
    let run = runs[0]["id"].as_str().unwrap().to_string();
    let log = sync(dir.path(), &["log", &run]);
    assert!(
        log.contains("by userName \"user0@example.com\""),
        "the log says how it was matched: {log}"
    );
    let plan = sync(dir.path(), &["plan", "hr-to-wiki", "--full"]);
    assert!(plan.contains("nothing to do"), "{plan}");
    // Confluence 9.2 keeps the emails it cannot show: not said to drop them.
    assert!(!plan.contains("does not keep emails"), "{plan}");
}

#[test]
fn confluence_8_3_disable_removes_the_access_groups_and_return_restores_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = confluence_sim(dir.path(), &["--version", "8.3.4"]);
    let wiki = Confluence::new(dir.path(), &root);
    write_people_csv(dir.path(), 3);
    write_confluence_config(dir.path(), &root, "");
    sync(dir.path(), &["sync", "hr-to-wiki"]);
    assert!(wiki
        .members("confluence-users")
        .contains(&"user2@example.com".to_string()));
    let before = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    edit_csv(dir.path(), |csv| without(&csv, "id-000002"));
    let plan = sync(dir.path(), &["plan", "hr-to-wiki"]);
    assert!(
        plan.contains("note: Confluence 8.3.4 (it has no deactivation call before 8.4): disabling removes the user's access groups (confluence-users)"),
        "the plan says how: {plan}"
    );
    let out = sync(dir.path(), &["sync", "hr-to-wiki"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(
        wiki.user("user2@example.com").unwrap()["status"],
        "Active",
        "Confluence 8.3 cannot deactivate"
    );
    assert!(!wiki
        .members("confluence-users")
        .contains(&"user2@example.com".to_string()));
    assert_eq!(
        wiki.members("idsync-access-removed-confluence-users"),
        vec!["user2@example.com"],
        "recorded"
    );
    assert!(sync(dir.path(), &["plan", "hr-to-wiki", "--full"]).contains("nothing to do"));
    std::fs::write(dir.path().join("users.csv"), before).unwrap();
    let out = sync(dir.path(), &["sync", "hr-to-wiki"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(wiki
        .members("confluence-users")
        .contains(&"user2@example.com".to_string()));
    assert!(wiki
        .members("idsync-access-removed-confluence-users")
        .is_empty());
}

#[test]
fn confluence_9_refuses_a_display_name_change_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = confluence_sim(dir.path(), &[]);
    write_people_csv(dir.path(), 2);
    write_confluence_config(dir.path(), &root, "");
    sync(dir.path(), &["sync", "hr-to-wiki"]);
    edit_csv(dir.path(), |csv| {
        csv.replace("User,Number 1,", "Ada,Number 1,")
    });
    let o = idsync()
        .arg("--config")
        .arg(dir.path().join("idsync.toml"))
        .args(["sync", "hr-to-wiki"])
        .env("RUST_LOG", "warn")
        .env("IDSYNC_TEST_CONFLUENCE_TOKEN", TOKEN)
        .output()
        .unwrap();
    let all = text(&o);
    assert!(all.contains("1 failed"), "{all}");
    let runs: Value = serde_json::from_str(&sync(dir.path(), &["runs", "--json"])).unwrap();
    let run = runs[0]["id"].as_str().unwrap().to_string();
    let log = sync(dir.path(), &["log", &run]);
    assert!(
        log.contains("Confluence 9.2.3 has no call to change a user's display name or email"),
        "{log}"
    );
}

#[test]
fn confluence_target_config_errors_name_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 1);
    std::fs::write(
        dir.path().join("idsync.toml"),
        r#"[sources.hr]
type = "file"
format = "csv"
users = "users.csv"

[targets.a]
type = "confluence"
url = "wiki.example.com"
token = "t"
user = "bob"
deactivation = "sometimes"
access_groups = []

[targets.b]
type = "confluence"
url = "https://wiki.example.com"
user = "bob"
colour = "blue"

[flows.f]
source = "hr"
target = "a"
"#,
    )
    .unwrap();
    let o = super::run(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for (line, key) in [
        (":8:", "targets.a.url"),
        (":9:", "targets.a.token"),
        (":11:", "targets.a.deactivation"),
        (":12:", "targets.a.access_groups"),
        (":18:", "targets.b.colour"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(line) && l.contains(key)),
            "{key} at {line}: {err}"
        );
    }
    assert!(err.contains("targets.b.password"), "{err}");
}

#[test]
fn confluence_rate_limiter_and_429s_slow_the_sync_but_fail_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A bucket of 10 requests refilled with 10 every second.
    let (_sim, root) = confluence_sim(
        dir.path(),
        &[
            "--rate-max",
            "10",
            "--rate-fill",
            "10",
            "--rate-interval",
            "1",
        ],
    );
    let wiki = Confluence::new(dir.path(), &root);
    // And the first two user creations answered 429 with Retry-After: 1.
    let r = wiki
        .http
        .post(format!("{root}/_sim/faults"))
        .json(&json!({"fail_next": 2, "fail_match": "POST /rest/api/admin/user?", "error_status": 429, "retry_after_secs": 1}))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    write_people_csv(dir.path(), 4);
    write_confluence_config(dir.path(), &root, "");
    let out = sync(dir.path(), &["sync", "hr-to-wiki"]);
    assert!(
        out.contains("succeeded") && out.contains(" 0 failed"),
        "{out}"
    );
    assert_eq!(wiki.users().len(), 5, "{:?}", wiki.users());
    assert_eq!(wiki.members("everyone").len(), 4);
    let stats: Value = wiki
        .http
        .get(format!("{root}/_sim/stats"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(stats["throttled"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["requests"].as_u64().unwrap() > 10, "{stats}");
}

fn stats_writes(wiki: &Confluence) -> u64 {
    let stats: Value = wiki
        .http
        .get(format!("{}/_sim/stats", wiki.root))
        .send()
        .unwrap()
        .json()
        .unwrap();
    stats["writes"].as_u64().unwrap()
}

/// The emails Confluence's list of active users shows (10.2 and later), by username.
fn listed_emails(wiki: &Confluence) -> std::collections::BTreeMap<String, String> {
    wiki.get("/rest/api/admin/users/list/active?limit=200")["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["username"].as_str().unwrap().to_string(),
                u["email"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn confluence_10_changes_display_name_and_email_and_reconcile_repairs_a_hand_edited_email() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = confluence_sim(dir.path(), &["--version", "10.2.0"]);
    let wiki = Confluence::new(dir.path(), &root);
    write_people_csv(dir.path(), 3);
    write_confluence_config(dir.path(), &root, "");
    let out = sync(dir.path(), &["sync", "hr-to-wiki"]);
    assert!(out.contains("succeeded"), "{out}");

    // A display name and an email change in the source: PUT /rest/api/admin/user/{username}.
    edit_csv(dir.path(), |csv| {
        csv.replace(
            "id-000001,user1@example.com,User,Number 1,user1@example.com,",
            "id-000001,user1@example.com,Ada,Number 1,ada@example.org,",
        )
    });
    let out = sync(dir.path(), &["sync", "hr-to-wiki"]);
    assert!(
        out.contains("succeeded") && out.contains(" 0 failed"),
        "{out}"
    );
    assert_eq!(
        wiki.user("user1@example.com").unwrap()["displayName"],
        "Ada Number 1"
    );
    assert_eq!(listed_emails(&wiki)["user1@example.com"], "ada@example.org");
    assert!(sync(dir.path(), &["plan", "hr-to-wiki", "--full"]).contains("nothing to do"));

    // By hand in Confluence: the email. A plain sync trusts the ledger; a reconcile sees the
    // email in the list of active users and puts it back.
    let (s, v) = wiki.send(
        reqwest::Method::PUT,
        "/rest/api/admin/user/user1@example.com",
        Some(json!({"email": "hand@example.net"})),
    );
    assert_eq!(s, 204, "{v}");
    assert!(sync(dir.path(), &["sync", "hr-to-wiki"]).contains("(0 planned"));
    let out = sync(dir.path(), &["sync", "hr-to-wiki", "--full"]);
    assert!(
        out.contains("succeeded") && out.contains(" 0 failed"),
        "{out}"
    );
    assert_eq!(listed_emails(&wiki)["user1@example.com"], "ada@example.org");
    let again = sync(dir.path(), &["plan", "hr-to-wiki", "--full"]);
    assert!(again.contains("nothing to do"), "{again}");
}

#[test]
fn confluence_9_3_tries_the_update_call_once_per_run_and_refuses_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = confluence_sim(dir.path(), &["--version", "9.3.1"]);
    let wiki = Confluence::new(dir.path(), &root);
    write_people_csv(dir.path(), 3);
    write_confluence_config(dir.path(), &root, "");
    sync(dir.path(), &["sync", "hr-to-wiki"]);
    edit_csv(dir.path(), |csv| {
        csv.replace("User,Number 1,", "Ada,Number 1,")
            .replace("User,Number 2,", "Bea,Number 2,")
    });
    let before = stats_writes(&wiki);
    let o = idsync()
        .arg("--config")
        .arg(dir.path().join("idsync.toml"))
        .args(["sync", "hr-to-wiki"])
        .env("RUST_LOG", "warn")
        .env("IDSYNC_TEST_CONFLUENCE_TOKEN", TOKEN)
        .output()
        .unwrap();
    let all = text(&o);
    assert!(all.contains("2 failed"), "{all}");
    assert_eq!(
        all.matches("Confluence has no call to change a user's display name or email: such changes are refused for this run").count(),
        1,
        "the run's log says it once: {all}"
    );
    assert_eq!(
        stats_writes(&wiki) - before,
        1,
        "one PUT finds the call missing; the other user is refused without one"
    );
    let runs: Value = serde_json::from_str(&sync(dir.path(), &["runs", "--json"])).unwrap();
    let run = runs[0]["id"].as_str().unwrap().to_string();
    let log = sync(dir.path(), &["log", &run]);
    assert_eq!(
        log.matches("Confluence 9.3.1 has no call to change a user's display name or email")
            .count(),
        2,
        "{log}"
    );
    assert!(log.contains("answered 405"), "{log}");
}

#[test]
fn confluence_8_3_reconcile_sees_a_user_in_no_group() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = confluence_sim(dir.path(), &["--version", "8.3.4"]);
    let wiki = Confluence::new(dir.path(), &root);
    write_people_csv(dir.path(), 3);
    write_confluence_config(dir.path(), &root, "");
    sync(dir.path(), &["sync", "hr-to-wiki"]);
    // By hand: user1 leaves every group it was in.
    for g in ["everyone", "confluence-users"] {
        let (s, _) = wiki.send(
            reqwest::Method::DELETE,
            &format!("/rest/api/user/user1@example.com/group/{g}"),
            None,
        );
        assert_eq!(s, 204);
    }
    // The reconcile reads it all the same (the CQL user search): it puts the membership back
    // and creates nobody.
    let plan = sync(dir.path(), &["plan", "hr-to-wiki", "--full"]);
    assert!(!plan.contains("create"), "{plan}");
    let out = sync(dir.path(), &["sync", "hr-to-wiki", "--full"]);
    assert!(
        out.contains("succeeded") && out.contains(" 0 failed"),
        "{out}"
    );
    assert!(wiki
        .members("everyone")
        .contains(&"user1@example.com".to_string()));
    assert!(sync(dir.path(), &["plan", "hr-to-wiki", "--full"]).contains("nothing to do"));
}
