//! The Bitbucket simulator against atlassian-python-api's `Bitbucket` client.

use super::workspace;
use idsync_core::SystemClock;
use idsync_sim::bitbucket::{self, BitbucketSimOptions};
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
async fn atlassian_python_api_bitbucket_works_against_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let opts = BitbucketSimOptions {
        tls: true,
        cert_dir: Some(dir.path().to_path_buf()),
        ..BitbucketSimOptions::default()
    };
    let sim = bitbucket::start(opts.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    let ca = sim.ca_pem.clone().unwrap();
    let py = atlassian_python();
    let root = sim.root.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py)
            .arg(workspace().join("crates/idsync-sim/tests/bitbucket_client_check.py"))
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
    assert_eq!(v["version"], "8.19.5", "{v}");
    assert_eq!(v["duplicate"][0], 409, "{v}");
    assert!(
        v["duplicate"][1]
            .as_str()
            .unwrap()
            .contains("A user with the name DEV00 already exists"),
        "the client read the errors[] body: {v}"
    );
    let users = v["users"].as_array().unwrap();
    assert_eq!(
        users.len(),
        31,
        "every page read through nextPageStart: {v}"
    );
    assert_eq!(users[0], "admin");
    assert_eq!(
        v["search"],
        json!([
            "dev10", "dev11", "dev12", "dev13", "dev14", "dev15", "dev16", "dev17", "dev18",
            "dev19"
        ])
    );
    assert_eq!(v["users_resource"], json!(["dev29"]));
    assert_eq!(v["members"].as_array().unwrap().len(), 15, "{v}");
    assert_eq!(
        v["licensed"], 30,
        "addToDefaultGroup put them in stash-users"
    );
    assert_eq!(v["groups"], json!(["developers", "stash-users"]));
    assert_eq!(v["after_remove"], 14);
    assert_eq!(v["renamed"], json!(["developer.one", "developer.one"]));
    assert_eq!(v["deleted_gone"], json!([]));
    assert_eq!(v["unknown_group"][0], 404);
    assert!(v["unknown_group"][1]
        .as_str()
        .unwrap()
        .contains("Group nope does not exist"));
    assert_eq!(v["bad_token"][0], 401, "{v}");
    assert!(sim.state.stats().requests > 40);
    sim.stop().await;
}

/// The user settings resource is documented for "a specific user identified by the user
/// slug", with no word that an administrator may write another user's: the simulator lets a
/// caller read and write its own settings and answers 401 for anyone else's (decision 0037).
#[tokio::test]
async fn user_settings_are_the_callers_own() {
    let sim = bitbucket::start(BitbucketSimOptions::default(), Arc::new(SystemClock))
        .await
        .unwrap();
    sim.state
        .directory
        .write()
        .unwrap()
        .create_user("Jane.Doe@Example.com", "Jane", "jane@example.com", true)
        .unwrap();
    let http = reqwest::Client::new();
    let settings = |slug: &str| format!("{}/rest/api/1.0/users/{slug}/settings", sim.root);
    let jane_slug = {
        let d = sim.state.directory.read().unwrap();
        let id = d.by_name("jane.doe@example.com").unwrap();
        d.users[&id].slug()
    };
    for (slug, expected) in [("admin", 204), (jane_slug.as_str(), 401)] {
        let r = http
            .post(settings(slug))
            .bearer_auth("sim-bitbucket-pat")
            .json(&json!({"k": "v"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), expected, "POST settings of {slug}");
        let r = http
            .get(settings(slug))
            .bearer_auth("sim-bitbucket-pat")
            .send()
            .await
            .unwrap();
        let want = if expected == 204 { 200 } else { 401 };
        assert_eq!(r.status().as_u16(), want, "GET settings of {slug}");
    }
    {
        let d = sim.state.directory.read().unwrap();
        let id = d.by_name("Jane.Doe@Example.com").unwrap();
        assert!(d.users[&id].settings.is_empty(), "nothing written");
    }
    sim.stop().await;
}
