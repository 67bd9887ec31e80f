//! Reliability through the binary (issue 15, items 16 to 19, 21 and 22): a dead or refusing
//! target is fatal early, SIGTERM drains, interrupted runs are marked, a flow runs in one
//! process at a time, a full disk says what to do, messages are said once and counts add up.

use super::*;
use serde_json::Value;

/// Lines of a journal (one per write the test target took).
fn journal_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("target.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// A flow of `n` users into the test target, paced at `rate` operations per second.
fn slow_flow(dir: &Path, n: usize, rate: u32) {
    write_people_csv(dir, n);
    write_config(dir, "");
    with_test_target_keys(dir, &format!("max_rate = {rate}"));
}

/// `idsync sync hr-to-app` in the background, its output in files of `dir`.
fn spawn_sync(dir: &Path, name: &str) -> std::process::Child {
    idsync()
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(["sync", "hr-to-app"])
        .env("RUST_LOG", "warn")
        .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap())
        .spawn()
        .unwrap()
}

fn wait_exit(child: &mut std::process::Child, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &std::process::Child, sig: &str) {
    let s = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(s.success());
}

/// `idsync ARGS` (with a token for the flows whose target wants one).
fn run_any(dir: &Path, args: &[&str]) -> Output {
    idsync()
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("IDSYNC_TEST_TARGET_TOKEN", "unused")
        .output()
        .unwrap()
}

/// `idsync runs --json` of the flow.
fn runs(dir: &Path) -> Vec<Value> {
    let o = run_any(dir, &["runs", "--flow", "hr-to-app", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn count(run: &Value, key: &str) -> i64 {
    run["counts"][key].as_i64().unwrap_or(0)
}

/// Operations of a run's log by outcome.
fn logged(dir: &Path, run_id: &str, outcome: &str) -> usize {
    let o = run_any(dir, &["log", run_id, "--json"]);
    let ops: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    ops.iter().filter(|op| op["outcome"] == outcome).count()
}

/// The error lines a failed command printed (log lines included).
fn stderr_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// A SCIM target at `url` with the token in IDSYNC_TEST_TARGET_TOKEN.
fn scim_flow(dir: &Path, n: usize, url: &str) {
    write_people_csv(dir, n);
    std::fs::write(
        dir.join("idsync.toml"),
        format!(
            "[store]\npath = \"idsync.db\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.app]\ntype = \"scim\"\nurl = \"{url}\"\ntoken = \"${{env:IDSYNC_TEST_TARGET_TOKEN}}\"\n\n[flows.hr-to-app]\nsource = \"hr\"\ntarget = \"app\"\nconcurrency = 4\n"
        ),
    )
    .unwrap();
}

fn sync_with_token(dir: &Path, token: &str) -> (Output, Duration) {
    let started = Instant::now();
    let o = idsync()
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(["sync", "hr-to-app"])
        .env("RUST_LOG", "warn")
        .env("IDSYNC_TEST_TARGET_TOKEN", token)
        .output()
        .unwrap();
    (o, started.elapsed())
}

/// Item 16: an unreachable target, a wrong token, a target killed mid-run: exit 4 quickly,
/// one message naming the target, nothing recorded that was not applied.
#[test]
fn dead_unreachable_or_refusing_target_is_fatal_early() {
    // Nothing listens on the port.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    scim_flow(
        dir.path(),
        300,
        &format!("http://127.0.0.1:{port}/scim/v2/apps"),
    );
    let (o, took) = sync_with_token(dir.path(), "whatever");
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        took < Duration::from_secs(15),
        "took {took:?}: {}",
        text(&o)
    );
    let lines = stderr_lines(&o);
    assert_eq!(lines.len(), 1, "one message: {lines:#?}");
    assert!(
        lines[0].starts_with("error: target app: the target is unavailable")
            && lines[0].contains("Connection refused"),
        "the message says why: {lines:#?}"
    );
    let r = &runs(dir.path())[0];
    assert_eq!(r["status"], "failed");
    assert_eq!(count(r, "applied"), 0);
    assert_eq!(count(r, "failed"), 0, "no operation is blamed: {r}");
    assert_eq!(logged(dir.path(), r["id"].as_str().unwrap(), "failed"), 0);

    // A real SCIM service (idsync's own endpoint) and a wrong token.
    let (server, _peer_dir, url, token) = idsync_scim_peer();
    let dir = tempfile::tempdir().unwrap();
    scim_flow(dir.path(), 1000, &url);
    let (o, took) = sync_with_token(dir.path(), "not-the-token");
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let lines = stderr_lines(&o);
    assert_eq!(lines.len(), 1, "one message: {lines:#?}");
    assert!(
        lines[0].starts_with("error: target app: authentication failed")
            && lines[0].contains("401"),
        "{lines:#?}"
    );

    // The right token, and the server killed while the sync runs.
    let (mut o, mut took) = (None, Duration::ZERO);
    std::thread::scope(|s| {
        let sync = s.spawn(|| sync_with_token(dir.path(), &token));
        let http = reqwest::blocking::Client::new();
        wait_for("some users in the target", || {
            let n = http
                .get(format!("{url}/Users?count=1"))
                .bearer_auth(&token)
                .send()
                .ok()?
                .json::<Value>()
                .ok()?["totalResults"]
                .as_u64()?;
            (n >= 20).then_some(())
        });
        drop(server);
        let (out, t) = sync.join().unwrap();
        o = Some(out);
        took = t;
    });
    let o = o.unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let lines = stderr_lines(&o);
    assert_eq!(lines.len(), 1, "one message: {lines:#?}");
    assert!(lines[0].starts_with("error: target app: "), "{lines:#?}");
    // The failed run counts what it applied, as its log has it.
    let r = &runs(dir.path())[0];
    assert_eq!(r["status"], "failed");
    let run_id = r["id"].as_str().unwrap();
    let applied = logged(dir.path(), run_id, "applied") + logged(dir.path(), run_id, "linked");
    assert!(applied > 0, "{r}");
    assert_eq!(count(r, "applied") as usize, applied, "{r}");
    assert!(count(r, "applied") + count(r, "failed") <= count(r, "planned"));
}

/// Item 16, the other half: the ledger kept only what was applied, so the next run after the
/// target is back completes it with every user once.
#[test]
fn after_a_target_died_mid_run_the_next_run_completes_without_duplicates() {
    let (server, peer, url, token) = idsync_scim_peer();
    let port: u16 = url
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    scim_flow(dir.path(), 1000, &url);
    let http = reqwest::blocking::Client::new();
    let total = |http: &reqwest::blocking::Client| -> Option<u64> {
        http.get(format!("{url}/Users?count=1"))
            .bearer_auth(&token)
            .send()
            .ok()?
            .json::<Value>()
            .ok()?["totalResults"]
            .as_u64()
    };
    let (o, _) = std::thread::scope(|s| {
        let sync = s.spawn(|| sync_with_token(dir.path(), &token));
        wait_for("some users in the target", || {
            total(&http).filter(|n| *n >= 20)
        });
        drop(server);
        sync.join().unwrap()
    });
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let _server = serve(peer.path(), port, &[]);
    let (o, _) = sync_with_token(dir.path(), &token);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(total(&http), Some(1000));
    for i in (0..1000).step_by(37) {
        let found: Value = http
            .get(format!(
                "{url}/Users?filter=userName%20eq%20%22user{i}@example.com%22"
            ))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(found["totalResults"], 1, "user{i}");
    }
}

/// Item 17: SIGTERM drains a sync like Ctrl-C: the operations in flight end and are
/// recorded, the run shows as interrupted, a log line says so, exit 143.
#[test]
fn sigterm_drains_a_sync() {
    let dir = tempfile::tempdir().unwrap();
    slow_flow(dir.path(), 400, 100);
    let mut child = spawn_sync(dir.path(), "sync");
    wait_for("writes in the target", || {
        (journal_lines(dir.path()) >= 30).then_some(())
    });
    signal(&child, "-TERM");
    let code = wait_exit(&mut child, Duration::from_secs(15));
    let err = std::fs::read_to_string(dir.path().join("sync.err")).unwrap();
    assert_eq!(code, 143, "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    let r = &runs(dir.path())[0];
    assert_eq!(r["status"], "interrupted", "{r}");
    // Everything the target took was recorded before the exit.
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    assert_eq!(count(r, "applied") as usize, target.state().users.len() + 2);
    // The next run carries on.
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    assert_eq!(target.user_count(), 400);
}

/// Item 17: `idsync serve` drains on SIGTERM (the run its follower started ends
/// `interrupted`), says so in its log and exits 0.
#[test]
fn sigterm_drains_serve() {
    let dir = tempfile::tempdir().unwrap();
    slow_flow(dir.path(), 400, 100);
    let toml = std::fs::read_to_string(dir.path().join("idsync.toml")).unwrap();
    std::fs::write(
        dir.path().join("idsync.toml"),
        toml.replace(
            "memberships = \"memberships.csv\"",
            "memberships = \"memberships.csv\"\ninterval = \"1h\"",
        ),
    )
    .unwrap();
    let port = free_port();
    let mut cmd = idsync();
    cmd.arg("--config")
        .arg(dir.path().join("idsync.toml"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("serve.err")).unwrap());
    let mut child = cmd.spawn().unwrap();
    wait_for("writes in the target", || {
        (journal_lines(dir.path()) >= 30).then_some(())
    });
    signal(&child, "-TERM");
    let code = wait_exit(&mut child, Duration::from_secs(15));
    let err = std::fs::read_to_string(dir.path().join("serve.err")).unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    let r = &runs(dir.path())[0];
    assert_eq!(r["status"], "interrupted", "{r}\n{err}");
    assert!(count(r, "applied") > 0, "{r}");
}

/// Item 18: a sync killed with SIGKILL leaves its run `running`; the next start marks it
/// `interrupted`, with the count of what its log says was applied.
#[test]
fn a_run_killed_mid_way_shows_as_interrupted_with_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    slow_flow(dir.path(), 2000, 400);
    let mut child = spawn_sync(dir.path(), "sync");
    // Past the first recorded batch of outcomes (256).
    wait_for("writes in the target", || {
        (journal_lines(dir.path()) >= 600).then_some(())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let r = &runs(dir.path())[0];
    assert_eq!(r["status"], "interrupted", "{r}");
    let run_id = r["id"].as_str().unwrap();
    let applied = logged(dir.path(), run_id, "applied");
    assert!(applied >= 256, "{applied}");
    assert_eq!(count(r, "applied") as usize, applied, "{r}");
    assert!(r["ended_ms"].as_i64().is_some(), "{r}");
    let o = run(dir.path(), &["runs"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("interrupted"),
        "{}",
        text(&o)
    );
}

/// Item 19: two syncs of one flow at once: one runs, the other refuses at once naming it
/// (pid, host), and the target sees every write once.
#[test]
fn two_syncs_of_one_flow_at_once_one_runs_the_other_refuses() {
    let dir = tempfile::tempdir().unwrap();
    slow_flow(dir.path(), 600, 200);
    let mut first = spawn_sync(dir.path(), "first");
    wait_for("writes in the target", || {
        (journal_lines(dir.path()) >= 10).then_some(())
    });
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains("being run by another process")
            && said.contains(&format!("pid {}", first.id())),
        "{said}"
    );
    assert_eq!(wait_exit(&mut first, Duration::from_secs(60)), 0);
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    assert_eq!(target.user_count(), 600);
    for i in 0..600 {
        assert_eq!(target.users_named(&format!("user{i}@example.com")), 1);
    }
    // Each user was written once.
    let journal = std::fs::read_to_string(dir.path().join("target.jsonl")).unwrap();
    let creates = journal
        .lines()
        .filter(|l| l.contains("\"op\":\"put_user\""))
        .count();
    assert_eq!(creates, 600, "{}", &journal[..journal.len().min(400)]);
    // The lease is given back: the next sync runs.
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// Item 19: processes opening a new database at once all succeed (the migrations take a lock).
#[test]
fn many_processes_opening_a_new_database_at_once_all_succeed() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        write_people_csv(dir.path(), 2);
        write_config(dir.path(), "");
        let children: Vec<_> = (0..8)
            .map(|_| {
                idsync()
                    .arg("--config")
                    .arg(dir.path().join("idsync.toml"))
                    .args(["runs"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        }
    }
}

/// Item 21: the store's disk is full: one message naming the file, the free space and what to
/// do. The store is on a 1 MiB tmpfs mounted in a user and mount namespace of its own
/// (`unshare`), so no root is needed.
#[test]
fn a_full_disk_is_one_message_with_the_file_the_space_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 3000);
    write_config(dir.path(), "");
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let toml = std::fs::read_to_string(dir.path().join("idsync.toml")).unwrap();
    std::fs::write(
        dir.path().join("idsync.toml"),
        toml.replace("path = \"idsync.db\"", "path = \"small/idsync.db\""),
    )
    .unwrap();
    let script = format!(
        "mount -t tmpfs -o size=1m tmpfs '{}' && exec '{}' --config '{}' sync hr-to-app",
        small.display(),
        env!("CARGO_BIN_EXE_idsync"),
        dir.path().join("idsync.toml").display()
    );
    let o = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    let e = errors[0];
    assert!(e.contains("small/idsync.db"), "{e}");
    assert!(e.contains("is full"), "{e}");
    assert!(e.contains("free in"), "{e}");
    assert!(e.contains("free some space"), "{e}");
    assert!(
        err.matches("checkpoint failed").count() <= 1,
        "the checkpoint warning is said once: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Item 22: an error is said once, not once more by each of its causes.
#[test]
fn an_error_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "");
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines = stderr_lines(&o);
    assert_eq!(lines.len(), 1, "{err}");
    // The file's error (No such file or directory ...) appears once.
    assert_eq!(err.matches("users.csv").count(), 1, "{err}");
}

/// Item 22: a member batch some of whose members failed counts once: applied + failed +
/// skipped never exceeds what was planned.
#[test]
fn counts_add_up_when_member_batches_lose_members() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 9);
    write_config(dir.path(), "");
    with_test_target_keys(dir.path(), "reject_user_names = [\"^user3@\", \"^user4@\"]");
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let r = &runs(dir.path())[0];
    let (planned, applied, failed, skipped) = (
        count(r, "planned"),
        count(r, "applied"),
        count(r, "failed"),
        count(r, "skipped"),
    );
    assert_eq!(applied + failed + skipped, planned, "{r}");
    // 2 users rejected, and the 2 member batches that named them.
    assert_eq!(failed, 4, "{r}");
}

/// Item 22: a plan whose deprovisions are held says so, how many, and how to answer.
#[test]
fn plan_says_how_many_deprovisions_are_held_and_how_to_answer() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 10);
    write_config(dir.path(), "deletion_threshold = 2");
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    write_people_csv(dir.path(), 6);
    let o = run(dir.path(), &["plan", "hr-to-app"]);
    let said = text(&o);
    assert_eq!(o.status.code(), Some(0), "{said}");
    assert!(
        !said.contains("nothing to do: the target is up to date"),
        "{said}"
    );
    assert!(said.contains("4 deprovision(s) held"), "{said}");
    assert!(said.contains("idsync approve RUN"), "{said}");
    // Once a sync held them, the plan names the run that waits.
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let held = runs(dir.path())[0]["id"].as_str().unwrap().to_string();
    let o = run(dir.path(), &["plan", "hr-to-app"]);
    let said = text(&o);
    assert!(said.contains("4 deprovision(s) held"), "{said}");
    assert!(said.contains(&format!("idsync approve {held}")), "{said}");
    assert!(said.contains(&format!("idsync reject {held}")), "{said}");
}

/// Item 22: `idsync log RUN | head` ends quietly when the reader goes away.
#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 3000);
    write_config(dir.path(), "");
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run_id = runs(dir.path())[0]["id"].as_str().unwrap().to_string();
    for args in [
        vec!["log", run_id.as_str()],
        vec!["log", run_id.as_str(), "--json"],
    ] {
        let mut child = idsync()
            .arg("--config")
            .arg(dir.path().join("idsync.toml"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        // The reader is gone (dropped above), as `head -1` would be.
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.trim().is_empty(), "{args:?}: {err}");
    }
    // Into a pipe closed before the first line: every printing command, the simulator too.
    for args in [
        vec!["audit"],
        vec!["runs"],
        vec![
            "sim",
            "graph",
            "--users",
            "5",
            "--groups",
            "1",
            "--memberships",
            "5",
        ],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut child = idsync()
            .arg("--config")
            .arg(dir.path().join("idsync.toml"))
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let code = wait_exit(&mut child, Duration::from_secs(20));
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// Item 23: `config check` finds what `sync` would hit: an empty tenant and a missing CA file,
/// each once at its key, and no false "no source named" for the flow.
#[test]
fn config_check_finds_what_sync_would_hit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("idsync.toml"),
        r#"[sources.entra]
type = "msgraph"
tenant = ""
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "s3cret"
ca_file = "missing-ca.pem"

[targets.app]
type = "test"
journal = "t.jsonl"

[flows.entra-to-app]
source = "entra"
target = "app"
"#,
    )
    .unwrap();
    let o = run(dir.path(), &["config", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(":3:") && err.contains("sources.entra.tenant: must not be empty"),
        "{err}"
    );
    assert!(
        err.contains(":6:")
            && err.contains("sources.entra.ca_file")
            && err.contains("missing-ca.pem"),
        "{err}"
    );
    assert!(!err.contains("no source named"), "{err}");
    assert!(err.contains("2 error(s)"), "{err}");
}

/// Item 19: a sync while `idsync serve` runs the flow refuses, naming the serve process; once
/// that process is gone (killed), the next sync takes the flow over and completes it.
#[test]
fn a_sync_while_serve_runs_the_flow_refuses_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    slow_flow(dir.path(), 400, 100);
    let toml = std::fs::read_to_string(dir.path().join("idsync.toml")).unwrap();
    std::fs::write(
        dir.path().join("idsync.toml"),
        toml.replace(
            "memberships = \"memberships.csv\"",
            "memberships = \"memberships.csv\"\ninterval = \"1h\"",
        ),
    )
    .unwrap();
    let port = free_port();
    let server = serve(dir.path(), port, &[]);
    wait_for("writes in the target", || {
        (journal_lines(dir.path()) >= 20).then_some(())
    });
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let said = text(&o);
    assert!(
        said.contains(&format!("pid {}", server.0.id())) && said.contains("serve"),
        "{said}"
    );
    drop(server); // SIGKILL: its run stays `running`, its lease in the store
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    assert_eq!(target.user_count(), 400);
    for i in (0..400).step_by(13) {
        assert_eq!(target.users_named(&format!("user{i}@example.com")), 1);
    }
    let all = runs(dir.path());
    assert!(all.iter().any(|r| r["status"] == "interrupted"), "{all:#?}");
}

/// Item 21: while the disk stays full, the background checkpoint fails every 100 ms; it is
/// said once. A sync on a 1 MiB tmpfs commits the directory into the WAL and cannot grow the
/// database file; `idsync serve` then runs on that store until its first warning and a second
/// more.
#[test]
fn a_failing_checkpoint_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 800);
    write_config(dir.path(), "");
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let toml = std::fs::read_to_string(dir.path().join("idsync.toml")).unwrap();
    std::fs::write(
        dir.path().join("idsync.toml"),
        toml.replace("path = \"idsync.db\"", "path = \"small/idsync.db\""),
    )
    .unwrap();
    let (bin, config) = (env!("CARGO_BIN_EXE_idsync"), dir.path().join("idsync.toml"));
    let script = format!(
        "# A sync that fills the disk leaves a WAL it cannot checkpoint, most times: when the
# background checkpoints happened to move it into the database first, it is tried again. So is
# a serve that found no room even for its first write (its process row): it says so and stops,
# which is right, but not what this test is about.
attempt=0
while :; do
  attempt=$((attempt+1))
  [ $attempt -gt 8 ] && exit 7
  n=0
  until [ -s '{small}/idsync.db-wal' ]; do
    [ $n -ge 8 ] && exit 8
    n=$((n+1))
    umount '{small}' 2>/dev/null
    mount -t tmpfs -o size=1m tmpfs '{small}' || exit 9
    '{bin}' --config '{config}' sync hr-to-app 2>/dev/null >/dev/null
  done
  '{bin}' --config '{config}' serve --listen 127.0.0.1:0 >/dev/null 2>'{log}' &
  pid=$!
  # Until the first warning (at most 30 s: a loaded machine starts slowly), then ten more
  # checkpoints (one each 100 ms) that must stay silent.
  i=0
  until grep -q 'checkpoint failed' '{log}' || ! kill -0 $pid 2>/dev/null || [ $i -ge 300 ]; do
    sleep 0.1; i=$((i+1))
  done
  if grep -q 'checkpoint failed' '{log}'; then
    sleep 1
    kill -TERM $pid
    wait $pid
    exit 0
  fi
  wait $pid
  grep -q 'is full' '{log}' || exit 10
  umount '{small}' 2>/dev/null
done",
        small = small.display(),
        config = config.display(),
        log = dir.path().join("serve.err").display()
    );
    let o = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let log = std::fs::read_to_string(dir.path().join("serve.err")).unwrap();
    assert_eq!(log.matches("checkpoint failed").count(), 1, "{log}");
}

/// A target that throttles (idsync's own endpoint with a low rate per token: 429 and
/// Retry-After) slows the sync down instead of failing it: every user arrives, nothing fails,
/// and the operations waited for the target instead of using up their retries.
#[test]
fn a_throttling_target_slows_the_sync_down_and_nothing_fails() {
    let peer = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        peer.path().join("idsync.toml"),
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\nscim_rate = 20\nscim_burst = 5\n\n[sources.apps]\ntype = \"scim\"\n"),
    )
    .unwrap();
    let token = create_token(peer.path(), &["apps"]);
    let _server = serve(peer.path(), port, &[]);
    let url = format!("http://127.0.0.1:{port}/scim/v2/apps");
    let dir = tempfile::tempdir().unwrap();
    scim_flow(dir.path(), 60, &url);
    let o = idsync()
        .arg("--config")
        .arg(dir.path().join("idsync.toml"))
        .args(["sync", "hr-to-app"])
        .env("RUST_LOG", "warn,idsync_engine=debug")
        .env("IDSYNC_TEST_TARGET_TOKEN", &token)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let waits = String::from_utf8_lossy(&o.stderr)
        .matches("throttled by the target")
        .count();
    assert!(waits > 0, "the endpoint never throttled: {}", text(&o));
    let run = &runs(dir.path())[0];
    assert_eq!(count(run, "failed"), 0, "{run}");
    assert_eq!(count(run, "applied"), count(run, "planned"), "{run}");
    // Every user is in the endpoint (asked until its bucket lets the question through).
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let total = loop {
        let r = http
            .get(format!("{url}/Users?count=1"))
            .bearer_auth(&token)
            .send()
            .unwrap();
        if r.status().as_u16() != 429 {
            let v: Value = r.json().unwrap();
            break v["totalResults"].as_u64();
        }
        assert!(Instant::now() < deadline, "still throttled after 10 s");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(total, Some(60));
}

/// Item 19 through the admin API: a sync asked of `idsync serve` while another process runs
/// the flow is answered 409, naming that process; the running sync goes on undisturbed.
#[test]
fn the_admin_api_answers_409_while_another_process_runs_the_flow() {
    let dir = tempfile::tempdir().unwrap();
    slow_flow(dir.path(), 400, 100);
    let mut first = spawn_sync(dir.path(), "first");
    wait_for("writes in the target", || {
        (journal_lines(dir.path()) >= 20).then_some(())
    });
    let port = free_port();
    let _server = serve(dir.path(), port, &[]);
    let r = reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/api/v1/flows/hr-to-app/sync"
        ))
        .send()
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().unwrap();
    assert_eq!(status, 409, "{body}");
    assert!(body.contains(&format!("pid {}", first.id())), "{body}");
    assert_eq!(wait_exit(&mut first, Duration::from_secs(60)), 0);
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    assert_eq!(target.user_count(), 400);
}
