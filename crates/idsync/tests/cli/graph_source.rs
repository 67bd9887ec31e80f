//! The Microsoft Graph source through the binary against `idsync sim graph` with faults:
//! replayed objects, B2C identity keys, synchronization resets, throttled batches, the token
//! scope, tenants without `$count`, the B2C extensions app, temporary errors and connection
//! resets; and the example configurations.

use super::{graph_sim, idsync, run_env, text, write_graph_config_signing_in, Server};
use idsync_connectors::targets::test::TestTarget;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;

const SECRET: &str = "client_secret = \"${env:IDSYNC_TEST_GRAPH_SECRET}\"";

/// The running simulator's admin API (`/_sim/...`) over its HTTPS, trusting its CA.
struct Sim {
    _server: Server,
    root: String,
    tenant: String,
    http: reqwest::blocking::Client,
}

impl Sim {
    fn start(dir: &Path, extra: &[&str]) -> Sim {
        let (server, root, tenant) = graph_sim(dir, extra);
        let ca = std::fs::read(dir.join("sim/ca.pem")).unwrap();
        let http = reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        Sim {
            _server: server,
            root,
            tenant,
            http,
        }
    }

    fn faults(&self, f: Value) {
        let r = self
            .http
            .post(format!("{}/_sim/faults", self.root))
            .json(&f)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{r:?}");
    }

    fn expire_delta_links(&self) {
        let r = self
            .http
            .post(format!("{}/_sim/expire-delta", self.root))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{r:?}");
    }

    fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_sim/stats", self.root))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// A config in `dir` reading this simulator with a client secret and `extra` keys.
    fn config(&self, dir: &Path, extra: &str) {
        // The config names the simulator's CA as sim/ca.pem, beside itself.
        write_graph_config_signing_in(dir, &self.root, &self.tenant, &format!("{SECRET}\n{extra}"));
    }
}

fn sync_ok(dir: &Path) {
    let o = run_env(dir, &["sync", "entra-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// The source's reads, newest first.
fn reads(dir: &Path) -> Vec<Value> {
    let o = run_env(dir, &["runs", "--source", "entra", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn count(read: &Value, what: &str) -> i64 {
    read["counts"][what].as_i64().unwrap_or(0)
}

/// A second directory on the same simulator (its own store and target).
fn sibling(dir: &Path, name: &str, sim: &Sim, extra: &str) -> std::path::PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(d.join("sim")).unwrap();
    std::fs::copy(dir.join("sim/ca.pem"), d.join("sim/ca.pem")).unwrap();
    sim.config(&d, extra);
    d
}

#[test]
fn graph_objects_replayed_in_a_delta_round_keep_one_id() {
    let dir = tempfile::tempdir().unwrap();
    // Pages of 40: the initial round has four pages of users, each repeating the last 7
    // objects of the page before.
    let sim = Sim::start(dir.path(), &["--max-page", "40"]);
    sim.faults(json!({"delta_replay": 7}));
    sim.config(dir.path(), "");
    sync_ok(dir.path());
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    assert_eq!(target.state().users.len(), 150);
    assert_eq!(target.state().groups.len(), 12);
    // The same tenant read without replays, into a store of its own: the changes a first
    // read logs (150 users, 12 groups, their memberships).
    sim.faults(json!({}));
    let calm = sibling(dir.path(), "calm", &sim, "");
    sync_ok(&calm);
    let expected = count(&reads(&calm)[0], "changes");
    assert!(expected > 162, "{expected}");
    // With replays, every object is still logged once.
    let first = &reads(dir.path())[0];
    assert_eq!(count(first, "changes"), expected, "{first}");

    // A later full read of the unchanged tenant (the delta links expired), replays and all,
    // finds nothing to change.
    sim.faults(json!({"delta_replay": 7}));
    sim.expire_delta_links();
    sync_ok(dir.path());
    let second = &reads(dir.path())[0];
    assert_eq!(count(second, "changes"), 0, "{second}");
    assert_eq!(second["mode"], "full", "{second}");
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    assert_eq!(target.state().users.len(), 150);
    assert_eq!(target.state().groups.len(), 12);
}

#[test]
fn graph_b2c_identity_keys_name_managers_and_members_by_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &["--b2c"]);
    sim.config(
        dir.path(),
        "tenant_type = \"b2c\"\nuser_name = \"identity:emailAddress\"\nkey = \"identity:emailAddress\"",
    );
    sync_ok(dir.path());
    let state = TestTarget::read_journal(&dir.path().join("target.jsonl"))
        .unwrap()
        .state();
    assert_eq!(state.users.len(), 150);
    let keys: BTreeSet<&str> = state
        .users
        .iter()
        .map(|u| u.user.source_id.as_str())
        .collect();
    assert!(
        keys.iter()
            .all(|k| k.starts_with("contoso.onmicrosoft.com/")),
        "{keys:?}"
    );
    // Everyone but the first of each block of 20 has a manager in the tenant: 150 - 8.
    let managers: Vec<&str> = state
        .users
        .iter()
        .filter_map(|u| u.user.manager.as_deref())
        .collect();
    let resolved = managers.iter().filter(|m| keys.contains(*m)).count();
    assert_eq!((managers.len(), resolved), (142, 142), "{managers:?}");
    // Group members are the same users.
    let member_total: usize = state.groups.iter().map(|g| g.members.len()).sum();
    assert!(member_total > 0);
}

#[test]
fn graph_sync_reset_follows_the_location_and_the_read_is_listed_as_full() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &["--max-page", "40"]);
    sim.config(dir.path(), "");
    sync_ok(dir.path());
    sync_ok(dir.path());
    assert_eq!(reads(dir.path())[0]["mode"], "incremental");

    sim.faults(json!({"delta_reset_location": true}));
    sim.expire_delta_links();
    sync_ok(dir.path());
    let read = &reads(dir.path())[0];
    assert_eq!(read["mode"], "full", "{read}");
    assert_eq!(read["status"], "succeeded", "{read}");
    assert_eq!(count(read, "changes"), 0, "{read}");
    // The users' link answered 410 with a Location: the new round began there.
    assert_eq!(sim.stats()["resyncs"], 1, "{}", sim.stats());
    // And the links it ended with work.
    sync_ok(dir.path());
    let next = &reads(dir.path())[0];
    assert_eq!(next["mode"], "incremental", "{next}");
    assert_eq!(count(next, "requests"), 2, "{next}");

    // A reset in the middle of a first round (the second page of users) starts that round
    // again from the Location, once: the read succeeds whole.
    let other = sibling(dir.path(), "other", &sim, "");
    sim.faults(json!({"fail_next": 1, "fail_match": "users/delta?$skiptoken", "error_status": 410, "delta_reset_location": true}));
    let o = run_env(&other, &["sync", "entra-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(sim.stats()["resyncs"], 2, "{}", sim.stats());
    let state = TestTarget::read_journal(&other.join("target.jsonl"))
        .unwrap()
        .state();
    assert_eq!(state.users.len(), 150);
}

#[test]
fn graph_batch_requests_throttled_on_every_retry_are_fetched_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    // Without delta, groups' members are read with $batch.
    let calm = sibling(dir.path(), "calm", &sim, "delta = false");
    sync_ok(&calm);
    let calm_state = TestTarget::read_journal(&calm.join("target.jsonl"))
        .unwrap()
        .state();

    sim.faults(json!({"batch_throttle": true, "retry_after_secs": 0}));
    let stormy = sibling(dir.path(), "stormy", &sim, "delta = false");
    let o = run_env(&stormy, &["sync", "entra-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let state = TestTarget::read_journal(&stormy.join("target.jsonl"))
        .unwrap()
        .state();
    let members = |s: &idsync_core::TargetSnapshot| -> usize {
        s.groups.iter().map(|g| g.members.len()).sum()
    };
    assert_eq!(state.groups.len(), 12);
    assert!(members(&calm_state) > 0);
    assert_eq!(members(&state), members(&calm_state));
    let read = &reads(&stormy)[0];
    assert!(count(read, "throttled") >= 12 * 9, "{read}");
}

#[test]
fn graph_token_scope_defaults_to_the_graph_url_and_can_be_set() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    // Default: <graph_url>/.default.
    sim.config(dir.path(), "");
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Graph's own scope, as a gateway in front of Graph would want it.
    sim.config(
        dir.path(),
        "token_scope = \"https://graph.microsoft.com/.default\"",
    );
    let o = run_env(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The key is what the token request carries: a scope the tenant does not know fails.
    sim.config(
        dir.path(),
        "token_scope = \"https://gateway.example.net/.default\"",
    );
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        text(&o).contains("AADSTS500011") && text(&o).contains("gateway.example.net"),
        "{}",
        text(&o)
    );
    sim.config(dir.path(), "token_scope = \"\"");
    let o = run_env(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("sources.entra.token_scope"),
        "{}",
        text(&o)
    );
}

#[test]
fn graph_source_check_counts_by_paging_where_count_is_not_answered() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    sim.faults(json!({"no_count": true}));
    sim.config(dir.path(), "");
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("in scope:    150 users, 12 groups"), "{t}");
}

#[test]
fn graph_temporary_errors_on_a_delta_link_are_retried_not_a_full_read() {
    let dir = tempfile::tempdir().unwrap();
    // Pages of 40: a full read is five pages (four of users, one of groups).
    let sim = Sim::start(dir.path(), &["--max-page", "40"]);
    sim.config(dir.path(), "");
    sync_ok(dir.path());
    sync_ok(dir.path());
    let calm = &reads(dir.path())[0];
    assert_eq!(
        (count(calm, "requests"), count(calm, "resource_units")),
        (2, 10),
        "{calm}"
    );

    // A 500 and then a 503 on the users' delta link: retried, still an incremental read of
    // one request more (the failed one costs no resource units), not a full read.
    for status in [500, 503] {
        sim.faults(json!({"fail_next": 1, "fail_match": "deltatoken", "error_status": status, "retry_after_secs": 0}));
        sync_ok(dir.path());
        let read = &reads(dir.path())[0];
        assert_eq!(read["mode"], "incremental", "{status}: {read}");
        assert_eq!(
            (
                count(read, "requests"),
                count(read, "retries"),
                count(read, "resource_units")
            ),
            (3, 1, 10),
            "{status}: {read}"
        );
    }

    // A link that keeps failing fails the read (exit 4) instead of reading everything; the
    // link is kept, and the next read is incremental again.
    sim.faults(json!({"fail_next": 100, "fail_match": "deltatoken", "error_status": 503, "retry_after_secs": 0}));
    let before = sim.stats()["requests"].as_u64().unwrap();
    let o = run_env(dir.path(), &["sync", "entra-to-app"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let failed = &reads(dir.path())[0];
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["mode"], "incremental", "{failed}");
    // The first try and eight retries of the users' link; nothing else.
    assert_eq!(sim.stats()["requests"].as_u64().unwrap() - before, 9);
    sim.faults(json!({}));
    sync_ok(dir.path());
    let read = &reads(dir.path())[0];
    assert_eq!(read["mode"], "incremental", "{read}");
    assert_eq!(count(read, "requests"), 2, "{read}");
}

#[test]
fn graph_a_connection_reset_mid_page_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &["--max-page", "40"]);
    let calm = sibling(dir.path(), "calm", &sim, "");
    sync_ok(&calm);
    let calm_read = &reads(&calm)[0];

    // The second page of users is cut off halfway through its body, once.
    sim.faults(json!({"reset_next": 1, "reset_match": "users/delta?$skiptoken"}));
    let cut = sibling(dir.path(), "cut", &sim, "");
    sync_ok(&cut);
    assert_eq!(sim.stats()["resets"], 1, "{}", sim.stats());
    let read = &reads(&cut)[0];
    assert_eq!(
        count(read, "requests"),
        count(calm_read, "requests") + 1,
        "{read} {calm_read}"
    );
    assert_eq!(count(read, "retries"), 1, "{read}");
    assert_eq!(count(read, "changes"), count(calm_read, "changes"));
    let state = TestTarget::read_journal(&cut.join("target.jsonl"))
        .unwrap()
        .state();
    assert_eq!(state.users.len(), 150);

    // So is the token request's answer.
    sim.faults(json!({"reset_next": 1, "reset_match": "oauth2/v2.0/token"}));
    let token = sibling(dir.path(), "token", &sim, "");
    sync_ok(&token);
    assert_eq!(sim.stats()["resets"], 2, "{}", sim.stats());
    let read = &reads(&token)[0];
    assert_eq!(
        count(read, "requests"),
        count(calm_read, "requests"),
        "{read}"
    );
    assert_eq!(count(read, "changes"), count(calm_read, "changes"));
}

/// `idsync sim graph --b2c` as a process, with every line it printed before serving.
fn b2c_sim(dir: &Path) -> (Server, Vec<String>) {
    use std::io::BufRead;
    let mut child = idsync()
        .args([
            "sim", "graph", "--users", "40", "--groups", "4", "--b2c", "--https",
        ])
        .arg("--cert-dir")
        .arg(dir.join("sim"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child, None);
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Ctrl-C");
        lines.push(line);
        if done {
            break;
        }
    }
    (server, lines)
}

#[test]
fn graph_sim_names_the_b2c_extensions_app_and_serves_its_extension_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, lines) = b2c_sim(dir.path());
    let all = lines.join("\n");
    let root = lines
        .iter()
        .find_map(|l| l.strip_prefix("Microsoft Graph simulator on "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{all}"))
        .to_string();
    let tenant = lines
        .iter()
        .find_map(|l| l.strip_prefix("tenant id:"))
        .unwrap_or_else(|| panic!("{all}"))
        .trim()
        .to_string();
    let app_id = lines
        .iter()
        .find_map(|l| l.strip_prefix("b2c-extensions-app: appId "))
        .and_then(|r| r.split(';').next())
        .unwrap_or_else(|| panic!("{all}"))
        .to_string();
    let expected = format!("extension_{}_loyaltyId", app_id.replace('-', ""));
    assert!(all.contains(&expected), "{all}");

    // What an admin does: find the app by name, then its extension properties.
    let ca = std::fs::read(dir.path().join("sim/ca.pem")).unwrap();
    let http = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let token: Value = http
        .post(format!("{root}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "11111111-2222-3333-4444-555555555555"),
            ("client_secret", "sim-secret"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let bearer = token["access_token"].as_str().unwrap().to_string();
    let apps: Value = http
        .get(format!("{root}/v1.0/applications"))
        .query(&[("$filter", "startswith(displayName,'b2c-extensions-app')")])
        .bearer_auth(&bearer)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let found = apps["value"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{apps}");
    assert_eq!(found[0]["appId"], app_id.as_str(), "{apps}");
    let id = found[0]["id"].as_str().unwrap();
    let props: Value = http
        .get(format!("{root}/v1.0/applications/{id}/extensionProperties"))
        .bearer_auth(&bearer)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&str> = props["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, vec![expected.as_str()], "{props}");

    // The printed source table reads the tenant with that attribute.
    let table: String = lines
        .iter()
        .skip_while(|l| !l.starts_with("[sources.entra]"))
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        table.contains(&format!("extensions = [\"{expected}\"]")),
        "{table}"
    );
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!(
            "[store]\npath = \"idsync.db\"\n\n{table}\n[targets.app]\ntype = \"test\"\njournal = \"target.jsonl\"\n\n[flows.entra-to-app]\nsource = \"entra\"\ntarget = \"app\"\n"
        ),
    )
    .unwrap();
    let o = run_env(dir.path(), &["sync", "entra-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let state = TestTarget::read_journal(&dir.path().join("target.jsonl"))
        .unwrap()
        .state();
    assert_eq!(state.users.len(), 40);
    assert!(state
        .users
        .iter()
        .all(|u| u.user.custom.contains_key("loyaltyId")));
}

#[test]
fn example_graph_configurations_pass_config_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let cert = Path::new(env!("CARGO_MANIFEST_DIR")).join("../idsync-sim/fixtures/app-cert.pem");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(root.join("msgraph")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        // Each file as an admin would place it: beside the certificate it names.
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&path, dir.path().join("idsync.toml")).unwrap();
        std::fs::copy(&cert, dir.path().join("entra-app.pem")).unwrap();
        let o = idsync()
            .arg("--config")
            .arg(dir.path().join("idsync.toml"))
            .args(["config", "check"])
            .env("GRAPH_CLIENT_SECRET", "example-secret")
            .env("B2C_CLIENT_SECRET", "example-secret")
            .env("ATLASSIAN_SCIM_TOKEN", "example-token")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}: {}", path.display(), text(&o));
        checked.push(path.file_name().unwrap().to_string_lossy().to_string());
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "b2c-certificate.toml",
            "b2c-secret.toml",
            "entra-certificate.toml",
            "entra-secret.toml"
        ],
        "every Graph example is checked"
    );
}
