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

/// An SMTP server on loopback (aiosmtpd from `target/mail-venv`) that accepts AUTH PLAIN/LOGIN
/// without TLS for `user` with `password` only, and keeps each mail it is given in `maildir`.
fn smtp_with_auth(dir: &Path, user: &str, password: &str) -> (Server, u16, PathBuf) {
    let py = mail_python();
    let port = free_port();
    let maildir = dir.join("mail");
    std::fs::create_dir_all(&maildir).unwrap();
    let script = dir.join("smtp_auth.py");
    std::fs::write(
        &script,
        r#"import asyncio, os, sys, uuid
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

port, maildir, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode(), sys.argv[4].encode()

def authenticator(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=(auth_data.login == user and auth_data.password == password))

class Keep:
    async def handle_DATA(self, server, session, envelope):
        if not session.authenticated:
            return "530 Authentication required"
        with open(os.path.join(maildir, uuid.uuid4().hex + ".eml"), "wb") as f:
            f.write(envelope.original_content)
        return "250 OK"

c = Controller(Keep(), hostname="127.0.0.1", port=port, authenticator=authenticator,
               auth_required=True, auth_require_tls=False)
c.start()
asyncio.get_event_loop().run_forever()
"#,
    )
    .unwrap();
    let server = Server(
        Command::new(&py)
            .arg(&script)
            .arg(port.to_string())
            .arg(&maildir)
            .args([user, password])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        None,
    );
    wait_for("the SMTP server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (server, port, maildir)
}

/// Every secret the configuration can carry, each with a value found nowhere else.
const GRAPH_SECRET: &str = "graphSecretQ7xZp3Lk";
const SMTP_PASSWORD: &str = "smtpPasswordW9vB2nTe";
const WEBHOOK_SECRET: &str = "webhookSecretH4mC8rYs";
const WEBHOOK_URL_TOKEN: &str = "hookUrlTokenP2kN7sXa";
const ADMIN_TOKEN: &str = "adminTokenJ6dF1qUw";

/// Where `needle` (or its base64, or its hex) appears in `hay`, by name.
fn leaks(needles: &[(&str, String)], name: &str, hay: &[u8]) -> Vec<String> {
    use std::fmt::Write as _;
    let hay_text = String::from_utf8_lossy(hay);
    let mut found = Vec::new();
    for (what, value) in needles {
        let b64 = base64_of(value.as_bytes());
        let hex = value.bytes().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        for form in [value.as_str(), b64.trim_end_matches('='), hex.as_str()] {
            if hay_text.contains(form) {
                found.push(format!("{what} in {name}"));
                break;
            }
        }
    }
    found
}

fn base64_of(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut c = Command::new("base64")
        .args(["-w", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(bytes).unwrap();
    String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()
}

#[test]
fn configured_secrets_never_reach_the_store_or_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_sim, root, tenant) = graph_sim(
        d,
        &[
            "--client-secret",
            GRAPH_SECRET,
            "--client-cert",
            super::APP_CERT,
        ],
    );
    // A line of the certificate's private key, in the middle of the key.
    let key_line = std::fs::read_to_string(super::APP_CERT)
        .unwrap()
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY"))
        .nth(8)
        .unwrap()
        .to_string();
    let (_smtp, smtp_port, maildir) = smtp_with_auth(d, "idsync-mailer", SMTP_PASSWORD);
    let (hook, hooks) = webhook_receiver();
    let hook = format!("{hook}?token={WEBHOOK_URL_TOKEN}");
    let port = free_port();
    std::fs::write(
        d.join("idsync.toml"),
        format!(
            r#"[store]
path = "idsync.db"

[server]
admin_token = "${{env:IDSYNC_TEST_ADMIN_TOKEN}}"

[log]
level = "trace"

[notifications]
email_to = ["idm-team@example.com"]
email_from = "idsync@example.com"
smtp_url = "smtp://127.0.0.1:{smtp_port}"
smtp_username = "idsync-mailer"
smtp_password = "${{env:IDSYNC_TEST_SMTP_PASSWORD}}"
webhook_url = "${{env:IDSYNC_TEST_WEBHOOK_URL}}"
webhook_secret = "${{file:webhook.secret}}"

[sources.entra]
type = "msgraph"
tenant = "{tenant}"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "${{env:IDSYNC_TEST_GRAPH_SECRET}}"
authority = "{root}"
graph_url = "{root}"
ca_file = "sim/ca.pem"

[sources.entra-cert]
type = "msgraph"
tenant = "{tenant}"
client_id = "11111111-2222-3333-4444-555555555555"
client_certificate = "{cert}"
authority = "{root}"
graph_url = "{root}"
ca_file = "sim/ca.pem"

[sources.pushed]
type = "scim"

[targets.app]
type = "scim"
url = "http://127.0.0.1:{port}/scim/v2/pushed"
token = "${{env:IDSYNC_TEST_SCIM_TOKEN}}"

[targets.broken]
type = "test"
journal = "broken.jsonl"
fail_rate = 1.0

[flows.entra-to-app]
source = "entra"
target = "app"

[flows.entra-to-broken]
source = "entra"
target = "broken"
max_retries = 0
"#,
            cert = super::APP_CERT
        ),
    )
    .unwrap();
    std::fs::write(d.join("webhook.secret"), format!("{WEBHOOK_SECRET}\n")).unwrap();

    // The SCIM target's token is one idsync's own SCIM endpoint made (printed once, by design).
    let o = idsync()
        .arg("--config")
        .arg(d.join("idsync.toml"))
        .args(["token", "create", "pushed"])
        .env("IDSYNC_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("IDSYNC_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
        .env("IDSYNC_TEST_WEBHOOK_URL", &hook)
        .env("IDSYNC_TEST_GRAPH_SECRET", GRAPH_SECRET)
        .env("IDSYNC_TEST_SCIM_TOKEN", "not-yet")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let scim_token = String::from_utf8_lossy(&o.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let needles: Vec<(&str, String)> = vec![
        ("the Graph client secret", GRAPH_SECRET.into()),
        ("the SMTP password", SMTP_PASSWORD.into()),
        ("the webhook secret", WEBHOOK_SECRET.into()),
        ("the token in the webhook URL", WEBHOOK_URL_TOKEN.into()),
        ("the admin token", ADMIN_TOKEN.into()),
        ("the SCIM target's token", scim_token.clone()),
        ("the certificate's private key", key_line),
    ];
    // The command line's webhook is down (its error is recorded), the service's answers.
    let dead_hook = format!(
        "http://127.0.0.1:{}/hook?token={WEBHOOK_URL_TOKEN}",
        free_port()
    );
    let env = |hook: &str| {
        [
            ("IDSYNC_TEST_ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
            ("IDSYNC_TEST_SMTP_PASSWORD", SMTP_PASSWORD.to_string()),
            ("IDSYNC_TEST_WEBHOOK_URL", hook.to_string()),
            ("IDSYNC_TEST_GRAPH_SECRET", GRAPH_SECRET.to_string()),
            ("IDSYNC_TEST_SCIM_TOKEN", scim_token.clone()),
        ]
    };
    // Everything idsync prints, with every log line at trace level.
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    // A mistyped webhook URL is an error that names the key, not the URL's token.
    let mut cmd = idsync();
    cmd.arg("--config")
        .arg(d.join("idsync.toml"))
        .args(["config", "check"]);
    for (k, v) in env(&format!(
        "htps://hooks.example.com/x?token={WEBHOOK_URL_TOKEN}"
    )) {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("notifications.webhook_url: not an http(s) URL"),
        "{}",
        text(&o)
    );
    outputs.push(("config check".into(), [o.stdout, o.stderr].concat()));
    let mut idsync_run = |args: &[&str]| -> Output {
        let mut cmd = idsync();
        cmd.arg("--config")
            .arg(d.join("idsync.toml"))
            .arg("--verbose")
            .args(args)
            .env("RUST_LOG", "trace");
        for (k, v) in env(&dead_hook) {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        outputs.push((
            format!("idsync {}", args.join(" ")),
            [o.stdout.clone(), o.stderr.clone()].concat(),
        ));
        o
    };
    let o = idsync_run(&["config", "check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for source in ["entra", "entra-cert"] {
        let o = idsync_run(&["source", "check", source]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    // A failed run: an email through SMTP with the password, a signed webhook.
    let o = idsync_run(&["sync", "entra-to-broken"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));

    // The service with its admin token: the SCIM target (its own endpoint, with the token),
    // a source read, and two more failures of the broken flow, which quarantine it.
    let serve_log = d.join("serve.log");
    let mut cmd = idsync();
    cmd.arg("--config")
        .arg(d.join("idsync.toml"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "trace")
        .stdout(std::fs::File::create(&serve_log).unwrap())
        .stderr(std::fs::File::create(d.join("serve.err")).unwrap());
    for (k, v) in env(&hook) {
        cmd.env(k, v);
    }
    let server = Server(cmd.spawn().unwrap(), Some(d.join("serve.err")));
    let http = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_for("healthz", || {
        http.get(format!("{base}/healthz"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
    let api = |path: &str| {
        http.post(format!("{base}/api/v1{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .unwrap()
    };
    let r = http
        .post(format!("{base}/api/v1/flows/entra-to-app/sync"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = api("/flows/entra-to-app/sync");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["status"], "succeeded", "{v}");
    let users: serde_json::Value = http
        .get(format!("{base}/scim/v2/pushed/Users?count=1"))
        .bearer_auth(&scim_token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(users["totalResults"], 150, "{users}");
    assert_eq!(api("/sources/entra/read").status(), 200);
    assert_eq!(api("/sources/entra-cert/read").status(), 200);
    for _ in 0..2 {
        let v: serde_json::Value = api("/flows/entra-to-broken/sync").json().unwrap();
        assert_eq!(v["status"], "failed", "{v}");
    }
    // The notifications arrived: mail only through SMTP AUTH with the password, webhooks
    // signed with the secret and sent to the URL with its token.
    let mails = wait_for("two mails", || {
        let n = std::fs::read_dir(&maildir).map(|d| d.count()).unwrap_or(0);
        (n >= 2).then_some(n)
    });
    assert_eq!(mails, 2);
    let hooks = wait_for("the webhook", || {
        Some(hooks.lock().unwrap().clone()).filter(|h| !h.is_empty())
    });
    assert_eq!(hooks.len(), 1);
    for (head, body) in &hooks {
        assert!(head.contains(WEBHOOK_URL_TOKEN), "{head}");
        let signature = idsync_engine::webhook_signature(WEBHOOK_SECRET, body);
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("x-idsync-signature: {signature}")),
            "{head}"
        );
    }
    drop(server);

    // What idsync shows of its history, and the audit log.
    for args in [
        &["runs"][..],
        &["runs", "--source", "entra"],
        &["audit", "--json"],
        &["quarantine"],
    ] {
        let o = idsync_run(args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    // Each notification is recorded with where it went, the failed one with its error.
    let o = idsync_run(&["notifications"]);
    let t = text(&o);
    assert_eq!(
        t.lines().filter(|l| l.contains("  sent  ")).count(),
        3,
        "{t}"
    );
    let failed = t
        .lines()
        .find(|l| l.contains("FAILED"))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        failed.contains("webhook") && failed.contains("POST http://127.0.0.1:"),
        "{failed}"
    );
    outputs.push(("serve's stdout".into(), std::fs::read(&serve_log).unwrap()));
    outputs.push((
        "serve's log".into(),
        std::fs::read(d.join("serve.err")).unwrap(),
    ));
    assert!(
        outputs
            .iter()
            .any(|(_, o)| String::from_utf8_lossy(o).contains("TRACE")),
        "the logs were captured at trace level"
    );
    let mut found = Vec::new();
    for (name, bytes) in &outputs {
        found.extend(leaks(&needles, name, bytes));
    }
    // The store: the database, its write-ahead log, and whatever else idsync wrote.
    for f in [
        "idsync.db",
        "idsync.db-wal",
        "idsync.db-shm",
        "broken.jsonl",
    ] {
        let bytes = std::fs::read(d.join(f)).unwrap_or_default();
        found.extend(leaks(&needles, f, &bytes));
    }
    assert!(found.is_empty(), "secrets found: {found:#?}");
}
