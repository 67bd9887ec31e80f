//! The Bamboo simulator against atlassian-python-api's `Bamboo` client, and its own rules:
//! injected 429s with `Retry-After`.

use super::workspace;
use idsync_sim::bamboo::{self, BambooFaults, BambooSimOptions};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

/// The venv with atlassian-python-api (scripts/peers installs it; shared with the Jira check).
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
async fn atlassian_python_api_bamboo_works_against_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let opts = BambooSimOptions {
        tls: true,
        cert_dir: Some(dir.path().to_path_buf()),
        ..BambooSimOptions::default()
    };
    let sim = bamboo::start(opts.clone()).await.unwrap();
    let ca = sim.ca_pem.clone().unwrap();
    let py = atlassian_python();
    let root = sim.root.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py)
            .arg(workspace().join("crates/idsync-sim/tests/bamboo_client_check.py"))
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
    assert_eq!(v["current_user"], "admin", "{v}");
    assert_eq!(v["bad_token"][0], 401, "{v}");
    assert_eq!(v["duplicate"][0], 400, "{v}");
    assert_eq!(
        v["duplicate"][2]["fieldErrors"]["name"][0], "User with this username already exists.",
        "{v}"
    );
    assert_eq!(v["no_password"][0], 400, "{v}");
    assert!(
        v["no_password"][2]["fieldErrors"]["password"].is_array(),
        "{v}"
    );
    assert_eq!(
        v["user_pages"],
        json!([50, 50, 22]),
        "admin, Ann, 120 more: {v}"
    );
    assert_eq!(v["group_duplicate"][0], 400, "{v}");
    assert_eq!(v["groups"], json!(["bamboo-admin", "engineering"]), "{v}");
    assert_eq!(v["add_unknown"][0], 404, "{v}");
    assert_eq!(
        v["add_unknown"][2]["message"], "User ghost not found.",
        "{v}"
    );
    assert_eq!(v["members_first"], json!([25, false]), "{v}");
    assert_eq!(v["members_filtered"], json!(["Ann.Lee"]), "{v}");
    assert_eq!(v["members_after_remove"], 51, "{v}");
    assert_eq!(v["non_members"], 10, "user000..user009 left: {v}");
    assert_eq!(v["renamed_in_group"], json!(["ann.smith"]), "{v}");
    assert_eq!(v["delete_missing"][0], 404, "{v}");
    assert_eq!(v["group_gone"][0], 404, "{v}");
    sim.stop().await;
}

#[tokio::test]
async fn injected_throttling_says_how_long_to_wait() {
    let sim = bamboo::start(BambooSimOptions {
        faults: BambooFaults {
            fail_next: 1,
            fail_match: "GET /rest/api/latest/admin/users".into(),
            error_status: 429,
            retry_after_secs: 3,
            ..BambooFaults::default()
        },
        ..BambooSimOptions::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let get = || {
        http.get(format!("{}/rest/api/latest/admin/users", sim.root))
            .bearer_auth("sim-bamboo-pat")
            .send()
    };
    let r = get().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    let r = get().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(sim.state.stats().throttled, 1);
    sim.stop().await;
}
