//! Issue 17 (engineer B): a target of type crowd, served by `idsync serve` under
//! `/crowd/<target>/rest/usermanagement/1/`, read with HTTP as a product reads it: a file
//! source feeds a flow whose ledger is the served directory; applications authenticate with
//! Basic credentials made by `idsync crowd app create`.

use super::{free_port, run, serve, text, wait_for};
use std::path::Path;

const USERS_HEAD: &str =
    "sourceId,userName,givenName,familyName,email,active,department,title,employeeId,phone,custom.costCenter,groups\n";
const ANN: &str =
    "u1,ann,Ann,Lee,ann@example.com,true,Engineering,Staff Engineer,E-001,+1 555 0101,CC-7,g-dev\n";
const BOB: &str = "u2,bob,Bob,Ray,bob@example.com,true,Operations,Operator,E-002,,,g-dev;g-ops\n";
const BOB_DISABLED: &str =
    "u2,bob,Bob,Ray,bob@example.com,false,Operations,Operator,E-002,,,g-dev;g-ops\n";
const CARL: &str = "u3,carl,Carl,Oz,carl@example.com,true,Sales,Seller,E-003,,,g-ops\n";

fn write_users(dir: &Path, rows: &[&str]) {
    std::fs::write(
        dir.join("users.csv"),
        format!("{USERS_HEAD}{}", rows.concat()),
    )
    .unwrap();
}

fn write_crowd_config(dir: &Path, extra: &str) {
    std::fs::write(
        dir.join("groups.csv"),
        "sourceId,displayName,description\ng-dev,developers,Developers\ng-ops,operations,\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("idsync.toml"),
        format!(
            r#"[store]
path = "idsync.db"

[sources.hr]
type = "file"
format = "csv"
users = "users.csv"
groups = "groups.csv"

[targets.dc]
type = "crowd"
description = "Jira and Confluence"

[flows.hr-to-dc]
source = "hr"
target = "dc"
deprovision = "disable"
{extra}
"#
        ),
    )
    .unwrap();
}

/// Change the flow's deprovision policy (the served directory is read by `idsync serve`; the
/// policy is the syncing process's).
fn set_deprovision(dir: &Path, policy: &str) {
    let path = dir.join("idsync.toml");
    let toml = std::fs::read_to_string(&path).unwrap();
    let line = toml
        .lines()
        .find(|l| l.starts_with("deprovision = "))
        .unwrap()
        .to_string();
    std::fs::write(
        &path,
        toml.replace(&line, &format!("deprovision = \"{policy}\"")),
    )
    .unwrap();
}

/// `idsync crowd app create`: the password it prints once (second line).
fn create_app(dir: &Path, args: &[&str]) -> String {
    let o = run(
        dir,
        &[&["crowd", "app", "create", "--target", "dc"], args].concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("/crowd/dc"), "{out}");
    out.lines().nth(1).unwrap().trim().to_string()
}

struct Product {
    http: reqwest::blocking::Client,
    base: String,
    app: String,
    password: String,
}

impl Product {
    fn new(port: u16, app: &str, password: &str) -> Self {
        Product {
            http: reqwest::blocking::Client::new(),
            base: format!("http://127.0.0.1:{port}/crowd/dc/rest/usermanagement/1"),
            app: app.to_string(),
            password: password.to_string(),
        }
    }

    /// GET `resource` (with its query) in `accept`: status, body.
    fn get(&self, resource: &str, accept: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}/{resource}", self.base))
            .basic_auth(&self.app, Some(&self.password))
            .header("Accept", accept)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    fn json(&self, resource: &str) -> serde_json::Value {
        let (status, body) = self.get(resource, "application/json");
        assert_eq!(status, 200, "GET {resource}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {resource}: {e}: {body}"))
    }
}

const JSON: &str = "application/json";
const XML: &str = "application/xml";

/// A user's Crowd attribute values by name, from the JSON entity (`attributes.attributes`).
fn attribute(user: &serde_json::Value, name: &str) -> Option<String> {
    user["attributes"]["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == name)
        .and_then(|a| a["values"][0].as_str())
        .map(str::to_string)
}

#[test]
fn crowd_targets_take_one_flow_and_no_reconcile_interval() {
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path(), &[ANN]);
    write_crowd_config(
        dir.path(),
        "full_reconcile_interval = \"1d\"\n\n[flows.second]\nsource = \"hr\"\ntarget = \"dc\"\n\n[targets.lonely]\ntype = \"crowd\"\nevent_retention = \"5s\"\nurl = \"http://x\"\n",
    );
    let o = run(dir.path(), &["config", "check"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    for expected in [
        "flows.hr-to-dc.full_reconcile_interval: target \"dc\" is served by idsync",
        "flows.second.target: crowd target \"dc\" is already fed by flow \"hr-to-dc\"",
        "targets.lonely: a crowd target needs exactly one flow feeding it",
        "targets.lonely.event_retention: must be at least 1m",
        "targets.lonely.url: unknown key",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // Each error names the file and its line.
    assert!(
        out.contains("idsync.toml:18:27: flows.hr-to-dc.full_reconcile_interval"),
        "{out}"
    );
}

#[test]
fn crowd_apps_are_created_listed_revoked_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path(), &[ANN]);
    write_crowd_config(dir.path(), "");
    let pw = create_app(dir.path(), &["--name", "jira", "--allow", "10.0.0.0/8"]);
    assert_eq!(pw.len(), 48, "{pw}");
    // Only the argon2 hash is kept.
    let db = std::fs::read(dir.path().join("idsync.db")).unwrap();
    let wal = std::fs::read(dir.path().join("idsync.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(!bytes.windows(pw.len()).any(|w| w == pw.as_bytes()));
    }
    for (args, expected) in [
        (
            vec!["--name", "jira"],
            "already has a live application named \"jira\"",
        ),
        (
            vec!["--name", "conf", "--allow", "jira example.com"],
            "--allow \"jira example.com\" is not an address, a CIDR range such as 10.0.0.0/8 or 2001:db8::/32, or a host name",
        ),
    ] {
        let o = run(
            dir.path(),
            &[&["crowd", "app", "create", "--target", "dc"], &args[..]].concat(),
        );
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(expected), "{}", text(&o));
    }
    let o = run(
        dir.path(),
        &["crowd", "app", "create", "--target", "nope", "--name", "x"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("no target named \"nope\""),
        "{}",
        text(&o)
    );

    let o = run(dir.path(), &["crowd", "app", "list", "--json"]);
    let apps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(apps.as_array().unwrap().len(), 1, "{apps}");
    assert_eq!(apps[0]["name"], "jira");
    assert_eq!(apps[0]["allow"][0], "10.0.0.0/8");
    assert!(apps[0].get("hash").is_none(), "{apps}");

    let o = run(
        dir.path(),
        &["crowd", "app", "revoke", "--target", "dc", "--name", "jira"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(
        dir.path(),
        &["crowd", "app", "revoke", "--target", "dc", "--name", "jira"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // A revoked name can be made again.
    create_app(dir.path(), &["--name", "jira"]);

    let o = run(dir.path(), &["audit", "--json"]);
    let audit: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let actions: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (action, outcome, n) in [
        ("crowd_app.create", "ok", 2),
        ("crowd_app.create", "refused", 3),
        ("crowd_app.revoke", "ok", 1),
        ("crowd_app.revoke", "refused", 1),
    ] {
        let seen = actions
            .iter()
            .filter(|(a, o)| a == action && o == outcome)
            .count();
        assert_eq!(seen, n, "{action} {outcome} in {actions:?}");
    }
}

#[test]
fn crowd_target_serves_the_flows_ledger_to_applications() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_users(d, &[ANN, BOB, CARL]);
    // The test runs the flow itself (`idsync sync`) while serve serves it: serve's follower
    // stays out of the way (it could take the flow's lease between a sync's read and its run,
    // and the sync would then refuse as busy).
    write_crowd_config(d, "enabled = false");
    let o = run(d, &["sync", "hr-to-dc"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A reconcile has nothing remote to compare: refused, and said so; refusals are not bad
    // runs of the flow (three would quarantine it).
    for args in [
        &["sync", "hr-to-dc", "--full"][..],
        &["plan", "hr-to-dc", "--full"],
    ] {
        for _ in 0..3 {
            let o = run(d, args);
            assert_eq!(o.status.code(), Some(2), "{}", text(&o));
            assert!(
                text(&o).contains("nothing remote to reconcile against"),
                "{}",
                text(&o)
            );
        }
    }
    let o = run(d, &["quarantine"]);
    let health = text(&o);
    let line = health.lines().find(|l| l.starts_with("hr-to-dc")).unwrap();
    assert!(
        line.contains(" ok ") && !line.contains("quarantined"),
        "{health}"
    );

    let jira_pw = create_app(d, &["--name", "jira"]);
    let bamboo_pw = create_app(d, &["--name", "bamboo"]);
    let conf_pw = create_app(d, &["--name", "confluence", "--allow", "10.0.0.0/8"]);
    let fisheye_pw = create_app(
        d,
        &[
            "--name",
            "fisheye",
            "--allow",
            "10.0.0.0/8",
            "--allow",
            "127.0.0.0/8",
        ],
    );
    // A host name allows the addresses it resolves to (as Crowd takes them).
    let bitbucket_pw = create_app(d, &["--name", "bitbucket", "--allow", "localhost"]);
    let port = free_port();
    let _server = serve(d, port, &[]);
    let said = std::fs::read_to_string(d.join("serve.log")).unwrap();
    assert!(
        said.contains(&format!(
            "crowd directory dc (Jira and Confluence; flow hr-to-dc): Crowd server URL http://127.0.0.1:{port}/crowd/dc"
        )),
        "{said}"
    );
    let jira = Product::new(port, "jira", &jira_pw);
    // The admin API says the same of a reconcile (400, not a server error).
    let r = reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/api/v1/flows/hr-to-dc/sync"
        ))
        .json(&serde_json::json!({"mode": "reconcile"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r
        .text()
        .unwrap()
        .contains("nothing remote to reconcile against"));

    // A user with its attributes, in JSON and in XML.
    let ann = jira.json("user?username=ann&expand=attributes");
    assert_eq!(ann["name"], "ann", "{ann}");
    assert_eq!(ann["active"], true, "{ann}");
    assert_eq!(ann["email"], "ann@example.com", "{ann}");
    assert_eq!(ann["first-name"], "Ann", "{ann}");
    assert_eq!(
        attribute(&ann, "department").as_deref(),
        Some("Engineering")
    );
    assert_eq!(attribute(&ann, "costCenter").as_deref(), Some("CC-7"));
    let (status, xml) = jira.get("user?username=ann&expand=attributes", XML);
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("name=\"ann\""), "{xml}");
    assert!(xml.contains("<active>true</active>"), "{xml}");
    assert!(xml.contains("Staff Engineer"), "{xml}");

    // Version `latest` is version 1, as in Crowd (atlassian-python-api asks for it).
    let latest = Product {
        base: jira
            .base
            .replace("/usermanagement/1", "/usermanagement/latest"),
        ..Product::new(port, "jira", &jira_pw)
    };
    assert_eq!(latest.json("user?username=ann")["name"], "ann");
    assert_eq!(latest.get("user?username=ann", JSON).0, 200);
    let (status, body) = Product {
        base: jira.base.replace("/usermanagement/1", "/usermanagement/2"),
        ..Product::new(port, "jira", &jira_pw)
    }
    .get("user?username=ann", JSON);
    assert_eq!(status, 404, "{body}");

    // Group members, and every membership in one call.
    let members = jira.json("group/user/direct?groupname=developers");
    let names = members.to_string();
    assert!(
        names.contains("\"ann\"") && names.contains("\"bob\""),
        "{names}"
    );
    assert!(!names.contains("\"carl\""), "{names}");
    let (status, memberships) = jira.get("group/membership", XML);
    assert_eq!(status, 200, "{memberships}");
    assert!(
        memberships.contains("group=\"operations\"") && memberships.contains("name=\"carl\""),
        "{memberships}"
    );

    // The event token now; then bob is disabled in the source and carl leaves it: with
    // deprovision = "disable" both are served inactive.
    let token = jira.json("event")["newEventToken"]
        .as_str()
        .unwrap()
        .to_string();
    write_users(d, &[ANN, BOB_DISABLED]);
    // Plan and dry run work as for any target, and change nothing the products see.
    for args in [
        &["plan", "hr-to-dc"][..],
        &["sync", "hr-to-dc", "--dry-run"],
    ] {
        let o = run(d, args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let out = text(&o);
        assert!(
            out.contains("disable user carl") && out.contains("bob"),
            "{out}"
        );
    }
    assert_eq!(jira.json("user?username=carl")["active"], true);
    let unchanged = jira.json(&format!("event/{token}"));
    assert_eq!(
        unchanged["events"].as_array().map(Vec::len),
        Some(0),
        "{unchanged}"
    );
    let o = run(d, &["sync", "hr-to-dc"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for name in ["bob", "carl"] {
        let user = jira.json(&format!("user?username={name}"));
        assert_eq!(user["active"], false, "{user}");
        let (status, xml) = jira.get(&format!("user?username={name}"), XML);
        assert_eq!(status, 200, "{xml}");
        assert!(xml.contains("<active>false</active>"), "{xml}");
    }

    // With deprovision = "delete", carl is gone from the directory.
    set_deprovision(d, "delete");
    let o = run(d, &["sync", "hr-to-dc"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The run is in the history with its operations, as for any target.
    let o = run(d, &["runs", "--flow", "hr-to-dc", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let last = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dry_run"] == false && r["counts"]["delete_user.applied"] == 1)
        .unwrap_or_else(|| panic!("{runs}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = run(d, &["log", &last]);
    assert!(text(&o).contains("carl"), "{}", text(&o));
    let (status, body) = jira.get("user?username=carl", JSON);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("USER_NOT_FOUND"), "{body}");
    let (status, body) = jira.get("user?username=carl", XML);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("<reason>USER_NOT_FOUND</reason>"), "{body}");
    assert_eq!(jira.json("user?username=bob")["active"], false);

    // The events since the token: bob and carl updated (inactive), carl deleted.
    let since = jira.json(&format!("event/{token}"));
    let events = since["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{since}"));
    // Each event is one entity (`userEvent`, `userMembershipEvent`, ...) with its operation.
    let of = |e: &serde_json::Value| {
        e.as_object()
            .and_then(|o| o.values().next())
            .cloned()
            .unwrap_or_default()
    };
    for name in ["bob", "carl"] {
        assert!(
            events.iter().map(of).any(|e| e["operation"] == "UPDATED"
                && e["user"]["name"] == name
                && e["user"]["active"] == false),
            "{name} in {since}"
        );
    }
    assert!(
        events
            .iter()
            .map(of)
            .any(|e| e["operation"] == "DELETED" && e["user"]["name"] == "carl"),
        "{since}"
    );
    let next = since["newEventToken"].as_str().unwrap();
    assert_ne!(next, token);
    let (status, xml) = jira.get(&format!("event/{next}"), XML);
    assert_eq!(status, 200, "{xml}");
    // A token that is not the feed's answers as Crowd does (the product syncs in full).
    let (status, body) = jira.get("event/not-a-token", JSON);
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(body.contains("EVENT_TOKEN_EXPIRED"), "{body}");

    // Applications that are not let in.
    let http = reqwest::blocking::Client::new();
    let url = format!("{}/user?username=ann", jira.base);
    let r = http.get(&url).header("Accept", JSON).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    for (app, pw) in [("nobody", jira_pw.as_str()), ("jira", "wrong")] {
        let r = http
            .get(&url)
            .basic_auth(app, Some(pw))
            .header("Accept", JSON)
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{app}");
        let body = r.text().unwrap();
        assert!(body.contains("APPLICATION_ACCESS_DENIED"), "{body}");
    }
    let (status, body) = Product::new(port, "confluence", &conf_pw).get("user?username=ann", XML);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("<reason>APPLICATION_ACCESS_DENIED</reason>") && body.contains("127.0.0.1"),
        "{body}"
    );
    assert_eq!(
        Product::new(port, "fisheye", &fisheye_pw)
            .get("user?username=ann", XML)
            .0,
        200
    );
    let (status, body) =
        Product::new(port, "bitbucket", &bitbucket_pw).get("user?username=ann", XML);
    assert_eq!(
        status, 200,
        "an application allowed by the host name localhost: {body}"
    );
    // A body over the cap is refused with Crowd's body.
    let r = http
        .post(format!("{}/search?entity-type=user", jira.base))
        .basic_auth("jira", Some(&jira_pw))
        .header("Accept", JSON)
        .header("Content-Type", XML)
        .body(vec![b' '; 300 * 1024])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert!(r.text().unwrap().contains("ILLEGAL_ARGUMENT"));
    // A second application with its own credentials; jira's password is not bamboo's.
    let bamboo = Product::new(port, "bamboo", &bamboo_pw);
    assert_eq!(bamboo.json("user?username=ann")["name"], "ann");
    assert_eq!(
        Product::new(port, "bamboo", &jira_pw)
            .get("user?username=ann", JSON)
            .0,
        401
    );

    // Revoking jira refuses it (within the server's recheck interval), bamboo goes on.
    let o = run(
        d,
        &["crowd", "app", "revoke", "--target", "dc", "--name", "jira"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    wait_for("jira refused after its revocation", || {
        (jira.get("user?username=ann", JSON).0 == 401).then_some(())
    });
    assert_eq!(bamboo.get("user?username=ann", JSON).0, 200);
    let o = run(d, &["crowd", "app", "list", "--target", "dc", "--json"]);
    let apps: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let bamboo_row = apps
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "bamboo")
        .unwrap();
    assert!(bamboo_row["last_used_ms"].is_i64(), "{apps}");

    // Wrong credentials are rate-limited per address (10 in a burst): 429 with Retry-After,
    // before any password is checked; an application already verified goes on.
    let guesser = Product::new(port, "bamboo", "guess");
    let mut answers = Vec::new();
    for _ in 0..12 {
        let r = guesser
            .http
            .get(format!("{}/user?username=ann", guesser.base))
            .basic_auth("bamboo", Some("guess"))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        if status == 429 {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
            assert!(r.text().unwrap().contains("APPLICATION_ACCESS_DENIED"));
        }
        answers.push(status);
    }
    assert!(answers.contains(&429), "{answers:?}");
    assert!(answers.iter().take(6).all(|s| *s == 401), "{answers:?}");
    assert_eq!(bamboo.get("user?username=ann", JSON).0, 200);
}

#[test]
fn crowd_applications_count_against_the_servers_request_rate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_users(d, &[ANN]);
    write_crowd_config(d, "\n[server]\nscim_rate = 0.01\nscim_burst = 3\n");
    let o = run(d, &["sync", "hr-to-dc"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let jira = Product::new(0, "jira", &create_app(d, &["--name", "jira"]));
    let bamboo_pw = create_app(d, &["--name", "bamboo"]);
    let port = free_port();
    let _server = serve(d, port, &[]);
    let jira = Product::new(port, "jira", &jira.password);
    let statuses: Vec<u16> = (0..4)
        .map(|_| jira.get("user?username=ann", XML).0)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    let r = jira
        .http
        .get(format!("{}/user?username=ann", jira.base))
        .basic_auth("jira", Some(&jira.password))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // Each application has its own budget.
    assert_eq!(
        Product::new(port, "bamboo", &bamboo_pw)
            .get("user?username=ann", XML)
            .0,
        200
    );
}

/// Issue 17 (engineer D): after a change in the source, the event feed answers without the
/// directory being built again, and the next read shows the change from the directory updated
/// in place (the server's log says which it did).
#[test]
fn crowd_directory_follows_a_change_in_place_and_events_never_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_users(d, &[ANN, BOB, CARL]);
    write_crowd_config(d, "enabled = false");
    let o = run(d, &["sync", "hr-to-dc"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let pw = create_app(d, &["--name", "jira"]);
    let port = free_port();
    // serve with its log (stderr) in a file, to see what the directory did.
    let mut cmd = super::idsync();
    cmd.arg("--config")
        .arg(d.join("idsync.toml"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "idsync_server=info")
        .stdout(std::fs::File::create(d.join("serve.log")).unwrap())
        .stderr(std::fs::File::create(d.join("serve.err")).unwrap());
    let _server = super::Server(cmd.spawn().unwrap(), Some(d.join("serve.err")));
    let http = reqwest::blocking::Client::new();
    wait_for("healthz", || {
        http.get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
    let jira = Product::new(port, "jira", &pw);
    let log = || std::fs::read_to_string(d.join("serve.err")).unwrap();
    let builds = || log().matches("served crowd directory built").count();

    // The current token needs no directory: none is built for it.
    let token = jira.json("event")["newEventToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(builds(), 0, "{}", log());
    // The first read builds it, once.
    assert_eq!(jira.json("user?username=bob")["active"], true);
    wait_for("the first build in the log", || {
        (builds() == 1).then_some(())
    });

    // bob is disabled and dan joins, in operations, in the source.
    const DAN: &str = "u4,dan,Dan,Ng,dan@example.com,true,Sales,Seller,E-004,,,g-ops\n";
    write_users(d, &[ANN, BOB_DISABLED, CARL, DAN]);
    let o = run(d, &["sync", "hr-to-dc"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // The feed answers with the change, without a build.
    let events = jira.json(&format!("event/{token}"));
    assert!(
        events.to_string().contains("\"bob\""),
        "the feed says bob changed: {events}"
    );
    assert_eq!(builds(), 1, "{}", log());

    // The next read shows the change, from the directory updated in place.
    let bob = jira.json("user?username=bob");
    assert_eq!(bob["active"], false, "{bob}");
    assert_eq!(jira.json("user?username=dan")["key"], "u4");
    let ops = jira
        .json("group/user/direct?groupname=operations")
        .to_string();
    assert!(ops.contains("\"dan\"") && ops.contains("\"carl\""), "{ops}");
    wait_for("the update in the log", || {
        log()
            .contains("served crowd directory updated in place")
            .then_some(())
    });
    assert_eq!(builds(), 1, "built again instead of updated: {}", log());
}

/// A group renamed in the source follows the flow's `group_rename` policy (issue 17): the
/// products grant permissions by group name, so by default the served group keeps its old
/// name (and the permissions granted to it); with `recreate` the group is served under its new
/// name only, with the members (the directory is the target: nothing keeps the old one).
#[test]
fn a_group_renamed_in_the_source_follows_the_flows_rename_policy() {
    for (policy, extra) in [("keep", ""), ("recreate", "group_rename = \"recreate\"\n")] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_users(d, &[ANN, BOB]);
        write_crowd_config(d, extra);
        let o = run(d, &["sync", "hr-to-dc"]);
        assert_eq!(o.status.code(), Some(0), "{policy}: {}", text(&o));
        std::fs::write(
            d.join("groups.csv"),
            "sourceId,displayName,description\ng-dev,engineers,Developers\ng-ops,operations,\n",
        )
        .unwrap();
        let o = run(d, &["plan", "hr-to-dc"]);
        assert_eq!(o.status.code(), Some(0), "{policy}: {}", text(&o));
        let plan = text(&o);
        let o = run(d, &["sync", "hr-to-dc"]);
        assert_eq!(o.status.code(), Some(0), "{policy}: {}", text(&o));
        let pw = create_app(d, &["--name", "jira"]);
        let port = free_port();
        let _server = serve(d, port, &[]);
        let jira = Product::new(port, "jira", &pw);
        let members = |group: &str| -> Vec<String> {
            let v = jira.json(&format!("group/user/direct?groupname={group}"));
            let mut names: Vec<String> = v["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["name"].as_str().unwrap().to_string())
                .collect();
            names.sort();
            names
        };
        let (old, new) = if policy == "keep" {
            ("developers", "engineers")
        } else {
            ("engineers", "developers")
        };
        assert_eq!(members(old), ["ann", "bob"], "{policy}: {plan}");
        let (status, body) = jira.get(&format!("group?groupname={new}"), JSON);
        assert_eq!(status, 404, "{policy}: {body}");
        if policy == "keep" {
            assert!(
                plan.contains("keeps its name") && plan.contains("engineers"),
                "{plan}"
            );
        }
    }
}
