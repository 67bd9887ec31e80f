//! Security basics through the binary: the audit log of admin actions (command line and admin
//! API), secrets sealed in the store and their rotation, and configured secrets never reaching
//! the store or the logs.

use super::*;

/// `idsync ARGS` as the OS user `user`.
fn run_as(dir: &Path, user: &str, args: &[&str]) -> Output {
    idsync()
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("USER", user)
        .env("IDSYNC_TEST_TOKEN", "audit-admin-token")
        .output()
        .unwrap()
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// The run id a `sync` printed (`run <id>: ...`).
fn run_id(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("run ")?.split(':').next())
        .unwrap_or_else(|| panic!("{}", text(o)))
        .to_string()
}

#[test]
fn audit_log_records_cli_and_api_admin_actions_with_who_what_when() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_people_csv(d, 30);
    write_config(d, "deletion_threshold = 2");
    let toml = std::fs::read_to_string(d.join("idsync.toml")).unwrap();
    std::fs::write(
        d.join("idsync.toml"),
        format!("{toml}\n[server]\nadmin_token = \"${{env:IDSYNC_TEST_TOKEN}}\"\n"),
    )
    .unwrap();
    let started = now_ms();

    // Admin actions from the command line, done and refused.
    let o = run_as(d, "alice", &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let first_run = run_id(&o);
    let o = run_as(d, "alice", &["token", "create", "hr", "--name", "ci"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let token_id = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(
        run_as(d, "bob", &["token", "revoke", &token_id])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        run_as(d, "bob", &["token", "revoke", "no-such-token"])
            .status
            .code(),
        Some(2)
    );
    write_people_csv(d, 25);
    let o = run_as(d, "alice", &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let held = run_id(&o);
    let o = run_as(d, "bob", &["approve", "no-such-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = run_as(d, "bob", &["approve", &held]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run_as(d, "bob", &["reject", &held]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = run_as(d, "carol", &["quarantine", "--reset", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // Looking is not an admin action.
    assert_eq!(run_as(d, "carol", &["runs"]).status.code(), Some(0));

    // The same kinds of actions through the admin API.
    write_people_csv(d, 20);
    let o = run_as(d, "alice", &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let held_again = run_id(&o);
    let port = free_port();
    let _server = serve(d, port, &[("IDSYNC_TEST_TOKEN", "audit-admin-token")]);
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let http = reqwest::blocking::Client::new();
    let post = |path: &str| {
        http.post(format!("{base}{path}"))
            .bearer_auth("audit-admin-token")
            .send()
            .unwrap()
    };
    assert_eq!(post(&format!("/runs/{held_again}/reject")).status(), 200);
    assert_eq!(post(&format!("/runs/{held_again}/approve")).status(), 409);
    let r = post("/flows/hr-to-app/sync");
    assert_eq!(r.status(), 200);
    let api_run = r.json::<serde_json::Value>().unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(post("/sources/hr/read").status(), 200);
    assert_eq!(post("/flows/hr-to-app/quarantine/reset").status(), 200);
    assert_eq!(post("/flows/nope/sync").status(), 404);
    // Without the token: refused before it is an action, and not recorded.
    let r = http
        .post(format!("{base}/flows/hr-to-app/sync"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let unauthenticated = http.get(format!("{base}/audit")).send().unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let ended = now_ms();

    let api: serde_json::Value = http
        .get(format!("{base}/audit?limit=100"))
        .bearer_auth("audit-admin-token")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let o = run_as(d, "carol", &["audit", "--json", "--limit", "100"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let cli: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(api, cli, "the API and the command line show the same log");
    let entries = cli.as_array().unwrap();
    let shown: Vec<String> = entries
        .iter()
        .rev()
        .map(|e| {
            format!(
                "{} {} {} {} {}",
                e["actor"].as_str().unwrap(),
                e["via"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["object"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            "cli:alice cli flow.sync hr-to-app ok".to_string(),
            "cli:alice cli token.create hr ok".to_string(),
            format!("cli:bob cli token.revoke {token_id} ok"),
            "cli:bob cli token.revoke no-such-token refused".to_string(),
            "cli:alice cli flow.sync hr-to-app ok".to_string(),
            "cli:bob cli run.approve no-such-run refused".to_string(),
            format!("cli:bob cli run.approve {held} ok"),
            format!("cli:bob cli run.reject {held} refused"),
            "cli:carol cli flow.quarantine_reset hr-to-app ok".to_string(),
            "cli:alice cli flow.sync hr-to-app ok".to_string(),
            format!("admin-token api run.reject {held_again} ok"),
            format!("admin-token api run.approve {held_again} refused"),
            "admin-token api flow.sync hr-to-app ok".to_string(),
            "admin-token api source.read hr ok".to_string(),
            "admin-token api flow.quarantine_reset hr-to-app ok".to_string(),
            "admin-token api flow.sync nope refused".to_string(),
        ],
        "{cli:#}"
    );
    // When: from the clock, in order, each ended after it began.
    let mut last = started;
    for e in entries.iter().rev() {
        let at = e["at_ms"].as_i64().unwrap();
        assert!(at >= last && at <= ended, "{e}");
        assert!(e["ended_ms"].as_i64().unwrap() >= at, "{e}");
        last = at;
    }
    // What each did, or why it was refused.
    let detail = |i: usize| {
        entries[entries.len() - 1 - i]["detail"]
            .as_str()
            .unwrap_or("")
    };
    assert_eq!(detail(0), format!("run {first_run}: succeeded"));
    assert!(
        detail(1).starts_with(&format!("token {token_id} (ci)")),
        "{}",
        detail(1)
    );
    assert!(detail(3).contains("no live token"), "{}", detail(3));
    assert_eq!(detail(4), format!("run {held}: held"));
    assert!(detail(5).contains("no-such-run"), "{}", detail(5));
    assert!(detail(6).ends_with(": succeeded"), "{}", detail(6));
    assert!(
        detail(7).contains("not waiting for approval"),
        "{}",
        detail(7)
    );
    assert_eq!(detail(10), format!("run {held_again}: rejected"));
    assert!(
        detail(11).starts_with("HTTP 409") && detail(11).contains("not waiting"),
        "{}",
        detail(11)
    );
    // Rejected, the deprovisions are judged again: the run holds them again.
    assert_eq!(detail(12), format!("run {api_run}: held"));

    // The table, and --limit.
    let o = run_as(d, "carol", &["audit", "--limit", "2"]);
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(t.lines().count(), 3, "{t}");
    assert!(t.lines().next().unwrap().starts_with("WHEN"), "{t}");
    assert!(
        t.contains("admin-token") && t.contains("flow.sync") && t.contains("refused"),
        "{t}"
    );
    let two: serde_json::Value = http
        .get(format!("{base}/audit?limit=2"))
        .bearer_auth("audit-admin-token")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(two.as_array().unwrap().len(), 2);
}

/// A key file with 32 bytes in base64.
fn write_key(path: &Path, byte: u8) -> [u8; 32] {
    use std::io::Write;
    let key = [byte; 32];
    let mut b64 = Command::new("base64")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    b64.stdin.take().unwrap().write_all(&key).unwrap();
    let out = b64.wait_with_output().unwrap();
    std::fs::write(path, out.stdout).unwrap();
    key
}

#[test]
fn secrets_sealed_in_the_store_are_rotated_under_the_new_key_by_the_binary() {
    use idsync_store::{Keyring, SealKey, SecretError, Store};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_people_csv(d, 3);
    write_config(d, "");
    let base_toml = std::fs::read_to_string(d.join("idsync.toml")).unwrap();
    let with_keys = |store: &str| {
        std::fs::write(
            d.join("idsync.toml"),
            base_toml.replace(
                "path = \"idsync.db\"",
                &format!("path = \"idsync.db\"\n{store}"),
            ),
        )
        .unwrap();
    };
    let old = write_key(&d.join("old.key"), 1);
    let new = write_key(&d.join("new.key"), 2);

    // Keys that are not 32 bytes, or not there, are configuration errors naming the key.
    std::fs::write(d.join("short.key"), "c2hvcnQ=\n").unwrap();
    with_keys(
        "secret_key = \"${file:short.key}\"\nprevious_secret_keys = [\"${file:missing.key}\"]",
    );
    let o = run(d, &["config", "check"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("store.secret_key: a key is 32 bytes; this one decodes to 5"),
        "{t}"
    );
    assert!(
        t.contains("store.previous_secret_keys[0]: cannot read secret file"),
        "{t}"
    );
    // Rotation needs a key.
    with_keys("");
    let o = run(d, &["secrets", "rotate"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no [store] secret_key"), "{}", text(&o));

    // Values sealed under the old key (no command stores one yet: the store's API does).
    with_keys("secret_key = \"${file:old.key}\"");
    assert_eq!(run(d, &["config", "check"]).status.code(), Some(0));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = d.join("idsync.db");
    rt.block_on(async {
        let store = Store::open(&db).await.unwrap();
        let keys = Keyring::new(SealKey::new(old), vec![]);
        for (name, value) in [
            ("app-password", "first-value"),
            ("signing-key", "second-value"),
        ] {
            store
                .put_secret(&keys, name, value.as_bytes(), 1)
                .await
                .unwrap();
        }
        store.close().await;
    });
    let old_id = SealKey::new(old).id().to_string();
    let new_id = SealKey::new(new).id().to_string();
    let o = run(d, &["secrets", "list"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains(&format!("current key: {old_id}")), "{t}");
    assert_eq!(t.lines().filter(|l| l.contains(&old_id)).count(), 3, "{t}");

    // The new key without the old one cannot open them: rotation refuses and changes nothing.
    with_keys("secret_key = \"${file:new.key}\"");
    let o = run(d, &["secrets", "rotate"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "secret \"app-password\" is sealed under key {old_id}, which is not configured"
        )),
        "{}",
        text(&o)
    );
    // With the old key kept for opening, everything is sealed again under the new one.
    with_keys("secret_key = \"${file:new.key}\"\nprevious_secret_keys = [\"${file:old.key}\"]");
    let o = run(d, &["secrets", "rotate"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "2 secret(s) sealed again under key {new_id}, 0 already"
        )),
        "{}",
        text(&o)
    );
    let o = run(d, &["secrets", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|s| s["key_id"] == new_id.as_str()),
        "{list}"
    );
    rt.block_on(async {
        let store = Store::open(&db).await.unwrap();
        let new_only = Keyring::new(SealKey::new(new), vec![]);
        let v = store.get_secret(&new_only, "app-password").await.unwrap();
        assert_eq!(&v.unwrap()[..], b"first-value");
        let old_only = Keyring::new(SealKey::new(old), vec![]);
        assert!(matches!(
            store.get_secret(&old_only, "signing-key").await,
            Err(SecretError::UnknownKey { .. })
        ));
        store.close().await;
    });
    // The rotations are admin actions.
    let o = run(d, &["audit"]);
    let t = text(&o);
    assert_eq!(
        t.lines()
            .filter(|l| l.contains("secrets.rotate") && l.contains(" ok "))
            .count(),
        1,
        "{t}"
    );
    assert_eq!(
        t.lines()
            .filter(|l| l.contains("secrets.rotate") && l.contains("refused"))
            .count(),
        1,
        "{t}"
    );
    // Nothing of the values is in the database files in clear.
    for f in ["idsync.db", "idsync.db-wal"] {
        let bytes = std::fs::read(d.join(f)).unwrap_or_default();
        let s = String::from_utf8_lossy(&bytes);
        assert!(
            !s.contains("first-value") && !s.contains("second-value"),
            "{f}"
        );
    }
}
