//! The Graph simulator against Microsoft's own clients (msgraph-sdk, azure-identity) and its
//! own semantics: writes, `$batch`, `$count`, faults.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use idsync_core::SystemClock;
use idsync_sim::graph::{self, GraphSimOptions, TenantSpec};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

#[path = "sim/bamboo.rs"]
mod bamboo;
#[path = "sim/bitbucket.rs"]
mod bitbucket;
#[path = "sim/confluence.rs"]
mod confluence;
#[path = "sim/jira.rs"]
mod jira;
#[path = "sim/signin.rs"]
mod signin;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv with msgraph-sdk and azure-identity (scripts/peers installs it).
fn graph_python() -> PathBuf {
    let py = workspace().join("target/graph-venv/bin/python");
    if !py.exists() {
        let st = Command::new(workspace().join("scripts/peers"))
            .status()
            .unwrap();
        assert!(st.success(), "scripts/peers failed");
    }
    py
}

#[tokio::test(flavor = "multi_thread")]
async fn msgraph_sdk_and_azure_identity_work_against_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let app_cert = workspace().join("crates/idsync-sim/fixtures/app-cert.pem");
    let mut opts = GraphSimOptions {
        spec: TenantSpec {
            users: 250,
            groups: 10,
            memberships: 300,
            ..TenantSpec::default()
        },
        tls: true,
        cert_dir: Some(dir.path().to_path_buf()),
        max_page: 100,
        ..GraphSimOptions::default()
    };
    opts.reader.certificates =
        graph::RegisteredCert::from_pem(&std::fs::read_to_string(&app_cert).unwrap()).unwrap();
    let sim = graph::start(opts.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    // getMemberObjects: the user in the most groups, one of them made a non-security group
    // (securityEnabledOnly leaves it out).
    let (member, want) = {
        let mut t = sim.state.tenant.write().unwrap();
        let member = t
            .objects(graph::Kind::User)
            .keys()
            .max_by_key(|u| t.transitive_member_of(u).len())
            .unwrap()
            .clone();
        let mut groups = t.transitive_member_of(&member);
        assert!(groups.len() >= 4, "{groups:?}");
        let m365 = groups.remove(0);
        let mut p = serde_json::Map::new();
        p.insert("securityEnabled".into(), serde_json::json!(false));
        t.update(graph::Kind::Group, &m365, p).unwrap();
        (member, groups)
    };
    let ca = sim.ca_pem.clone().unwrap();
    let py = graph_python();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py)
            .arg(workspace().join("crates/idsync-sim/tests/graph_sdk_check.py"))
            .env("SIM_MEMBER_USER", &member)
            .env("SIM_ROOT", &sim.root)
            .env("SIM_TENANT", &sim.tenant_id)
            .env("SIM_CLIENT_ID", &opts.reader.client_id)
            .env("SIM_SECRET", &opts.reader.client_secret)
            .env("SIM_CERT", &app_cert)
            .env("REQUESTS_CA_BUNDLE", &ca)
            .env("SSL_CERT_FILE", &ca)
            .output()
            .map(|o| (o, sim))
    })
    .await
    .unwrap()
    .unwrap();
    let (out, sim) = out;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["token"], true, "{v}");
    assert_eq!(v["certificate_token"], true, "{v}");
    assert_eq!(v["users"], 250, "the page iterator saw every user: {v}");
    assert_eq!(v["distinct_users"], 250, "{v}");
    assert_eq!(v["first_page"], 100, "{v}");
    assert_eq!(v["delta_items"], 250, "{v}");
    assert_eq!(v["delta_pages"], 3, "{v}");
    assert_eq!(v["delta_link"], true, "{v}");
    assert_eq!(
        v["not_found"],
        serde_json::json!([404, "Request_ResourceNotFound"]),
        "{v}"
    );
    assert_eq!(v["member_objects_first_page"], 2, "{v}");
    assert_eq!(v["member_objects_next"], true, "{v}");
    assert_eq!(v["member_objects"], serde_json::json!(want), "{v}");
    assert!(sim.state.stats().tokens_issued >= 2);
    sim.stop().await;
}

async fn token(http: &reqwest::Client, root: &str, tenant: &str, app: &graph::App) -> String {
    let r: serde_json::Value = http
        .post(format!("{root}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn writes_batch_count_filters_and_delta_through_graph() {
    use serde_json::{json, Value};
    let opts = GraphSimOptions {
        spec: TenantSpec {
            users: 30,
            groups: 4,
            memberships: 40,
            ..TenantSpec::default()
        },
        ..GraphSimOptions::default()
    };
    let sim = graph::start(opts.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let g = |p: &str| format!("{}/v1.0/{p}", sim.root);
    let admin = token(&http, &sim.root, &sim.tenant_id, &opts.admin).await;
    let reader = token(&http, &sim.root, "contoso.onmicrosoft.com", &opts.reader).await;

    // The first delta round, to see later writes as changes.
    let first: Value = http
        .get(g("users/delta?$select=displayName,jobTitle"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["value"].as_array().unwrap().len(), 30);
    let delta_link = first["@odata.deltaLink"].as_str().unwrap().to_string();

    // Writes: the reader may not, the admin may.
    let body = json!({"displayName": "Written User", "userPrincipalName": "written@contoso.com", "accountEnabled": true});
    let r = http
        .post(g("users"))
        .bearer_auth(&reader)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let created: Value = http
        .post(g("users"))
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uid = created["id"].as_str().unwrap().to_string();
    let dup = http
        .post(g("users"))
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 400, "the userPrincipalName is taken");
    let r = http
        .patch(g(&format!("users/{uid}")))
        .bearer_auth(&admin)
        .json(&json!({"jobTitle": "Writer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let groups: Value = http
        .get(g("groups?$select=id,displayName"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gid = groups["value"][0]["id"].as_str().unwrap().to_string();
    let r = http
        .post(g(&format!("groups/{gid}/members/$ref")))
        .bearer_auth(&admin)
        .json(&json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{uid}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // The next delta round carries exactly the new user and the group's new member.
    let round: Value = http
        .get(&delta_link)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = round["value"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{round}");
    assert_eq!(items[0]["jobTitle"], "Writer");

    // $count needs ConsistencyLevel: eventual, as on the real service.
    let r = http
        .get(g("users/$count"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let n = http
        .get(g("users/$count"))
        .bearer_auth(&reader)
        .header("ConsistencyLevel", "eventual")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(n, "31");
    let f: Value = http
        .get(g("users?$filter=startswith(displayName,'Written')"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(f["value"].as_array().unwrap().len(), 1);

    // $batch: three requests in one, each answered on its own.
    let b: Value = http
        .post(g("$batch"))
        .bearer_auth(&reader)
        .json(&json!({"requests": [
            {"id": "1", "method": "GET", "url": format!("/users/{uid}?$select=jobTitle")},
            {"id": "2", "method": "GET", "url": "/users/no-such-user"},
            {"id": "3", "method": "GET", "url": format!("/groups/{gid}/members?$select=id")}
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = |id: &str| {
        b["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(resp("1")["body"]["jobTitle"], "Writer");
    assert_eq!(resp("2")["status"], 404);
    assert!(resp("3")["body"]["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == uid.as_str()));

    // Removing and deleting show up in the next round as removals.
    let round_link = round["@odata.deltaLink"].as_str().unwrap().to_string();
    let r = http
        .delete(g(&format!("users/{uid}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let round: Value = http
        .get(&round_link)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        round["value"][0]["@removed"]["reason"], "changed",
        "{round}"
    );
    assert_eq!(sim.state.stats().injected_errors, 0);
}
