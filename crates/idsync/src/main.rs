//! The `idsync` command line.
//!
//! Exit codes: 0 success; 1 an unexpected error; 2 the configuration or the command line is
//! wrong; 3 the run finished but some operations failed; 4 the source or the target could not
//! be read or reached, so the run did not complete; 5 deprovisions held; 6 another process
//! runs the flow; 130 / 143 stopped by SIGINT / SIGTERM.
//!
//! Every command prints through `out!`, which returns a broken pipe as an error instead of
//! panicking (`idsync log RUN | head`); such an error ends the command quietly.

/// `println!` that returns write errors (a closed pipe) to the caller.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

mod admin;
mod crowd;
mod demo;
mod demo_jira;
mod demo_product;
mod flows;
mod history;
mod login;
mod plan;
mod progress;
mod serve;
mod signals;
mod sim;
mod sim_bamboo;
mod sim_bitbucket;
mod sim_confluence;
mod sim_jira;
mod source_check;
mod token;

use clap::{Parser, Subcommand};
use idsync_config::Config;
use idsync_engine::{EngineError, Runtime};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Do what a single sign-on login does, without the IdP: update the source's directory from
    /// the claims, refuse a disabled or unscoped user with the reason, run the user's flows for
    /// that user, and print each flow's group names and run.
    Login {
        /// The source the login belongs to (msgraph, scim or login).
        #[arg(long)]
        source: String,
        /// The user's id in the source (Entra's oid).
        #[arg(long)]
        subject: String,
        /// A JSON file: {"attributes": {...}, "groups": [...], "groups_overage": false};
        /// attributes in directory names; without "groups" the memberships stay.
        #[arg(long)]
        claims: Option<PathBuf>,
        #[arg(long)]
        json: bool,
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
    /// Crowd-compatible directories idsync serves (targets of type crowd) to Jira,
    /// Confluence, Bitbucket, Bamboo and Fisheye/Crucible.
    Crowd {
        #[command(subcommand)]
        command: CrowdCommand,
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
    /// Serve a simulated Jira Data Center (users, groups, properties, application roles) on 127.0.0.1.
    Jira(sim_jira::JiraSimArgs),
    /// Serve a simulated Confluence Data Center (users, groups, memberships) on 127.0.0.1.
    Confluence(sim_confluence::ConfluenceSimArgs),
    /// Serve a simulated Bamboo Data Center (users, groups, memberships) on 127.0.0.1.
    Bamboo(sim_bamboo::BambooSimArgs),
    /// Serve a simulated Bitbucket Data Center (users, groups, global permissions) on 127.0.0.1.
    Bitbucket(sim_bitbucket::BitbucketSimArgs),
}

#[derive(Subcommand)]
enum CrowdCommand {
    /// The applications (products) that read a crowd target.
    App {
        #[command(subcommand)]
        command: CrowdAppCommand,
    },
}

#[derive(Subcommand)]
enum CrowdAppCommand {
    /// Make an application: its password is printed once, only its argon2 hash is kept.
    Create {
        /// The crowd target it reads.
        #[arg(long)]
        target: String,
        /// The application name the product is set up with ("jira").
        #[arg(long)]
        name: String,
        /// An address, CIDR range or host name it may call from (repeat for more; none: any
        /// address).
        #[arg(long = "allow", value_name = "ADDRESS|CIDR|HOST")]
        allow: Vec<String>,
    },
    /// List applications: target, name, allowed addresses, creation, last use, revocation.
    List {
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an application: the product's requests are refused from then on.
    Revoke {
        #[arg(long)]
        target: String,
        #[arg(long)]
        name: String,
    },
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
/// Another process runs the flow (it holds the flow's lease).
const EXIT_BUSY: u8 = 6;
/// `idsync login`: the login was refused (the user is disabled or no flow scopes it in).
const EXIT_REFUSED: u8 = 7;

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
                Command::Sim {
                    command: SimCommand::Jira(args),
                } => sim_jira::run(args).await,
                Command::Sim {
                    command: SimCommand::Confluence(args),
                } => sim_confluence::run(args).await,
                Command::Sim {
                    command: SimCommand::Bamboo(args),
                } => sim_bamboo::run(args).await,
                Command::Sim {
                    command: SimCommand::Bitbucket(args),
                } => sim_bitbucket::run(args).await,
                Command::Demo(args) => demo::run(args).await,
                _ => Ok(0),
            }
        });
        return match result {
            Ok(code) => ExitCode::from(code),
            Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {}", describe(&e));
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
        use std::io::Write as _;
        // A closed pipe is no error of the configuration.
        let _ = writeln!(
            std::io::stdout(),
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
    let store_path = config.store.path.clone();
    let result = runtime.block_on(run(cli.command, config));
    // Work cut short by a stop (a run past the drain time) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => ExitCode::from(report_error(&e, &store_path)),
    }
}

/// Whether `e` is a write to a closed pipe (the reader went away: `| head`).
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// An error and its causes, each said once: a cause whose text its error already quotes is
/// left out (`target app: the target is unavailable: X` rather than `...: X: X`).
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Print the error once, with advice where there is some, and return the exit code.
fn report_error(e: &anyhow::Error, store_path: &Path) -> u8 {
    if let Some(signal) = e.downcast_ref::<signals::Stopped>() {
        eprintln!("{}", describe(e));
        return signal.signal.exit_code();
    }
    let disk_full = e.chain().any(|c| {
        c.downcast_ref::<idsync_store::StoreError>()
            .is_some_and(idsync_store::StoreError::is_disk_full)
            || c.downcast_ref::<EngineError>()
                .is_some_and(EngineError::is_disk_full)
    });
    if disk_full {
        eprintln!("error: {}", disk_full_advice(store_path));
        return EXIT_ERROR;
    }
    eprintln!("error: {}", describe(e));
    match e.downcast_ref::<EngineError>() {
        Some(EngineError::Source { .. } | EngineError::Target { .. }) => EXIT_UNREACHABLE,
        Some(EngineError::Busy { .. }) => EXIT_BUSY,
        Some(
            EngineError::UnknownFlow(_)
            | EngineError::UnknownRun(_)
            | EngineError::UnknownSource(_)
            | EngineError::UnknownUser { .. }
            | EngineError::NotHeld { .. }
            | EngineError::NothingToReconcile { .. },
        ) => EXIT_CONFIG,
        _ => EXIT_ERROR,
    }
}

/// What to say when the store's disk is full: which file, how much space is left, what to do.
fn disk_full_advice(store: &Path) -> String {
    let dir = store
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let free = rustix::fs::statvfs(dir)
        .map(|s| format_bytes(s.f_bavail.saturating_mul(s.f_frsize)))
        .unwrap_or_else(|_| "unknown".to_string());
    format!(
        "the disk holding the store {} is full ({free} free in {}): free some space there, or move [store] path to a larger disk, then run the command again. Nothing half-written was kept: what was committed stays, and a run cut short shows as interrupted and is carried on by the next one.",
        store.display(),
        dir.display()
    )
}

fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
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
    if let Command::Serve { listen } = command {
        return serve::serve(rt, &config, listen).await;
    }
    let rt = std::sync::Arc::new(rt);
    let audit = admin::Audit::begin(&rt, &command).await?;
    let result = command_on(&rt, command, &config).await;
    if let Some(audit) = audit {
        audit.finish(&result).await;
    }
    // This process leaves the store's list of live processes (and any lease it held).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), rt.store.close()).await;
    result
}

async fn command_on(
    rt: &std::sync::Arc<Runtime>,
    command: Command,
    config: &Config,
) -> anyhow::Result<u8> {
    match command {
        Command::Config { .. } | Command::Sim { .. } | Command::Demo(_) | Command::Serve { .. } => {
            Ok(0)
        }
        Command::Audit { limit, json } => admin::audit(rt, limit, json).await,
        Command::Secrets { command } => admin::secrets(rt, config, command).await,
        Command::Source {
            command: SourceCommand::Check { source, json },
        } => source_check::source_check(rt, config, &source, json).await,
        Command::Sync {
            flow,
            dry_run,
            full,
        } => flows::sync(rt, &flow, dry_run, full).await,
        Command::Approve { run } => flows::approve(rt, &run).await,
        Command::Reject { run } => flows::reject(rt, &run).await,
        Command::Provision { flow, user } => flows::provision(rt, &flow, &user).await,
        Command::Plan {
            flow,
            json,
            full,
            explain,
        } => plan::plan(rt, &flow, json, full, explain).await,
        Command::Quarantine { reset } => history::quarantine(rt, reset).await,
        Command::Notifications { limit } => history::notifications(rt, limit).await,
        Command::Runs {
            flow,
            source,
            limit,
            json,
        } => history::runs(rt, flow, source, limit, json).await,
        Command::Log { run, json } => history::log(rt, run, json).await,
        Command::Login {
            source,
            subject,
            claims,
            json,
        } => login::login(rt, &source, &subject, claims.as_deref(), json).await,
        Command::Token { command } => token::token(rt, config, command).await,
        Command::Crowd {
            command: CrowdCommand::App { command },
        } => crowd::app(rt, config, command).await,
    }
}
