//! Notifications through the binary: a real SMTP server and a webhook receiver on failure,
//! quarantine and hold.

use super::*;

/// A webhook receiver on loopback: keeps each request's headers and body, answers 200.
/// Requests received: (headers, body).
pub(crate) type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

pub(crate) fn webhook_receiver() -> (String, Received) {
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
pub(crate) fn mail_python() -> PathBuf {
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
