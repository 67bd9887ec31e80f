//! `idsync sim graph`: serve a simulated Microsoft Graph tenant on loopback.

use clap::Args;
use idsync_core::SystemClock;
use idsync_sim::graph::{
    self, Faults, GraphSimOptions, RegisteredCert, RunningGraphSim, TenantSpec,
};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug, Clone)]
pub struct GraphSimArgs {
    /// Users in the tenant.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Groups in the tenant.
    #[arg(long, default_value_t = 100)]
    pub groups: usize,
    /// User memberships in all (nested-group links come on top).
    #[arg(long, default_value_t = 5000)]
    pub memberships: usize,
    /// Levels of group nesting.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    /// The tenant is generated from this seed: the same seed, the same tenant.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The tenant's name (<name>.onmicrosoft.com).
    #[arg(long, default_value = "contoso")]
    pub name: String,
    /// An Azure AD B2C tenant (local accounts, no delta queries).
    #[arg(long)]
    pub b2c: bool,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Serve HTTPS with a generated certificate; its CA goes to <cert-dir>/ca.pem.
    #[arg(long)]
    pub https: bool,
    #[arg(long, default_value = "graph-sim")]
    pub cert_dir: PathBuf,
    /// The app registration idsync reads with.
    #[arg(long, default_value = "11111111-2222-3333-4444-555555555555")]
    pub client_id: String,
    #[arg(long, default_value = "sim-secret")]
    pub client_secret: String,
    /// A certificate (PEM) registered on that app: client assertions signed with its key sign in
    /// (repeat for several).
    #[arg(long = "client-cert")]
    pub client_certs: Vec<PathBuf>,
    /// Application permissions granted to that app (repeat; default: what idsync needs).
    #[arg(long = "grant")]
    pub grants: Vec<String>,
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
    /// Largest page served.
    #[arg(long, default_value_t = 999)]
    pub max_page: usize,
    /// The password every user signs in with at the tenant's login page.
    #[arg(long, default_value = graph::DEFAULT_PASSWORD)]
    pub password: String,
    /// A redirect URI registered on the apps, where sign-ins may return (repeat for several).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// The most group ids an ID token carries (past it, the `_claim_names` overage).
    #[arg(long, default_value_t = 200)]
    pub groups_limit: usize,
}

impl GraphSimArgs {
    pub fn options(&self) -> anyhow::Result<GraphSimOptions> {
        let mut o = GraphSimOptions {
            spec: TenantSpec {
                users: self.users,
                groups: self.groups,
                memberships: self.memberships,
                depth: self.depth,
                seed: self.seed,
                b2c: self.b2c,
                name: self.name.clone(),
            },
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            tls: self.https,
            cert_dir: Some(self.cert_dir.clone()),
            max_page: self.max_page,
            faults: Faults {
                throttle_rate: self.throttle_rate,
                error_rate: self.error_rate,
                retry_after_secs: self.retry_after,
                latency_ms: self.latency_ms,
                ..Faults::default()
            },
            sign_in: graph::SignInOptions {
                password: self.password.clone(),
                redirect_uris: self.redirect_uris.clone(),
                groups_limit: self.groups_limit,
            },
            ..GraphSimOptions::default()
        };
        o.reader.client_id.clone_from(&self.client_id);
        o.reader.client_secret.clone_from(&self.client_secret);
        if !self.grants.is_empty() {
            o.reader.roles.clone_from(&self.grants);
        }
        for path in &self.client_certs {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("--client-cert {}: {e}", path.display()))?;
            let certs = RegisteredCert::from_pem(&text)
                .map_err(|e| anyhow::anyhow!("--client-cert {}: {e}", path.display()))?;
            o.reader.certificates.extend(certs);
        }
        Ok(o)
    }
}

/// The `[sources.x]` table that reads a running simulator.
pub fn source_snippet(
    sim: &RunningGraphSim,
    opts: &GraphSimOptions,
    name: &str,
    directory: &str,
) -> String {
    let mut s = format!(
        "[sources.{name}]\ntype = \"msgraph\"\ndirectory = \"{directory}\"\ntenant = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nauthority = \"{}\"\ngraph_url = \"{}\"\n",
        sim.tenant_id, opts.reader.client_id, opts.reader.client_secret, sim.root, sim.root
    );
    if let Some(ca) = &sim.ca_pem {
        s.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
    }
    if opts.spec.b2c {
        s.push_str("tenant_type = \"b2c\"\nuser_name = \"identity:emailAddress\"\nkey = \"identity:emailAddress\"\n");
        if let Some(ext) = extension_attributes(sim).first() {
            s.push_str(&format!("extensions = [\"{ext}\"]\n"));
        }
    }
    s
}

/// The extension attribute names the simulated tenant's users carry
/// (`extension_<b2c-extensions-app appId without dashes>_<name>`).
fn extension_attributes(sim: &RunningGraphSim) -> Vec<String> {
    let Ok(t) = sim.state.tenant.read() else {
        return Vec::new();
    };
    let prefix = format!("extension_{}_", t.extension_app);
    let mut names: Vec<String> = t
        .objects(graph::Kind::User)
        .values()
        .take(1)
        .flat_map(|o| o.props.keys())
        .filter(|k| k.starts_with(&prefix))
        .cloned()
        .collect();
    names.sort();
    names
}

pub async fn run(args: GraphSimArgs) -> anyhow::Result<u8> {
    let opts = args.options()?;
    out!(
        "generating tenant {}: {} users, {} groups, {} memberships, nesting depth {}{} ...",
        args.name,
        args.users,
        args.groups,
        args.memberships,
        args.depth,
        if args.b2c { " (B2C)" } else { "" }
    );
    let sim = graph::start(opts.clone(), Arc::new(SystemClock)).await?;
    out!(
        "Microsoft Graph simulator on {} (Graph at {}/v1.0)",
        sim.root,
        sim.root
    );
    out!("tenant id:     {}", sim.tenant_id);
    out!(
        "token endpoint: {}/{}/oauth2/v2.0/token",
        sim.root,
        sim.tenant_id
    );
    out!(
        "reader app:    client_id {} secret {}{}",
        opts.reader.client_id,
        opts.reader.client_secret,
        match opts.reader.certificates.len() {
            0 => String::new(),
            n => format!(" (or any of {n} registered certificate(s))"),
        }
    );
    out!(
        "admin app:     client_id {} secret {} (may write)",
        opts.admin.client_id,
        opts.admin.client_secret
    );
    if opts.spec.b2c {
        let app_id = sim
            .state
            .tenant
            .read()
            .map(|t| graph::extensions_app_id(&t))
            .unwrap_or_default();
        out!(
            "b2c-extensions-app: appId {app_id}; extension attributes are named extension_{}_<name> (GET {}/v1.0/applications?$filter=startswith(displayName,'b2c-extensions-app') and .../applications/<id>/extensionProperties list them): {}",
            app_id.replace('-', ""),
            sim.root,
            extension_attributes(&sim).join(", ")
        );
    }
    out!(
        "sign-in:       {}/{}/v2.0 (issuer and OpenID configuration; authorization code with PKCE at {}/{}/oauth2/v2.0/authorize), every user's password: {}, redirect URIs: {}",
        sim.root,
        sim.tenant_id,
        sim.root,
        sim.tenant_id,
        opts.sign_in.password,
        if opts.sign_in.redirect_uris.is_empty() {
            "none (--redirect-uri)".to_string()
        } else {
            opts.sign_in.redirect_uris.join(" ")
        }
    );
    if let Some(ca) = &sim.ca_pem {
        out!(
            "CA certificate: {} (for Python: REQUESTS_CA_BUNDLE={})",
            ca.display(),
            ca.display()
        );
    }
    out!(
        "faults:        POST {}/_sim/faults, POST {}/_sim/expire-delta, GET {}/_sim/stats",
        sim.root,
        sim.root,
        sim.root
    );
    out!(
        "\nA source for idsync.toml:\n\n{}",
        source_snippet(&sim, &opts, "entra", "people")
    );
    out!("Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    sim.stop().await;
    Ok(0)
}
