//! `idsync demo --target jira`: the simulated Entra tenant provisioned into a simulated Jira
//! Data Center (the simulator of `idsync sim jira`, over HTTPS) through Jira's REST API, end to
//! end on this machine: the first full sync with its progress bar, then a few changes in the
//! tenant shown arriving in Jira through the running service.

use crate::demo::{change_tenant, tenant_args, DemoArgs};
use crate::progress;
use crate::sim::source_snippet;
use crate::sim_jira::JiraSimArgs;
use anyhow::Context;
use idsync_core::SystemClock;
use idsync_engine::{Mode, Runtime, Service};
use idsync_sim::graph;
use idsync_sim::jira::{self, Directory, RunningJiraSim};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLOW: &str = "entra-to-jira";
const TARGET: &str = "jira";

/// What the demo looks for in the simulated Jira.
struct Seen {
    title: bool,
    disabled: bool,
    newcomer: bool,
    in_group: bool,
}

fn look(d: &Directory, retitled: &str, disabled: &str, newcomer: &str, group: &str) -> Seen {
    let user = |name: &str| d.by_name(name).and_then(|id| d.user(id));
    Seen {
        title: user(retitled).is_some_and(|u| {
            u.properties
                .get("idsync")
                .is_some_and(|p| p["user"]["title"] == "Head of Demos")
        }),
        disabled: user(disabled).is_some_and(|u| !u.active),
        newcomer: user(newcomer).is_some(),
        in_group: user(newcomer).is_some_and(|u| {
            d.groups_of(u.id)
                .iter()
                .any(|g| g.eq_ignore_ascii_case(group))
        }),
    }
}

fn directory(sim: &RunningJiraSim) -> anyhow::Result<std::sync::RwLockReadGuard<'_, Directory>> {
    sim.state
        .directory
        .read()
        .map_err(|_| anyhow::anyhow!("the simulated Jira is unavailable"))
}

pub async fn run(args: DemoArgs) -> anyhow::Result<u8> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = std::fs::canonicalize(&args.dir)?;
    for stale in ["idsync.db", "idsync.db-wal", "idsync.db-shm"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }

    // 1. The simulated Entra tenant, over HTTPS.
    let sim_args = tenant_args(&args, &dir);
    let opts = sim_args.options()?;
    out!(
        "1/4  simulated Entra tenant: {} users, {} groups, {} memberships, nested 3 deep",
        args.users,
        args.groups,
        args.memberships
    );
    let sim = graph::start(opts.clone(), Arc::new(SystemClock)).await?;
    let domain = "contoso.com";

    // 2. The simulated Jira Data Center, as `idsync sim jira --https` serves it.
    let jira_args = JiraSimArgs {
        version: "9.12.2".into(),
        port: 0,
        https: true,
        cert_dir: dir.join("jira-sim"),
        admin: "admin".into(),
        password: "admin".into(),
        token: "sim-jira-pat".into(),
        seats: None,
        rate_max: None,
        rate_fill: 10,
        rate_interval: 1,
        throttle_rate: 0.0,
        error_rate: 0.0,
        retry_after: 1,
        latency_ms: 0,
    };
    let jira_opts = jira_args.options()?;
    let jira = jira::start(jira_opts.clone(), Arc::new(SystemClock)).await?;
    let ca = jira
        .ca_pem
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the simulated Jira wrote no CA certificate"))?;
    out!(
        "2/4  simulated Jira Data Center {} at {} (REST at {}/rest/api/2; administrator admin/admin, token {})",
        jira_opts.version,
        jira.root,
        jira.root,
        jira_opts.token
    );
    let config = format!(
        "# Written by `idsync demo --target jira`.\n[store]\npath = \"idsync.db\"\n\n[log]\nlevel = \"warn\"\n\n{}interval = \"2s\"\n\n[targets.{TARGET}]\ntype = \"jira\"\nurl = \"{}\"\ntoken = \"{}\"\nca_file = \"{}\"\n\n[flows.{FLOW}]\nsource = \"entra\"\ntarget = \"{TARGET}\"\n",
        source_snippet(&sim, &opts, "entra", "entra"),
        jira.root,
        jira_opts.token,
        ca.display()
    );
    let config_path = dir.join("idsync.toml");
    std::fs::write(&config_path, config)?;
    let config = idsync_config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = Arc::new(Runtime::from_config(&config).await?);
    let svc = Service::new(Arc::clone(&rt));

    // 3. The first full sync.
    out!("3/4  first full sync, tenant to Jira through its REST API ...");
    let started = Instant::now();
    let bar = progress::Bar::new(true);
    let report = rt.sync(FLOW, Mode::Full, false, &bar).await?;
    bar.clear();
    let (users, groups) = {
        let d = directory(&jira)?;
        (d.user_count(), d.groups().count())
    };
    out!(
        "     {} in {:.1}s: {} operations applied, {} failed; the simulated Jira now has {users} users and {groups} groups (with its administrator and default groups)",
        report.status.as_str(),
        started.elapsed().as_secs_f64(),
        report.count("applied"),
        report.count("failed"),
    );

    // 4. Changes in the tenant, arriving incrementally through the running service.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = svc.start(stop_rx);
    let (retitled, disabled, newcomer, group) = change_tenant(&sim, domain)?;
    out!("4/4  changed in the tenant: {retitled} got a new title, {disabled} was disabled, {newcomer} joined and was added to \"{group}\"");
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(60);
    let labels = [
        "new title in the user property",
        "disabled",
        "newcomer created",
        "newcomer in the group",
    ];
    let mut seen = [false; 4];
    while seen.iter().any(|s| !s) && Instant::now() < deadline {
        let now = {
            let d = directory(&jira)?;
            let s = look(&d, &retitled, &disabled, &newcomer, &group);
            [s.title, s.disabled, s.newcomer, s.in_group]
        };
        for (i, ok) in now.iter().enumerate() {
            if *ok && !seen[i] {
                seen[i] = true;
                out!(
                    "     arrived in Jira after {:.1}s: {}",
                    t0.elapsed().as_secs_f64(),
                    labels[i]
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing: Vec<&str> = labels
        .iter()
        .zip(seen)
        .filter(|(_, s)| !s)
        .map(|(l, _)| *l)
        .collect();
    if !missing.is_empty() {
        out!("     not arrived after 60s: {}", missing.join(", "));
    }
    out!();
    out!("Look at the result:");
    out!("  idsync -c {} runs", config_path.display());
    out!(
        "  curl --cacert {} -H 'Authorization: Bearer {}' '{}/rest/api/2/user?username={newcomer}&expand=groups'",
        ca.display(),
        jira_opts.token,
        jira.root
    );
    out!(
        "  the simulated tenant: {} (tenant {})",
        sim.root,
        sim.tenant_id
    );
    let code = u8::from(!missing.is_empty()) * 3;
    if !args.exit {
        out!("\nThe service keeps running; Ctrl-C to stop.");
        tokio::signal::ctrl_c().await?;
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    jira.stop().await;
    sim.stop().await;
    rt.store.close().await;
    Ok(code)
}
