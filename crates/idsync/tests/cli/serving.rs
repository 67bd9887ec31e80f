//! `idsync serve`: health, metrics and the admin API; the crash test (kill -9 during apply,
//! rerun, nothing duplicated or lost).

use super::*;

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
