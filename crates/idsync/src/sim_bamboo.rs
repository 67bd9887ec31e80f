//! `idsync sim bamboo`: serve a simulated Bamboo Data Center on loopback.

use clap::Args;
use idsync_sim::bamboo::{self, BambooFaults, BambooSimOptions};
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct BambooSimArgs {
    /// The Bamboo version `/rest/api/latest/info` reports.
    #[arg(long, default_value = "9.6.5")]
    pub version: String,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Serve HTTPS with a generated certificate; its CA goes to <cert-dir>/ca.pem.
    #[arg(long)]
    pub https: bool,
    #[arg(long, default_value = "bamboo-sim")]
    pub cert_dir: PathBuf,
    /// The administrator (Basic) and its personal access token (Bearer).
    #[arg(long, default_value = "admin")]
    pub admin: String,
    #[arg(long, default_value = "admin")]
    pub password: String,
    #[arg(long, default_value = "sim-bamboo-pat")]
    pub token: String,
    /// The largest page the server gives, whatever `limit` asks.
    #[arg(long, default_value_t = 100)]
    pub max_page: usize,
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

impl BambooSimArgs {
    pub fn options(&self) -> BambooSimOptions {
        BambooSimOptions {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            tls: self.https,
            cert_dir: Some(self.cert_dir.clone()),
            version: self.version.clone(),
            admin: self.admin.clone(),
            password: self.password.clone(),
            token: self.token.clone(),
            max_page: self.max_page.max(1),
            faults: BambooFaults {
                throttle_rate: self.throttle_rate,
                error_rate: self.error_rate,
                retry_after_secs: self.retry_after,
                latency_ms: self.latency_ms,
                ..BambooFaults::default()
            },
            seed: 1,
        }
    }
}

pub async fn run(args: BambooSimArgs) -> anyhow::Result<u8> {
    let opts = args.options();
    let sim = bamboo::start(opts.clone()).await?;
    out!(
        "Bamboo Data Center {} simulator on {} (REST at {}/rest/api/latest)",
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
        "[targets.bamboo]\ntype = \"bamboo\"\nurl = \"{}\"\ntoken = \"{}\"\naccess_groups = [\"bamboo-users\"]\n",
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
