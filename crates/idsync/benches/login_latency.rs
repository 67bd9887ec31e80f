//! idsync's own time in a single sign-on login (issue 19's figures; decision 0042):
//! `Runtime::login` for new users, 50 logins in flight, p50 and p99.
//!
//! `cargo bench -p idsync --bench login_latency` (rounds IDSYNC_BENCH_ROUNDS, default 6;
//! logins in flight IDSYNC_BENCH_INFLIGHT, default 50; users already provisioned
//! IDSYNC_BENCH_USERS, default 1,000).
//!
//! A `login` source feeds two flows: one into a SCIM target (idsync's own SCIM endpoint, `idsync
//! serve` in its own process with its own store: the stand-in for Atlassian Cloud) and one into
//! a served `crowd` target (the Crowd-compatible directory: ledger and event feed). Each login
//! carries a new user with two group ids (named by the flow's `names` table).
//! 1. without provisioning: the login returns at once (`login_wait = 0`): the directory write,
//!    the names, the refusal checks; the runs it starts are waited for between rounds;
//! 2. with provisioning: the login waits for both flows' runs (the user created in both
//!    targets with its groups) before it returns.
//!
//! Printed with the machine.

mod common;
mod services;

use common::{env_usize, machine, percentile};
use idsync_engine::{FlowRun, Login, LoginDecision, Runtime};
use services::scim_service;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn login(source: &str, i: usize) -> Login {
    let attributes = serde_json::json!({
        "userName": format!("login{i}@example.com"),
        "displayName": format!("Login {i}"),
        "emails": [{"value": format!("login{i}@example.com"), "primary": true}],
        "department": "R&D",
    });
    Login {
        source: source.into(),
        subject: format!("oid-{i:07}"),
        attributes: attributes.as_object().cloned().unwrap_or_default(),
        groups: Some(vec![format!("g-{}", i % 10), "g-all".into()]),
        groups_overage: false,
    }
}

/// `n` logins at once from `first`; each one's time in ms, and whether every flow finished.
async fn round(rt: &Arc<Runtime>, source: &str, first: usize, n: usize) -> (Vec<f64>, usize) {
    let tasks: Vec<_> = (first..first + n)
        .map(|i| {
            let rt = rt.clone();
            let l = login(source, i);
            tokio::spawn(async move {
                let t = Instant::now();
                let out = rt.login(l).await;
                (t.elapsed().as_secs_f64() * 1000.0, out)
            })
        })
        .collect();
    let mut times = Vec::new();
    let mut finished = 0;
    for t in tasks {
        let Ok((ms, out)) = t.await else { continue };
        times.push(ms);
        match out {
            Ok(o) => {
                if let LoginDecision::Allowed { flows } = &o.decision {
                    if flows
                        .iter()
                        .all(|f| matches!(f.run, FlowRun::Finished { .. }))
                    {
                        finished += 1;
                    }
                }
            }
            Err(e) => eprintln!("login failed: {e}"),
        }
    }
    (times, finished)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds = env_usize("IDSYNC_BENCH_ROUNDS", 6);
    let inflight = env_usize("IDSYNC_BENCH_INFLIGHT", 50);
    let users = env_usize("IDSYNC_BENCH_USERS", 1_000);
    let cloud_dir = tempfile::tempdir()?;
    let (_serve, port, token) = scim_service(cloud_dir.path(), "cloud", "")?;
    let url = format!("http://127.0.0.1:{port}/scim/v2/cloud");
    let dir = tempfile::tempdir()?;
    let names: String = (0..10)
        .map(|g| format!("\"g-{g}\" = \"team-{g}\", "))
        .collect::<String>()
        + "\"g-all\" = \"everyone\"";
    let toml = format!(
        r#"[store]
path = "{}"
[log]
level = "warn"

[sources.web]
type = "login"
login_wait = "60s"

[targets.cloud]
type = "scim"
url = "{url}"
token = "{token}"

[targets.dc]
type = "crowd"

[flows.web-to-cloud]
source = "web"
target = "cloud"
[flows.web-to-cloud.groups]
names = {{ {names} }}

[flows.web-to-dc]
source = "web"
target = "dc"
[flows.web-to-dc.groups]
names = {{ {names} }}
"#,
        dir.path().join("idsync.db").display()
    );
    let path = dir.path().join("idsync.toml");
    std::fs::write(&path, toml)?;
    let config = idsync_config::load(&path).map_err(|e| e.to_string())?;
    let mut rt = Runtime::from_config(&config).await?;
    // The same source, answering at once: idsync's time without waiting for provisioning.
    let web = rt.login_sources.get("web").ok_or("no login source web")?;
    let nowait = idsync_engine::LoginSource {
        name: "web".into(),
        directory: web.directory.clone(),
        wait: Duration::ZERO,
        graph: None,
        read_by_source: false,
    };
    rt.login_sources.insert("web-nowait".into(), nowait);
    let rt = Arc::new(rt);

    // Users already there (logged in once, provisioned into both targets).
    let t = Instant::now();
    let mut next = 0;
    while next < users {
        let n = inflight.min(users - next);
        round(&rt, "web", next, n).await;
        next += n;
    }
    rt.login_runs_done().await;
    println!(
        "machine: {}\nset-up: {users} users logged in and provisioned into both targets in {:.1} s",
        machine(),
        t.elapsed().as_secs_f64()
    );

    let runs_before = rt
        .store
        .list_runs(Some("web-to-cloud"), 100_000)
        .await?
        .len();
    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut finished = 0;
    for _ in 0..rounds {
        let (times, _) = round(&rt, "web-nowait", next, inflight).await;
        next += inflight;
        without.extend(times);
        rt.login_runs_done().await;
        let (times, done) = round(&rt, "web", next, inflight).await;
        next += inflight;
        finished += done;
        with.extend(times);
        rt.login_runs_done().await;
    }
    let runs = rt
        .store
        .list_runs(Some("web-to-cloud"), 100_000)
        .await?
        .len()
        - runs_before;
    without.sort_by(f64::total_cmp);
    with.sort_by(f64::total_cmp);
    println!(
        "{inflight} logins in flight, {rounds} rounds, new users with 2 groups, flows into a SCIM target (idsync serve, own process) and a served crowd target:"
    );
    println!(
        "  without provisioning (login_wait 0): p50 {:.1} ms, p99 {:.1} ms ({} logins)",
        percentile(&without, 0.5),
        percentile(&without, 0.99),
        without.len()
    );
    println!(
        "  with provisioning (both flows' runs done): p50 {:.1} ms, p99 {:.1} ms ({} logins, {finished} with both runs finished; {runs} runs of web-to-cloud for {} logins)",
        percentile(&with, 0.5),
        percentile(&with, 0.99),
        with.len(),
        with.len() + without.len()
    );
    Ok(())
}
