//! The Jira simulator against atlassian-python-api's `Jira` client, and its own rules: the
//! rate limiter's headers and 429s, versions before 8.3 ignoring `active`.

use super::workspace;
use idsync_core::{ManualClock, SystemClock};
use idsync_sim::jira::{self, JiraSimOptions, RateLimit, Version};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

/// The venv with atlassian-python-api (scripts/peers installs it; the Crowd clients share it).
fn atlassian_python() -> PathBuf {
    let py = workspace().join("target/crowd-venv/bin/python");
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", "import atlassian"])
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        let st = Command::new(workspace().join("scripts/peers"))
            .status()
            .unwrap();
        assert!(st.success(), "scripts/peers failed");
    }
    py
}

#[tokio::test(flavor = "multi_thread")]
async fn atlassian_python_api_jira_works_against_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JiraSimOptions {
        tls: true,
        cert_dir: Some(dir.path().to_path_buf()),
        ..JiraSimOptions::default()
    };
    let sim = jira::start(opts.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    let ca = sim.ca_pem.clone().unwrap();
    let py = atlassian_python();
    let root = sim.root.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py)
            .arg(workspace().join("crates/idsync-sim/tests/jira_client_check.py"))
            .env("SIM_ROOT", &root)
            .env("SIM_TOKEN", &opts.token)
            .env("SIM_ADMIN", &opts.admin)
            .env("SIM_PASSWORD", &opts.password)
            .env("REQUESTS_CA_BUNDLE", &ca)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["version"], "9.12.2", "{v}");
    assert_eq!(v["myself"], "admin", "{v}");
    assert_eq!(v["created_key_prefix"], "JIRAUSER", "{v}");
    assert_eq!(v["created_active"], true, "{v}");
    assert_eq!(v["read_name"], "Ann.Lee", "{v}");
    assert_eq!(v["read_key_same"], true, "{v}");
    assert_eq!(v["by_key"], "Ann.Lee", "{v}");
    assert_eq!(v["duplicate"][0], 400, "{v}");
    assert!(
        v["duplicate"][1]
            .as_str()
            .unwrap()
            .contains("A user with that username already exists"),
        "{v}"
    );
    assert_eq!(v["search_pages"], json!([50, 50, 20]), "{v}");
    assert_eq!(v["search_by_email"], json!(["Ann.Lee"]), "{v}");
    assert_eq!(v["search_all"], 122, "admin, Ann and 120 more: {v}");
    assert_eq!(v["group_duplicate"][0], 400, "{v}");
    assert_eq!(v["already_member"][0], 400, "{v}");
    assert_eq!(v["members_first"], json!([50, false, 61, true]), "{v}");
    assert_eq!(v["members_second"], json!([11, true]), "{v}");
    assert_eq!(
        v["capped_page"], 50,
        "group/member pages hold at most 50: {v}"
    );
    assert_eq!(v["picker"], json!(["Developers"]), "{v}");
    assert_eq!(
        v["ann_groups"],
        json!(["Developers", "jira-software-users"]),
        "{v}"
    );
    assert_eq!(v["property"], json!({"department": "R&D"}), "{v}");
    assert_eq!(v["renamed"], json!(["ann.lee2", "ann@example.org"]), "{v}");
    assert_eq!(v["active_after_deactivate"], false, "{v}");
    assert_eq!(v["inactive_hidden"], 0, "{v}");
    assert_eq!(v["inactive_found"], 1, "{v}");
    assert_eq!(
        v["roles"],
        json!([["jira-software", 121]]),
        "the admin and 120 bulk users hold Jira Software (Ann is inactive): {v}"
    );
    assert_eq!(v["not_member"][0], 404, "{v}");
    assert_eq!(v["group_gone"][0], 404, "{v}");
    assert_eq!(v["user_gone"][0], 404, "{v}");
    assert!(
        v["user_gone"][1]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{v}"
    );
    assert_eq!(v["basic"], "admin", "{v}");
    assert_eq!(v["wrong_password"][0], 401, "{v}");
    assert_eq!(v["after_429"], "bulk000", "{v}");
    assert_eq!(
        sim.state.stats().throttled,
        2,
        "the two 429s were answered: {v}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn rate_limiter_headers_and_version_rules() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let sim = jira::start(
        JiraSimOptions {
            rate_limit: Some(RateLimit {
                max: 2,
                fill: 1,
                interval_secs: 5,
            }),
            version: Version(8, 2, 0),
            ..JiraSimOptions::default()
        },
        clock.clone(),
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let get = || {
        http.get(format!("{}/rest/api/2/user?username=admin", sim.root))
            .bearer_auth("sim-jira-pat")
            .send()
    };
    let a = get().await.unwrap();
    assert_eq!(a.status(), 200);
    assert_eq!(a.headers()["x-ratelimit-limit"], "2");
    assert_eq!(a.headers()["x-ratelimit-remaining"], "1");
    assert_eq!(a.headers()["x-ratelimit-interval-seconds"], "5");
    assert_eq!(a.headers()["x-ratelimit-fillrate"], "1");
    assert_eq!(a.headers()["retry-after"], "0");
    assert_eq!(get().await.unwrap().status(), 200);
    let t = get().await.unwrap();
    assert_eq!(t.status(), 429);
    assert_eq!(t.headers()["retry-after"], "5");
    let body: Value = t.json().await.unwrap();
    assert!(body["errorMessages"].is_array(), "{body}");
    clock.advance(5_000);
    assert_eq!(get().await.unwrap().status(), 200, "a token came back");

    // Jira 8.2: keys are lower-cased usernames and `active` is ignored without a word.
    clock.advance(60_000);
    let created: Value = http
        .post(format!("{}/rest/api/2/user", sim.root))
        .bearer_auth("sim-jira-pat")
        .json(&json!({"name": "Old.Timer", "emailAddress": "o@example.com", "displayName": "Old"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["key"], "old.timer");
    let put = http
        .put(format!("{}/rest/api/2/user?key=old.timer", sim.root))
        .bearer_auth("sim-jira-pat")
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let after: Value = put.json().await.unwrap();
    assert_eq!(after["active"], true, "8.2 ignores active: {after}");
    let anon = http
        .get(format!("{}/rest/api/2/serverInfo", sim.root))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 200, "serverInfo answers anonymous callers");
    let v: Value = anon.json().await.unwrap();
    assert_eq!(v["versionNumbers"], json!([8, 2, 0]));
    let unauth = http
        .get(format!("{}/rest/api/2/user?username=admin", sim.root))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
    sim.stop().await;
}
