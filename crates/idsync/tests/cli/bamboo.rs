//! The Bamboo Data Center target through the binary, against `idsync sim bamboo` (HTTPS, its
//! CA in `ca_file`, a personal access token): full sync, a membership change, a name change
//! Bamboo's API cannot make (refused with the reason), disable by access groups and return,
//! a rename, delete, reconcile after hand edits, adoption of existing users by username and
//! by email (renamed to the source's username), and config errors at their key and line.

use super::{idsync, text, write_people_csv, Server};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::Path;
use std::process::{Output, Stdio};

const TOKEN: &str = "sim-bamboo-pat";

/// `idsync sim bamboo --https` started from the binary: the server and its base URL.
fn bamboo_sim(dir: &Path) -> (Server, String) {
    let mut child = idsync()
        .args(["sim", "bamboo", "--https", "--max-page", "4", "--cert-dir"])
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

fn write_bamboo_config(dir: &Path, root: &str, flow_extra: &str) {
    std::fs::write(
        dir.join("idsync.toml"),
        format!(
            "[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.bamboo]\ntype = \"bamboo\"\nurl = \"{root}\"\ntoken = \"${{env:IDSYNC_TEST_BAMBOO_TOKEN}}\"\nca_file = \"{}\"\ndefault_groups = [\"bamboo-users\"]\naccess_groups = [\"bamboo-users\"]\n\n[flows.hr-to-bamboo]\nsource = \"hr\"\ntarget = \"bamboo\"\n{flow_extra}\n",
            dir.join("sim/ca.pem").display()
        ),
    )
    .unwrap();
}

struct Bamboo {
    root: String,
    http: reqwest::blocking::Client,
}

impl Bamboo {
    fn new(dir: &Path, root: &str) -> Bamboo {
        let ca = std::fs::read(dir.join("sim/ca.pem")).unwrap();
        let http = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        Bamboo {
            root: root.to_string(),
            http,
        }
    }
    fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}/rest/api/latest/{path}", self.root))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    /// Every name of a paged listing (the simulator gives 4 a page).
    fn names(&self, path: &str) -> Vec<String> {
        let mut n = Vec::new();
        let mut start = 0;
        loop {
            let (s, v) = self.send(reqwest::Method::GET, &format!("{path}&start={start}"), None);
            assert_eq!(s, 200, "GET {path}: {v}");
            let page = v["results"].as_array().unwrap();
            n.extend(page.iter().map(|u| u["name"].as_str().unwrap().to_string()));
            if v["isLastPage"] == true {
                break;
            }
            start += page.len();
        }
        n.sort();
        n
    }
    fn user(&self, name: &str) -> Option<Value> {
        let (_, v) = self.send(
            reqwest::Method::GET,
            &format!("admin/users?filter={name}"),
            None,
        );
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"].as_str().unwrap().eq_ignore_ascii_case(name))
            .cloned()
    }
    fn users(&self) -> Vec<String> {
        self.names("admin/users?limit=1000")
    }
    fn members(&self, group: &str) -> Vec<String> {
        self.names(&format!("admin/groups/{group}/more-members?limit=1000"))
    }
    fn groups_of(&self, name: &str) -> Vec<String> {
        self.names(&format!("admin/users/{name}/assigned-groups?limit=1000"))
    }
}

fn run(dir: &Path, args: &[&str]) -> Output {
    idsync()
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("IDSYNC_TEST_BAMBOO_TOKEN", TOKEN)
        .output()
        .unwrap()
}

fn sync(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, args);
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
fn bamboo_life_cycle_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = bamboo_sim(dir.path());
    let bamboo = Bamboo::new(dir.path(), &root);
    // The group Bamboo's global Access permission is granted to, made by its administrator.
    let (s, v) = bamboo.send(
        reqwest::Method::POST,
        "admin/groups",
        Some(json!({"name": "bamboo-users"})),
    );
    assert_eq!(s, 201, "{v}");
    write_people_csv(dir.path(), 6);
    write_bamboo_config(dir.path(), &root, "");
    sync(dir.path(), &["config", "check"]);

    // Full sync: 6 users (with the admin, 7), in bamboo-users; 2 groups, nesting flattened.
    let out = sync(dir.path(), &["sync", "hr-to-bamboo"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(bamboo.users().len(), 7, "{:?}", bamboo.users());
    let u1 = bamboo.user("user1@example.com").unwrap();
    assert_eq!(u1["fullName"], "User Number 1");
    assert_eq!(u1["email"], "user1@example.com");
    assert_eq!(bamboo.members("bamboo-users").len(), 6);
    assert_eq!(bamboo.members("everyone").len(), 6);
    assert_eq!(bamboo.members("engineering").len(), 2);
    assert!(sync(dir.path(), &["sync", "hr-to-bamboo"]).contains("(0 planned"));

    // A membership change goes through; a full-name change Bamboo's API cannot make is
    // refused with the reason, and nothing else is held up.
    edit_csv(dir.path(), |csv| {
        csv.replace("User,Number 1,", "Ada,Number 1,").replace(
            "id-000002,user2@example.com,User,Number 2,user2@example.com,Dept 2,g-all",
            "id-000002,user2@example.com,User,Number 2,user2@example.com,Dept 2,g-eng",
        )
    });
    let o = run(dir.path(), &["sync", "hr-to-bamboo"]);
    let said = text(&o);
    assert!(
        said.contains("cannot change the full name \"User Number 1\" to \"Ada Number 1\" (Bamboo's REST API has no call for it)"),
        "{said}"
    );
    assert!(bamboo
        .members("engineering")
        .contains(&"user2@example.com".to_string()));
    assert_eq!(
        bamboo.user("user1@example.com").unwrap()["fullName"],
        "User Number 1"
    );
    edit_csv(dir.path(), |csv| {
        csv.replace("Ada,Number 1,", "User,Number 1,")
    });
    let out = sync(dir.path(), &["sync", "hr-to-bamboo"]);
    assert!(out.contains("succeeded"), "{out}");

    // A rename: Bamboo renames the user (its groups stay), and idsync knows it by its new
    // username from then on.
    edit_csv(dir.path(), |csv| {
        csv.replace("id-000002,user2@example.com,", "id-000002,ann.two,")
    });
    let out = sync(dir.path(), &["sync", "hr-to-bamboo"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(bamboo.user("user2@example.com").is_none());
    assert_eq!(
        bamboo.groups_of("ann.two"),
        vec!["bamboo-users", "engineering", "everyone"]
    );
    edit_csv(dir.path(), |csv| {
        csv.replace(",Dept 2,g-eng", ",Dept 2,g-all")
    });
    let out = sync(dir.path(), &["sync", "hr-to-bamboo"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(
        bamboo.groups_of("ann.two"),
        vec!["bamboo-users", "everyone"]
    );

    // Disable: user5 leaves the source. Bamboo has no deactivation: the plan says so, and
    // the access group is removed and recorded in Bamboo.
    let before5 = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    edit_csv(dir.path(), |csv| without(&csv, "id-000005"));
    let plan = sync(dir.path(), &["plan", "hr-to-bamboo"]);
    assert!(
        plan.contains("note: Bamboo has no call to deactivate a user: disabling removes the user from the access groups bamboo-users"),
        "the plan says how: {plan}"
    );
    let out = sync(dir.path(), &["sync", "hr-to-bamboo"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(
        bamboo.groups_of("user5@example.com"),
        vec!["idsync-disabled", "idsync-disabled:bamboo-users"]
    );

    // And return: its access group and its group back, the record gone.
    std::fs::write(dir.path().join("users.csv"), &before5).unwrap();
    let out = sync(dir.path(), &["sync", "hr-to-bamboo"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(
        bamboo.groups_of("user5@example.com"),
        vec!["bamboo-users", "everyone"]
    );

    // Delete, where the flow says so.
    write_bamboo_config(dir.path(), &root, "deprovision = \"delete\"");
    edit_csv(dir.path(), |csv| without(&csv, "id-000004"));
    let out = sync(dir.path(), &["sync", "hr-to-bamboo"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(bamboo.user("user4@example.com").is_none(), "deleted");

    // By hand in Bamboo: a user deleted, a member removed. A plain sync trusts the ledger; a
    // reconcile (--full) repairs both.
    let (s, _) = bamboo.send(
        reqwest::Method::DELETE,
        "admin/users/user3@example.com",
        None,
    );
    assert_eq!(s, 204);
    let (s, _) = bamboo.send(
        reqwest::Method::DELETE,
        "admin/groups/everyone/remove-users",
        Some(json!(["user1@example.com"])),
    );
    assert_eq!(s, 204);
    assert!(sync(dir.path(), &["sync", "hr-to-bamboo"]).contains("(0 planned"));
    let out = sync(dir.path(), &["sync", "hr-to-bamboo", "--full"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(
        bamboo.user("user3@example.com").is_some(),
        "the deleted user was created again"
    );
    assert!(bamboo
        .members("everyone")
        .contains(&"user1@example.com".to_string()));
    let again = sync(dir.path(), &["plan", "hr-to-bamboo", "--full"]);
    assert!(
        again.contains("nothing to do"),
        "a second reconcile finds nothing: {again}"
    );
}

#[test]
fn bamboo_adopts_existing_users_by_username_and_by_email() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root) = bamboo_sim(dir.path());
    let bamboo = Bamboo::new(dir.path(), &root);
    bamboo.send(
        reqwest::Method::POST,
        "admin/groups",
        Some(json!({"name": "bamboo-users"})),
    );
    write_people_csv(dir.path(), 3);
    write_bamboo_config(dir.path(), &root, "");
    // Already in Bamboo: user0 under its username (another case), user1 under another
    // username with its email, user2 under its username with another full name.
    for (name, full, email) in [
        ("USER0@example.com", "User Number 0", "user0@example.com"),
        ("u1-legacy", "User Number 1", "user1@example.com"),
        ("user2@example.com", "Someone Else", "user2@example.com"),
    ] {
        let (s, v) = bamboo.send(
            reqwest::Method::POST,
            "admin/users",
            Some(json!({"name": name, "fullName": full, "email": email, "password": "p", "passwordConfirm": "p"})),
        );
        assert_eq!(s, 201, "{v}");
    }
    let o = run(dir.path(), &["sync", "hr-to-bamboo"]);
    let said = text(&o);
    // user2's full name Bamboo's API cannot change: refused with the reason.
    assert!(
        said.contains("idsync cannot change the full name \"Someone Else\" to \"User Number 2\""),
        "{said}"
    );
    let users = bamboo.users();
    assert_eq!(
        users,
        vec![
            "USER0@example.com",
            "admin",
            "user1@example.com",
            "user2@example.com"
        ],
        "nothing duplicated; user1's account renamed to the source's username: {users:?}"
    );
    let runs: Value = serde_json::from_str(&sync(dir.path(), &["runs", "--json"])).unwrap();
    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    let log = sync(dir.path(), &["log", &run_id]);
    assert!(
        log.contains("by userName \"user0@example.com\""),
        "the log says how each was matched: {log}"
    );
    assert!(log.contains("by email \"user1@example.com\""), "{log}");
    assert_eq!(
        bamboo.groups_of("USER0@example.com"),
        vec!["engineering", "everyone"],
        "adopted users are in their groups (default groups are for users idsync creates)"
    );
    assert_eq!(bamboo.groups_of("user1@example.com"), vec!["everyone"]);
    // user1 is known by its new username: a reconcile has nothing to do for it.
    let plan = sync(dir.path(), &["plan", "hr-to-bamboo", "--full"]);
    assert!(!plan.contains("user1@example.com"), "{plan}");
}

#[test]
fn bamboo_config_errors_name_their_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.csv"), "").unwrap();
    std::fs::write(
        dir.path().join("idsync.toml"),
        r#"[sources.hr]
type = "file"
format = "csv"
users = "users.csv"

[targets.a]
type = "bamboo"
url = "ftp://bamboo.example.com"
user = "admin"

[targets.b]
type = "bamboo"
url = "https://bamboo.example.com"
token = "t"
access_groups = ["bamboo-users"]
record_group = "bamboo-users"
colour = "blue"

[flows.f]
source = "hr"
target = "a"
"#,
    )
    .unwrap();
    let o = run(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for (line, key) in [
        (":8:", "targets.a.url"),
        (":9:", "targets.a.password"),
        (":16:", "targets.b.record_group"),
        (":17:", "targets.b.colour"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(line) && l.contains(key)),
            "{line} {key}: {err}"
        );
    }
}
