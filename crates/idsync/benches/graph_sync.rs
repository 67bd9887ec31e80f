//! Microsoft Graph to Atlassian Cloud, end to end, at scale.
//!
//! `cargo bench -p idsync --bench graph_sync` (sizes: IDSYNC_BENCH_USERS, IDSYNC_BENCH_GROUPS,
//! IDSYNC_BENCH_MEMBERSHIPS; default 100,000 / 10,000 / 1,000,000, nested 3 deep; the flow's
//! requests in flight: IDSYNC_BENCH_CONCURRENCY, default 32).
//!
//! The tenant is `idsync sim graph` over HTTPS in its own process; the simulated Atlassian
//! Cloud organisation is `idsync serve`'s SCIM endpoint in its own process; idsync itself (the
//! Graph source, the store, the flow with the `atlassian-cloud` SCIM target) runs in this
//! process, so its peak memory (VmHWM) is idsync's alone. Printed:
//! 1. full ingest from Graph: time, peak memory, Graph requests and resource units;
//! 2. the first full sync of the directory to Atlassian Cloud, and the end-to-end total;
//! 3. 100 changes written to the tenant, then read by delta and applied to Atlassian Cloud:
//!    time from the last change to the last operation applied.

mod common;
mod services;

use common::{env_usize, machine};
use idsync_engine::{Mode, NoProgress, RunOptions, Runtime, Trigger};
use serde_json::{json, Value};
use services::{scim_service, Kill};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn peak_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Start `idsync sim graph`; returns the process, its root URL and the tenant id.
fn start_sim(
    dir: &Path,
    users: usize,
    groups: usize,
    memberships: usize,
) -> Result<(Kill, String, String), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args([
            "sim",
            "graph",
            "--https",
            "--users",
            &users.to_string(),
            "--groups",
            &groups.to_string(),
        ])
        .args([
            "--memberships",
            &memberships.to_string(),
            "--depth",
            "3",
            "--cert-dir",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let kill = Kill(child);
    let (mut root, mut tenant) = (String::new(), String::new());
    for line in std::io::BufReader::new(out).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(r) = line.strip_prefix("Microsoft Graph simulator on ") {
            root = r.split_whitespace().next().unwrap_or("").to_string();
        }
        if let Some(t) = line.strip_prefix("tenant id:") {
            tenant = t.trim().to_string();
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    if root.is_empty() || tenant.is_empty() {
        return Err("the simulator did not start".into());
    }
    Ok((kill, root, tenant))
}

/// 100 changes in the tenant through Graph ($batch of PATCHes by the admin app); returns how
/// many were written.
async fn change_tenant(
    http: &reqwest::Client,
    root: &str,
    tenant: &str,
    n: usize,
) -> Result<usize, String> {
    let tok: Value = http
        .post(format!("{root}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "99999999-8888-7777-6666-555555555555"),
            ("client_secret", "sim-admin-secret"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let token = tok["access_token"].as_str().ok_or("no token")?.to_string();
    let page: Value = http
        .get(format!("{root}/v1.0/users?$select=id&$top={n}"))
        .bearer_auth(&token)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let ids: Vec<String> = page["value"]
        .as_array()
        .ok_or("no users")?
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_string))
        .collect();
    let mut written = 0;
    for chunk in ids.chunks(20) {
        let requests: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| json!({"id": i.to_string(), "method": "PATCH", "url": format!("/users/{id}"), "body": {"jobTitle": "Changed by the benchmark"}, "headers": {"Content-Type": "application/json"}}))
            .collect();
        let r: Value = http
            .post(format!("{root}/v1.0/$batch"))
            .bearer_auth(&token)
            .json(&json!({"requests": requests}))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        written += r["responses"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|x| x["status"] == 204).count());
    }
    Ok(written)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let users = env_usize("IDSYNC_BENCH_USERS", 100_000);
    let groups = env_usize("IDSYNC_BENCH_GROUPS", 10_000);
    let memberships = env_usize("IDSYNC_BENCH_MEMBERSHIPS", 1_000_000);
    let concurrency = env_usize("IDSYNC_BENCH_CONCURRENCY", 32);
    // RUST_LOG=info shows the phases of each read and run.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    println!("machine: {}", machine());
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let t = Instant::now();
    let (_sim, root, tenant) = start_sim(&dir.path().join("sim"), users, groups, memberships)?;
    println!(
        "tenant: {users} users, {groups} groups, {memberships} user memberships, nested 3 deep (simulator ready in {:.1}s, HTTPS, own process)",
        t.elapsed().as_secs_f64()
    );
    let (_atl, port, scim_token) = scim_service(
        &dir.path().join("atlassian"),
        "atlassian",
        "profile = \"atlassian-cloud\"\nverified_domains = [\"contoso.com\"]\n",
    )?;
    let scim_url = format!("http://127.0.0.1:{port}/scim/directory/atlassian");
    std::fs::write(dir.path().join("atlassian.token"), &scim_token).map_err(|e| e.to_string())?;
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!(
            r#"[store]
path = "idsync.db"
[log]
level = "warn"

[sources.entra]
type = "msgraph"
directory = "entra"
tenant = "{tenant}"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "sim-secret"
authority = "{root}"
graph_url = "{root}"
ca_file = "sim/ca.pem"

[targets.atlassian]
type = "scim"
profile = "atlassian-cloud"
url = "{scim_url}"
token = "${{file:atlassian.token}}"
verified_domains = ["contoso.com"]
timeout = "120s"

[flows.entra-to-atlassian]
source = "entra"
target = "atlassian"
concurrency = {concurrency}
"#
        ),
    )
    .map_err(|e| e.to_string())?;
    let config = idsync_config::load(&dir.path().join("idsync.toml")).map_err(|e| e.to_string())?;
    let rt = Runtime::from_config(&config)
        .await
        .map_err(|e| e.to_string())?;

    // 1. Full ingest.
    let t = Instant::now();
    let report = rt.ingest("entra").await.map_err(|e| e.to_string())?;
    let ingest_s = t.elapsed().as_secs_f64();
    let counts = rt
        .store
        .directory_counts("entra")
        .await
        .map_err(|e| e.to_string())?;
    let cost = report.cost.unwrap_or_default();
    println!(
        "full ingest from Graph: {ingest_s:.1}s (reading Graph {:.1}s, writing the directory {:.1}s), peak memory {:.0} MB, {} Graph requests ({} retries, {} throttled), {} resource units; directory: {} users, {} groups, {} memberships",
        report.read_ms as f64 / 1000.0,
        report.write_ms as f64 / 1000.0,
        peak_mb(),
        cost.requests,
        cost.retries,
        cost.throttled,
        cost.resource_units,
        counts.users,
        counts.groups,
        counts.memberships
    );

    // 2. The first full sync to Atlassian Cloud.
    let t = Instant::now();
    let opts = RunOptions {
        trigger: Trigger::Manual,
        mode: Mode::Full,
        dry_run: false,
    };
    let run = rt
        .run("entra-to-atlassian", opts, false, &NoProgress)
        .await
        .map_err(|e| e.to_string())?;
    let sync_s = t.elapsed().as_secs_f64();
    println!(
        "first sync to the simulated Atlassian Cloud: {sync_s:.1}s, {} operations applied, {} failed, {} skipped; peak memory {:.0} MB",
        run.count("applied"),
        run.count("failed"),
        run.count("skipped"),
        peak_mb()
    );
    println!(
        "end to end (tenant to Atlassian Cloud, {users} users): {:.1}s",
        ingest_s + sync_s
    );

    // 3. 100 changes, incrementally.
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .map_err(|e| e.to_string())?;
    let written = change_tenant(&http, &root, &tenant, 100).await?;
    let t0 = Instant::now();
    let delta = rt.ingest("entra").await.map_err(|e| e.to_string())?;
    let read_s = t0.elapsed().as_secs_f64();
    let opts = RunOptions {
        trigger: Trigger::Schedule,
        mode: Mode::Incremental,
        dry_run: false,
    };
    let inc = rt
        .run("entra-to-atlassian", opts, false, &NoProgress)
        .await
        .map_err(|e| e.to_string())?;
    let total_s = t0.elapsed().as_secs_f64();
    let mut durations: Vec<i64> = rt
        .store
        .run_ops(&inc.run_id)
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|o| o.duration_ms)
        .collect();
    durations.sort_unstable();
    if let Some(m) = durations.get(durations.len() / 2) {
        eprintln!(
            "incremental operations: median {m} ms, max {} ms",
            durations.last().copied().unwrap_or(0)
        );
    }
    println!(
        "incremental: {written} changes in the tenant; delta read {read_s:.2}s ({} changes, {} Graph requests), applied to Atlassian Cloud {} operations; {total_s:.2}s from the last change to the last operation",
        delta.changes,
        delta.cost.map_or(0, |c| c.requests),
        inc.count("applied")
    );
    if std::env::var_os("IDSYNC_BENCH_KEEP").is_some() {
        eprintln!("keeping the servers: Atlassian Cloud {scim_url} token {scim_token}; Graph {root}; store {}", dir.path().display());
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    rt.store.close().await;
    Ok(())
}
