//! `[server]`: the listen address, the tokens and the connection and rate limits.

use super::{errors, GOOD};
use idsync_config::*;
use std::path::Path;
use std::time::Duration;

#[test]
fn server_limits_have_defaults() {
    let c = parse(GOOD, Path::new("/etc/idsync/idsync.toml")).unwrap();
    let s = &c.server;
    assert!(s.metrics_token.is_none());
    assert_eq!(s.max_connections, 512);
    assert_eq!(s.header_timeout, Duration::from_secs(10));
    assert_eq!(s.idle_timeout, Duration::from_secs(60));
    assert_eq!(s.scim_rate, 200.0);
    assert_eq!(s.scim_burst, 2000);
}

#[test]
fn server_limits_and_metrics_token_are_read() {
    let text = format!(
        "{GOOD}\n[server]\nmetrics_token = \"m-token\"\nmax_connections = 64\nheader_timeout = \"2s\"\nidle_timeout = \"1m\"\nscim_rate = 0.5\nscim_burst = 3\n"
    );
    let c = parse(&text, Path::new("/etc/idsync/idsync.toml")).unwrap();
    let s = &c.server;
    assert_eq!(s.metrics_token.as_ref().unwrap().expose(), "m-token");
    assert_eq!(s.max_connections, 64);
    assert_eq!(s.header_timeout, Duration::from_secs(2));
    assert_eq!(s.idle_timeout, Duration::from_secs(60));
    assert_eq!(s.scim_rate, 0.5);
    assert_eq!(s.scim_burst, 3);
    // 0 turns the rate limit off.
    let c = parse(
        &format!("{GOOD}\n[server]\nscim_rate = 0\n"),
        Path::new("/etc/idsync/idsync.toml"),
    )
    .unwrap();
    assert_eq!(c.server.scim_rate, 0.0);
}

#[test]
fn server_limit_errors_name_their_keys() {
    let text = format!(
        "{GOOD}\n[server]\nmax_connections = 0\nheader_timeout = \"soon\"\nidle_timeout = 5\nscim_rate = -1\nscim_burst = \"many\"\nmetrics_token = \"\"\nmax_conns = 5\n"
    );
    let e = errors(&text);
    let got: Vec<&str> = e.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        got,
        vec![
            "server.max_connections",
            "server.header_timeout",
            "server.idle_timeout",
            "server.scim_rate",
            "server.scim_burst",
            "server.metrics_token",
            "server.max_conns",
        ],
        "{e:#?}"
    );
    assert!(
        e[0].message.contains("out of range (1 to 1000000)"),
        "{}",
        e[0]
    );
    assert!(e[1].message.contains("not a duration"), "{}", e[1]);
    assert!(e[5].message.contains("is empty"), "{}", e[5]);
    assert!(e[6].message.contains("metrics_token"), "{}", e[6]);
}
