//! The Bitbucket Data Center target through the binary, against `idsync sim bitbucket`
//! (HTTPS, its CA in `ca_file`, a personal access token): full sync (one request per user and
//! group plus one per membership batch), change, membership change, disable (the licensed
//! groups removed and recorded in idsync's record groups) and return (given back), delete,
//! reconcile after hand edits, adoption of existing users by username and by email, and a
//! ledger of the earlier version's numeric ids translated without duplicating or losing a
//! user.

use super::{idsync, text, write_people_csv, Server};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::Path;
use std::process::Stdio;

const TOKEN: &str = "sim-bitbucket-pat";

/// `idsync sim bitbucket --https` started from the binary: the server and its base URL.
fn bitbucket_sim(dir: &Path) -> (Server, String) {
    let mut child = idsync()
        .args(["sim", "bitbucket", "--https", "--cert-dir"])
        .arg(dir.join("sim"))
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

fn write_bitbucket_config(dir: &Path, root: &str, flow_extra: &str) {
    std::fs::write(
        dir.join("idsync.toml"),
        format!(
            "[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.bitbucket]\ntype = \"bitbucket\"\nurl = \"{root}\"\ntoken = \"${{env:IDSYNC_TEST_BITBUCKET_TOKEN}}\"\nca_file = \"{}\"\n\n[flows.hr-to-bitbucket]\nsource = \"hr\"\ntarget = \"bitbucket\"\n{flow_extra}\n",
            dir.join("sim/ca.pem").display()
        ),
    )
    .unwrap();
}

struct Bitbucket {
    root: String,
    http: reqwest::blocking::Client,
}

impl Bitbucket {
    fn new(dir: &Path, root: &str) -> Bitbucket {
        let ca = std::fs::read(dir.join("sim/ca.pem")).unwrap();
        let http = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        Bitbucket {
            root: root.to_string(),
            http,
        }
    }
    fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}/rest/api/1.0/{path}", self.root))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    fn values(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (s, v) = self.send(
            reqwest::Method::GET,
            &format!("{path}{sep}limit=1000"),
            None,
        );
        assert_eq!(s, 200, "GET {path}: {v}");
        assert_eq!(v["isLastPage"], true);
        v["values"].as_array().unwrap().clone()
    }
    fn user(&self, name: &str) -> Option<Value> {
        self.values(&format!("admin/users?filter={name}"))
            .into_iter()
            .find(|u| u["name"].as_str().unwrap().eq_ignore_ascii_case(name))
    }
    fn users(&self) -> Vec<String> {
        self.values("admin/users")
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_string())
            .collect()
    }
    fn members(&self, group: &str) -> Vec<String> {
        let mut m: Vec<String> = self
            .values(&format!("admin/groups/more-members?context={group}"))
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_string())
            .collect();
        m.sort();
        m
    }
    /// The simulator's request counts (`/_sim/stats`).
    fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_sim/stats", self.root))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }
    fn groups_of(&self, name: &str) -> Vec<String> {
        let mut g: Vec<String> = self
            .values(&format!("admin/users/more-members?context={name}"))
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect();
        g.sort();
        g
    }
}

fn sync(dir: &Path, args: &[&str]) -> String {
    let o = idsync()
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("IDSYNC_TEST_BITBUCKET_TOKEN", TOKEN)
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
fn bitbucket_life_cycle_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = bitbucket_sim(dir.path());
    let bb = Bitbucket::new(dir.path(), &root);
    write_people_csv(dir.path(), 6);
    write_bitbucket_config(dir.path(), &root, "");
    let o = idsync()
        .arg("--config")
        .arg(dir.path().join("idsync.toml"))
        .args(["config", "check"])
        .env("IDSYNC_TEST_BITBUCKET_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Full sync: 6 users (with the admin, 7), each in the default group stash-users (the
    // licensed one), 2 groups with nested groups flattened.
    let requests_before = bb.stats()["requests"].as_u64().unwrap();
    let out = sync(dir.path(), &["sync", "hr-to-bitbucket"]);
    assert!(out.contains("succeeded"), "{out}");
    // Issue 18's aim: at most one request per user and per group plus one per batch of
    // memberships, and a few for the run (health, the users' and groups' listings for
    // matching, the global permissions for the plan's note on disabling).
    let stats = bb.stats();
    let sent = stats["requests"].as_u64().unwrap() - requests_before;
    let batches = stats["by_resource"]["POST admin/groups/add-users"]
        .as_u64()
        .unwrap();
    assert_eq!(batches, 2, "one add-users per group: {stats}");
    assert!(
        sent <= 6 + 2 + batches + 4,
        "{sent} requests for 6 users, 2 groups and {batches} batches: {stats}"
    );
    assert_eq!(bb.users().len(), 7, "{:?}", bb.users());
    let u1 = bb.user("user1@example.com").unwrap();
    assert_eq!(u1["displayName"], "User Number 1");
    assert_eq!(u1["emailAddress"], "user1@example.com");
    assert_eq!(bb.members("everyone").len(), 6);
    assert_eq!(bb.members("engineering").len(), 2);
    assert_eq!(bb.members("stash-users").len(), 6);
    assert!(sync(dir.path(), &["sync", "hr-to-bitbucket"]).contains("(0 planned"));

    // A change (display name) and a membership change.
    edit_csv(dir.path(), |csv| {
        csv.replace("User,Number 1,", "Ada,Number 1,").replace(
            "id-000002,user2@example.com,User,Number 2,user2@example.com,Dept 2,g-all",
            "id-000002,user2@example.com,User,Number 2,user2@example.com,Dept 2,g-eng",
        )
    });
    let out = sync(dir.path(), &["sync", "hr-to-bitbucket"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(
        bb.user("user1@example.com").unwrap()["displayName"],
        "Ada Number 1"
    );
    assert!(bb
        .members("engineering")
        .contains(&"user2@example.com".to_string()));

    // Disable: user5 leaves the source. Bitbucket has no deactivation: the plan says the
    // licensed group is removed and recorded; the user stays in its other groups' stead.
    let before5 = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    edit_csv(dir.path(), |csv| without(&csv, "id-000005"));
    let plan = sync(dir.path(), &["plan", "hr-to-bitbucket"]);
    assert!(
        plan.contains("Bitbucket has no deactivation call: disabling removes the user's access groups (stash-users;"),
        "the plan says how: {plan}"
    );
    sync(dir.path(), &["sync", "hr-to-bitbucket"]);
    assert!(
        !bb.groups_of("user5@example.com")
            .contains(&"stash-users".to_string()),
        "licence removed"
    );
    assert!(
        bb.groups_of("user5@example.com")
            .contains(&"idsync-access-removed-stash-users".to_string()),
        "the removed group recorded in idsync's record group: {:?}",
        bb.groups_of("user5@example.com")
    );
    assert!(bb.user("user5@example.com").is_some(), "the account stays");

    // And return: the recorded group back, and its source group.
    std::fs::write(dir.path().join("users.csv"), &before5).unwrap();
    let out = sync(dir.path(), &["sync", "hr-to-bitbucket"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(
        bb.groups_of("user5@example.com"),
        vec!["everyone".to_string(), "stash-users".to_string()]
    );

    // Delete, where the flow says so.
    write_bitbucket_config(dir.path(), &root, "deprovision = \"delete\"");
    edit_csv(dir.path(), |csv| without(&csv, "id-000004"));
    let out = sync(dir.path(), &["sync", "hr-to-bitbucket"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(bb.user("user4@example.com").is_none(), "deleted");

    // By hand in Bitbucket: a display name changed, a user deleted, a member removed. A plain
    // sync trusts the ledger; a reconcile (--full) repairs all three.
    let (s, v) = bb.send(
        reqwest::Method::PUT,
        "admin/users",
        Some(json!({"name": "user1@example.com", "displayName": "Edited by hand"})),
    );
    assert_eq!(s, 200, "{v}");
    let (s, _) = bb.send(
        reqwest::Method::DELETE,
        "admin/users?name=user3@example.com",
        None,
    );
    assert_eq!(s, 200);
    let (s, _) = bb.send(
        reqwest::Method::POST,
        "admin/groups/remove-user",
        Some(json!({"context": "everyone", "itemName": "user2@example.com"})),
    );
    assert_eq!(s, 200);
    assert!(sync(dir.path(), &["sync", "hr-to-bitbucket"]).contains("(0 planned"));
    let out = sync(dir.path(), &["sync", "hr-to-bitbucket", "--full"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(
        bb.user("user1@example.com").unwrap()["displayName"],
        "Ada Number 1"
    );
    assert!(
        bb.user("user3@example.com").is_some(),
        "the deleted user was created again"
    );
    assert!(bb
        .members("everyone")
        .contains(&"user2@example.com".to_string()));
    let again = sync(dir.path(), &["plan", "hr-to-bitbucket", "--full"]);
    assert!(
        again.contains("nothing to do"),
        "a second reconcile finds nothing: {again}"
    );
}

#[test]
fn bitbucket_adopts_existing_users_by_username_and_by_email() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = bitbucket_sim(dir.path());
    let bb = Bitbucket::new(dir.path(), &root);
    write_people_csv(dir.path(), 3);
    write_bitbucket_config(dir.path(), &root, "");
    // Already in Bitbucket before idsync: user0 under its username (another case), user1
    // under another username with its email.
    let mut ids = Vec::new();
    for (name, email) in [
        ("USER0@example.com", "old0@example.org"),
        ("u1-legacy", "user1@example.com"),
    ] {
        let (s, v) = bb.send(
            reqwest::Method::POST,
            &format!("admin/users?name={name}&displayName=Legacy&emailAddress={email}&password=x&notify=false"),
            None,
        );
        assert_eq!(s, 204, "{v}");
        ids.push(bb.user(name).unwrap()["id"].clone());
    }
    let out = sync(dir.path(), &["sync", "hr-to-bitbucket"]);
    assert!(out.contains("succeeded"), "{out}");
    let users = bb.users();
    assert_eq!(users.len(), 4, "admin + 3, nothing duplicated: {users:?}");
    let u0 = bb.user("user0@example.com").unwrap();
    assert_eq!(
        u0["id"], ids[0],
        "the existing account, matched by username"
    );
    let u1 = bb.user("user1@example.com").unwrap();
    assert_eq!(
        u1["id"], ids[1],
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
}

#[test]
fn a_bitbucket_target_with_bad_settings_is_refused_by_config_check() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 1);
    std::fs::write(
        dir.path().join("idsync.toml"),
        "[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.bitbucket]\ntype = \"bitbucket\"\nurl = \"bitbucket.example.com\"\nuser = \"idsync\"\nadd_to_default_group = \"yes\"\nproperties = true\n\n[flows.f]\nsource = \"hr\"\ntarget = \"bitbucket\"\n",
    )
    .unwrap();
    let o = idsync()
        .arg("--config")
        .arg(dir.path().join("idsync.toml"))
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    let t = text(&o);
    assert!(t.contains("targets.bitbucket.url"), "{t}");
    assert!(t.contains("targets.bitbucket.password"), "{t}");
    assert!(t.contains("targets.bitbucket.add_to_default_group"), "{t}");
    assert!(
        t.contains("unknown key \"properties\""),
        "Jira's keys are not Bitbucket's: {t}"
    );
}

/// `sqlite3` on the store: the tests make the ledger the earlier version left behind.
fn sqlite(db: &Path, sql: &str) -> String {
    let o = std::process::Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 command line tool");
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The version before kept Bitbucket's numeric user ids in the ledger. A run of this version
/// against such a ledger translates it to usernames once (one listing) and then changes,
/// renames, disables and reconciles as usual: no user is created twice and none is lost.
#[test]
fn a_ledger_of_the_earlier_numeric_ids_is_translated_without_duplicating_or_losing_users() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = bitbucket_sim(dir.path());
    let bb = Bitbucket::new(dir.path(), &root);
    write_people_csv(dir.path(), 4);
    write_bitbucket_config(dir.path(), &root, "");
    let out = sync(dir.path(), &["sync", "hr-to-bitbucket"]);
    assert!(out.contains("succeeded"), "{out}");
    let db = dir.path().join("idsync.db");
    assert_eq!(
        sqlite(
            &db,
            "SELECT user_id_form FROM flows WHERE name = 'hr-to-bitbucket'"
        ),
        "bitbucket-username"
    );
    // The ledger as the earlier version wrote it: numeric ids, no form recorded.
    let mut numeric = Vec::new();
    for u in bb.values("admin/users") {
        let (name, id) = (u["name"].as_str().unwrap(), u["id"].as_u64().unwrap());
        sqlite(
            &db,
            &format!("UPDATE ledger_users SET target_id = '{id}' WHERE target_id = '{name}'"),
        );
        numeric.push(id.to_string());
    }
    sqlite(&db, "UPDATE flows SET user_id_form = NULL");
    let ids = sqlite(&db, "SELECT target_id FROM ledger_users ORDER BY key");
    assert!(
        ids.lines().all(|id| numeric.contains(&id.to_string())),
        "{ids}"
    );

    // Changes in the source: user1's name, user2's username, user3 leaves (disabled).
    edit_csv(dir.path(), |csv| {
        without(
            &csv.replace("User,Number 1,", "Ada,Number 1,").replace(
                "id-000002,user2@example.com,",
                "id-000002,user2.new@example.com,",
            ),
            "id-000003",
        )
    });
    let out = sync(dir.path(), &["sync", "hr-to-bitbucket"]);
    assert!(
        out.contains("succeeded") && out.contains(" 0 failed"),
        "{out}"
    );
    let mut users = bb.users();
    users.sort();
    assert_eq!(
        users,
        vec![
            "admin",
            "user0@example.com",
            "user1@example.com",
            "user2.new@example.com",
            "user3@example.com"
        ],
        "nothing created twice, nothing lost"
    );
    assert_eq!(
        bb.user("user1@example.com").unwrap()["displayName"],
        "Ada Number 1"
    );
    assert!(bb
        .groups_of("user3@example.com")
        .contains(&"idsync-access-removed-stash-users".to_string()));
    assert_eq!(
        sqlite(&db, "SELECT target_id FROM ledger_users ORDER BY key"),
        "user0@example.com\nuser1@example.com\nuser2.new@example.com\nuser3@example.com",
        "the ledger holds usernames now (user2 moved by its rename)"
    );
    assert_eq!(
        sqlite(
            &db,
            "SELECT user_id_form FROM flows WHERE name = 'hr-to-bitbucket'"
        ),
        "bitbucket-username"
    );
    let again = sync(dir.path(), &["plan", "hr-to-bitbucket", "--full"]);
    assert!(
        again.contains("nothing to do"),
        "a reconcile finds the target as the ledger says: {again}"
    );
}
