//! `idsync sim bitbucket`: serve a simulated Bitbucket Data Center on loopback.

use clap::Args;
use idsync_core::SystemClock;
use idsync_sim::bitbucket::{self, BitbucketFaults, BitbucketSimOptions, RateLimit};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug, Clone)]
pub struct BitbucketSimArgs {
    /// The version `application-properties` reports.
    #[arg(long, default_value = "8.19.5")]
    pub version: String,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Serve HTTPS with a generated certificate; its CA goes to <cert-dir>/ca.pem.
    #[arg(long)]
    pub https: bool,
    #[arg(long, default_value = "bitbucket-sim")]
    pub cert_dir: PathBuf,
    /// The administrator (Basic) and its personal access token (Bearer).
    #[arg(long, default_value = "admin")]
    pub admin: String,
    #[arg(long, default_value = "admin")]
    pub password: String,
    #[arg(long, default_value = "sim-bitbucket-pat")]
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

impl BitbucketSimArgs {
    pub fn options(&self) -> BitbucketSimOptions {
        BitbucketSimOptions {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            tls: self.https,
            cert_dir: Some(self.cert_dir.clone()),
            version: self.version.clone(),
            admin: self.admin.clone(),
            password: self.password.clone(),
            token: self.token.clone(),
            rate_limit: self.rate_max.map(|max| RateLimit {
                max,
                fill: self.rate_fill,
                interval_secs: self.rate_interval,
            }),
            faults: BitbucketFaults {
                throttle_rate: self.throttle_rate,
                error_rate: self.error_rate,
                retry_after_secs: self.retry_after,
                latency_ms: self.latency_ms,
                ..BitbucketFaults::default()
            },
            seed: 1,
        }
    }
}

pub async fn run(args: BitbucketSimArgs) -> anyhow::Result<u8> {
    let opts = args.options();
    let sim = bitbucket::start(opts.clone(), Arc::new(SystemClock)).await?;
    out!(
        "Bitbucket Data Center {} simulator on {} (REST at {}/rest/api/1.0)",
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
    out!("access group:  stash-users (default group, LICENSED_USER)");
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
        "[targets.bitbucket]\ntype = \"bitbucket\"\nurl = \"{}\"\ntoken = \"{}\"\n",
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
