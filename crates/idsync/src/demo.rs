//! `idsync demo`: a simulated Entra tenant provisioned into a simulated Atlassian Cloud
//! organisation and served to Atlassian Data Center products as a Crowd directory, end to end,
//! on this machine.
//!
//! The tenant is the Graph simulator over HTTPS; the Atlassian Cloud organisation is idsync's
//! own SCIM endpoint (directory `atlassian`), written to by a SCIM target in the
//! `atlassian-cloud` profile; the Crowd directory is a `crowd` target (`jira-dc`) fed by a second
//! flow, with an application `jira` whose settings the demo prints as Jira's "Add Crowd
//! directory" screen asks for them. The demo runs the first full syncs with their progress bar,
//! then changes a few users and memberships in the tenant and shows them arriving in Atlassian
//! Cloud and in the Crowd directory's event feed (read over HTTP as Jira reads it), and leaves the
//! server running.

use crate::progress;
use crate::sim::{source_snippet, GraphSimArgs};
use anyhow::Context;
use clap::Args;
use idsync_core::{MemberKind, SystemClock, User};
use idsync_engine::{Mode, Runtime, Service};
use idsync_sim::graph::{self, Kind};
use idsync_store::Store;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where the demo keeps its configuration, store and certificate.
    #[arg(long, default_value = "idsync-demo")]
    pub dir: PathBuf,
    /// Users in the simulated tenant.
    #[arg(long, default_value_t = 2000)]
    pub users: usize,
    /// Groups in the simulated tenant.
    #[arg(long, default_value_t = 100)]
    pub groups: usize,
    /// User memberships in the simulated tenant.
    #[arg(long, default_value_t = 8000)]
    pub memberships: usize,
    /// Port of idsync's server on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Stop once the incremental changes have arrived (for scripts and tests).
    #[arg(long)]
    pub exit: bool,
    /// What the tenant is provisioned into: a simulated Atlassian Cloud organisation and a
    /// Crowd directory, or a simulated Jira Data Center (`idsync sim jira`) through its REST API.
    #[arg(long, value_enum, default_value = "atlassian")]
    pub target: DemoTarget,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoTarget {
    Atlassian,
    Jira,
}

const FLOW: &str = "entra-to-atlassian";
const TARGET_DIR: &str = "atlassian";
/// The Crowd directory Data Center products read, its flow and the application Jira signs in as.
const CROWD_FLOW: &str = "entra-to-jira";
const CROWD_TARGET: &str = "jira-dc";
const CROWD_APP: &str = "jira";

fn find(snapshot: &idsync_core::Snapshot, user_name: &str) -> Option<User> {
    snapshot
        .users
        .iter()
        .find(|u| u.user_name.eq_ignore_ascii_case(user_name))
        .cloned()
}

pub async fn run(args: DemoArgs) -> anyhow::Result<u8> {
    if args.target == DemoTarget::Jira {
        return crate::demo_jira::run(args).await;
    }
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
        "1/5  simulated Entra tenant: {} users, {} groups, {} memberships, nested 3 deep",
        args.users,
        args.groups,
        args.memberships
    );
    let sim = graph::start(opts.clone(), Arc::new(SystemClock)).await?;
    let domain = "contoso.com";

    // 2. idsync's server, whose SCIM endpoint plays the Atlassian Cloud organisation.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{} (try --port 0)", args.port))?;
    let addr = listener.local_addr()?;
    let store = Store::open(&dir.join("idsync.db")).await?;
    let (_, secret) = store
        .create_token(
            TARGET_DIR,
            "idsync-demo",
            idsync_core::Clock::now_ms(&SystemClock),
        )
        .await?;
    let (_, crowd_password) = store
        .create_crowd_app(
            CROWD_TARGET,
            CROWD_APP,
            &[],
            idsync_core::Clock::now_ms(&SystemClock),
        )
        .await?;
    store.close().await;
    std::fs::write(dir.join("atlassian.token"), &secret)?;
    std::fs::write(dir.join("jira.password"), &crowd_password)?;
    // Single sign-on: idsync's OpenID provider (its keys sealed with the store key) in front of
    // the simulated tenant's login page, and a simulated Jira as its client on its own port.
    let product_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let product_url = format!("http://{}", product_listener.local_addr()?);
    let issuer = format!("http://{addr}");
    std::fs::write(dir.join("store.key"), random_hex(32))?;
    let product_secret = random_hex(24);
    std::fs::write(dir.join("jira-sso.secret"), &product_secret)?;
    sim.state
        .register_redirect_uri(&format!("{issuer}/sso/upstream/entra/callback"));
    let authority = format!("{}/{}/v2.0", sim.root, sim.tenant_id);
    let ca = sim
        .ca_pem
        .as_ref()
        .map(|c| format!("ca_file = \"{}\"\n", c.display()))
        .unwrap_or_default();
    let sso = format!(
        "\n[sso]\nissuer = \"{issuer}\"\n\n[sso.upstreams.entra]\nstyle = \"entra\"\ntenant_id = \"{tid}\"\nauthority = \"{authority}\"\nissuer = \"{authority}\"\nclient_id = \"{cid}\"\nclient_secret = \"{csecret}\"\n{ca}source = \"entra\"\n\n[sso.clients.jira]\nclient_id = \"{SSO_CLIENT}\"\nclient_secret = \"${{file:jira-sso.secret}}\"\nredirect_uris = [\"{product_url}/callback\"]\nupstream = \"entra\"\nflow = \"{CROWD_FLOW}\"\n",
        tid = sim.tenant_id,
        cid = opts.reader.client_id,
        csecret = opts.reader.client_secret,
    );
    let config = format!(
        "# Written by `idsync demo`.\n[store]\npath = \"idsync.db\"\nsecret_key = \"${{file:store.key}}\"\n\n[server]\nlisten = \"{addr}\"\n\n[log]\nlevel = \"warn\"\n\n{}interval = \"2s\"\n\n[sources.atlassian-cloud]\ntype = \"scim\"\ndirectory = \"{TARGET_DIR}\"\nprofile = \"atlassian-cloud\"\nverified_domains = [\"{domain}\"]\n\n[targets.atlassian]\ntype = \"scim\"\nprofile = \"atlassian-cloud\"\nurl = \"http://{addr}/scim/directory/{TARGET_DIR}\"\ntoken = \"${{file:atlassian.token}}\"\nverified_domains = [\"{domain}\"]\n\n[flows.{FLOW}]\nsource = \"entra\"\ntarget = \"atlassian\"\n\n[targets.{CROWD_TARGET}]\ntype = \"crowd\"\ndescription = \"Jira Data Center (demo)\"\n\n[flows.{CROWD_FLOW}]\nsource = \"entra\"\ntarget = \"{CROWD_TARGET}\"\n{sso}",
        source_snippet(&sim, &opts, "entra", "entra")
    );
    let config_path = dir.join("idsync.toml");
    std::fs::write(&config_path, config)?;
    let config = idsync_config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = Arc::new(Runtime::from_config(&config).await?);
    let svc = Service::new(Arc::clone(&rt));
    let sso_config = config
        .sso
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("the demo's configuration lost its [sso]"))?;
    let sso = idsync_server::sso::Sso::start(sso_config, &config.store, Arc::clone(&svc))
        .await
        .context("cannot start single sign-on")?;
    let app = idsync_server::app(
        Arc::clone(&svc),
        &idsync_server::HttpOptions {
            sso: Some(Arc::new(sso)),
            ..idsync_server::HttpOptions::default()
        },
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let product = crate::demo_product::router(crate::demo_product::ProductConfig {
        issuer: issuer.clone(),
        client_id: SSO_CLIENT.into(),
        client_secret: product_secret,
        redirect_uri: format!("{product_url}/callback"),
    });
    let product_server = tokio::spawn(async move {
        let _ = axum::serve(product_listener, product).await;
    });
    out!("2/5  simulated Atlassian Cloud: idsync's SCIM endpoint behaving as Atlassian's (verified domain {domain}, pages of 100, no group renames) at http://{addr}/scim/directory/{TARGET_DIR}");
    let crowd_url = format!("http://{addr}/crowd/{CROWD_TARGET}");
    out!("     and a Crowd directory for Jira, Confluence, Bitbucket, Bamboo and Fisheye at {crowd_url}");

    // 3. The first full sync.
    out!("3/5  first full sync, tenant to Atlassian Cloud ...");
    let started = Instant::now();
    let bar = progress::Bar::new(true);
    let report = rt.sync(FLOW, Mode::Full, false, &bar).await?;
    bar.clear();
    let counts = rt.store.directory_counts(TARGET_DIR).await?;
    out!(
        "     {} in {:.1}s: {} operations applied, {} failed; Atlassian Cloud now has {} users and {} groups",
        report.status.as_str(),
        started.elapsed().as_secs_f64(),
        report.count("applied"),
        report.count("failed"),
        counts.users,
        counts.groups
    );
    let started = Instant::now();
    let bar = progress::Bar::new(true);
    let report = rt.sync(CROWD_FLOW, Mode::Full, false, &bar).await?;
    bar.clear();
    let feed = CrowdFeed::new(&crowd_url, &crowd_password)?;
    let served = feed.count_users().await?;
    let token = feed.current_token().await?;
    out!(
        "     {} in {:.1}s: the Crowd directory serves {served} users; in Jira, Administration > User management > User directories > Add directory > Atlassian Crowd:",
        report.status.as_str(),
        started.elapsed().as_secs_f64(),
    );
    out!("       Server URL:            {crowd_url}");
    out!("       Application name:      {CROWD_APP}");
    out!(
        "       Application password:  {crowd_password}   (also in {})",
        dir.join("jira.password").display()
    );
    out!("       Crowd permissions: Read only; Enable nested groups: on; Enable incremental synchronisation: on; Synchronisation interval: 5 minutes");

    // 4. Changes in the tenant, arriving incrementally through the running service.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = svc.start(stop_rx);
    let (renamed, disabled, newcomer, group_name) = change_tenant(&sim, domain)?;
    out!("4/5  changed in the tenant: {renamed} got a new title, {disabled} was disabled, {newcomer} joined and was added to \"{group_name}\"");
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(60);
    let mut seen = [false; 7];
    let labels = [
        "new title",
        "disabled",
        "newcomer created",
        "newcomer in the group",
        "new title in the Crowd event feed",
        "disabled user in the Crowd event feed",
        "newcomer in the Crowd event feed",
    ];
    while seen.iter().any(|s| !s) && Instant::now() < deadline {
        let events = feed.events_since(&token).await.unwrap_or_default();
        let snap = rt.store.load_directory(TARGET_DIR).await?;
        let checks = [
            find(&snap, &renamed).is_some_and(|u| u.title.as_deref() == Some("Head of Demos")),
            find(&snap, &disabled).is_some_and(|u| !u.active),
            find(&snap, &newcomer).is_some(),
            find(&snap, &newcomer).is_some_and(|u| {
                snap.groups.iter().any(|g| {
                    g.display_name == group_name
                        && snap.memberships.iter().any(|m| {
                            m.group == g.source_id
                                && m.member.kind == MemberKind::User
                                && m.member.id == u.source_id
                        })
                })
            }),
            events.contains("Head of Demos") && events.contains(&format!("\"{renamed}\"")),
            events.contains(&format!("\"{disabled}\"")),
            events.contains(&format!("\"{newcomer}\"")),
        ];
        for (i, ok) in checks.iter().enumerate() {
            if *ok && !seen[i] {
                seen[i] = true;
                let place = if i < 4 { "in Atlassian Cloud " } else { "" };
                out!(
                    "     arrived {place}after {:.1}s: {}",
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
    // 5. A user signs in to a simulated Jira through idsync.
    let (signin_user, signin_groups) = signin_user(&sim, domain)?;
    out!("5/5  single sign-on: a simulated Jira signs its users in through idsync (OpenID provider {issuer}), which signs them in at the simulated tenant's login page and provisions them before Jira gets the login");
    out!("     open {product_url}/ in a browser, press Log in, and sign in as:");
    out!("       user:     {signin_user}");
    out!("       password: {}", opts.sign_in.password);
    out!("     (a new user of the tenant, in {}: Jira shows the group names, and the user is in Atlassian Cloud and in the Crowd directory; every user of the tenant signs in with that password)", signin_groups.join(", "));
    out!();
    out!("Look at the result:");
    out!("  idsync -c {} runs", config_path.display());
    out!("  curl http://{addr}/api/v1/flows");
    out!("  curl -H \"Authorization: Bearer $(cat {})\" 'http://{addr}/scim/directory/{TARGET_DIR}/Users?count=5'", dir.join("atlassian.token").display());
    out!("  curl -u \"{CROWD_APP}:$(cat {})\" -H 'Accept: application/json' '{crowd_url}/rest/usermanagement/1/event/{token}'", dir.join("jira.password").display());
    out!("  the simulated tenant: {} (tenant {}), change it with the admin app (client_id {}, secret {})", sim.root, sim.tenant_id, opts.admin.client_id, opts.admin.client_secret);
    let code = u8::from(!missing.is_empty()) * 3;
    if !args.exit {
        out!("\nThe server keeps running; Ctrl-C to stop.");
        tokio::signal::ctrl_c().await?;
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    server.abort();
    product_server.abort();
    sim.stop().await;
    rt.store.close().await;
    Ok(code)
}

/// The demo product's client id at idsync.
const SSO_CLIENT: &str = "jira-demo";

/// `n` random bytes in hex.
fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A new user of the tenant, in its first two groups, to sign in with: (user name, groups).
fn signin_user(
    sim: &graph::RunningGraphSim,
    domain: &str,
) -> anyhow::Result<(String, Vec<String>)> {
    let mut t = sim
        .state
        .tenant
        .write()
        .map_err(|_| anyhow::anyhow!("the simulated tenant is unavailable"))?;
    let upn = format!("sam.signin@{domain}");
    let new = t.create(
        Kind::User,
        json!({"displayName": "Sam Signin", "givenName": "Sam", "surname": "Signin", "userPrincipalName": upn, "mail": upn, "accountEnabled": true})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        "2026-11-25T00:00:00Z",
    )?;
    let id = new
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let groups: Vec<(String, String)> = t
        .objects(Kind::Group)
        .iter()
        .take(2)
        .map(|(id, o)| {
            (
                id.clone(),
                o.props["displayName"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut names = Vec::new();
    for (gid, name) in groups {
        t.add_member(&gid, &id)?;
        names.push(name);
    }
    Ok((upn, names))
}

/// The Crowd directory's event feed, read over HTTP as a product reads it (JSON here).
struct CrowdFeed {
    http: reqwest::Client,
    base: String,
    password: String,
}

impl CrowdFeed {
    fn new(url: &str, password: &str) -> anyhow::Result<CrowdFeed> {
        Ok(CrowdFeed {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            base: format!("{url}/rest/usermanagement/1"),
            password: password.to_string(),
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth(CROWD_APP, Some(&self.password))
            .header("Accept", "application/json")
            .send()
            .await?;
        let status = r.status();
        let body = r.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "the Crowd directory answered GET {path} with {status}: {body}"
        );
        serde_json::from_str(&body)
            .with_context(|| format!("the Crowd directory answered GET {path} with {body}"))
    }

    /// The token a product takes before its full synchronisation.
    async fn current_token(&self) -> anyhow::Result<String> {
        let v = self.get("/event").await?;
        v["newEventToken"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("the Crowd directory gave no event token: {v}"))
    }

    /// The events since `token`, as text.
    async fn events_since(&self, token: &str) -> anyhow::Result<String> {
        Ok(self.get(&format!("/event/{token}")).await?["events"].to_string())
    }

    /// Users served, by Crowd's search (every user, all at once).
    async fn count_users(&self) -> anyhow::Result<usize> {
        let v = self
            .get("/search?entity-type=user&start-index=0&max-results=1000000")
            .await?;
        Ok(v["users"].as_array().map_or(0, Vec::len))
    }
}

/// The simulated Entra tenant the demo reads: its size from the command line, over HTTPS with
/// its certificate in `dir`.
pub(crate) fn tenant_args(args: &DemoArgs, dir: &std::path::Path) -> GraphSimArgs {
    GraphSimArgs {
        users: args.users,
        groups: args.groups,
        memberships: args.memberships,
        depth: 3,
        seed: 1,
        name: "contoso".into(),
        b2c: false,
        port: 0,
        https: true,
        cert_dir: dir.to_path_buf(),
        client_id: "11111111-2222-3333-4444-555555555555".into(),
        client_secret: "sim-secret".into(),
        client_certs: Vec::new(),
        grants: Vec::new(),
        throttle_rate: 0.0,
        error_rate: 0.0,
        retry_after: 1,
        latency_ms: 0,
        max_page: 999,
        password: graph::DEFAULT_PASSWORD.into(),
        redirect_uris: Vec::new(),
        groups_limit: 200,
    }
}

/// Changes in the tenant the demo shows arriving: a user's new title, a user disabled, a
/// newcomer added to a group. Returns (retitled, disabled, newcomer, group name).
pub(crate) fn change_tenant(
    sim: &graph::RunningGraphSim,
    domain: &str,
) -> anyhow::Result<(String, String, String, String)> {
    let mut t = sim
        .state
        .tenant
        .write()
        .map_err(|_| anyhow::anyhow!("the simulated tenant is unavailable"))?;
    let users: Vec<(String, String)> = t
        .objects(Kind::User)
        .iter()
        .filter(|(_, o)| o.props["accountEnabled"] == json!(true))
        .map(|(id, o)| {
            (
                id.clone(),
                o.props["userPrincipalName"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .take(2)
        .collect();
    let [(a_id, a_upn), (b_id, b_upn)] = <[(String, String); 2]>::try_from(users)
        .map_err(|_| anyhow::anyhow!("the tenant needs at least two enabled users"))?;
    t.update(
        Kind::User,
        &a_id,
        json!({"jobTitle": "Head of Demos", "department": "Demo Team"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )?;
    t.update(
        Kind::User,
        &b_id,
        json!({"accountEnabled": false})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )?;
    let new = t.create(
        Kind::User,
        json!({"displayName": "Demo Newcomer", "givenName": "Demo", "surname": "Newcomer", "userPrincipalName": format!("demo.newcomer@{domain}"), "mail": format!("demo.newcomer@{domain}"), "accountEnabled": true})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        "2026-11-25T00:00:00Z",
    )?;
    let new_id = new
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let group = t
        .objects(Kind::Group)
        .iter()
        .next()
        .map(|(id, o)| {
            (
                id.clone(),
                o.props["displayName"].as_str().unwrap_or("").to_string(),
            )
        })
        .ok_or_else(|| anyhow::anyhow!("the tenant has no groups"))?;
    t.add_member(&group.0, &new_id)?;
    Ok((a_upn, b_upn, format!("demo.newcomer@{domain}"), group.1))
}
