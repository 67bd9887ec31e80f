//! `idsync sim confluence`: serve a simulated Confluence Data Center on loopback.

use clap::Args;
use idsync_core::SystemClock;
use idsync_sim::confluence::{self, ConfluenceFaults, ConfluenceSimOptions, RateLimit, Version};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug, Clone)]
pub struct ConfluenceSimArgs {
    /// The Confluence version to behave as (the admin user API from 8.4; the JSON-RPC API
    /// before 9.0; /rest/api/server-information from 9.1; the active users' list from 9.3,
    /// with emails from 10.2; the admin update of full name and email from 9.4; the CQL user
    /// search in every version).
    #[arg(long, default_value = "9.2.3")]
    pub version: String,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Serve HTTPS with a generated certificate; its CA goes to <cert-dir>/ca.pem.
    #[arg(long)]
    pub https: bool,
    #[arg(long, default_value = "confluence-sim")]
    pub cert_dir: PathBuf,
    /// The administrator (Basic) and its personal access token (Bearer).
    #[arg(long, default_value = "admin")]
    pub admin: String,
    #[arg(long, default_value = "admin")]
    pub password: String,
    #[arg(long, default_value = "sim-confluence-pat")]
    pub token: String,
    /// The rate limiter: tokens per user, refilled by `--rate-fill` every `--rate-interval` s.
    #[arg(long)]
    pub rate_max: Option<u32>,
    #[arg(long, default_value_t = 10)]
    pub rate_fill: u32,
    #[arg(long, default_value_t = 1)]
    pub rate_interval: u32,
    /// Share of requests answered 429 (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// Share of requests answered 503 (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Seconds in Retry-After of injected 429 and 503.
    #[arg(long, default_value_t = 1)]
    pub retry_after: u64,
    /// Extra latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
}

impl ConfluenceSimArgs {
    pub fn options(&self) -> anyhow::Result<ConfluenceSimOptions> {
        let version = Version::parse(&self.version).ok_or_else(|| {
            anyhow::anyhow!(
                "--version {:?}: expected a version such as 9.2.3",
                self.version
            )
        })?;
        Ok(ConfluenceSimOptions {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            tls: self.https,
            cert_dir: Some(self.cert_dir.clone()),
            version,
            admin: self.admin.clone(),
            password: self.password.clone(),
            token: self.token.clone(),
            rate_limit: self.rate_max.map(|max| RateLimit {
                max,
                fill: self.rate_fill,
                interval_secs: self.rate_interval,
            }),
            faults: ConfluenceFaults {
                throttle_rate: self.throttle_rate,
                error_rate: self.error_rate,
                retry_after_secs: self.retry_after,
                latency_ms: self.latency_ms,
                ..ConfluenceFaults::default()
            },
            seed: 1,
        })
    }
}

pub async fn run(args: ConfluenceSimArgs) -> anyhow::Result<u8> {
    let opts = args.options()?;
    let sim = confluence::start(opts.clone(), Arc::new(SystemClock)).await?;
    out!(
        "Confluence Data Center {} simulator on {} (REST at {}/rest/api)",
        opts.version,
        sim.root,
        sim.root
    );
    out!(
        "administrator: {} / {} (Basic), personal access token {} (Bearer)",
        opts.admin,
        opts.password,
        opts.token
    );
    if let Some(ca) = &sim.ca_pem {
        out!(
            "CA certificate: {} (for Python: REQUESTS_CA_BUNDLE={})",
            ca.display(),
            ca.display()
        );
    }
    out!(
        "faults:        POST {}/_sim/faults, GET {}/_sim/stats",
        sim.root,
        sim.root
    );
    let mut snippet = format!(
        "[targets.confluence]\ntype = \"confluence\"\nurl = \"{}\"\ntoken = \"{}\"\n",
        sim.root, opts.token
    );
    if let Some(ca) = &sim.ca_pem {
        snippet.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
    }
    out!("\nA target for idsync.toml:\n\n{snippet}");
    out!("Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    sim.stop().await;
    Ok(0)
}
