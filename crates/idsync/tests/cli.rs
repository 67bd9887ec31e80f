//! End-to-end tests through the real `idsync` binary: config check errors, plan, sync, runs,
//! log, serve; and the crash test (kill -9 during apply, rerun, nothing duplicated or lost).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "cli/reliability.rs"]
mod reliability;
#[path = "cli/scim_adapt.rs"]
mod scim_adapt;
#[path = "cli/scim_attrs.rs"]
mod scim_attrs;
#[path = "cli/scim_matching.rs"]
mod scim_matching;
#[path = "cli/scim_peers.rs"]
mod scim_peers;
#[path = "cli/scim_shape.rs"]
mod scim_shape;

use idsync_connectors::targets::test::TestTarget;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "cli/crowd_nested.rs"]
mod crowd_nested;
#[path = "cli/crowd_serve.rs"]
mod crowd_serve;
#[path = "cli/graph_source.rs"]
mod graph_source;
#[path = "cli/hostile.rs"]
mod hostile;
#[path = "cli/security.rs"]
mod security;

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

#[test]
fn config_check_reports_every_error_with_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("idsync.toml"),
        r#"[store]
path = "x.db"
colour = "blue"

[targets.app]
type = "test"
journal = "t.jsonl"

[flows.f]
source = "nowhere"
target = "app"
deprovision = "shred"
"#,
    )
    .unwrap();
    let o = run(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(":3:") && err.contains("store.colour"), "{err}");
    assert!(
        err.contains(":10:") && err.contains("flows.f.source"),
        "{err}"
    );
    assert!(
        err.contains(":12:") && err.contains("flows.f.deprovision"),
        "{err}"
    );

    write_people_csv(dir.path(), 3);
    write_config(dir.path(), "");
    let o = run(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn plan_sync_runs_and_log_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 30);
    write_config(dir.path(), "");

    let o = run(dir.path(), &["plan", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("create user user7@example.com: new in the source"),
        "{out}"
    );
    assert!(out.contains("30 create_user"), "{out}");

    let o = run(dir.path(), &["plan", "hr-to-app", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["operations"].as_array().unwrap().len(), 30 + 2 + 2);

    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("succeeded (34 planned, 34 applied, 0 failed)"),
        "{out}"
    );
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    assert_eq!(target.user_count(), 30);

    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(0 planned"),
        "{}",
        text(&o)
    );

    // A change in the file, seen in the plan with its reason, then applied.
    let csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    std::fs::write(
        dir.path().join("users.csv"),
        csv.replace("Number 5,", "Fifth,"),
    )
    .unwrap();
    let o = run(dir.path(), &["plan", "hr-to-app"]);
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .contains("update user user5@example.com (name): changed in the source: name"),
        "{}",
        text(&o)
    );
    assert_eq!(
        run(dir.path(), &["sync", "hr-to-app"]).status.code(),
        Some(0)
    );

    let o = run(dir.path(), &["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let first = runs[2]["id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["counts"]["update_user.applied"], 1);

    let o = run(dir.path(), &["log", &first]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out.lines().filter(|l| l.contains("create_user")).count(),
        30,
        "{out}"
    );

    let o = run(dir.path(), &["log", "no-such-run"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(dir.path(), &["sync", "no-such-flow"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn held_deprovisions_are_approved_or_rejected_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 30);
    write_config(dir.path(), "deletion_threshold = 2");
    assert_eq!(
        run(dir.path(), &["sync", "hr-to-app"]).status.code(),
        Some(0)
    );
    // Five users leave the file: above the threshold of 2.
    write_people_csv(dir.path(), 25);
    let held_id = |o: &Output| {
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("run ")?.split(':').next())
            .unwrap()
            .to_string();
        (out, id)
    };
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let (out, first) = held_id(&o);
    assert!(out.contains("held (0 planned"), "{out}");
    assert!(out.contains("5 users were not deprovisioned"), "{out}");
    assert!(
        out.contains("above the flow's deletion threshold (2 users)"),
        "{out}"
    );
    let target = || TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    let active = |t: &TestTarget| t.state().users.iter().filter(|u| u.user.active).count();
    assert_eq!(active(&target()), 30);
    let o = run(dir.path(), &["runs", "--flow", "hr-to-app"]);
    assert!(text(&o).contains("held (waiting)"), "{}", text(&o));
    let o = run(dir.path(), &["log", &first]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("disable_user") && l.contains("held"))
            .count(),
        5,
        "{}",
        text(&o)
    );

    // Reject: nobody is disabled; the next sync holds again.
    let o = run(dir.path(), &["reject", &first]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("rejected"), "{}", text(&o));
    assert_eq!(active(&target()), 30);
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let (_, second) = held_id(&o);
    let o = run(dir.path(), &["approve", &first]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("not waiting for approval: it was rejected"),
        "{}",
        text(&o)
    );

    // Approve: the five are disabled.
    let o = run(dir.path(), &["approve", &second]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("deprovisioned 5 users"), "{}", text(&o));
    assert_eq!(active(&target()), 25);
    let o = run(dir.path(), &["runs", "--flow", "hr-to-app"]);
    assert!(text(&o).contains("held (approved)"), "{}", text(&o));
    assert!(text(&o).contains("held (rejected)"), "{}", text(&o));

    // The same through the admin API of the running service.
    write_people_csv(dir.path(), 20);
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let (_, third) = held_id(&o);
    let port = free_port();
    let _server = serve(dir.path(), port, &[]);
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let http = reqwest::blocking::Client::new();
    let r = http
        .post(format!("{base}/runs/{third}/approve"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(v["counts"]["disable_user.applied"], 5, "{v}");
    assert_eq!(active(&target()), 20);
    let r = http
        .post(format!("{base}/runs/{third}/reject"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 409, "an answered hold cannot be answered again");
}

/// A webhook receiver on loopback: keeps each request's headers and body, answers 200.
/// Requests received: (headers, body).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

fn webhook_receiver() -> (String, Received) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            keep.lock()
                .unwrap()
                .push((head, String::from_utf8_lossy(&body).to_string()));
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, got)
}

/// The Python of `target/mail-venv` (aiosmtpd), installed by `scripts/peers` when missing.
fn mail_python() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let py = workspace.join("target/mail-venv/bin/python");
    if !py.exists() {
        assert!(Command::new(workspace.join("scripts/peers"))
            .status()
            .unwrap()
            .success());
    }
    py
}

#[test]
fn notifications_reach_a_real_smtp_server_and_a_webhook_on_failure_quarantine_and_hold() {
    let dir = tempfile::tempdir().unwrap();
    let py = mail_python();
    let smtp_port = free_port();
    let maildir = dir.path().join("mail");
    let _smtp = Server(
        Command::new(&py)
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{smtp_port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        None,
    );
    wait_for("aiosmtpd", || {
        std::net::TcpStream::connect(("127.0.0.1", smtp_port)).ok()
    });
    let (hook, hooks) = webhook_receiver();
    write_people_csv(dir.path(), 30);
    let config = |fail_rate: f64| {
        write_config(dir.path(), "deletion_threshold = 2\nmax_retries = 0");
        let toml = std::fs::read_to_string(dir.path().join("idsync.toml")).unwrap();
        let toml = toml.replace(
            "journal = \"target.jsonl\"",
            &format!("journal = \"target.jsonl\"\nfail_rate = {fail_rate:.1}"),
        );
        std::fs::write(
            dir.path().join("idsync.toml"),
            format!("{toml}\n[notifications]\nemail_to = [\"idm-team@example.com\"]\nemail_from = \"idsync@example.com\"\nsmtp_url = \"smtp://127.0.0.1:{smtp_port}\"\nwebhook_url = \"{hook}\"\nwebhook_secret = \"hook-secret\"\n"),
        )
        .unwrap();
    };
    config(0.0);
    assert_eq!(
        run(dir.path(), &["sync", "hr-to-app"]).status.code(),
        Some(0)
    );
    let mails = || -> Vec<String> {
        let mut v: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(maildir.join("new"))
            .map(|d| {
                d.flatten()
                    .map(|e| {
                        (
                            e.metadata().unwrap().modified().unwrap(),
                            std::fs::read_to_string(e.path()).unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|(_, m)| m).collect()
    };
    assert!(mails().is_empty(), "a good run tells nobody");

    // The target refuses everything: the first bad run notifies, the third quarantines.
    config(1.0);
    let csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    std::fs::write(
        dir.path().join("users.csv"),
        csv.replace("Dept 1", "Dept 9"),
    )
    .unwrap();
    for _ in 0..3 {
        assert_eq!(
            run(dir.path(), &["sync", "hr-to-app"]).status.code(),
            Some(3)
        );
    }
    let o = run(dir.path(), &["quarantine"]);
    assert!(text(&o).contains("quarantined"), "{}", text(&o));
    let got = wait_for("two mails", || Some(mails()).filter(|m| m.len() >= 2));
    assert!(
        got[0].contains("Subject: [idsync] flow hr-to-app: a run failed"),
        "{}",
        got[0]
    );
    assert!(
        got[1].contains("Subject: [idsync] flow hr-to-app is quarantined"),
        "{}",
        got[1]
    );
    assert!(got[1].contains("To: idm-team@example.com"), "{}", got[1]);

    // Fixed: a good run ends the quarantine, and says so.
    config(0.0);
    assert_eq!(
        run(dir.path(), &["sync", "hr-to-app"]).status.code(),
        Some(0)
    );
    let got = wait_for("the third mail", || Some(mails()).filter(|m| m.len() >= 3));
    assert!(got[2].contains("left quarantine"), "{}", got[2]);

    // A hold: the mail says how to answer.
    write_people_csv(dir.path(), 25);
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let got = wait_for("the fourth mail", || Some(mails()).filter(|m| m.len() >= 4));
    assert!(
        got[3].contains("5 deprovisions wait for approval"),
        "{}",
        got[3]
    );
    assert!(got[3].contains("idsync approve "), "{}", got[3]);

    // The same four by webhook, each signed with HMAC-SHA256 of its body.
    let hooks = wait_for("four webhooks", || {
        Some(hooks.lock().unwrap().clone()).filter(|h| h.len() >= 4)
    });
    let events: Vec<String> = hooks
        .iter()
        .map(|(_, b)| {
            serde_json::from_str::<serde_json::Value>(b).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(events, ["failed", "quarantined", "quarantined", "held"]);
    for (head, body) in &hooks {
        let sig = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("x-idsync-signature:")
                    .map(|v| v.trim().to_string())
            })
            .unwrap();
        let out = Command::new(&py)
            .args(["-c", "import hmac, hashlib, sys; print('sha256=' + hmac.new(b'hook-secret', sys.stdin.buffer.read(), hashlib.sha256).hexdigest())"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(body.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), sig);
    }
    let o = run(dir.path(), &["notifications"]);
    assert_eq!(
        text(&o).lines().filter(|l| l.contains("  sent  ")).count(),
        8,
        "{}",
        text(&o)
    );
}

#[test]
fn attribute_mappings_shape_what_the_target_gets() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 6);
    // A broken expression is a config error naming the flow, the attribute, line and column.
    write_config(
        dir.path(),
        "[flows.hr-to-app.mapping]\ndisplayName = 'Join(\" \", [surname], [givenName]'\n",
    );
    let o = run(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains(
            "flows.hr-to-app.mapping.displayName: at column 1: the call of Join is not closed"
        ),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("idsync.toml:19:15:"), "{}", text(&o));

    write_config(
        dir.path(),
        r#"[flows.hr-to-app.mapping]
displayName = 'Join(", ", [surname], [givenName])'
title = 'Switch([department], "Staff", "Dept 1", "Engineer", "Dept 2", "Manager")'
nickName = { expression = 'ToLower(Join(".", [givenName], Replace([surname], " ", , , "", , )))', apply = "on_create" }
"#,
    );
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let user = |name: &str| {
        TestTarget::read_journal(&dir.path().join("target.jsonl"))
            .unwrap()
            .state()
            .users
            .into_iter()
            .find(|u| u.user.user_name == name)
            .unwrap()
            .user
    };
    let u1 = user("user1@example.com");
    assert_eq!(u1.display_name.as_deref(), Some("Number 1, User"));
    assert_eq!(u1.title.as_deref(), Some("Engineer"));
    assert_eq!(u1.nick_name.as_deref(), Some("user.number1"));
    assert_eq!(user("user3@example.com").title.as_deref(), Some("Staff"));

    // A change in the source: mapped-always attributes follow, on-create ones stay.
    let csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    std::fs::write(
        dir.path().join("users.csv"),
        csv.replace("Number 1,", "Uno,"),
    )
    .unwrap();
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert!(text(&o).contains("1 applied"), "{}", text(&o));
    let u1 = user("user1@example.com");
    assert_eq!(u1.display_name.as_deref(), Some("Uno, User"));
    assert_eq!(u1.nick_name.as_deref(), Some("user.number1"));
}

#[test]
fn scoping_provision_on_demand_and_plan_explain() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 12);
    write_config(
        dir.path(),
        r#"[[flows.hr-to-app.scope]]
clauses = [{ attribute = "department", operator = "in", values = ["Dept 1", "Dept 2"] }]
"#,
    );
    let target = || TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();

    // One user, now, with every step said.
    let o = run(
        dir.path(),
        &["provision", "hr-to-app", "--user", "USER1@example.com"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains(r#"scope:     in scope: scoping group 1 holds: department is one of ["Dept 1", "Dept 2"]"#), "{out}");
    assert!(out.contains("mapping:   none"), "{out}");
    assert!(out.contains("target:    not provisioned yet"), "{out}");
    assert!(
        out.contains("operation: create_user user1@example.com: new in the source -> applied"),
        "{out}"
    );
    assert!(out.contains("operation: add_members everyone"), "{out}");
    assert_eq!(target().user_count(), 1, "only that user");
    let o = run(
        dir.path(),
        &["provision", "hr-to-app", "--user", "user1@example.com"],
    );
    assert!(text(&o).contains("target:    known as "), "{}", text(&o));
    assert!(text(&o).contains("operations: none"), "{}", text(&o));
    let o = run(
        dir.path(),
        &["provision", "hr-to-app", "--user", "user3@example.com"],
    );
    assert!(text(&o).contains(r#"scope:     OUT OF SCOPE: out of scope: group 1: not department is one of ["Dept 1", "Dept 2"] (it is "Dept 3")"#), "{}", text(&o));
    assert_eq!(target().user_count(), 1);
    let o = run(
        dir.path(),
        &["provision", "hr-to-app", "--user", "nobody@example.com"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("no user \"nobody@example.com\""),
        "{}",
        text(&o)
    );

    // The flow: only users in scope (departments 1 and 2: users 1, 2, 8, 9).
    assert_eq!(
        run(dir.path(), &["sync", "hr-to-app"]).status.code(),
        Some(0)
    );
    assert_eq!(target().user_count(), 4);

    // Leaving scope, and a change, explained.
    let csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    let csv = csv
        .replace("user1@example.com,Dept 1", "user1@example.com,Dept 5")
        .replace("Number 2,", "Deux,");
    std::fs::write(dir.path().join("users.csv"), csv).unwrap();
    let o = run(dir.path(), &["plan", "hr-to-app", "--explain"]);
    let out = text(&o);
    assert!(out.contains(r#"disable user user1@example.com: left the flow's scope (out of scope: group 1: not department is one of ["Dept 1", "Dept 2"] (it is "Dept 5"))"#), "{out}");
    assert!(out.contains(r#"active: true -> false"#), "{out}");
    assert!(out.contains(r#"name: {"familyName":"Number 2","givenName":"User"} -> {"familyName":"Deux","givenName":"User"}"#), "{out}");
    assert!(out.contains("users: id-000001"), "{out}");
}

#[test]
fn group_rules_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 9);
    write_config(
        dir.path(),
        r#"[flows.hr-to-app.groups]
mode = "manual"
map = { "everyone" = ["all-staff", "jira-users"] }
default_groups = ["confluence-users"]
rename = [{ pattern = "(", replacement = "x" }]
"#,
    );
    let o = run(dir.path(), &["config", "check"]);
    assert!(
        text(&o).contains("flows.hr-to-app.groups.rename[0]: \"(\" is not a regular expression"),
        "{}",
        text(&o)
    );
    write_config(
        dir.path(),
        r#"[flows.hr-to-app.groups]
mode = "manual"
map = { "everyone" = ["all-staff", "jira-users"] }
default_groups = ["confluence-users"]
unmatched = "ignore"
"#,
    );
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let state = TestTarget::read_journal(&dir.path().join("target.jsonl"))
        .unwrap()
        .state();
    let mut groups: Vec<(String, usize)> = state
        .groups
        .iter()
        .map(|g| (g.group.display_name.clone(), g.members.len()))
        .collect();
    groups.sort();
    // "everyone" holds engineering (nested): all 9 users; "engineering" is not mapped: ignored.
    assert_eq!(
        groups,
        [
            ("all-staff".to_string(), 9),
            ("confluence-users".to_string(), 9),
            ("jira-users".to_string(), 9)
        ]
    );
}

#[test]
fn rejected_operations_give_exit_code_3_and_a_log() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 5);
    write_config(dir.path(), "");
    with_test_target_keys(dir.path(), "reject_user_names = [\"^user3@\"]");
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("idsync log "));
}

#[test]
fn missing_source_file_is_exit_code_4() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "");
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("users.csv"), "{}", text(&o));
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

#[test]
fn serve_answers_health_metrics_and_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 4);
    write_config(dir.path(), "");
    let toml = std::fs::read_to_string(dir.path().join("idsync.toml")).unwrap();
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!("{toml}\n[server]\nadmin_token = \"${{env:IDSYNC_TEST_TOKEN}}\"\n"),
    )
    .unwrap();
    let port = free_port();
    let _server = serve(dir.path(), port, &[("IDSYNC_TEST_TOKEN", "s3cret-token")]);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::new();
    let r = http.get(format!("{base}/api/v1/flows")).send().unwrap();
    assert_eq!(r.status(), 401);
    let auth = |rb: reqwest::blocking::RequestBuilder| rb.bearer_auth("s3cret-token");
    let r = auth(http.post(format!("{base}/api/v1/flows/hr-to-app/sync")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let run: serde_json::Value = r.json().unwrap();
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["counts"]["create_user.applied"], 4);
    let id = run["run_id"].as_str().unwrap();
    let log: serde_json::Value = auth(http.get(format!("{base}/api/v1/runs/{id}/log")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(log.as_array().unwrap().len(), 8);
    let r = auth(http.get(format!("{base}/api/v1/runs/nope")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = auth(http.post(format!("{base}/api/v1/flows/nope/sync")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let flows: serde_json::Value = auth(http.get(format!("{base}/api/v1/flows")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(flows[0]["name"], "hr-to-app");
    assert_eq!(flows[0]["lag"], 0);
    let metrics = auth(http.get(format!("{base}/metrics")))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("idsync_runs_total{flow=\"hr-to-app\",status=\"succeeded\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("idsync_directory_objects{directory=\"hr\",kind=\"user\"} 4"),
        "{metrics}"
    );
    assert!(!metrics.contains("s3cret-token"));

    // The file changes; the schedule-less source is read through the API and the follower
    // provisions the change without another manual sync.
    std::fs::write(
        dir.path().join("users.csv"),
        std::fs::read_to_string(dir.path().join("users.csv")).unwrap()
            + "id-new,newcomer@example.com,New,Comer,newcomer@example.com,Dept 1,g-all\n",
    )
    .unwrap();
    let r = auth(http.post(format!("{base}/api/v1/sources/hr/read")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_for("the newcomer in the target", || {
        TestTarget::read_journal(&dir.path().join("target.jsonl"))
            .ok()
            .filter(|t| t.users_named("newcomer@example.com") == 1)
    });
}

/// Kill -9 the process at 50 random points while it applies a 10k-user sync, rerun, and check
/// that the target holds each user exactly once and the ledger matches the target.
#[test]
fn crash_test_kill_9_during_apply() {
    use rand::Rng;
    let dir = tempfile::tempdir().unwrap();
    let n = 10_000;
    write_people_csv(dir.path(), n);
    write_config(dir.path(), "concurrency = 16");
    let journal = dir.path().join("target.jsonl");
    // Counts the journal's lines, reading only what was appended since the last look.
    let mut seen = (0u64, 0usize);
    let mut lines = |p: &PathBuf| {
        use std::io::{Read, Seek, SeekFrom};
        if let Ok(mut f) = std::fs::File::open(p) {
            let mut buf = Vec::new();
            if f.seek(SeekFrom::Start(seen.0)).is_ok() && f.read_to_end(&mut buf).is_ok() {
                seen.0 += buf.len() as u64;
                seen.1 += buf.iter().filter(|&&c| c == b'\n').count();
            }
        }
        seen.1
    };
    // 50 kill points spread over the apply: one random point in each fiftieth of the users
    // phase (the journal holds one line per write the target took).
    let mut rng = rand::thread_rng();
    let stride = n / 50;
    let points: Vec<usize> = (0..50)
        .map(|k| k * stride + rng.gen_range(stride / 5..stride * 4 / 5))
        .collect();
    let mut kills = 0;
    for point in points {
        if lines(&journal) >= point {
            continue; // the previous run overshot this point before it died
        }
        let mut child = idsync()
            .arg("--config")
            .arg(dir.path().join("idsync.toml"))
            .args(["sync", "hr-to-app"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if lines(&journal) >= point {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the sync finished before write {point}"
            );
            assert!(Instant::now() < deadline, "sync made no progress");
            std::thread::sleep(Duration::from_millis(1));
        }
        child.wait().unwrap();
    }
    eprintln!("{kills} of 50 kills landed mid-apply");
    assert!(kills >= 45, "only {kills} of 50 kills landed mid-apply");
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(0 planned"),
        "{}",
        text(&o)
    );

    let target = TestTarget::read_journal(&journal).unwrap();
    assert_eq!(target.user_count(), n);
    for i in (0..n).step_by(97) {
        assert_eq!(target.users_named(&format!("user{i}@example.com")), 1);
    }
    // The ledger (seen through a reconcile, which reads the target's real state) matches the
    // target: a full reconcile finds nothing to repair.
    let o = run(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(0 planned"),
        "{}",
        text(&o)
    );
    let state = target.state();
    let everyone = state
        .groups
        .iter()
        .find(|g| g.group.display_name == "everyone")
        .unwrap();
    assert_eq!(everyone.members.len(), n);
}

/// What Microsoft Entra's provisioning service sends, end to end through `idsync serve`: the
/// pushes land in the directory and reach the flow's target.
#[test]
fn scim_endpoint_speaks_entra() {
    use serde_json::{json, Value};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[sources.entra]\ntype = \"scim\"\n\n[targets.app]\ntype = \"test\"\njournal = \"target.jsonl\"\n\n[flows.entra-to-app]\nsource = \"entra\"\ntarget = \"app\"\n"
        ),
    )
    .unwrap();
    let token = create_token(dir.path(), &["entra", "--name", "entra-prod"]);
    assert!(token.starts_with("idsync_"));
    let _server = serve(dir.path(), port, &[]);
    let base = format!("http://127.0.0.1:{port}/scim/v2/entra");
    let http = reqwest::blocking::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut rb = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token);
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let etag = r
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string());
        let text = r.text().unwrap();
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            etag,
        )
    };
    use reqwest::Method as M;

    // "Test connection": a random userName, 200 with an empty list.
    let (s, v, _) = call(
        M::GET,
        "/Users?filter=userName+eq+%22f0d5b2b1-b9b0-4b8a-9c5c-000000000000%22",
        None,
    );
    assert_eq!((s, v["totalResults"].as_i64()), (200, Some(0)));
    // Wrong token: 401 with a SCIM error.
    let r = http
        .get(format!("{base}/Users"))
        .bearer_auth("idsync_wrong")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    // Create as Entra does.
    let entra_user = |upn: &str, mail_nick: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": mail_nick,
            "userName": upn,
            "active": true,
            "displayName": "Ada Lovelace",
            "emails": [{"primary": true, "type": "work", "value": upn}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "Ada Lovelace", "familyName": "Lovelace", "givenName": "Ada"},
            "title": "Countess",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "1815", "department": "Analytical Engines"}
        })
    };
    let (s, ada, etag) = call(
        M::POST,
        "/Users",
        Some(entra_user("ada@contoso.com", "ada")),
    );
    assert_eq!(s, 201, "{ada}");
    let ada_id = ada["id"].as_str().unwrap().to_string();
    assert!(etag.is_some());
    let (s, dup, _) = call(
        M::POST,
        "/Users",
        Some(entra_user("ADA@contoso.com", "ada2")),
    );
    assert_eq!((s, dup["scimType"].as_str()), (409, Some("uniqueness")));
    let (s, grace, _) = call(
        M::POST,
        "/Users",
        Some(entra_user("grace@contoso.com", "grace")),
    );
    assert_eq!(s, 201);
    let grace_id = grace["id"].as_str().unwrap().to_string();

    // Matching by userName and by externalId.
    let (_, v, _) = call(
        M::GET,
        "/Users?filter=userName+eq+%22Ada%40contoso.com%22",
        None,
    );
    assert_eq!(v["Resources"][0]["id"], ada_id.as_str());
    let (_, v, _) = call(M::GET, "/Users?filter=externalId+eq+%22grace%22", None);
    assert_eq!(v["Resources"][0]["id"], grace_id.as_str());
    // externalId is case-exact; emails match in any case (Atlassian Cloud matches by email).
    let (_, v, _) = call(M::GET, "/Users?filter=externalId+eq+%22GRACE%22", None);
    assert_eq!(v["totalResults"], 0);
    for f in [
        "emails.value+eq+%22GRACE%40contoso.com%22",
        "emails+eq+%22grace%40contoso.com%22",
    ] {
        let (_, v, _) = call(M::GET, &format!("/Users?filter={f}"), None);
        assert_eq!(
            (v["totalResults"].as_i64(), &v["Resources"][0]["id"]),
            (Some(1), &json!(grace_id)),
            "{f}"
        );
    }

    // PATCH in Entra's forms: capitalised ops, booleans as strings, no path, URN paths.
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let (s, v, patched_etag) = call(
        M::PATCH,
        &format!("/Users/{ada_id}"),
        Some(patch(json!([
            {"op": "Replace", "path": "displayName", "value": "Augusta Ada King"},
            {"op": "Add", "value": {"name.givenName": "Augusta", "emails[type eq \"work\"].value": "augusta@contoso.com"}},
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": grace_id}
        ]))),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["name"]["givenName"], "Augusta");
    assert_eq!(v["emails"][0]["value"], "augusta@contoso.com");
    assert_eq!(
        v["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"],
        grace_id.as_str()
    );
    // A write answers with what a read then serves, ETag included, so the ETag of the answer
    // works in If-Match.
    let (_, read, read_etag) = call(M::GET, &format!("/Users/{ada_id}"), None);
    assert_eq!((&read, &read_etag), (&v, &patched_etag));
    // The email index follows the change.
    let (_, v, _) = call(
        M::GET,
        "/Users?filter=emails.value+eq+%22ada%40contoso.com%22",
        None,
    );
    assert_eq!(v["totalResults"], 0);
    let (_, v, _) = call(
        M::GET,
        "/Users?filter=emails.value+eq+%22augusta%40contoso.com%22",
        None,
    );
    assert_eq!(v["Resources"][0]["id"], ada_id.as_str());
    assert_ne!(patched_etag, etag);

    // If-Match with a stale ETag is refused.
    let r = http
        .patch(format!("{base}/Users/{ada_id}"))
        .bearer_auth(&token)
        .header("If-Match", etag.unwrap())
        .header("Content-Type", "application/scim+json")
        .body(patch(json!([{"op": "replace", "path": "title", "value": "x"}])).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 412);

    // Groups: lookup without members, create, add and remove members both ways.
    let (s, v, _) = call(
        M::GET,
        "/Groups?excludedAttributes=members&filter=displayName+eq+%22Engineering%22",
        None,
    );
    assert_eq!((s, v["totalResults"].as_i64()), (200, Some(0)));
    let (s, g, _) = call(
        M::POST,
        "/Groups",
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering", "externalId": "eng", "members": []}),
        ),
    );
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_string();
    let (_, read, read_etag) = call(M::GET, &format!("/Groups/{gid}"), None);
    assert_eq!(read, g);
    // Member-only PATCH (what Entra sends): 204 No Content, as in Entra's SCIM reference.
    let (s, _, _) = call(
        M::PATCH,
        &format!("/Groups/{gid}"),
        Some(patch(
            json!([{"op": "Add", "path": "members", "value": [{"value": ada_id}]}]),
        )),
    );
    assert_eq!(s, 204);
    // With If-Match the whole group is checked and served: the answer is what a read serves.
    let (_, _, etag_one) = call(M::GET, &format!("/Groups/{gid}"), None);
    assert_ne!(read_etag, etag_one);
    let r = http
        .patch(format!("{base}/Groups/{gid}"))
        .bearer_auth(&token)
        .header("If-Match", etag_one.clone().unwrap())
        .header("Content-Type", "application/scim+json")
        .body(
            patch(json!([{"op": "Add", "path": "members", "value": [{"value": grace_id}]}]))
                .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let added_etag = r
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    let added: Value = r.json().unwrap();
    assert_eq!(added["members"].as_array().map(Vec::len), Some(2));
    let (_, read, now_etag) = call(M::GET, &format!("/Groups/{gid}"), None);
    assert_eq!((&read, &now_etag), (&added, &added_etag));
    let (s, _, _) = call(
        M::PATCH,
        &format!("/Groups/{gid}"),
        Some(patch(
            json!([{"op": "Remove", "path": format!("members[value eq \"{grace_id}\"]")}]),
        )),
    );
    assert_eq!(s, 204);
    let (_, v, _) = call(M::GET, &format!("/Groups/{gid}"), None);
    let members: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(members, vec![ada_id.as_str()]);
    let (s, v, _) = call(
        M::PATCH,
        &format!("/Groups/{gid}"),
        Some(patch(
            json!([{"op": "Add", "path": "members", "value": [{"value": "no-such-user"}]}]),
        )),
    );
    assert_eq!((s, v["scimType"].as_str()), (400, Some("invalidValue")));
    // Members added to, or removed from, a group that does not exist: 404.
    for op in [
        json!([{"op": "Add", "path": "members", "value": [{"value": ada_id}]}]),
        json!([{"op": "Remove", "path": format!("members[value eq \"{ada_id}\"]")}]),
    ] {
        let (s, v, _) = call(M::PATCH, "/Groups/no-such-group", Some(patch(op)));
        assert_eq!((s, v["status"].as_str()), (404, Some("404")), "{v}");
    }
    let (_, v, _) = call(M::GET, &format!("/Users/{ada_id}"), None);
    assert_eq!(v["groups"][0]["display"], "Engineering");

    // The flow carried all of it to the target.
    let journal = dir.path().join("target.jsonl");
    wait_for("the patched user in the target", || {
        let t = TestTarget::read_journal(&journal).ok()?;
        let s = t.state();
        let ada = s
            .users
            .iter()
            .find(|u| u.user.user_name == "ada@contoso.com")?;
        (ada.user.name.given_name.as_deref() == Some("Augusta")
            && ada.user.primary_email() == Some("augusta@contoso.com")
            && t.users_named("grace@contoso.com") == 1)
            .then_some(())
    });
    wait_for("membership in the target", || {
        let t = TestTarget::read_journal(&journal).ok()?;
        let s = t.state();
        let eng = s
            .groups
            .iter()
            .find(|g| g.group.display_name == "Engineering")?;
        (eng.members.len() == 1).then_some(())
    });

    // Soft delete, then hard delete; unknown ids are 404.
    let (s, v, _) = call(
        M::PATCH,
        &format!("/Users/{grace_id}"),
        Some(patch(
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )),
    );
    assert_eq!((s, &v["active"]), (200, &json!(false)));
    let (s, _, _) = call(M::DELETE, &format!("/Users/{ada_id}"), None);
    assert_eq!(s, 204);
    let (s, v, _) = call(M::GET, &format!("/Users/{ada_id}"), None);
    assert_eq!((s, v["status"].as_str()), (404, Some("404")));
    wait_for("deprovisioning in the target", || {
        let t = TestTarget::read_journal(&journal).ok()?;
        let s = t.state();
        let inactive = |name: &str| {
            s.users
                .iter()
                .any(|u| u.user.user_name == name && !u.user.active)
        };
        (inactive("grace@contoso.com") && inactive("ada@contoso.com")).then_some(())
    });

    // Tokens are listed with their last use, and a revoked token stops working: revoked from
    // another process (the CLI), within the 5 s the server takes a verified token on trust.
    let o = run(dir.path(), &["token", "list", "--json"]);
    let tokens: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(tokens[0]["name"], "entra-prod");
    assert!(tokens[0]["last_used_ms"].as_i64().is_some());
    let id = tokens[0]["id"].as_str().unwrap().to_string();
    let revoked = Instant::now();
    assert_eq!(
        run(dir.path(), &["token", "revoke", &id]).status.code(),
        Some(0)
    );
    wait_for("the revoked token to be refused", || {
        let r = http
            .get(format!("{base}/Users"))
            .bearer_auth(&token)
            .send()
            .ok()?;
        (r.status() == 401).then_some(())
    });
    assert!(revoked.elapsed() < Duration::from_secs(7));
}

/// An `idsync serve` whose directory `apps` takes SCIM pushes: idsync's own endpoint as a
/// provisioning target.
#[test]
fn scim_endpoint_can_behave_as_atlassian_cloud() {
    use serde_json::{json, Value};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nscim_rate = 0\n\n[sources.atl]\ntype = \"scim\"\nprofile = \"atlassian-cloud\"\nverified_domains = [\"Example.com\"]\n\n[sources.plain]\ntype = \"scim\"\n"
        ),
    )
    .unwrap();
    let (token, plain_token) = (
        create_token(dir.path(), &["atl"]),
        create_token(dir.path(), &["plain"]),
    );
    let _server = serve(dir.path(), port, &[]);
    let root = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::new();
    let call = |method: reqwest::Method, url: String, token: &str, body: Option<Value>| {
        let mut rb = http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let v = serde_json::from_str::<Value>(&r.text().unwrap()).unwrap_or(Value::Null);
        (status, v, location)
    };
    let base = format!("{root}/scim/directory/atl");
    let user = |name: &str| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "emails": [{"value": name, "type": "work", "primary": true}], "active": true});
    use reqwest::Method;

    // Atlassian's path, and its locations.
    let (st, v, loc) = call(
        Method::POST,
        format!("{base}/Users"),
        &token,
        Some(user("ada@example.com")),
    );
    assert_eq!(st, 201, "{v}");
    assert!(loc.unwrap().starts_with(&format!("{base}/Users/")));
    // Only verified domains (compared in any case).
    let (st, v, _) = call(
        Method::POST,
        format!("{base}/Users"),
        &token,
        Some(user("eve@elsewhere.org")),
    );
    assert_eq!(
        (st, v["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{v}"
    );
    assert!(
        v["detail"].as_str().unwrap().contains("verified domain"),
        "{v}"
    );

    // Pages of at most 100.
    for i in 0..105 {
        let (st, v, _) = call(
            Method::POST,
            format!("{base}/Users"),
            &token,
            Some(user(&format!("u{i}@EXAMPLE.com"))),
        );
        assert_eq!(st, 201, "{v}");
    }
    let (_, page, _) = call(Method::GET, format!("{base}/Users?count=500"), &token, None);
    assert_eq!(
        (page["totalResults"].as_u64(), page["itemsPerPage"].as_u64()),
        (Some(106), Some(100)),
        "{page}"
    );

    // No group renames; member changes are fine.
    let (st, g, _) = call(
        Method::POST,
        format!("{base}/Groups"),
        &token,
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "jira-users"}),
        ),
    );
    assert_eq!(st, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_string();
    let rename = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "displayName", "value": "jira-people"}]});
    let (st, v, _) = call(
        Method::PATCH,
        format!("{base}/Groups/{gid}"),
        &token,
        Some(rename),
    );
    assert_eq!(
        (st, v["scimType"].as_str()),
        (400, Some("mutability")),
        "{v}"
    );
    let (_, g, _) = call(Method::GET, format!("{base}/Groups/{gid}"), &token, None);
    assert_eq!(g["displayName"], "jira-users");
    let uid = page["Resources"][0]["id"].as_str().unwrap();
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]});
    let (st, v, _) = call(
        Method::PATCH,
        format!("{base}/Groups/{gid}"),
        &token,
        Some(add),
    );
    assert_eq!(st, 204, "{v}");

    // No bulk, and discovery says so.
    let (st, _, _) = call(
        Method::POST,
        format!("{base}/Bulk"),
        &token,
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": []}),
        ),
    );
    assert_eq!(st, 501);
    let (_, spc, _) = call(
        Method::GET,
        format!("{base}/ServiceProviderConfig"),
        &token,
        None,
    );
    assert_eq!(spc["bulk"]["supported"], false, "{spc}");
    assert_eq!(spc["filter"]["maxResults"], 100, "{spc}");

    // The same directory at /scim/v2 (same data); a generic directory has no Atlassian path.
    let (_, v2, _) = call(
        Method::GET,
        format!("{root}/scim/v2/atl/Groups/{gid}"),
        &token,
        None,
    );
    assert_eq!(v2["members"].as_array().map(Vec::len), Some(1), "{v2}");
    let (st, _, _) = call(
        Method::GET,
        format!("{root}/scim/directory/plain/Users"),
        &plain_token,
        None,
    );
    assert_eq!(st, 404);
    let (st, v, _) = call(
        Method::POST,
        format!("{root}/scim/v2/plain/Users"),
        &plain_token,
        Some(user("eve@elsewhere.org")),
    );
    assert_eq!(st, 201, "a generic directory takes any domain: {v}");
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

/// Provision a file directory into a SCIM service through the real binary: full sync, an
/// incremental change, a membership change, a deprovision, and a reconcile after the service
/// was changed by hand.
fn provision_into(url: &str, token: &str) {
    use serde_json::{json, Value};
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 6);
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!(
            "[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.app]\ntype = \"scim\"\nurl = \"{url}\"\ntoken = \"${{env:IDSYNC_TEST_PEER_TOKEN}}\"\n\n[flows.hr-to-app]\nsource = \"hr\"\ntarget = \"app\"\n"
        ),
    )
    .unwrap();
    let http = reqwest::blocking::Client::new();
    let get = |path: &str| -> Value {
        http.get(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let user = |name: &str| -> Value {
        let v = get(&format!("/Users?filter=userName%20eq%20%22{name}%22"));
        v["Resources"][0].clone()
    };
    let group_members = |name: &str| -> Vec<String> {
        let v = get(&format!("/Groups?filter=displayName%20eq%20%22{name}%22"));
        let mut m: Vec<String> = v["Resources"][0]["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        m.sort();
        m
    };
    // The token goes to the child alone: tests of other peers run beside this one.
    let sync = |args: &[&str]| {
        let o = idsync()
            .arg("--config")
            .arg(dir.path().join("idsync.toml"))
            .args(args)
            .env("RUST_LOG", "warn")
            .env("IDSYNC_TEST_PEER_TOKEN", token)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };

    // Full sync: 6 users, 2 groups, nested groups flattened.
    let out = sync(&["sync", "hr-to-app"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(get("/Users")["totalResults"], 6);
    assert_eq!(user("user1@example.com")["name"]["familyName"], "Number 1");
    assert_eq!(group_members("everyone").len(), 6);
    assert_eq!(group_members("engineering").len(), 2);
    assert!(sync(&["sync", "hr-to-app"]).contains("(0 planned"));

    // An incremental change and a membership change.
    let csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    let csv = csv.replace("User,Number 1,", "Ada,Number 1,").replace(
        "id-000002,user2@example.com,User,Number 2,user2@example.com,Dept 2,g-all",
        "id-000002,user2@example.com,User,Number 2,user2@example.com,Dept 2,g-eng",
    );
    std::fs::write(dir.path().join("users.csv"), &csv).unwrap();
    let out = sync(&["sync", "hr-to-app"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(user("user1@example.com")["name"]["givenName"], "Ada");
    let user2 = user("user2@example.com")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(group_members("engineering").contains(&user2));

    // A deprovision: user5 leaves the source and is disabled in the service.
    let csv: String = csv
        .lines()
        .filter(|l| !l.starts_with("id-000005"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("users.csv"), csv).unwrap();
    sync(&["sync", "hr-to-app"]);
    assert_eq!(user("user5@example.com")["active"], json!(false));
    let user5 = user("user5@example.com")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!group_members("everyone").contains(&user5));

    // By hand in the service: a name changed, a user deleted. A plain sync trusts the ledger;
    // a reconcile (--full) repairs both.
    let u1 = user("user1@example.com")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http
        .patch(format!("{url}/Users/{u1}"))
        .bearer_auth(token)
        .header("Content-Type", "application/scim+json")
        .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "displayName", "value": "Edited by hand"}]}).to_string())
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let u3 = user("user3@example.com")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(http
        .delete(format!("{url}/Users/{u3}"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .status()
        .is_success());
    assert!(sync(&["sync", "hr-to-app"]).contains("(0 planned"));
    let out = sync(&["sync", "hr-to-app", "--full"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(user("user1@example.com")
        .get("displayName")
        .is_none_or(|d| d != "Edited by hand"));
    assert!(
        user("user3@example.com")["id"].is_string(),
        "the deleted user was created again"
    );
    let again = sync(&["plan", "hr-to-app", "--full"]);
    assert!(
        again.contains("nothing to do"),
        "a second reconcile finds nothing: {again}"
    );
}

#[test]
fn provisions_scim2_server() {
    let peer = idsync_connectors::testkit::peers::scim2_server("peer-token").unwrap();
    provision_into(&peer.url, "peer-token");
}

#[test]
fn provisions_idsyncs_own_scim_endpoint_and_passes_the_kit() {
    let (_server, _dir, url, token) = idsync_scim_peer();
    provision_into(&url, &token);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = idsync_connectors::targets::scim::ScimTarget::new(
        idsync_connectors::targets::scim::ScimTargetConfig::new(
            &url,
            &token,
            idsync_connectors::targets::scim::Profile::Generic,
        ),
    )
    .unwrap();
    let results = rt.block_on(idsync_connectors::testkit::run_all(&t, "own"));
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn scim_bulk_resolves_bulk_ids_and_honours_fail_on_errors() {
    use serde_json::{json, Value};
    let (_server, _dir, url, token) = idsync_scim_peer();
    let http = reqwest::blocking::Client::new();
    let bulk = |body: Value| -> Value {
        let r = http
            .post(format!("{url}/Bulk"))
            .bearer_auth(&token)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    };
    let user = |name: &str| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
    // The group comes first but names users created later in the same request.
    let v = bulk(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Bulk", "members": [{"type": "User", "value": "bulkId:a"}, {"type": "User", "value": "bulkId:b"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": user("bulk-a")},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": user("bulk-b")},
            {"method": "POST", "path": "/Users", "bulkId": "dup", "data": user("BULK-A")},
            {"method": "PATCH", "path": "/Users/bulkId:a", "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "title", "value": "Bulk test"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "x", "data": {"schemas": [], "userName": "bulk-x", "manager": "bulkId:nobody"}}
        ]
    }));
    let ops = v["Operations"].as_array().unwrap();
    let status = |bulk_id: &str| {
        ops.iter()
            .find(|o| o["bulkId"] == bulk_id)
            .map(|o| o["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("a").as_deref(), Some("201"));
    assert_eq!(status("g").as_deref(), Some("201"));
    assert_eq!(status("dup").as_deref(), Some("409"));
    assert_eq!(
        status("x").as_deref(),
        Some("409"),
        "a reference to no operation fails"
    );
    assert!(ops
        .iter()
        .any(|o| o["method"] == "PATCH" && o["status"] == "200"));
    let group: Value = http
        .get(
            ops.iter().find(|o| o["bulkId"] == "g").unwrap()["location"]
                .as_str()
                .unwrap(),
        )
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(group["members"].as_array().unwrap().len(), 2);
    let a: Value = http
        .get(format!("{url}/Users?filter=userName%20eq%20%22bulk-a%22"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(a["Resources"][0]["title"], "Bulk test");

    // failOnErrors: 1 stops at the first error.
    let v = bulk(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 1,
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "d", "data": user("bulk-b")},
            {"method": "POST", "path": "/Users", "bulkId": "e", "data": user("bulk-e")}
        ]
    }));
    assert_eq!(v["Operations"].as_array().unwrap().len(), 1);
    let e: Value = http
        .get(format!("{url}/Users?filter=userName%20eq%20%22bulk-e%22"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(e["totalResults"], 0);
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

#[test]
fn graph_source_check_and_sync_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root, tenant) = graph_sim(dir.path(), &[]);
    write_graph_config(dir.path(), &root, &tenant);
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("contoso (simulated)") && t.contains(&tenant),
        "{t}"
    );
    assert!(
        t.contains("contoso.com (default)") && t.contains("contoso.onmicrosoft.com (initial)"),
        "{t}"
    );
    assert!(t.contains("in scope:    150 users, 12 groups"), "{t}");

    let o = run_env(dir.path(), &["sync", "entra-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    assert_eq!(target.state().users.len(), 150);
    assert_eq!(target.state().groups.len(), 12);
    // The source read is in the run history with what it cost.
    let o = run_env(dir.path(), &["runs", "--source", "entra"]);
    let t = text(&o);
    let read = t
        .lines()
        .find(|l| l.contains("source:entra"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        read.contains("requests 2") && read.contains("resource units 8"),
        "{read}"
    );

    // A wrong secret is exit code 4 with the reason.
    let o = idsync()
        .arg("--config")
        .arg(dir.path().join("idsync.toml"))
        .args(["source", "check", "entra"])
        .env("IDSYNC_TEST_GRAPH_SECRET", "wrong")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
    assert!(text(&o).contains("Invalid client secret"), "{}", text(&o));
}

#[test]
fn graph_source_check_names_missing_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root, tenant) = graph_sim(dir.path(), &["--grant", "User.Read.All"]);
    write_graph_config(dir.path(), &root, &tenant);
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(4), "{t}");
    assert!(
        t.contains("missing:     grant admin consent for GroupMember.Read.All"),
        "{t}"
    );
    assert!(t.contains("granted:     User.Read.All"), "{t}");
}

const APP_CERT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../idsync-sim/fixtures/app-cert.pem"
);

#[test]
fn graph_source_signs_in_with_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, root, tenant) = graph_sim(dir.path(), &["--client-cert", APP_CERT]);
    write_graph_config_signing_in(
        dir.path(),
        &root,
        &tenant,
        &format!("client_certificate = \"{APP_CERT}\""),
    );
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains(&tenant), "{t}");
    assert!(t.contains("in scope:    150 users"), "{t}");

    // A certificate file that is not there is a config error naming the key and the file.
    write_graph_config_signing_in(
        dir.path(),
        &root,
        &tenant,
        "client_certificate = \"missing.pem\"",
    );
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("sources.entra.client_certificate"), "{t}");
    assert!(t.contains("missing.pem"), "{t}");

    // A PEM file without the private key is refused before any request, naming the file.
    let cert_only: String = std::fs::read_to_string(APP_CERT)
        .unwrap()
        .split_inclusive('\n')
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .collect();
    std::fs::write(dir.path().join("cert-only.pem"), cert_only).unwrap();
    write_graph_config_signing_in(
        dir.path(),
        &root,
        &tenant,
        "client_certificate = \"cert-only.pem\"",
    );
    let o = run_env(dir.path(), &["source", "check", "entra"]);
    let t = text(&o);
    assert_ne!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("cert-only.pem") && t.contains("no private key"),
        "{t}"
    );
}

#[test]
fn demo_provisions_the_simulated_tenant_and_shows_changes_arriving() {
    let dir = tempfile::tempdir().unwrap();
    let o = idsync()
        .args([
            "demo",
            "--users",
            "120",
            "--groups",
            "8",
            "--memberships",
            "300",
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
    assert!(
        t.contains("Atlassian Cloud now has 120 users and 8 groups"),
        "{t}"
    );
    for what in [
        "new title",
        "disabled",
        "newcomer created",
        "newcomer in the group",
    ] {
        assert!(t.contains(&format!(": {what}")), "{what}: {t}");
    }
}
