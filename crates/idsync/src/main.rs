//! The `idsync` command line.
//!
//! Exit codes: 0 success; 1 an unexpected error; 2 the configuration or the command line is
//! wrong; 3 the run finished but some operations failed; 4 the source or the target could not
//! be read or reached, so the run did not complete.

mod admin;
mod demo;
mod progress;
mod sim;

use anyhow::Context;
use clap::{Parser, Subcommand};
use idsync_config::Config;
use idsync_engine::{EngineError, Mode, Runtime, Service};
use idsync_store::RunStatus;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "idsync",
    version,
    about = "Keep applications' user directories in sync with your identity provider"
)]
struct Cli {
    /// The configuration file.
    #[arg(
        short,
        long,
        global = true,
        default_value = "idsync.toml",
        env = "IDSYNC_CONFIG"
    )]
    config: PathBuf,
    /// Log at the configured level (default: only warnings, except for `serve`).
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the configuration and report every error with its key and line.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run the service: schedules, change-log followers, /healthz, /metrics and the admin API.
    Serve {
        /// Listen address (overrides [server] listen).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Read the flow's source and provision its target now.
    Sync {
        flow: String,
        /// Compute and print the plan, change nothing in the target.
        #[arg(long)]
        dry_run: bool,
        /// Read the target's real state first and repair drift (full reconcile).
        #[arg(long)]
        full: bool,
    },
    /// Print what a sync would do, with the reason for every operation.
    Plan {
        flow: String,
        /// The plan as JSON.
        #[arg(long)]
        json: bool,
        /// Compare with the target's real state instead of the ledger.
        #[arg(long)]
        full: bool,
        /// With every operation, why: the attributes that changed (before and after), what a
        /// create sends, the members concerned.
        #[arg(long)]
        explain: bool,
    },
    /// Provision one user now (reads the source first) and print every step: the scope
    /// verdict and the clause that decided it, each mapped value, the target object, the
    /// operations and their outcome.
    Provision {
        flow: String,
        /// The user's userName, email or source id.
        #[arg(long)]
        user: String,
    },
    /// The sync history, newest first; with --source, the reads of a source and their cost.
    Runs {
        #[arg(long)]
        flow: Option<String>,
        /// The reads of this source (requests, retries, throttling, resource units).
        #[arg(long, conflicts_with = "flow")]
        source: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Bearer tokens of the SCIM push endpoint (/scim/v2/<directory>/).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Deprovision the users a held run held (its flow's deletion threshold stopped them): the
    /// flow runs now with them allowed.
    Approve { run: String },
    /// Do not deprovision the users a held run held; the flow stops waiting.
    Reject { run: String },
    /// Flows' health: bad runs in a row and quarantine; --reset ends a flow's quarantine.
    Quarantine {
        #[arg(long)]
        reset: Option<String>,
    },
    /// Notifications sent (or tried), newest first.
    Notifications {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// The provisioning log of one run: every operation, its outcome and error.
    Log {
        run: String,
        #[arg(long)]
        json: bool,
    },
    /// Look at a source before the first sync.
    Source {
        #[command(subcommand)]
        command: SourceCommand,
    },
    /// Simulators to try idsync and test it without a cloud account.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
    /// The audit log of admin actions, newest first: who (cli:<OS user>, or the admin API's
    /// token), when, what, and how it ended.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Secrets idsync keeps sealed in its store under [store] secret_key.
    Secrets {
        #[command(subcommand)]
        command: admin::SecretsCommand,
    },
    /// The end-to-end demo: a simulated Entra tenant provisioned into a simulated Atlassian
    /// Cloud organisation, first a full sync, then changes arriving incrementally. Needs no
    /// configuration file.
    Demo(demo::DemoArgs),
}

#[derive(Subcommand)]
enum SourceCommand {
    /// Sign in and show the tenant (name, id, verified domains), how many users and groups
    /// are in scope, and which permissions are missing. Writes nothing.
    Check {
        source: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SimCommand {
    /// Serve a simulated Microsoft Graph tenant (Entra ID or B2C) on 127.0.0.1.
    Graph(sim::GraphSimArgs),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a bearer token for a directory's SCIM endpoint; it is printed once, only its hash is kept.
    Create {
        directory: String,
        /// A name to tell tokens apart ("entra-prod").
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// List tokens: id, directory, name, creation, last use, revocation.
    List {
        #[arg(long)]
        directory: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Report every error in the configuration.
    Check,
}

/// Exit codes.
const EXIT_ERROR: u8 = 1;
const EXIT_CONFIG: u8 = 2;
const EXIT_OPS_FAILED: u8 = 3;
const EXIT_UNREACHABLE: u8 = 4;
/// The run held deprovisions above the flow's deletion threshold: `idsync approve` or `reject`.
const EXIT_HELD: u8 = 5;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The simulator and the demo need no configuration file.
    if matches!(cli.command, Command::Sim { .. } | Command::Demo(_)) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(if cli.verbose { "info" } else { "warn" })
        });
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        };
        let result = runtime.block_on(async {
            match cli.command {
                Command::Sim {
                    command: SimCommand::Graph(args),
                } => sim::run(args).await,
                Command::Demo(args) => demo::run(args).await,
                _ => Ok(0),
            }
        });
        return match result {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_ERROR)
            }
        };
    }
    let config = match idsync_config::load(&cli.config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{}: {} error(s)", cli.config.display(), errors.0.len());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Command::Config {
        command: ConfigCommand::Check,
    } = cli.command
    {
        println!(
            "{}: ok ({} source(s), {} target(s), {} flow(s))",
            cli.config.display(),
            config.sources.len(),
            config.targets.len(),
            config.flows.len()
        );
        return ExitCode::SUCCESS;
    }
    let quiet = !cli.verbose && !matches!(cli.command, Command::Serve { .. });
    init_tracing(&config, quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = match e.downcast_ref::<EngineError>() {
                Some(EngineError::Source { .. } | EngineError::Target { .. }) => EXIT_UNREACHABLE,
                Some(
                    EngineError::UnknownFlow(_)
                    | EngineError::UnknownRun(_)
                    | EngineError::UnknownSource(_)
                    | EngineError::UnknownUser { .. }
                    | EngineError::NotHeld { .. },
                ) => EXIT_CONFIG,
                _ => EXIT_ERROR,
            };
            ExitCode::from(code)
        }
    }
}

/// Say what a held run holds and how to answer.
fn report_held(report: &idsync_engine::RunReport) {
    if report.status != RunStatus::Held {
        return;
    }
    for w in &report.plan.warnings {
        println!("warning: {w}");
    }
    println!(
        "{} users were not deprovisioned: see them with `idsync log {}`, then `idsync approve {}` or `idsync reject {}`",
        report.count("held"),
        report.run_id,
        report.run_id,
        report.run_id
    );
}

fn init_tracing(config: &Config, quiet: bool) {
    let level = if quiet {
        "warn"
    } else {
        config.log.level.as_str()
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<u8> {
    let rt = Runtime::from_config(&config).await?;
    let audit = admin::Audit::begin(&rt, &command).await?;
    let result = dispatch(command, rt, config).await;
    if let Some(audit) = audit {
        audit.finish(&result).await;
    }
    result
}

async fn dispatch(command: Command, rt: Runtime, config: Config) -> anyhow::Result<u8> {
    match command {
        Command::Audit { limit, json } => admin::audit(&rt, limit, json).await,
        Command::Secrets { command } => admin::secrets(&rt, &config, command).await,
        Command::Config { .. } | Command::Sim { .. } | Command::Demo(_) => Ok(0),
        Command::Source {
            command: SourceCommand::Check { source, json },
        } => source_check(&rt, &config, &source, json).await,
        Command::Serve { listen } => serve(rt, &config, listen).await,
        Command::Sync {
            flow,
            dry_run,
            full,
        } => {
            let mode = if full { Mode::Reconcile } else { Mode::Full };
            let bar = progress::Bar::new(!dry_run);
            let report = rt.sync(&flow, mode, dry_run, &bar).await?;
            bar.clear();
            if dry_run {
                print_plan(&report.plan, false)?;
                return Ok(0);
            }
            println!(
                "run {}: {} ({} planned, {} applied, {} failed) in {:.1}s",
                report.run_id,
                report.status.as_str(),
                report.count("planned"),
                report.count("applied"),
                report.count("failed"),
                (report.ended_ms - report.started_ms) as f64 / 1000.0
            );
            report_held(&report);
            if report.count("failed") > 0 {
                println!("see the failures with: idsync log {}", report.run_id);
            }
            Ok(match report.status {
                RunStatus::Succeeded => 0,
                RunStatus::Held => EXIT_HELD,
                _ => EXIT_OPS_FAILED,
            })
        }
        Command::Approve { run } => {
            let bar = progress::Bar::new(true);
            let report = rt.approve(&run, &bar).await?;
            bar.clear();
            println!(
                "run {} approved: run {} deprovisioned {} users ({} planned, {} applied, {} failed): {}",
                run,
                report.run_id,
                report.count("disable_user.applied") + report.count("delete_user.applied"),
                report.count("planned"),
                report.count("applied"),
                report.count("failed"),
                report.status.as_str()
            );
            report_held(&report);
            Ok(match report.status {
                RunStatus::Succeeded => 0,
                RunStatus::Held => EXIT_HELD,
                _ => EXIT_OPS_FAILED,
            })
        }
        Command::Quarantine { reset } => {
            if let Some(flow) = reset {
                rt.flow(&flow)?;
                let before = rt.store.record_flow_success(&flow).await?;
                println!(
                    "flow {flow}: {}",
                    if before.quarantined_ms.is_some() {
                        "quarantine ended; it is back on its schedule"
                    } else {
                        "was not quarantined (its count of bad runs starts again)"
                    }
                );
                return Ok(0);
            }
            println!(
                "{:<24}  {:<12}  {:>8}  LAST FAILURE",
                "FLOW", "STATUS", "FAILURES"
            );
            for name in rt.flows.keys() {
                let h = rt.store.flow_health(name).await?;
                let status = match (h.quarantined_ms, h.failures) {
                    (Some(_), _) => "quarantined",
                    (None, 0) => "ok",
                    (None, _) => "failing",
                };
                println!(
                    "{:<24}  {:<12}  {:>8}  {}",
                    name,
                    status,
                    h.failures,
                    h.last_failure.as_deref().unwrap_or("-")
                );
            }
            Ok(0)
        }
        Command::Notifications { limit } => {
            for n in rt.store.list_notifications(limit).await? {
                println!(
                    "{}  {:<11}  {:<16}  {:<7}  {}  {}  {}",
                    when(Some(n.at_ms)),
                    n.event,
                    n.flow,
                    n.channel,
                    if n.ok { "sent" } else { "FAILED" },
                    n.destination,
                    n.error.unwrap_or(n.subject)
                );
            }
            Ok(0)
        }
        Command::Reject { run } => {
            let r = rt.reject(&run).await?;
            println!(
                "run {} rejected: flow {} deprovisions none of the {} users it held; later runs judge their deprovisions against the threshold again",
                r.id,
                r.flow,
                r.counts.0.get("held").copied().unwrap_or(0)
            );
            Ok(0)
        }
        Command::Plan {
            flow,
            json,
            full,
            explain,
        } => {
            let mode = if full { Mode::Reconcile } else { Mode::Full };
            let report = rt
                .sync(&flow, mode, true, &idsync_engine::NoProgress)
                .await?;
            if explain && !json {
                for op in &report.plan.operations {
                    println!("{}", op.describe());
                    for line in explain_op(op) {
                        println!("    {line}");
                    }
                }
                for w in &report.plan.warnings {
                    println!("warning: {w}");
                }
                println!("{} operation(s)", report.plan.len());
                return Ok(0);
            }
            print_plan(&report.plan, json)?;
            Ok(0)
        }
        Command::Provision { flow, user } => {
            let p = rt
                .provision(&flow, &user, &idsync_engine::NoProgress)
                .await?;
            println!(
                "user:      {} (source id {}, {})",
                p.user.user_name,
                p.user.source_id,
                if p.user.active { "enabled" } else { "disabled" }
            );
            println!(
                "scope:     {}: {}",
                if p.verdict.in_scope {
                    "in scope"
                } else {
                    "OUT OF SCOPE"
                },
                p.verdict.reason
            );
            match &p.mapped {
                Ok(values) if values.is_empty() => {
                    println!("mapping:   none: the user goes as the directory holds it")
                }
                Ok(values) => {
                    for (i, (attr, v)) in values.iter().enumerate() {
                        let label = if i == 0 { "mapping:" } else { "" };
                        println!("{label:<10} {attr} = {v}");
                    }
                }
                Err(e) => println!("mapping:   FAILED: {e}"),
            }
            match &p.target_id {
                Some(id) => println!("target:    known as {id}"),
                None => println!(
                    "target:    not provisioned yet (a create first looks for an existing object by the target's matching attributes)"
                ),
            }
            if p.ops.is_empty() {
                println!("operations: none: the target is up to date for this user");
            }
            for op in &p.ops {
                println!(
                    "operation: {} {}: {} -> {}{}",
                    op.action,
                    op.object,
                    op.reason,
                    op.outcome,
                    op.error
                        .as_ref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                );
            }
            for w in &p.report.plan.warnings {
                println!("warning:   {w}");
            }
            println!("run {}: {}", p.report.run_id, p.report.status.as_str());
            Ok(match p.report.status {
                RunStatus::Succeeded => 0,
                RunStatus::Held => EXIT_HELD,
                _ => EXIT_OPS_FAILED,
            })
        }
        Command::Runs {
            flow,
            source,
            limit,
            json,
        } => {
            let name = source.map(|s| idsync_engine::read_run_name(&s)).or(flow);
            let runs = rt.store.list_runs(name.as_deref(), limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(0);
            }
            println!(
                "{:<36}  {:<16}  {:<9}  {:<11}  {:<17}  {:>8}  {:>7}  {:>6}",
                "RUN", "FLOW", "TRIGGER", "MODE", "STATUS", "PLANNED", "APPLIED", "FAILED"
            );
            for r in runs {
                let c = |k: &str| r.counts.0.get(k).copied().unwrap_or(0);
                // Source reads carry what they read and what it cost instead of operations.
                let read = r.flow.starts_with("source:").then(|| {
                    format!(
                        "  changes {}, requests {}, retries {}, throttled {}, resource units {}",
                        c("changes"),
                        c("requests"),
                        c("retries"),
                        c("throttled"),
                        c("resource_units")
                    )
                });
                // A held run says whether it still waits, and how it was answered.
                let status = match (&r.status, &r.resolution) {
                    (RunStatus::Held, Some(res)) => format!("held ({res})"),
                    (RunStatus::Held, None) => "held (waiting)".to_string(),
                    (st, _) => st.as_str().to_string(),
                };
                println!(
                    "{:<36}  {:<16}  {:<9}  {:<11}  {:<17}  {:>8}  {:>7}  {:>6}{}",
                    r.id,
                    r.flow,
                    r.trigger,
                    r.mode,
                    status,
                    c("planned"),
                    c("applied"),
                    c("failed"),
                    read.unwrap_or_default()
                );
            }
            Ok(0)
        }
        Command::Token { command } => token(&rt, &config, command).await,
        Command::Log { run, json } => {
            let Some(r) = rt.store.get_run(&run).await? else {
                return Err(EngineError::UnknownRun(run).into());
            };
            let ops = rt.store.run_ops(&run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&ops)?);
                return Ok(0);
            }
            println!(
                "run {} of flow {} ({}, {}): {}{}",
                r.id,
                r.flow,
                r.trigger,
                r.mode,
                r.status.as_str(),
                r.error.map(|e| format!(": {e}")).unwrap_or_default()
            );
            for op in ops {
                println!(
                    "{:>6}  {:<14}  {:<32}  {:<9}  {}{}",
                    op.seq,
                    op.action,
                    op.object,
                    op.outcome,
                    op.reason,
                    op.error.map(|e| format!(" -- {e}")).unwrap_or_default()
                );
            }
            Ok(0)
        }
    }
}

async fn source_check(rt: &Runtime, config: &Config, name: &str, json: bool) -> anyhow::Result<u8> {
    let Some(sc) = config.sources.get(name) else {
        return Err(EngineError::UnknownSource(name.to_string()).into());
    };
    let idsync_config::SourceKind::MsGraph(g) = &sc.kind else {
        println!(
            "source {name}: nothing to check (only Microsoft Graph sources sign in to a tenant)"
        );
        return Ok(0);
    };
    let source = idsync_engine::graph_source(name, g, rt.clock.clone())?;
    let report = match source.check().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("source {name}: {e}");
            return Ok(EXIT_UNREACHABLE);
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("source {name}: {}", idsync_core::Source::describe(&source));
        println!(
            "tenant:      {} (id {})",
            report.tenant_name.as_deref().unwrap_or("?"),
            report.tenant_id.as_deref().unwrap_or("?")
        );
        let domains: Vec<String> = report
            .domains
            .iter()
            .map(|(d, default, initial)| {
                let mut tags = Vec::new();
                if *default {
                    tags.push("default");
                }
                if *initial {
                    tags.push("initial");
                }
                if tags.is_empty() {
                    d.clone()
                } else {
                    format!("{d} ({})", tags.join(", "))
                }
            })
            .collect();
        println!(
            "domains:     {}",
            if domains.is_empty() {
                "?".to_string()
            } else {
                domains.join(", ")
            }
        );
        let scope = match &g.scope {
            idsync_config::MsGraphScope::All => "the whole directory".to_string(),
            idsync_config::MsGraphScope::Groups(gs) => format!("members of {}", gs.join(", ")),
            idsync_config::MsGraphScope::App(a) => format!("assignments of the application {a}"),
        };
        match (report.users_in_scope, report.groups_in_scope) {
            (Some(u), Some(gr)) => println!("in scope:    {u} users, {gr} groups ({scope})"),
            _ => println!("in scope:    not counted ({scope})"),
        }
        println!(
            "granted:     {}",
            if report.granted.is_empty() {
                "(none)".to_string()
            } else {
                report.granted.join(", ")
            }
        );
        for any in &report.missing {
            println!(
                "missing:     grant admin consent for {}{}",
                any[0],
                if any.len() > 1 {
                    format!(" (or {})", any[1..].join(", "))
                } else {
                    String::new()
                }
            );
        }
        for p in &report.problems {
            println!("problem:     {p}");
        }
        if report.ok() {
            println!("ok: check that this is the tenant you mean to sync before the first run");
        }
    }
    Ok(if report.ok() { 0 } else { EXIT_UNREACHABLE })
}

/// The details of one operation, for `plan --explain`.
fn explain_op(op: &idsync_core::Operation) -> Vec<String> {
    use idsync_core::Action;
    let show = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "(empty)".to_string(),
        Some(v) => v.to_string(),
    };
    let diff = |before: serde_json::Value, after: serde_json::Value| -> Vec<String> {
        let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
            return Vec::new();
        };
        let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
        keys.into_iter()
            .filter(|k| *k != "id" && b.get(*k) != a.get(*k))
            .map(|k| format!("{k}: {} -> {}", show(b.get(k)), show(a.get(k))))
            .collect()
    };
    let value = |r: Result<serde_json::Value, serde_json::Error>| r.unwrap_or_default();
    match &op.action {
        Action::CreateUser { user } => {
            vec![format!("sends {}", value(serde_json::to_value(user)))]
        }
        Action::CreateGroup { group } => {
            vec![format!("sends {}", value(serde_json::to_value(group)))]
        }
        Action::UpdateUser { before, after, .. } | Action::DisableUser { before, after } => diff(
            value(serde_json::to_value(before)),
            value(serde_json::to_value(after)),
        ),
        Action::UpdateGroup { before, after, .. } => diff(
            value(serde_json::to_value(before)),
            value(serde_json::to_value(after)),
        ),
        Action::AddMembers { users, .. } | Action::RemoveMembers { users, .. } => {
            let shown: Vec<&str> = users.iter().take(20).map(|u| &**u).collect();
            let more = users.len().saturating_sub(shown.len());
            vec![format!(
                "users: {}{}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )]
        }
        Action::DeleteUser { .. } | Action::DeleteGroup { .. } => Vec::new(),
    }
}

fn print_plan(plan: &idsync_core::Plan, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(plan)?);
        return Ok(());
    }
    if plan.is_empty() {
        for w in &plan.warnings {
            println!("warning: {w}");
        }
        println!("nothing to do: the target is up to date");
        return Ok(());
    }
    for op in &plan.operations {
        println!("{}", op.describe());
    }
    for w in &plan.warnings {
        println!("warning: {w}");
    }
    let counts: Vec<String> = plan
        .counts()
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    println!("{} operation(s): {}", plan.len(), counts.join(", "));
    Ok(())
}

async fn serve(
    rt: Runtime,
    config: &Config,
    listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<u8> {
    let addr = listen.unwrap_or(config.server.listen);
    let svc = Service::new(Arc::new(rt));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = svc.start(stop_rx);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "listening");
    println!("idsync listening on http://{local} (Ctrl-C to stop)");
    idsync_server::serve(listener, Arc::clone(&svc), &config.server, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    svc.runtime.store.close().await;
    Ok(0)
}

fn when(ms: Option<i64>) -> String {
    ms.and_then(|ms| time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok())
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| "-".to_string())
}

async fn token(rt: &Runtime, config: &Config, command: TokenCommand) -> anyhow::Result<u8> {
    let now = rt.clock.now_ms();
    match command {
        TokenCommand::Create { directory, name } => {
            let pushed = config.sources.values().any(|s| {
                s.directory == directory && matches!(s.kind, idsync_config::SourceKind::Scim(_))
            });
            if !pushed {
                eprintln!(
                    "warning: no source of type \"scim\" fills directory {directory:?} in {}; pushes will land in the directory but no flow reads it",
                    config.file.display()
                );
            }
            let (info, secret) = rt.store.create_token(&directory, &name, now).await?;
            println!("token {} for directory {directory} ({name}):", info.id);
            println!("{secret}");
            println!(
                "SCIM base URL: http://{}/scim/v2/{directory}  (this token is shown once; only its hash is kept)",
                config.server.listen
            );
            Ok(0)
        }
        TokenCommand::List { directory, json } => {
            let tokens = rt.store.list_tokens(directory.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tokens)?);
                return Ok(0);
            }
            println!(
                "{:<36}  {:<16}  {:<16}  {:<20}  {:<20}  REVOKED",
                "ID", "DIRECTORY", "NAME", "CREATED", "LAST USED"
            );
            for t in tokens {
                println!(
                    "{:<36}  {:<16}  {:<16}  {:<20}  {:<20}  {}",
                    t.id,
                    t.directory,
                    t.name,
                    when(Some(t.created_ms)),
                    when(t.last_used_ms),
                    when(t.revoked_ms)
                );
            }
            Ok(0)
        }
        TokenCommand::Revoke { id } => {
            if rt.store.revoke_token(&id, now).await? {
                println!("token {id} revoked");
                Ok(0)
            } else {
                eprintln!("error: no live token with id {id}");
                Ok(EXIT_CONFIG)
            }
        }
    }
}
