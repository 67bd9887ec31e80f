//! The Jira Data Center target through the binary, against `idsync sim jira` (HTTPS, its CA in
//! `ca_file`, a personal access token): full sync, change, membership change, disable and
//! return, delete, reconcile after hand edits, adoption of existing users by username and by
//! email; and on Jira 8.2, disabling by application-access groups.

use super::{idsync, text, write_people_csv, Server};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;

pub(super) const TOKEN: &str = "sim-jira-pat";

/// `idsync sim jira --https` started from the binary: the server and its base URL.
pub(super) fn jira_sim(dir: &Path, extra: &[&str]) -> (Server, String) {
    let mut child = idsync()
        .args(["sim", "jira", "--https", "--cert-dir"])
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

pub(super) fn write_jira_config(dir: &Path, root: &str, flow_extra: &str) {
    std::fs::write(
        dir.join("idsync.toml"),
        format!(
            "[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.jira]\ntype = \"jira\"\nurl = \"{root}\"\ntoken = \"${{env:IDSYNC_TEST_JIRA_TOKEN}}\"\nca_file = \"{}\"\n\n[flows.hr-to-jira]\nsource = \"hr\"\ntarget = \"jira\"\n{flow_extra}\n",
            dir.join("sim/ca.pem").display()
        ),
    )
    .unwrap();
}

pub(super) struct Jira {
    pub(super) root: String,
    pub(super) http: reqwest::blocking::Client,
}

impl Jira {
    pub(super) fn new(dir: &Path, root: &str) -> Jira {
        let ca = std::fs::read(dir.join("sim/ca.pem")).unwrap();
        let http = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        Jira {
            root: root.to_string(),
            http,
        }
    }
    /// One request as an administrator's script would send it: a 429 of the simulator's
    /// rate limiter (which a test's sync may have drained) is asked again after its
    /// Retry-After, for at most 20 s.
    pub(super) fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let mut rb = self
                .http
                .request(method.clone(), format!("{}/rest/api/2/{path}", self.root))
                .bearer_auth(TOKEN);
            if let Some(b) = &body {
                rb = rb.json(b);
            }
            let r = rb.send().unwrap();
            let status = r.status().as_u16();
            let wait = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            let text = r.text().unwrap();
            if status == 429 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_secs(wait.min(5)));
                continue;
            }
            return (status, serde_json::from_str(&text).unwrap_or(Value::Null));
        }
    }
    pub(super) fn get(&self, path: &str) -> Value {
        let (s, v) = self.send(reqwest::Method::GET, path, None);
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }
    pub(super) fn user(&self, name: &str) -> Option<Value> {
        let (s, v) = self.send(
            reqwest::Method::GET,
            &format!("user?username={name}&expand=groups"),
            None,
        );
        (s == 200).then_some(v)
    }
    pub(super) fn users(&self) -> Vec<String> {
        let v = self.get("user/search?username=.&includeInactive=true&maxResults=1000");
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_string())
            .collect()
    }
    pub(super) fn members(&self, group: &str) -> Vec<String> {
        let v = self.get(&format!(
            "group/member?groupname={group}&includeInactiveUsers=true&maxResults=50"
        ));
        let mut m: Vec<String> = v["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_string())
            .collect();
        m.sort();
        m
    }
    pub(super) fn property(&self, name: &str) -> Value {
        self.get(&format!("user/properties/idsync?username={name}"))["value"].clone()
    }
    pub(super) fn groups_of(&self, name: &str) -> Vec<String> {
        let mut g: Vec<String> = self.user(name).unwrap()["groups"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect();
        g.sort();
        g
    }
}

pub(super) fn sync(dir: &Path, args: &[&str]) -> String {
    let o = idsync()
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("IDSYNC_TEST_JIRA_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub(super) fn edit_csv(dir: &Path, f: impl FnOnce(String) -> String) {
    let path = dir.join("users.csv");
    let csv = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, f(csv)).unwrap();
}

pub(super) fn without(csv: &str, id: &str) -> String {
    csv.lines()
        .filter(|l| !l.starts_with(id))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn jira_life_cycle_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = jira_sim(dir.path(), &[]);
    let jira = Jira::new(dir.path(), &root);
    write_people_csv(dir.path(), 6);
    write_jira_config(dir.path(), &root, "");
    let o = idsync()
        .arg("--config")
        .arg(dir.path().join("idsync.toml"))
        .args(["config", "check"])
        .env("IDSYNC_TEST_JIRA_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Full sync: 6 users (with the admin, 7), 2 groups, nested groups flattened; the names
    // Jira has no field for are in the user property.
    let out = sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(jira.users().len(), 7, "{:?}", jira.users());
    let u1 = jira.user("user1@example.com").unwrap();
    assert_eq!(u1["displayName"], "User Number 1");
    assert_eq!(u1["emailAddress"], "user1@example.com");
    assert_eq!(
        jira.property("user1@example.com")["user"]["name"]["familyName"],
        "Number 1"
    );
    assert_eq!(
        jira.property("user1@example.com")["user"]["department"],
        "Dept 1"
    );
    assert_eq!(jira.members("everyone").len(), 6);
    assert_eq!(jira.members("engineering").len(), 2);
    assert!(sync(dir.path(), &["sync", "hr-to-jira"]).contains("(0 planned"));

    // A change (a given name: display name and property) and a membership change.
    edit_csv(dir.path(), |csv| {
        csv.replace("User,Number 1,", "Ada,Number 1,").replace(
            "id-000002,user2@example.com,User,Number 2,user2@example.com,Dept 2,g-all",
            "id-000002,user2@example.com,User,Number 2,user2@example.com,Dept 2,g-eng",
        )
    });
    let out = sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(
        jira.user("user1@example.com").unwrap()["displayName"],
        "Ada Number 1"
    );
    assert_eq!(
        jira.property("user1@example.com")["user"]["name"]["givenName"],
        "Ada"
    );
    assert!(jira
        .members("engineering")
        .contains(&"user2@example.com".to_string()));

    // Disable: user5 leaves the source; Jira 9 takes "active": false.
    let before5 = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    edit_csv(dir.path(), |csv| without(&csv, "id-000005"));
    let plan = sync(dir.path(), &["plan", "hr-to-jira"]);
    assert!(
        plan.contains("note: Jira 9.12.2: users are disabled with \"active\": false"),
        "the plan says how: {plan}"
    );
    sync(dir.path(), &["sync", "hr-to-jira"]);
    assert_eq!(jira.user("user5@example.com").unwrap()["active"], false);
    assert!(!jira
        .members("everyone")
        .contains(&"user5@example.com".to_string()));

    // And return: active again, back in its group.
    std::fs::write(dir.path().join("users.csv"), &before5).unwrap();
    let out = sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(jira.user("user5@example.com").unwrap()["active"], true);
    assert!(jira
        .members("everyone")
        .contains(&"user5@example.com".to_string()));

    // Delete, where the flow says so.
    write_jira_config(dir.path(), &root, "deprovision = \"delete\"");
    edit_csv(dir.path(), |csv| without(&csv, "id-000004"));
    let out = sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(jira.user("user4@example.com").is_none(), "deleted");

    // By hand in Jira: a display name changed, a user deleted, a property edited. A plain
    // sync trusts the ledger; a reconcile (--full) repairs all three.
    let (s, _) = jira.send(
        reqwest::Method::PUT,
        "user?username=user1@example.com",
        Some(json!({"displayName": "Edited by hand"})),
    );
    assert_eq!(s, 200);
    let (s, _) = jira.send(
        reqwest::Method::DELETE,
        "user?username=user3@example.com",
        None,
    );
    assert_eq!(s, 204);
    let (s, _) = jira.send(
        reqwest::Method::PUT,
        "user/properties/idsync?username=user2@example.com",
        Some(json!({"user": {"department": "Edited"}})),
    );
    assert_eq!(s, 200);
    assert!(sync(dir.path(), &["sync", "hr-to-jira"]).contains("(0 planned"));
    let out = sync(dir.path(), &["sync", "hr-to-jira", "--full"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(
        jira.user("user1@example.com").unwrap()["displayName"],
        "Ada Number 1"
    );
    assert!(
        jira.user("user3@example.com").is_some(),
        "the deleted user was created again"
    );
    assert_eq!(
        jira.property("user2@example.com")["user"]["department"],
        "Dept 2"
    );
    let again = sync(dir.path(), &["plan", "hr-to-jira", "--full"]);
    assert!(
        again.contains("nothing to do"),
        "a second reconcile finds nothing: {again}"
    );
}

#[test]
fn jira_adopts_existing_users_by_username_and_by_email() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = jira_sim(dir.path(), &[]);
    let jira = Jira::new(dir.path(), &root);
    write_people_csv(dir.path(), 3);
    write_jira_config(dir.path(), &root, "");
    // Already in Jira before idsync: user0 under its username, user1 under another username
    // with its email.
    let mut keys = Vec::new();
    for (name, email) in [
        ("USER0@example.com", "old0@example.org"),
        ("u1-legacy", "user1@example.com"),
    ] {
        let (s, v) = jira.send(
            reqwest::Method::POST,
            "user",
            Some(json!({"name": name, "emailAddress": email, "displayName": "Legacy"})),
        );
        assert_eq!(s, 201, "{v}");
        keys.push(v["key"].as_str().unwrap().to_string());
    }
    let out = sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(out.contains("succeeded"), "{out}");
    let users = jira.users();
    assert_eq!(users.len(), 4, "admin + 3, nothing duplicated: {users:?}");
    let u0 = jira.user("user0@example.com").unwrap();
    assert_eq!(
        u0["key"], keys[0],
        "the existing account, matched by username (any case)"
    );
    let u1 = jira.user("user1@example.com").unwrap();
    assert_eq!(
        u1["key"], keys[1],
        "the existing account, matched by email, renamed to the source's username"
    );
    assert_eq!(u0["displayName"], "User Number 0", "adopted and updated");
    assert_eq!(u0["emailAddress"], "user0@example.com");
    let runs: Value = serde_json::from_str(&sync(dir.path(), &["runs", "--json"])).unwrap();
    let run = runs[0]["id"].as_str().unwrap().to_string();
    let log = sync(dir.path(), &["log", &run]);
    assert!(
        log.contains("by userName \"user0@example.com\""),
        "the log says how each was matched: {log}"
    );
    assert!(log.contains("by email \"user1@example.com\""), "{log}");
    assert!(sync(dir.path(), &["plan", "hr-to-jira", "--full"]).contains("nothing to do"));
}

#[test]
fn jira_8_2_disable_removes_application_access_and_return_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = jira_sim(dir.path(), &["--version", "8.2.0"]);
    let jira = Jira::new(dir.path(), &root);
    write_people_csv(dir.path(), 3);
    write_jira_config(dir.path(), &root, "");
    sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(jira
        .groups_of("user2@example.com")
        .contains(&"jira-software-users".to_string()));
    let before = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    edit_csv(dir.path(), |csv| without(&csv, "id-000002"));
    let plan = sync(dir.path(), &["plan", "hr-to-jira"]);
    assert!(
        plan.contains("note: Jira 8.2.0 (it has no deactivation before 8.3): disabling removes the user's application access (groups jira-administrators, jira-software-users)"),
        "the plan says how: {plan}"
    );
    let out = sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(out.contains("succeeded"), "{out}");
    let u2 = jira.user("user2@example.com").unwrap();
    assert_eq!(u2["active"], true, "Jira 8.2 cannot deactivate");
    assert!(
        jira.groups_of("user2@example.com").is_empty(),
        "no access left"
    );
    assert_eq!(
        jira.property("user2@example.com")["accessRemoved"],
        json!(["jira-software-users"])
    );
    assert!(sync(dir.path(), &["plan", "hr-to-jira", "--full"]).contains("nothing to do"));
    std::fs::write(dir.path().join("users.csv"), before).unwrap();
    let out = sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(
        jira.groups_of("user2@example.com"),
        vec!["everyone".to_string(), "jira-software-users".to_string()]
    );
    assert!(jira
        .property("user2@example.com")
        .get("accessRemoved")
        .is_none());
}

#[test]
fn jira_target_config_errors_name_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 1);
    std::fs::write(
        dir.path().join("idsync.toml"),
        r#"[sources.hr]
type = "file"
format = "csv"
users = "users.csv"

[targets.a]
type = "jira"
url = "jira.example.com"
token = "t"
user = "bob"
password = "p"
deactivation = "sometimes"
ca_file = "missing-ca.pem"

[targets.b]
type = "jira"
user = "bob"

[targets.c]
type = "jira"
url = "https://jira.example.com"
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
        (":12:", "targets.a.deactivation"),
        (":13:", "targets.a.ca_file"),
        (":17:", "targets.b.password"),
        (":22:", "targets.c.colour"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(line) && l.contains(key)),
            "{key} at {line}: {err}"
        );
    }
    assert!(err.contains("targets.b.url"), "{err}");
    assert!(err.contains("targets.c.token"), "{err}");
}

#[test]
fn jira_rate_limiter_and_429s_slow_the_sync_but_fail_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A bucket of 10 requests refilled with 10 every second.
    let (_sim, root) = jira_sim(
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
    let jira = Jira::new(dir.path(), &root);
    // And the first two user creations answered 429 with Retry-After: 1.
    let r = jira
        .http
        .post(format!("{root}/_sim/faults"))
        .json(&json!({"fail_next": 2, "fail_match": "POST /rest/api/2/user?", "error_status": 429, "retry_after_secs": 1}))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    write_people_csv(dir.path(), 4);
    write_jira_config(dir.path(), &root, "");
    let out = sync(dir.path(), &["sync", "hr-to-jira"]);
    assert!(
        out.contains("succeeded") && out.contains(" 0 failed"),
        "{out}"
    );
    assert_eq!(jira.users().len(), 5, "{:?}", jira.users());
    assert_eq!(jira.members("everyone").len(), 4);
    let stats: Value = jira
        .http
        .get(format!("{root}/_sim/stats"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    // The two injected 429s, and the bucket's own when requests in flight together drain it.
    assert!(stats["throttled"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["requests"].as_u64().unwrap() > 10, "{stats}");
}
