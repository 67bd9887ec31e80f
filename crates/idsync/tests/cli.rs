//! End-to-end tests through the real `idsync` binary: config check errors, plan, sync, runs,
//! log, serve; and the crash test (kill -9 during apply, rerun, nothing duplicated or lost).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use idsync_connectors::targets::test::TestTarget;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
    let target = TestTarget::with_journal(&dir.path().join("target.jsonl")).unwrap();
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
fn rejected_operations_give_exit_code_3_and_a_log() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 5);
    write_config(dir.path(), "");
    let toml = std::fs::read_to_string(dir.path().join("idsync.toml")).unwrap();
    std::fs::write(
        dir.path().join("idsync.toml"),
        toml.replace(
            "journal = \"target.jsonl\"",
            "journal = \"target.jsonl\"\nreject_user_names = [\"^user3@\"]",
        ),
    )
    .unwrap();
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

struct Server(std::process::Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
    let _server = Server(
        idsync()
            .arg("--config")
            .arg(dir.path().join("idsync.toml"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("IDSYNC_TEST_TOKEN", "s3cret-token")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::new();
    wait_for("healthz", || {
        http.get(format!("{base}/healthz"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
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
    let metrics = http
        .get(format!("{base}/metrics"))
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
        TestTarget::with_journal(&dir.path().join("target.jsonl"))
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

    let target = TestTarget::with_journal(&journal).unwrap();
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
