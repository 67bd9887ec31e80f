//! The Confluence simulator against atlassian-python-api's `Confluence` client (Confluence 9
//! over HTTPS with the admin user API; Confluence 8.3 with the JSON-RPC `addUser` and no admin
//! user API), and its own rules: paging, error bodies, versions, the rate limiter's headers.

use super::workspace;
use idsync_core::{ManualClock, SystemClock};
use idsync_sim::confluence::{self, ConfluenceSimOptions, RateLimit, Version};
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

async fn drive(opts: ConfluenceSimOptions, old: bool) -> (Value, confluence::RunningConfluenceSim) {
    let sim = confluence::start(opts.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    let py = atlassian_python();
    let root = sim.root.clone();
    let ca = sim.ca_pem.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(py);
        cmd.arg(workspace().join("crates/idsync-sim/tests/confluence_client_check.py"))
            .env("SIM_ROOT", &root)
            .env("SIM_TOKEN", &opts.token)
            .env("SIM_ADMIN", &opts.admin)
            .env("SIM_PASSWORD", &opts.password)
            .env("SIM_OLD", if old { "1" } else { "0" });
        if let Some(ca) = ca {
            cmd.env("REQUESTS_CA_BUNDLE", ca);
        }
        cmd.output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (serde_json::from_str(stdout.trim()).unwrap(), sim)
}

#[tokio::test(flavor = "multi_thread")]
async fn atlassian_python_api_confluence_works_against_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let (v, sim) = drive(
        ConfluenceSimOptions {
            tls: true,
            cert_dir: Some(dir.path().to_path_buf()),
            ..ConfluenceSimOptions::default()
        },
        false,
    )
    .await;
    println!("{v}");
    assert_eq!(v["current"], "admin", "{v}");
    assert_eq!(
        v["ann"],
        json!(["ann.lee", "Ann Lee", "Active", "known"]),
        "{v}"
    );
    assert_eq!(v["by_key"], "ann.lee", "{v}");
    assert_eq!(v["duplicate"][0], 400, "{v}");
    assert_eq!(v["duplicate"][1]["statusCode"], 400, "{v}");
    assert!(
        v["duplicate"][1]["message"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{v}"
    );
    assert_eq!(v["unknown_user"][0], 404, "{v}");
    assert_eq!(v["group_duplicate"][0], 409, "{v}");
    assert_eq!(v["members_first"], json!([50, true]), "{v}");
    assert_eq!(v["members_all"], 61, "60 bulk users and Ann: {v}");
    assert_eq!(v["cql_users"], json!([25, 62, true, "user"]), "{v}");
    assert_eq!(v["admin_update"][0], 405, "9.2 has no admin update: {v}");
    assert_eq!(v["members_status"], json!(["Active"]), "{v}");
    assert_eq!(
        v["groups"],
        json!(["confluence-administrators", "confluence-users", "staff"]),
        "{v}"
    );
    assert_eq!(v["not_a_group"][0], 404, "{v}");
    assert_eq!(v["after_disable"], "Deactivated", "{v}");
    assert_eq!(v["long_task"], true, "{v}");
    assert_eq!(v["ann_left"], true, "{v}");
    assert_eq!(v["group_gone"][0], 404, "{v}");
    assert_eq!(v["basic"], "admin", "{v}");
    assert_eq!(v["wrong_password"][0], 401, "{v}");
    assert_eq!(v["after_429"], "bulk000", "{v}");
    assert_eq!(sim.state.stats().throttled, 2, "the two 429s: {v}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn atlassian_python_api_confluence_8_3_creates_users_over_json_rpc() {
    let (v, sim) = drive(
        ConfluenceSimOptions {
            version: Version(8, 3, 4),
            ..ConfluenceSimOptions::default()
        },
        true,
    )
    .await;
    assert_eq!(
        v["ann"],
        json!(["ann.lee", "Ann Lee", "Active", "known"]),
        "{v}"
    );
    assert_eq!(v["members_all"], 61, "{v}");
    assert_eq!(v["cql_users"], json!([25, 62, true, "user"]), "{v}");
    assert_eq!(v["admin_update"][0], 404, "{v}");
    assert_eq!(v["no_admin_api"][0], 404, "8.3 has no admin user API: {v}");
    assert_eq!(v["after_429"], "bulk000", "{v}");
    sim.stop().await;
}

#[tokio::test]
async fn confluence_rate_limiter_headers_paging_and_version_rules() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let sim = confluence::start(
        ConfluenceSimOptions {
            rate_limit: Some(RateLimit {
                max: 2,
                fill: 1,
                interval_secs: 5,
            }),
            version: Version(9, 0, 1),
            ..ConfluenceSimOptions::default()
        },
        clock.clone(),
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", sim.root))
            .bearer_auth("sim-confluence-pat")
            .send()
    };
    // 9.0: no server information (9.1), the manifest says the version, no JSON-RPC.
    let r = get("/rest/api/server-information").await.unwrap();
    assert_eq!(r.status(), 404);
    let r = get("/rest/applinks/1.0/manifest").await.unwrap();
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["version"], "9.0.1");
    let r = get("/rest/api/group?limit=1").await.unwrap();
    assert_eq!(r.status(), 429, "two tokens, both spent");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(r.headers()["retry-after"], "5");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["statusCode"], 429);
    clock.advance(5_000);
    let r = get("/rest/api/group?limit=1").await.unwrap();
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["size"], 1);
    assert_eq!(page["_links"]["next"], "/rest/api/group?limit=1&start=1");
    clock.advance(5_000);
    let r = http
        .post(format!("{}/rpc/json-rpc/confluenceservice-v2", sim.root))
        .bearer_auth("sim-confluence-pat")
        .json(&json!({"jsonrpc": "2.0", "method": "getUser", "params": ["admin"], "id": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "9.0 removed the JSON-RPC API");
    sim.stop().await;
}

/// The calls that came late, by version: the admin update of full name and email (9.4; a 405
/// where the path serves only DELETE, 8.4 to 9.3; a 404 before), the list of active users (9.3,
/// with emails from 10.2, without the deactivated), and the CQL user search (every version),
/// each paged with `_links.next`.
#[tokio::test]
async fn confluence_admin_update_active_users_and_user_search_follow_the_versions() {
    let http = reqwest::Client::new();
    for (version, update, list, email) in [
        (Version(8, 3, 4), 404, 404, false),
        (Version(9, 3, 1), 405, 200, false),
        (Version(10, 2, 0), 204, 200, true),
    ] {
        let sim = confluence::start(
            ConfluenceSimOptions {
                version,
                ..ConfluenceSimOptions::default()
            },
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        {
            let mut d = sim.state.directory.write().unwrap();
            d.create_user("ann", "Ann Lee", "ann@example.com").unwrap();
            d.create_user("bob", "Bob Roe", "bob@example.com").unwrap();
            d.set_active("bob", false).unwrap();
        }
        let call = |m: reqwest::Method, path: &str, body: Option<Value>| {
            let mut rb = http
                .request(m, format!("{}{path}", sim.root))
                .bearer_auth("sim-confluence-pat");
            if let Some(b) = body {
                rb = rb.json(&b);
            }
            rb.send()
        };
        let r = call(
            reqwest::Method::PUT,
            "/rest/api/admin/user/ann",
            Some(json!({"fullName": "Ann Other", "email": "ann@example.org"})),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), update, "{version}");
        let held = sim
            .state
            .directory
            .read()
            .unwrap()
            .by_name("ann")
            .cloned()
            .unwrap();
        if update == 204 {
            assert_eq!(
                (held.display_name.as_str(), held.email.as_str()),
                ("Ann Other", "ann@example.org")
            );
            let r = call(
                reqwest::Method::PUT,
                "/rest/api/admin/user/ann",
                Some(json!({"email": "not-an-address"})),
            )
            .await
            .unwrap();
            assert_eq!(r.status(), 400);
            let r = call(
                reqwest::Method::PUT,
                "/rest/api/admin/user/nobody",
                Some(json!({"fullName": "No One"})),
            )
            .await
            .unwrap();
            assert_eq!(r.status(), 404);
        } else {
            assert_eq!(held.display_name, "Ann Lee", "{version}: nothing changed");
        }
        let r = call(
            reqwest::Method::GET,
            "/rest/api/admin/users/list/active",
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), list, "{version}");
        if list == 200 {
            let v: Value = r.json().await.unwrap();
            let names: Vec<&str> = v["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["username"].as_str().unwrap())
                .collect();
            assert_eq!(
                names,
                vec!["admin", "ann"],
                "the deactivated bob is not listed"
            );
            assert_eq!(
                v["results"][1]["email"].is_string(),
                email,
                "{version}: {v}"
            );
            assert_eq!(v["totalCount"], 2);
        }
        let r = call(
            reqwest::Method::GET,
            "/rest/api/search?cql=type%20%3D%20user&limit=2",
            None,
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200, "{version}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["size"], 2);
        assert_eq!(v["totalSize"], 3, "bob too: {v}");
        assert_eq!(v["results"][0]["entityType"], "user");
        assert_eq!(v["results"][0]["user"]["username"], "admin");
        assert!(v["results"][0]["user"]["userKey"].is_string());
        let next = v["_links"]["next"].as_str().unwrap().to_string();
        let r = call(reqwest::Method::GET, &next, None).await.unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["results"][0]["user"]["username"], "bob");
        assert!(v["_links"]["next"].is_null());
        let r = call(reqwest::Method::GET, "/rest/api/search?cql=type=page", None)
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            501,
            "the simulator answers only the user search"
        );
        sim.stop().await;
    }
}
