//! idsync's Crowd-compatible directory (a `crowd` target, issue 17) against real Crowd clients,
//! through the binary: a file source feeds a flow into a `crowd` target, `idsync crowd app
//! create` makes an application, `idsync serve` serves the directory, and each client reads it:
//! the PyPI `crowd` client, atlassian-python-api's `Crowd` and the npm `atlassian-crowd-client`
//! (driver scripts in `cli/crowd/`, installed by `scripts/peers`), and a replay of the requests
//! Atlassian's Java `RestCrowdClient` sends in a product's full and then incremental directory
//! synchronisation (XML both ways). Then the source changes, `idsync sync` runs, and the event
//! feed tells each client what changed. Decision 0032 says why these clients.

use super::{free_port, run, serve, text, wait_for, Server};
use idsync_connectors::testkit::peers;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const USERS: &str = "\
sourceId,userName,givenName,familyName,displayName,email,department,title,employeeId,manager,phone,active,custom.badge,groups
id-alice,alice,Alice,Archer,Alice Archer,alice@example.com,Engineering,Engineer,E001,id-bob,+1 555 0100,true,B-7,g-eng
id-bob,bob,Bob,Baker,Bob Baker,bob@example.com,Sales,Account manager,E002,,,true,,g-sales
id-carol,carol,Carol,Clark,Carol Clark,carol@example.com,Engineering,Lead,E003,,,true,,g-eng;g-all
id-dave,dave,Dave,Dunn,Dave Dunn,dave@example.com,Engineering,Engineer,E004,,,true,,g-eng
id-eve,eve,Eve,Evans,Eve Evans,eve@example.com,Support,Agent,E005,,,true,,g-all
id-gina,gina,Gina,Gray,Gina Gray,gina@example.org,Support,Agent,E006,,,false,,g-all
";

/// The change in the source: alice's title, dave disabled, eve gone, frank new in sales, bob
/// out of sales.
const USERS_CHANGED: &str = "\
sourceId,userName,givenName,familyName,displayName,email,department,title,employeeId,manager,phone,active,custom.badge,groups
id-alice,alice,Alice,Archer,Alice Archer,alice@example.com,Engineering,Staff engineer,E001,id-bob,+1 555 0100,true,B-7,g-eng
id-bob,bob,Bob,Baker,Bob Baker,bob@example.com,Sales,Account manager,E002,,,true,,
id-carol,carol,Carol,Clark,Carol Clark,carol@example.com,Engineering,Lead,E003,,,true,,g-eng;g-all
id-dave,dave,Dave,Dunn,Dave Dunn,dave@example.com,Engineering,Engineer,E004,,,false,,g-eng
id-frank,frank,Frank,Fox,Frank Fox,frank@example.com,Sales,Account manager,E007,id-bob,,true,,g-sales
id-gina,gina,Gina,Gray,Gina Gray,gina@example.org,Support,Agent,E006,,,false,,g-all
";

/// A served Crowd directory: the store, the flow synced once, an application, `idsync serve`.
struct Directory {
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>/crowd/dc`: what a product's "Server URL" is.
    url: String,
    app: String,
    password: String,
    _server: Server,
}

fn write_source(dir: &Path, users: &str) {
    std::fs::write(dir.join("users.csv"), users).unwrap();
    std::fs::write(
        dir.join("groups.csv"),
        "sourceId,displayName,description\ng-eng,engineering,Engineers\ng-sales,sales,Sales team\ng-all,everyone,All staff\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("memberships.csv"),
        "group,member,kind\ng-all,g-eng,group\n",
    )
    .unwrap();
}

/// `idsync sync hr-to-dc`, again while `serve`'s own follower holds the flow (exit 6).
fn sync(dir: &Path) {
    wait_for("idsync sync hr-to-dc", || {
        let o = run(dir, &["sync", "hr-to-dc"]);
        match o.status.code() {
            Some(0) => Some(()),
            Some(6) => None,
            _ => panic!("idsync sync failed: {}", text(&o)),
        }
    });
}

impl Directory {
    fn start() -> Directory {
        let dir = tempfile::tempdir().unwrap();
        write_source(dir.path(), USERS);
        std::fs::write(
            dir.path().join("idsync.toml"),
            r#"[store]
path = "idsync.db"

[sources.hr]
type = "file"
format = "csv"
users = "users.csv"
groups = "groups.csv"
memberships = "memberships.csv"

[targets.dc]
type = "crowd"
description = "Jira and Confluence"

[flows.hr-to-dc]
source = "hr"
target = "dc"
deprovision = "delete"
"#,
        )
        .unwrap();
        let o = run(dir.path(), &["config", "check"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        sync(dir.path());
        let app = "jira".to_string();
        let password = create_app(dir.path(), &app);
        let port = free_port();
        let server = serve(dir.path(), port, &[]);
        Directory {
            url: format!("http://127.0.0.1:{port}/crowd/dc"),
            dir,
            app,
            password,
            _server: server,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Change the source, sync, and wait until the served feed has something after `token`.
    fn change_source(&self, token: &str) {
        write_source(self.path(), USERS_CHANGED);
        sync(self.path());
        let http = reqwest::blocking::Client::new();
        wait_for("the change in the event feed", || {
            let r = http
                .get(format!("{}/rest/usermanagement/1/event/{token}", self.url))
                .basic_auth(&self.app, Some(&self.password))
                .header("Accept", "application/json")
                .send()
                .ok()?;
            let body: Value = r.json().ok()?;
            (body["newEventToken"].as_str() != Some(token)).then_some(())
        });
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("CROWD_URL", self.url.clone()),
            ("CROWD_APP", self.app.clone()),
            ("CROWD_PASSWORD", self.password.clone()),
        ]
    }
}

/// `idsync crowd app create --target dc --name NAME`: the password it prints once (the line
/// after "application ...").
fn create_app(dir: &Path, name: &str) -> String {
    let o = run(
        dir,
        &["crowd", "app", "create", "--target", "dc", "--name", name],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let mut lines = out.lines();
    lines
        .find(|l| l.starts_with("application "))
        .unwrap_or_else(|| panic!("no application line: {out}"));
    lines.next().unwrap().trim().to_string()
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cli/crowd")
        .join(name)
}

/// Run a driver and parse the JSON it prints.
fn drive(mut cmd: Command, d: &Directory) -> Value {
    for (k, v) in d.env() {
        cmd.env(k, v);
    }
    let o = cmd.env("PYTHONDONTWRITEBYTECODE", "1").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "driver failed ({:?}): {out}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("driver printed no JSON ({e}): {out}"))
}

fn python(d: &Directory, file: &str, args: &[&str]) -> Value {
    let venv = peers::crowd_venv().unwrap();
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.arg(script(file)).args(args);
    drive(cmd, d)
}

fn node(d: &Directory, args: &[&str]) -> Value {
    let modules = peers::crowd_node_modules().unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(script("node_client.cjs"))
        .args(args)
        .env("NODE_PATH", modules);
    drive(cmd, d)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The feed's events after the change, as text: who they name.
fn mentions(events: &Value, name: &str) -> bool {
    events.to_string().contains(&format!("\"{name}\""))
}

#[test]
fn crowd_pypi_client_reads_users_groups_memberships_search_and_events() {
    let d = Directory::start();
    let r = python(&d, "pycrowd.py", &["read"]);
    assert_eq!(r["auth_ping"], true, "{r}");
    assert_eq!(r["auth_ping_wrong_password"], false, "{r}");
    let alice = &r["alice"];
    assert_eq!(alice["name"], "alice", "{r}");
    assert_eq!(alice["active"], true, "{r}");
    assert_eq!(alice["first-name"], "Alice");
    assert_eq!(alice["last-name"], "Archer");
    assert_eq!(alice["display-name"], "Alice Archer");
    assert_eq!(alice["email"], "alice@example.com");
    let attrs = &alice["attributes"];
    assert_eq!(
        attrs["department"],
        serde_json::json!(["Engineering"]),
        "{r}"
    );
    assert_eq!(attrs["title"], serde_json::json!(["Engineer"]), "{r}");
    assert_eq!(attrs["employeeNumber"], serde_json::json!(["E001"]), "{r}");
    assert_eq!(attrs["manager"], serde_json::json!(["bob"]), "{r}");
    assert_eq!(attrs["phone"], serde_json::json!(["+1 555 0100"]), "{r}");
    assert_eq!(attrs["badge"], serde_json::json!(["B-7"]), "{r}");
    assert_eq!(r["dave"]["active"], true);
    assert_eq!(r["nobody"], Value::Null, "{r}");
    assert_eq!(r["alice_exists"], true);
    assert_eq!(r["nobody_exists"], Value::Null);
    // Groups are served nested as the source nests them (`nested_groups`, the default): alice
    // is a direct member of engineering, and in everyone through it.
    assert_eq!(strings(&r["alice_groups"]), names(&["engineering"]));
    assert_eq!(
        strings(&r["alice_nested_groups"]),
        names(&["engineering", "everyone"])
    );
    let everyone = strings(&r["everyone_nested_users"]);
    for u in ["alice", "carol", "dave", "eve"] {
        assert!(everyone.contains(&u.to_string()), "{everyone:?}");
    }
    let m = &r["memberships"];
    assert_eq!(
        strings(&m["engineering"]["users"]),
        names(&["alice", "carol", "dave"]),
        "{m}"
    );
    assert_eq!(strings(&m["sales"]["users"]), names(&["bob"]));
    assert_eq!(strings(&m["everyone"]["groups"]), names(&["engineering"]));
    assert_eq!(
        strings(&r["search_email_example"]),
        names(&["alice", "bob", "carol", "dave", "eve"])
    );
    assert_eq!(strings(&r["search_name_ar"]), names(&["carol"]));
    assert_eq!(strings(&r["search_group_eng"]), names(&["engineering"]));
    // No passwords in idsync; no writes through Crowd.
    assert_eq!(r["auth_user"], Value::Null, "{r}");
    assert_eq!(r["add_user"], false, "{r}");
    assert!(r["cookie_config"].is_object(), "{r}");
    assert_eq!(r["event_status"], 200, "{r}");
    assert_eq!(
        r["event"]["incrementalSynchronisationAvailable"], true,
        "{r}"
    );
    let token = r["event"]["newEventToken"].as_str().unwrap().to_string();

    let bad = python(&d, "pycrowd.py", &["bad"]);
    assert_eq!(bad["unknown_app_ping"], false, "{bad}");
    assert_eq!(bad["unknown_app_user"], Value::Null, "{bad}");
    assert_eq!(bad["user_not_found"]["status"], 404, "{bad}");
    assert_eq!(
        bad["user_not_found"]["body"]["reason"], "USER_NOT_FOUND",
        "{bad}"
    );
    assert_eq!(
        bad["search_past_the_end"]["users"],
        serde_json::json!([]),
        "{bad}"
    );

    d.change_source(&token);
    let e = python(&d, "pycrowd.py", &["events", &token]);
    assert_eq!(e["status"], 200, "{e}");
    let body = &e["body"];
    assert_ne!(body["newEventToken"].as_str(), Some(token.as_str()), "{e}");
    for who in ["alice", "dave", "eve", "frank", "bob"] {
        assert!(mentions(&body["events"], who), "no event names {who}: {e}");
    }
    let after = python(&d, "pycrowd.py", &["read"]);
    assert_eq!(after["dave"]["active"], false, "{after}");
    assert_eq!(
        after["alice"]["attributes"]["title"],
        serde_json::json!(["Staff engineer"])
    );
    assert_eq!(
        strings(&after["memberships"]["sales"]["users"]),
        names(&["frank"])
    );
    let gone = python(&d, "pycrowd.py", &["events", "not-a-token"]);
    assert_eq!(gone["body"]["reason"], "EVENT_TOKEN_EXPIRED", "{gone}");
    assert!(
        (400..500).contains(&gone["status"].as_u64().unwrap()),
        "{gone}"
    );
}

#[test]
fn crowd_atlassian_python_api_reads_users_groups_search_and_events() {
    let d = Directory::start();
    let r = python(&d, "atlassian_api.py", &["read"]);
    assert_eq!(r["user"]["name"], "alice", "{r}");
    assert_eq!(r["user"]["active"], true, "{r}");
    assert_eq!(r["user"]["email"], "alice@example.com");
    assert_eq!(r["dave_active"], true);
    assert_eq!(
        r["user_attributes"]["department"],
        serde_json::json!(["Engineering"]),
        "{r}"
    );
    assert_eq!(
        r["user_attributes"]["employeeNumber"],
        serde_json::json!(["E001"])
    );
    assert_eq!(strings(&r["alice_groups_direct"]), names(&["engineering"]));
    assert_eq!(
        strings(&r["alice_groups_nested"]),
        names(&["engineering", "everyone"])
    );
    assert_eq!(
        strings(&r["engineering_members"]),
        names(&["alice", "carol", "dave"])
    );
    let everyone = strings(&r["everyone_nested_members"]);
    for u in ["alice", "carol", "dave", "eve"] {
        assert!(everyone.contains(&u.to_string()), "{everyone:?}");
    }
    assert_eq!(r["alice_in_engineering"], true, "{r}");
    assert_eq!(r["bob_in_engineering"], false, "{r}");
    assert_eq!(r["group"]["name"], "engineering");
    assert_eq!(r["group"]["active"], true);
    assert_eq!(r["group"]["type"], "GROUP");
    assert_eq!(r["group"]["description"], "Engineers");
    // engineering is nested in everyone, as in the source.
    assert_eq!(r["child_groups"], serde_json::json!(["engineering"]), "{r}");
    assert_eq!(
        r["nested_child_groups"],
        serde_json::json!(["engineering"]),
        "{r}"
    );
    assert_eq!(r["parent_groups"], serde_json::json!(["everyone"]), "{r}");
    assert_eq!(strings(&r["memberships"]["sales"]), names(&["bob"]), "{r}");
    assert_eq!(
        strings(&r["memberships"]["engineering"]),
        names(&["alice", "carol", "dave"])
    );
    assert_eq!(
        strings(&r["search_cql"]),
        names(&["alice", "bob", "carol", "dave", "eve"]),
        "{r}"
    );
    assert_eq!(strings(&r["search_cql_group"]), names(&["engineering"]));
    // Results in name order: from index 1, two of them.
    assert_eq!(
        strings(&r["search_cql_page"]),
        names(&["bob", "carol"]),
        "{r}"
    );
    assert_eq!(
        strings(&r["search_body_or"]),
        names(&["bob", "gina"]),
        "{r}"
    );
    assert_eq!(
        strings(&r["search_body_all_groups"]),
        names(&["engineering", "everyone", "sales"])
    );
    // Bad input: Crowd's statuses, never a 5xx.
    assert_eq!(r["search_malformed"]["status"], 400, "{r}");
    assert_eq!(r["group_missing"]["status"], 404, "{r}");
    assert_eq!(r["user_missing"]["status"], 404, "{r}");
    assert_eq!(r["wrong_password"]["status"], 401, "{r}");
    let auth = r["authenticate"]["status"].as_u64().unwrap_or(0);
    assert!(auth == 400 || auth == 401, "{r}");
    assert_eq!(r["deactivate_refused"]["status"], 403, "{r}");
    assert_eq!(r["group_create_refused"]["status"], 403, "{r}");
    assert!(r["cookie_config"]["ok"].is_object(), "{r}");
    let token = r["event"]["newEventToken"].as_str().unwrap().to_string();

    d.change_source(&token);
    let e = python(&d, "atlassian_api.py", &["events", &token]);
    let feed = &e["events"]["ok"];
    assert!(feed.is_object(), "{e}");
    for who in ["alice", "dave", "eve", "frank", "bob"] {
        assert!(mentions(&feed["events"], who), "no event names {who}: {e}");
    }
    let gone = python(&d, "atlassian_api.py", &["events", "not-a-token"]);
    let status = gone["events"]["status"].as_u64().unwrap_or(0);
    assert!((400..500).contains(&status), "{gone}");
    // Built as its README shows, the client asks for `rest/usermanagement/latest/...`: Crowd's
    // symbolic version of the same API.
    assert_eq!(r["user_latest"]["ok"], "alice", "{r}");
}

#[test]
fn crowd_npm_client_reads_users_groups_search_and_events() {
    let d = Directory::start();
    let r = node(&d, &["read"]);
    let alice = &r["alice"];
    assert_eq!(alice["username"], "alice", "{r}");
    assert_eq!(alice["firstname"], "Alice");
    assert_eq!(alice["lastname"], "Archer");
    assert_eq!(alice["displayname"], "Alice Archer");
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["active"], true);
    assert_eq!(alice["attributes"]["department"], "Engineering", "{r}");
    assert_eq!(alice["attributes"]["title"], "Engineer");
    assert_eq!(r["attributes"]["manager"], "bob", "{r}");
    assert_eq!(r["gina_active"], false, "{r}");
    assert_eq!(strings(&r["alice_groups"]), names(&["engineering"]));
    assert_eq!(
        strings(&r["alice_nested_groups"]),
        names(&["engineering", "everyone"])
    );
    assert_eq!(r["alice_in_engineering"]["ok"], "engineering", "{r}");
    assert_eq!(
        r["bob_in_engineering"]["type"], "MEMBERSHIP_NOT_FOUND",
        "{r}"
    );
    assert_eq!(r["group"]["groupname"], "engineering", "{r}");
    assert_eq!(
        strings(&r["engineering_users"]),
        names(&["alice", "carol", "dave"])
    );
    let everyone = strings(&r["everyone_nested_users"]);
    for u in ["alice", "carol", "dave", "eve"] {
        assert!(everyone.contains(&u.to_string()), "{everyone:?}");
    }
    let expanded = r["everyone_nested_expanded"].as_array().unwrap();
    assert!(
        expanded
            .iter()
            .any(|u| u["username"] == "alice" && u["active"] == true),
        "{r}"
    );
    assert_eq!(strings(&r["child_groups"]), names(&["engineering"]), "{r}");
    assert_eq!(strings(&r["parent_groups"]), names(&["everyone"]), "{r}");
    let xml = r["membership_xml"].as_str().unwrap();
    assert!(
        xml.contains("<membership group=\"sales\">") && xml.contains("<user name=\"bob\""),
        "{xml}"
    );
    // `name = "*a*" and active = true`: gina is inactive.
    assert_eq!(
        strings(&r["search_users"]),
        names(&["alice", "carol", "dave"]),
        "{r}"
    );
    assert_eq!(
        r["search_users_expanded"],
        serde_json::json!(["bob@example.com"])
    );
    assert_eq!(
        strings(&r["search_groups"]),
        names(&["engineering", "everyone", "sales"])
    );
    assert_eq!(strings(&r["search_or"]), names(&["alice", "bob"]), "{r}");
    assert_eq!(r["search_page_past_end"], serde_json::json!([]), "{r}");
    assert_eq!(r["search_huge_max"], 6, "{r}");
    assert!(r["search_malformed"]["error"].is_string(), "{r}");
    assert_eq!(r["user_missing"]["type"], "USER_NOT_FOUND", "{r}");
    assert_eq!(r["group_missing"]["type"], "GROUP_NOT_FOUND", "{r}");
    assert_eq!(
        r["wrong_password"]["type"], "APPLICATION_ACCESS_DENIED",
        "{r}"
    );
    assert_eq!(r["unknown_app"]["type"], "APPLICATION_ACCESS_DENIED", "{r}");
    assert_eq!(
        r["authenticate"]["type"], "INVALID_USER_AUTHENTICATION",
        "{r}"
    );
    assert!(r["add_to_group_refused"]["error"].is_string(), "{r}");
    assert!(r["cookie"]["ok"].is_object(), "{r}");
    let token = r["event"]["newEventToken"].as_str().unwrap().to_string();

    d.change_source(&token);
    let e = node(&d, &["events", &token]);
    let feed = &e["events"]["ok"];
    for who in ["alice", "dave", "eve", "frank", "bob"] {
        assert!(mentions(&feed["events"], who), "no event names {who}: {e}");
    }
    let gone = node(&d, &["events", "not-a-token"]);
    assert_eq!(gone["events"]["type"], "EVENT_TOKEN_EXPIRED", "{gone}");
}

/// One event of the replayed feed, as the replay prints it.
fn has_event(events: &Value, pred: impl Fn(&Value) -> bool) -> bool {
    events.as_array().is_some_and(|e| e.iter().any(pred))
}

#[test]
fn crowd_restcrowdclient_full_then_incremental_sync_replay() {
    let d = Directory::start();
    // Pages of 2: the connector's paging (start-index, max-results) is exercised over 6 users.
    let full = python(&d, "restcrowdclient_replay.py", &["full", "--page", "2"]);
    assert_eq!(full["problems"], serde_json::json!([]), "{full}");
    assert_eq!(full["test_connection"], true, "{full}");
    let users = full["users"].as_array().unwrap();
    let user_names: Vec<&str> = users.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(
        user_names,
        ["alice", "bob", "carol", "dave", "eve", "gina"],
        "{full}"
    );
    let alice = &users[0];
    assert_eq!(alice["active"], true);
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["first-name"], "Alice");
    assert_eq!(alice["display-name"], "Alice Archer");
    assert!(!alice["key"].as_str().unwrap_or("").is_empty(), "{alice}");
    assert_eq!(
        alice["attributes"]["department"],
        serde_json::json!(["Engineering"])
    );
    assert_eq!(alice["attributes"]["manager"], serde_json::json!(["bob"]));
    assert_eq!(users[5]["active"], false, "gina is inactive: {full}");
    let groups: Vec<&str> = full["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["engineering", "everyone", "sales"], "{full}");
    assert_eq!(full["groups"][0]["type"], "GROUP");
    assert_eq!(full["groups"][0]["active"], true);
    let m = &full["memberships"];
    assert_eq!(
        strings(&m["engineering"]["users"]),
        names(&["alice", "carol", "dave"]),
        "{m}"
    );
    assert_eq!(strings(&m["sales"]["users"]), names(&["bob"]));
    // 1 test + 1 token + 4 pages of users (2+2+2+0) + 2 of groups + 1 membership.
    let requests = full["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 9, "{full}");
    assert!(requests.iter().all(|r| r["status"] == 200), "{full}");
    let token = full["token"].as_str().unwrap().to_string();

    // Nothing changed: the feed is empty and the token holds.
    let quiet = python(&d, "restcrowdclient_replay.py", &["incremental", &token]);
    assert_eq!(quiet["problems"], serde_json::json!([]), "{quiet}");
    assert_eq!(quiet["first"]["events"], serde_json::json!([]), "{quiet}");

    d.change_source(&token);
    let inc = python(&d, "restcrowdclient_replay.py", &["incremental", &token]);
    assert_eq!(inc["problems"], serde_json::json!([]), "{inc}");
    let events = &inc["first"]["events"];
    assert!(
        has_event(events, |e| e["kind"] == "user"
            && e["op"] == "UPDATED"
            && e["user"]["name"] == "alice"
            && e["storedAttributes"]["title"]
                == serde_json::json!(["Staff engineer"])),
        "alice's new title: {inc}"
    );
    assert!(
        has_event(events, |e| e["kind"] == "user"
            && e["op"] == "UPDATED"
            && e["user"]["name"] == "dave"
            && e["user"]["active"] == false),
        "dave deactivated: {inc}"
    );
    assert!(
        has_event(events, |e| e["kind"] == "user"
            && e["op"] == "CREATED"
            && e["user"]["name"] == "frank"),
        "frank created: {inc}"
    );
    assert!(
        has_event(events, |e| e["kind"] == "user"
            && e["op"] == "DELETED"
            && e["user"]["name"] == "eve"),
        "eve deleted: {inc}"
    );
    assert!(
        has_event(events, |e| e["kind"] == "user-membership"
            && e["op"] == "CREATED"
            && e["user"] == "frank"
            && e["groups"] == serde_json::json!(["sales"])),
        "frank into sales: {inc}"
    );
    assert!(
        has_event(events, |e| e["kind"] == "user-membership"
            && e["op"] == "DELETED"
            && e["user"] == "bob"
            && e["groups"] == serde_json::json!(["sales"])),
        "bob out of sales: {inc}"
    );
    // The product stores the new token; asked again, nothing more.
    let new_token = inc["first"]["newEventToken"].as_str().unwrap();
    assert_ne!(new_token, token);
    assert_eq!(inc["again"]["events"], serde_json::json!([]), "{inc}");
    assert_eq!(inc["again"]["newEventToken"], new_token, "{inc}");

    // A token the server does not know: Crowd's EVENT_TOKEN_EXPIRED, in XML, so the product
    // falls back to a full synchronisation.
    let unknown = format!("{token}0");
    for bad in ["not-a-token", "0", unknown.as_str()] {
        let gone = python(&d, "restcrowdclient_replay.py", &["expired", bad]);
        assert_eq!(gone["problems"], serde_json::json!([]), "{gone}");
        let status = gone["status"].as_u64().unwrap();
        assert!((400..500).contains(&status), "{gone}");
        assert_eq!(gone["error"]["reason"], "EVENT_TOKEN_EXPIRED", "{gone}");
    }
    // The full synchronisation after it sees the change.
    let again = python(&d, "restcrowdclient_replay.py", &["full", "--page", "1000"]);
    assert_eq!(again["problems"], serde_json::json!([]), "{again}");
    let user_names: Vec<&str> = again["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        user_names,
        ["alice", "bob", "carol", "dave", "frank", "gina"],
        "{again}"
    );
    assert_eq!(
        strings(&again["memberships"]["sales"]["users"]),
        names(&["frank"])
    );
}

/// `idsync demo` also feeds a Crowd directory from the simulated tenant, prints what to enter in
/// Jira's "Add Crowd directory" screen (and those settings work), and the tenant's changes reach
/// its event feed.
#[test]
fn demo_feeds_a_crowd_directory_and_prints_jiras_settings() {
    let dir = tempfile::tempdir().unwrap();
    let o = super::idsync()
        .args([
            "demo",
            "--users",
            "60",
            "--groups",
            "5",
            "--memberships",
            "150",
            "--port",
            "0",
            "--exit",
            "--dir",
        ])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let field = |label: &str| -> String {
        t.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label:?} line: {t}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let url = field("Server URL:");
    assert_eq!(field("Application name:"), "jira", "{t}");
    let password = field("Application password:");
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/crowd/jira-dc"),
        "{t}"
    );
    assert!(t.contains("the Crowd directory serves 60 users"), "{t}");
    for what in [
        "new title in the Crowd event feed",
        "disabled user in the Crowd event feed",
        "newcomer in the Crowd event feed",
    ] {
        assert!(t.contains(&format!(": {what}")), "{what}: {t}");
    }
    // The printed settings are what the products' connector signs in with: a fresh store
    // serves the same directory (the demo has stopped; start `serve` on its config).
    let demo = dir.path().join("demo");
    let port = free_port();
    let config = std::fs::read_to_string(demo.join("idsync.toml")).unwrap();
    let listen = config
        .lines()
        .find_map(|l| l.strip_prefix("listen = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    std::fs::write(
        demo.join("idsync.toml"),
        config.replace(&listen, &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let _server = serve(&demo, port, &[]);
    let url = url.replace(&listen, &format!("127.0.0.1:{port}"));
    let r = reqwest::blocking::Client::new()
        .get(format!(
            "{url}/rest/usermanagement/1/search?entity-type=user&max-results=1000"
        ))
        .basic_auth("jira", Some(&password))
        .header("Accept", "application/json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().unwrap();
    assert!(
        body["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["name"] == "demo.newcomer@contoso.com"),
        "{body}"
    );
}
