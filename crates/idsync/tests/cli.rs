//! End-to-end tests through the real `idsync` binary: config check errors, plan, sync, runs,
//! log, serve; and the crash test (kill -9 during apply, rerun, nothing duplicated or lost).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "cli/confluence.rs"]
mod confluence;
#[path = "cli/crowd_clients.rs"]
mod crowd_clients;
#[path = "cli/reliability.rs"]
mod reliability;
#[path = "cli/scim_adapt.rs"]
mod scim_adapt;
#[path = "cli/scim_attrs.rs"]
mod scim_attrs;
#[path = "cli/scim_keeps.rs"]
mod scim_keeps;
#[path = "cli/scim_matching.rs"]
mod scim_matching;
#[path = "cli/scim_members.rs"]
mod scim_members;
#[path = "cli/scim_peers.rs"]
mod scim_peers;
#[path = "cli/scim_shape.rs"]
mod scim_shape;

use graph_cli::APP_CERT;
use idsync_connectors::targets::test::TestTarget;
use notify::{mail_python, webhook_receiver};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "cli/bamboo.rs"]
mod bamboo;
#[path = "cli/basics.rs"]
mod basics;
#[path = "cli/bitbucket.rs"]
mod bitbucket;
#[path = "cli/browser.rs"]
mod browser;
#[path = "cli/crowd_nested.rs"]
mod crowd_nested;
#[path = "cli/crowd_serve.rs"]
mod crowd_serve;
#[path = "cli/demo.rs"]
mod demo;
#[path = "cli/fisheye.rs"]
mod fisheye;
#[path = "cli/graph_cli.rs"]
mod graph_cli;
#[path = "cli/graph_source.rs"]
mod graph_source;
#[path = "cli/hostile.rs"]
mod hostile;
#[path = "cli/jira.rs"]
mod jira;
#[path = "cli/jira_admin.rs"]
mod jira_admin;
#[path = "cli/jira_listing.rs"]
mod jira_listing;
#[path = "cli/jira_seats.rs"]
mod jira_seats;
#[path = "cli/logins.rs"]
mod logins;
#[path = "cli/notify.rs"]
mod notify;
#[path = "cli/scim_endpoint.rs"]
mod scim_endpoint;
#[path = "cli/security.rs"]
mod security;
#[path = "cli/serving.rs"]
mod serving;
#[path = "cli/sso.rs"]
mod sso;

fn idsync() -> Command {
    Command::new(env!("CARGO_BIN_EXE_idsync"))
}

fn run(dir: &Path, args: &[&str]) -> Output {
    idsync()
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write_people_csv(dir: &Path, n: usize) {
    let mut users =
        String::from("sourceId,userName,givenName,familyName,email,department,groups\n");
    for i in 0..n {
        let g = if i % 3 == 0 { "g-eng" } else { "g-all" };
        users.push_str(&format!(
            "id-{i:06},user{i}@example.com,User,Number {i},user{i}@example.com,Dept {},{g}\n",
            i % 7
        ));
    }
    std::fs::write(dir.join("users.csv"), users).unwrap();
    std::fs::write(
        dir.join("groups.csv"),
        "sourceId,displayName,description\ng-all,everyone,All staff\ng-eng,engineering,\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("memberships.csv"),
        "group,member,kind\ng-all,g-eng,group\n",
    )
    .unwrap();
}

fn write_config(dir: &Path, extra_flow: &str) {
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
memberships = "memberships.csv"

[targets.app]
type = "test"
journal = "target.jsonl"

[flows.hr-to-app]
source = "hr"
target = "app"
{extra_flow}
"#
        ),
    )
    .unwrap();
}

/// Add `lines` to the test target's table of the config `write_config` wrote.
fn with_test_target_keys(dir: &Path, lines: &str) {
    let path = dir.join("idsync.toml");
    let toml = std::fs::read_to_string(&path).unwrap();
    assert!(toml.contains("journal = \"target.jsonl\""), "{toml}");
    std::fs::write(
        &path,
        toml.replace(
            "journal = \"target.jsonl\"",
            &format!("journal = \"target.jsonl\"\n{lines}"),
        ),
    )
    .unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `idsync serve`, stopped when dropped; its log is printed when the test fails.
struct Server(std::process::Child, Option<PathBuf>);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if let (true, Some(log)) = (std::thread::panicking(), &self.1) {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            eprintln!("--- idsync serve's log ({}):\n{text}", log.display());
        }
    }
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `idsync serve` on `port` with the config in `dir`, started and answering /healthz.
fn serve(dir: &Path, port: u16, env: &[(&str, &str)]) -> Server {
    let mut cmd = idsync();
    cmd.arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(std::fs::File::create(dir.join("serve.log")).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server(cmd.spawn().unwrap(), Some(dir.join("serve.log")));
    let http = reqwest::blocking::Client::new();
    wait_for("healthz", || {
        http.get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
    server
}

/// `idsync token create DIRECTORY [args]`: the secret it prints once.
fn create_token(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, &[&["token", "create"], args].concat());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_string()
}

fn idsync_scim_peer() -> (Server, tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("idsync.toml"),
        // No rate per token: the tests that push through it check other things, at full speed.
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\nscim_rate = 0\n\n[sources.apps]\ntype = \"scim\"\n"),
    )
    .unwrap();
    let token = create_token(dir.path(), &["apps"]);
    let server = serve(dir.path(), port, &[]);
    (
        server,
        dir,
        format!("http://127.0.0.1:{port}/scim/v2/apps"),
        token,
    )
}

/// `idsync sim graph` as a process: its root URL and tenant id, read from what it prints.
fn graph_sim(dir: &Path, extra: &[&str]) -> (Server, String, String) {
    use std::io::BufRead;
    let mut child = idsync()
        .args([
            "sim",
            "graph",
            "--users",
            "150",
            "--groups",
            "12",
            "--memberships",
            "400",
            "--https",
            "--cert-dir",
        ])
        .arg(dir.join("sim"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child, None);
    let (mut root, mut tenant) = (String::new(), String::new());
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(r) = line.strip_prefix("Microsoft Graph simulator on ") {
            root = r.split_whitespace().next().unwrap().to_string();
        }
        if let Some(t) = line.strip_prefix("tenant id:") {
            tenant = t.trim().to_string();
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    assert!(
        root.starts_with("https://127.0.0.1:") && !tenant.is_empty(),
        "{root} {tenant}"
    );
    (server, root, tenant)
}

fn write_graph_config(dir: &Path, root: &str, tenant: &str) {
    write_graph_config_signing_in(
        dir,
        root,
        tenant,
        "client_secret = \"${env:IDSYNC_TEST_GRAPH_SECRET}\"",
    );
}

fn write_graph_config_signing_in(dir: &Path, root: &str, tenant: &str, credential: &str) {
    std::fs::write(
        dir.join("idsync.toml"),
        format!(
            r#"[store]
path = "idsync.db"

[sources.entra]
type = "msgraph"
tenant = "{tenant}"
client_id = "11111111-2222-3333-4444-555555555555"
{credential}
authority = "{root}"
graph_url = "{root}"
ca_file = "sim/ca.pem"

[targets.app]
type = "test"
journal = "target.jsonl"

[flows.entra-to-app]
source = "entra"
target = "app"
"#
        ),
    )
    .unwrap();
}

fn run_env(dir: &Path, args: &[&str]) -> Output {
    idsync()
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("IDSYNC_TEST_GRAPH_SECRET", "sim-secret")
        .output()
        .unwrap()
}
