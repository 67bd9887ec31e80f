//! `idsync serve` against hostile clients: connections that never finish their headers or sit
//! idle, more connections than file descriptors, bursts over a token's rate, requests over the
//! size limits, odd spellings of the bearer scheme, and `/metrics` behind its token.

use super::{create_token, free_port, wait_for, Server};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A config whose directory `apps` takes SCIM pushes, with `server` lines added to `[server]`.
fn write_scim_config(dir: &Path, port: u16, server: &str) {
    std::fs::write(
        dir.join("idsync.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n{server}\n\n[sources.apps]\ntype = \"scim\"\n"
        ),
    )
    .unwrap();
}

/// `idsync serve` with at most `nofile` open files (through the shell's `ulimit -n`), its
/// standard output and error in `serve.log`; started and answering /healthz.
fn serve_limited(dir: &Path, port: u16, nofile: Option<u32>) -> (Server, PathBuf) {
    let log = dir.join("serve.log");
    let script = match nofile {
        Some(n) => format!("ulimit -n {n} && exec \"$0\" \"$@\""),
        None => "exec \"$0\" \"$@\"".to_string(),
    };
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_idsync"))
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("serve.err")).unwrap());
    let server = Server(cmd.spawn().unwrap(), Some(dir.join("serve.err")));
    let http = reqwest::blocking::Client::new();
    wait_for("healthz", || {
        http.get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .ok()
            .filter(|r| r.status().is_success())
    });
    (server, dir.join("serve.err"))
}

/// Read until the server closes the connection (or `within` passes): when it closed, and what
/// it sent.
fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.checked_sub(start.elapsed())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some((start.elapsed(), got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                return Some((start.elapsed(), got))
            }
            Err(_) => return None,
        }
    }
}

/// A client that gives up after `secs`, as a monitoring probe does.
fn client(secs: u64) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(secs))
        .build()
        .unwrap()
}

fn open_fds(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.0.id()))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn half_a_head_or_an_idle_connection_is_closed_after_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_scim_config(
        dir.path(),
        port,
        "header_timeout = \"1s\"\nidle_timeout = \"2s\"",
    );
    let token = create_token(dir.path(), &["apps"]);
    let (_server, _) = serve_limited(dir.path(), port, None);

    // Half a head, then nothing: closed after the header timeout, without an answer.
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    let (after, _) = closed_within(&mut half, Duration::from_secs(15))
        .expect("a connection that never finishes its head is closed");
    assert!(
        after >= Duration::from_millis(800),
        "closed after {after:?}"
    );

    // A connection that sends nothing at all: the same.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    closed_within(&mut silent, Duration::from_secs(15))
        .expect("a connection that sends nothing is closed");

    // A head dripped a byte every 100 ms, never finished, is cut off too.
    let mut drip = TcpStream::connect(("127.0.0.1", port)).unwrap();
    drip.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: ")
        .unwrap();
    drip.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a dripped head is still held after {:?}",
            start.elapsed()
        );
        if drip.write_all(b"a").is_err() {
            break;
        }
        match drip.read(&mut buf) {
            Ok(0) => break,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            _ => {}
        }
    }

    // A request body that stops arriving: closed after the idle timeout, without an answer.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stalled
        .write_all(format!("POST /scim/v2/apps/Users HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: 100\r\n\r\n{{\"userName\":").as_bytes())
        .unwrap();
    let (after, got) = closed_within(&mut stalled, Duration::from_secs(15))
        .expect("a stalled request body is not held forever");
    assert!(
        after >= Duration::from_millis(1500),
        "closed after {after:?}"
    );
    assert!(got.is_empty() || got.starts_with(b"HTTP/1.1 4"), "{got:?}");

    // A keep-alive connection is served, then closed once idle for the idle timeout.
    let mut keep = TcpStream::connect(("127.0.0.1", port)).unwrap();
    keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let (after, got) = closed_within(&mut keep, Duration::from_secs(15))
        .expect("an idle keep-alive connection is closed");
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        after >= Duration::from_millis(1500),
        "closed after {after:?}"
    );
}

#[test]
fn idle_connections_over_the_cap_do_not_lock_out_healthz_or_scim() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_scim_config(
        dir.path(),
        port,
        "max_connections = 40\nheader_timeout = \"1m\"\nidle_timeout = \"1m\"",
    );
    let token = create_token(dir.path(), &["apps"]);
    // 256 descriptors: the 340 connections below would exhaust them without a cap.
    let (server, _) = serve_limited(dir.path(), port, Some(256));
    let mut idle = Vec::new();
    for _ in 0..340 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
    }
    // Each of them told the server nothing; the server stays within its cap, and a probe and a
    // SCIM client are still answered within seconds.
    let started = Instant::now();
    let r = client(10)
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .expect("healthz answers with the cap full of idle connections");
    assert_eq!(r.status(), 200);
    let r = client(10)
        .get(format!("http://127.0.0.1:{port}/scim/v2/apps/Users"))
        .bearer_auth(&token)
        .send()
        .expect("SCIM answers with the cap full of idle connections");
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(10));
    let fds = open_fds(&server);
    assert!(
        fds < 40 + 40,
        "{fds} descriptors open with max_connections = 40"
    );
    // The connections closed to make room read as closed on this side.
    let closed = idle
        .iter_mut()
        .take(3)
        .map(|s| closed_within(s, Duration::from_secs(5)).is_some())
        .filter(|closed| *closed)
        .count();
    assert!(closed > 0, "no idle connection was closed to make room");
}

#[test]
fn the_accept_loop_survives_running_out_of_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // More connections allowed than descriptors: accept meets EMFILE.
    write_scim_config(
        dir.path(),
        port,
        "max_connections = 5000\nheader_timeout = \"1m\"\nidle_timeout = \"1m\"",
    );
    let (server, err_log) = serve_limited(dir.path(), port, Some(128));
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
    }
    wait_for("the server to run out of descriptors", || {
        (open_fds(&server) >= 120).then_some(())
    });
    for round in 0..3 {
        let r = client(10)
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .unwrap_or_else(|e| panic!("healthz, round {round}, out of descriptors: {e}"));
        assert_eq!(r.status(), 200);
    }
    let log = std::fs::read_to_string(&err_log).unwrap();
    let told = log.matches("out of file descriptors").count();
    assert!(
        (1..=3).contains(&told),
        "running out of descriptors is logged once per episode, not per accept ({told}):\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    drop(idle);
}

fn scim_error(r: reqwest::blocking::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().unwrap();
    assert_eq!(ct, "application/scim+json", "{status}: {text}");
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text:?}"));
    assert_eq!(
        v["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{v}"
    );
    assert_eq!(v["status"], status.to_string(), "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    (status, v)
}

#[test]
fn a_burst_over_a_tokens_rate_is_answered_429_and_other_tokens_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_scim_config(
        dir.path(),
        port,
        "scim_rate = 0.1\nscim_burst = 3\n\n[sources.other]\ntype = \"scim\"",
    );
    let loud = create_token(dir.path(), &["apps", "--name", "loud"]);
    let quiet = create_token(dir.path(), &["apps", "--name", "quiet"]);
    let (_server, _) = serve_limited(dir.path(), port, None);
    let http = reqwest::blocking::Client::new();
    let users = format!("http://127.0.0.1:{port}/scim/v2/apps/Users");
    let elsewhere = format!("http://127.0.0.1:{port}/scim/v2/other/Users");
    let mut statuses = Vec::new();
    let mut limited = None;
    for i in 0..8 {
        // The third is refused (another directory's endpoint) and still counts.
        let url = if i == 2 { &elsewhere } else { &users };
        let r = http.get(url).bearer_auth(&loud).send().unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 && limited.is_none() {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            limited = Some((retry, scim_error(r)));
        }
    }
    // 3 at once, then one every 10 s.
    assert_eq!(&statuses[..3], &[200, 200, 401], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    let (retry, (_, body)) = limited.unwrap();
    assert!((1..=10).contains(&retry), "Retry-After: {retry}");
    assert!(body["detail"].as_str().unwrap().contains("rate"), "{body}");
    // Another token of the same directory is not slowed by it.
    for _ in 0..3 {
        let r = http.get(&users).bearer_auth(&quiet).send().unwrap();
        assert_eq!(r.status(), 200);
    }
}

#[test]
fn every_error_under_scim_is_a_scim_error_body() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_scim_config(dir.path(), port, "admin_token = \"admin-secret\"");
    let token = create_token(dir.path(), &["apps"]);
    let (_server, _) = serve_limited(dir.path(), port, None);
    let http = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{port}/scim/v2/apps");

    // A body over the limit (2 MiB): a little over, so that the server has read all of it when
    // it answers and the connection closes cleanly.
    let big = format!("{{\"userName\":\"{}\"}}", "a".repeat((2 << 20) + 1024));
    let r = http
        .post(format!("{base}/Users"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(big)
        .send()
        .unwrap();
    assert_eq!(scim_error(r).0, 413);
    // An id that is not UTF-8 once percent-decoded.
    let r = http
        .get(format!("{base}/Users/%FF%FE"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(scim_error(r).0, 400);
    // An over-long URI (a filter of 20 kB).
    let r = http
        .get(format!(
            "{base}/Users?filter=userName+eq+%22{}%22",
            "a".repeat(20_000)
        ))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(scim_error(r).0, 414);
    // Over-large headers: one of 100 kB, and 150 small ones.
    let r = http
        .get(format!("{base}/Users"))
        .bearer_auth(&token)
        .header("x-padding", "p".repeat(100_000))
        .send()
        .unwrap();
    assert_eq!(scim_error(r).0, 431);
    let mut rb = http.get(format!("{base}/Users")).bearer_auth(&token);
    for i in 0..150 {
        rb = rb.header(format!("x-h{i}"), "v");
    }
    assert_eq!(scim_error(rb.send().unwrap()).0, 431);
    // A method a resource does not take.
    let r = http
        .delete(format!("{base}/Users"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(scim_error(r).0, 405);
    // Unknown routes under /scim, with or without a token.
    for path in ["/scim/v3/apps/Users", "/scim", "/scim/v2"] {
        let r = http
            .get(format!("http://127.0.0.1:{port}{path}"))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(scim_error(r).0, 404, "{path}");
    }
    let r = http.get(format!("{base}/Nothing")).send().unwrap();
    assert_eq!(scim_error(r).0, 401);

    // The admin API's errors stay the admin API's JSON.
    let r = http
        .get(format!("http://127.0.0.1:{port}/api/v1/flows"))
        .bearer_auth("admin-secret")
        .header("x-padding", "p".repeat(100_000))
        .send()
        .unwrap();
    assert_eq!(r.status(), 431);
    let v: Value = r.json().unwrap();
    assert_eq!(v["status"], 431, "{v}");
    assert!(v["error"].as_str().is_some(), "{v}");
    let r = http
        .get(format!("http://127.0.0.1:{port}/api/v1/nothing"))
        .bearer_auth("admin-secret")
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().unwrap();
    assert_eq!(v["status"], 404, "{v}");
}

#[test]
fn the_bearer_scheme_is_case_insensitive_on_scim_and_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_scim_config(dir.path(), port, "admin_token = \"admin-secret\"");
    let token = create_token(dir.path(), &["apps"]);
    let (_server, _) = serve_limited(dir.path(), port, None);
    let http = reqwest::blocking::Client::new();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = http
            .get(format!("http://127.0.0.1:{port}/scim/v2/apps/Users"))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "SCIM with {scheme:?}");
        let r = http
            .get(format!("http://127.0.0.1:{port}/api/v1/flows"))
            .header("authorization", format!("{scheme} admin-secret"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "admin API with {scheme:?}");
    }
    // Another scheme, or the token alone, is refused.
    for value in [
        format!("Basic {token}"),
        token.clone(),
        format!("Bearer{token}"),
    ] {
        let r = http
            .get(format!("http://127.0.0.1:{port}/scim/v2/apps/Users"))
            .header("authorization", value.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 401, "{value:?}");
    }
}

#[test]
fn metrics_follow_the_metrics_token_or_else_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_scim_config(dir.path(), port, "admin_token = \"admin-secret\"");
    let (server, _) = serve_limited(dir.path(), port, None);
    let http = reqwest::blocking::Client::new();
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let r = http.get(&metrics).send().unwrap();
    assert_eq!(
        r.status(),
        401,
        "metrics without a token, an admin token set"
    );
    let r = http
        .get(&metrics)
        .bearer_auth("admin-secret")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().unwrap().contains("idsync_directory_objects"));
    let r = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "healthz stays open");
    drop(server);

    write_scim_config(
        dir.path(),
        port,
        "admin_token = \"admin-secret\"\nmetrics_token = \"scraper-secret\"",
    );
    let (_server, _) = serve_limited(dir.path(), port, None);
    for (token, want) in [
        (None, 401),
        (Some("admin-secret"), 401),
        (Some("scraper-secret"), 200),
    ] {
        let mut rb = http.get(&metrics);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        assert_eq!(rb.send().unwrap().status(), want, "{token:?}");
    }
    // The scraper's token opens nothing else.
    let r = http
        .get(format!("http://127.0.0.1:{port}/api/v1/flows"))
        .bearer_auth("scraper-secret")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn stopping_closes_connections_without_a_request_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_scim_config(
        dir.path(),
        port,
        "header_timeout = \"1m\"\nidle_timeout = \"1m\"",
    );
    let (mut server, _) = serve_limited(dir.path(), port, None);
    // A served keep-alive connection, half a head, and a connection that sent nothing.
    let mut keep = TcpStream::connect(("127.0.0.1", port)).unwrap();
    keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 12];
    keep.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let _silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let started = Instant::now();
    let killed = Command::new("kill")
        .args(["-INT", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_for("idsync serve to exit", || server.0.try_wait().unwrap());
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "exit took {:?}: idle connections held it",
        started.elapsed()
    );
}
