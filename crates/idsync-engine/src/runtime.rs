//! The running configuration: the store, the sources, the targets and the flows, built from
//! `idsync.toml`.

use crate::error::EngineError;
use crate::ingest::{ingest, IngestReport};
use crate::memory::FlowMemory;
use crate::notify::{Notice, Notifier};
use crate::pacing::{Backoff, RateLimiter};
use crate::progress::Progress;
use crate::run::{run_flow, FlowSpec, Mode, RunContext, RunOptions, RunReport, Stop, Trigger};
use idsync_config::NotifyEvent;
use idsync_config::{Config, SourceKind, TargetKind};
use idsync_connectors::sources::file::{FileFormat, FileSource, FileSourceConfig};
use idsync_connectors::sources::msgraph::{
    GraphScope, GraphSource, GraphSourceConfig, UserKey, UserNameFrom,
};
use idsync_connectors::targets::test::{Fault, TestTarget};
use idsync_core::{Clock, Source, SystemClock, Target};
use idsync_store::RunStatus;
use idsync_store::Store;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub struct SourceEntry {
    pub name: String,
    pub directory: String,
    pub interval: Option<Duration>,
    pub source: Arc<dyn Source>,
}

pub struct TargetEntry {
    pub name: String,
    pub target: Arc<dyn Target>,
    /// Whether idsync serves this target itself (type crowd): no remote state, and an event
    /// feed written with its ledger.
    pub served: bool,
    /// Paces every flow that writes to this target.
    pub limiter: Arc<RateLimiter>,
}

impl TargetEntry {
    pub fn new(name: &str, target: Arc<dyn Target>, max_rate: f64) -> Self {
        Self {
            name: name.to_string(),
            target,
            served: false,
            limiter: Arc::new(RateLimiter::new(max_rate)),
        }
    }
}

/// Build the Graph source of a `type = "msgraph"` source.
pub fn graph_source(
    name: &str,
    g: &idsync_config::MsGraphSourceConfig,
    clock: Arc<dyn Clock>,
) -> Result<GraphSource, EngineError> {
    use idsync_config::GraphCredential;
    use idsync_connectors::sources::msgraph::client::{
        ClientCertificate, Cloud, Credential, GraphClient, GraphConfig,
    };
    let cloud = Cloud::parse(&g.cloud).unwrap_or(Cloud::Global);
    let credential = match &g.credential {
        GraphCredential::Secret(s) => Credential::Secret(s.expose().to_string()),
        GraphCredential::Certificate { file, pem, key } => {
            let cert =
                ClientCertificate::from_pem(pem.expose(), key.as_ref().map(|(_, k)| k.expose()))
                    .map_err(|e| {
                        let file = match key {
                            Some((k, _)) => format!("{} (key {})", file.display(), k.display()),
                            None => file.display().to_string(),
                        };
                        EngineError::Setup(format!("source {name}: client_certificate {file}: {e}"))
                    })?;
            tracing::info!(source = name, thumbprint = %cert.thumbprint(), "signing in with a certificate");
            Credential::Certificate(Arc::new(cert))
        }
    };
    let mut cfg = GraphConfig::new(&g.tenant, &g.client_id, credential, cloud);
    if let Some(a) = &g.authority {
        cfg.authority.clone_from(a);
    }
    if let Some(u) = &g.graph_url {
        cfg.graph.clone_from(u);
    }
    cfg.ca_file.clone_from(&g.ca_file);
    cfg.scope.clone_from(&g.token_scope);
    cfg.budget = g.budget;
    cfg.concurrency = g.concurrency;
    cfg.timeout = g.timeout;
    let client = GraphClient::new(cfg, clock)
        .map_err(|e| EngineError::Setup(format!("source {name}: {e}")))?;
    let identity = |v: &str| v.strip_prefix("identity:").map(str::to_string);
    let scfg = GraphSourceConfig {
        scope: match &g.scope {
            idsync_config::MsGraphScope::All => GraphScope::All,
            idsync_config::MsGraphScope::Groups(gs) => GraphScope::Groups(gs.clone()),
            idsync_config::MsGraphScope::App(a) => GraphScope::App(a.clone()),
        },
        group_filter: match &g.group_filter {
            Some(f) => Some(
                regex::Regex::new(f)
                    .map_err(|e| EngineError::Setup(format!("source {name}: group_filter: {e}")))?,
            ),
            None => None,
        },
        user_name: match g.user_name.as_str() {
            "mail" => UserNameFrom::Mail,
            other => {
                identity(other).map_or(UserNameFrom::UserPrincipalName, UserNameFrom::Identity)
            }
        },
        key: identity(&g.key).map_or(UserKey::ObjectId, UserKey::Identity),
        extensions: g.extensions.clone(),
        delta: g.delta,
    };
    Ok(GraphSource::new(client, scfg))
}

type FlowLocks = std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

/// Everything a command or the server needs to run flows.
pub struct Runtime {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub sources: BTreeMap<String, SourceEntry>,
    pub targets: BTreeMap<String, TargetEntry>,
    pub flows: BTreeMap<String, FlowEntry>,
    pub retention_days: u32,
    /// Directories pushed to through the SCIM endpoint, with how the endpoint behaves for each
    /// (directories not listed get the generic behaviour).
    pub push_endpoints: BTreeMap<String, idsync_config::ScimSourceConfig>,
    /// Email and webhook notifications.
    pub notifier: Notifier,
    /// The targets idsync serves as Crowd-compatible directories, with the flow feeding each.
    pub crowd: BTreeMap<String, CrowdEntry>,
    /// Per flow, its directory image and ledger between runs.
    memory: std::sync::Mutex<std::collections::HashMap<String, FlowMemory>>,
    /// The sources that take logins (msgraph, scim, login), by name.
    pub login_sources: BTreeMap<String, crate::login::LoginSource>,
    /// Per flow: held while a run of it is under way in this process (the service's runs and
    /// logins' runs), so they never overlap.
    flow_locks: FlowLocks,
    /// Per flow, the users whose login waits for a run of it.
    pub(crate) login_queues: std::sync::Mutex<HashMap<String, Arc<crate::login::LoginQueue>>>,
    /// Per directory and user (by a hash of its id): a login's read and write of its user.
    pub(crate) login_locks: FlowLocks,
    /// Login runs queued or under way (they outlive the login that started them).
    pub(crate) login_runs: tokio::sync::watch::Sender<usize>,
    /// Turned true to stop: runs under way end after their operations in flight.
    stop: tokio::sync::watch::Sender<bool>,
}

/// What provisioning one user on demand did, step by step.
#[derive(Debug)]
pub struct Provisioned {
    pub user: idsync_core::User,
    pub verdict: idsync_core::scope::Verdict,
    /// Each mapped attribute and its value, or why the mapping failed.
    pub mapped: Result<Vec<(String, String)>, String>,
    /// The target object the user was known as before this run.
    pub target_id: Option<String>,
    pub report: RunReport,
    pub ops: Vec<idsync_store::OpLog>,
}

/// Bad runs in a row after which a flow is quarantined.
pub const QUARANTINE_AFTER: i64 = 3;

/// How long a quarantined flow waits between scheduled attempts: 5 minutes after the
/// quarantining run, doubling with each further bad run, at most a day.
pub fn quarantine_backoff_ms(failures: i64) -> i64 {
    let extra = (failures - QUARANTINE_AFTER).clamp(0, 20) as u32;
    (300_000i64.saturating_mul(1i64 << extra)).min(86_400_000)
}

/// A target idsync serves as a Crowd-compatible directory.
#[derive(Debug, Clone)]
pub struct CrowdEntry {
    pub config: idsync_config::CrowdTargetConfig,
    /// The one flow whose ledger is the served directory.
    pub flow: String,
}

/// A flow with the source that fills its directory and its schedule.
#[derive(Debug, Clone)]
pub struct FlowEntry {
    pub spec: FlowSpec,
    pub source: Option<String>,
    pub enabled: bool,
    pub full_reconcile_interval: Option<Duration>,
}

impl Runtime {
    /// An empty runtime over a store (tests add sources, targets and flows by hand).
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            sources: BTreeMap::new(),
            targets: BTreeMap::new(),
            flows: BTreeMap::new(),
            retention_days: 30,
            push_endpoints: BTreeMap::new(),
            notifier: Notifier::new(idsync_config::NotificationsConfig::default()),
            crowd: BTreeMap::new(),
            memory: std::sync::Mutex::default(),
            login_sources: BTreeMap::new(),
            flow_locks: FlowLocks::default(),
            login_queues: std::sync::Mutex::default(),
            login_locks: FlowLocks::default(),
            login_runs: tokio::sync::watch::channel(0).0,
            stop: tokio::sync::watch::channel(false).0,
        }
    }

    /// The lock a run of `flow` holds in this process: runs of one flow (the service's, and
    /// those logins start) never overlap.
    pub fn flow_lock(&self, flow: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.flow_locks.lock() {
            Ok(mut m) => m.entry(flow.to_string()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// Ask every run under way to stop after the operations in flight (they end
    /// `interrupted`); runs started later stop at once.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// The stop signal runs watch.
    pub fn stop_signal(&self) -> Stop {
        Stop::new(self.stop.subscribe())
    }

    /// Mark the runs that no live process owns (their process was killed, or the machine went
    /// down) `interrupted`, with what their provisioning logs say was applied.
    pub async fn recover_interrupted(&self) -> Result<Vec<idsync_store::Interrupted>, EngineError> {
        Ok(self.store.reap(self.clock.now_ms()).await?)
    }

    /// Run `work` holding the flow's lease: no other process runs the flow meanwhile (one that
    /// does makes this one refuse with [`EngineError::Busy`], naming it).
    pub(crate) async fn leased<T>(
        &self,
        flow: &str,
        work: impl std::future::Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let name = format!("flow:{flow}");
        if let Some(holder) = self.store.try_lease(&name, self.clock.now_ms()).await? {
            let since = time::OffsetDateTime::from_unix_timestamp(holder.since_ms.div_euclid(1000))
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| holder.since_ms.to_string());
            return Err(EngineError::Busy {
                flow: flow.to_string(),
                holder,
                since,
            });
        }
        let result = work.await;
        if let Err(e) = self.store.release_lease(&name).await {
            tracing::warn!(flow, error = %e, "cannot release the flow's lease (it expires with this process)");
        }
        result
    }

    /// Open the store and build every source, target and flow of a checked configuration.
    pub async fn from_config(config: &Config) -> Result<Self, EngineError> {
        let store = Store::open(&config.store.path).await?;
        let mut rt = Self::new(store, Arc::new(SystemClock));
        // Runs left `running` by a process that is gone are marked interrupted first.
        rt.recover_interrupted().await?;
        rt.retention_days = config.store.retention_days;
        rt.notifier = Notifier::new(config.notifications.clone());
        let mut graphs: BTreeMap<String, Arc<GraphSource>> = BTreeMap::new();
        for (name, sc) in &config.sources {
            let source: Arc<dyn Source> = match &sc.kind {
                // Push sources write straight into their directory: nothing to read.
                SourceKind::Scim(p) => {
                    rt.push_endpoints.insert(sc.directory.clone(), p.clone());
                    continue;
                }
                SourceKind::MsGraph(g) => {
                    let source = Arc::new(graph_source(name, g, rt.clock.clone())?);
                    graphs.insert(name.clone(), source.clone());
                    source
                }
                // Fed by logins alone: nothing to read.
                SourceKind::Login(_) => continue,
                SourceKind::File(f) => Arc::new(FileSource::new(FileSourceConfig {
                    format: match f.format {
                        idsync_config::FileFormat::Json => FileFormat::Json,
                        idsync_config::FileFormat::Csv => FileFormat::Csv,
                    },
                    path: f.path.clone(),
                    users: f.users.clone(),
                    groups: f.groups.clone(),
                    memberships: f.memberships.clone(),
                })),
            };
            rt.sources.insert(
                name.clone(),
                SourceEntry {
                    name: name.clone(),
                    directory: sc.directory.clone(),
                    interval: sc.interval,
                    source,
                },
            );
        }
        for (name, sc) in &config.sources {
            let (graph, read_by_source) = match &sc.kind {
                SourceKind::File(_) => continue,
                SourceKind::Scim(_) => (None, true),
                SourceKind::MsGraph(_) => (graphs.get(name).cloned(), true),
                SourceKind::Login(l) => {
                    (l.graph.as_ref().and_then(|g| graphs.get(g).cloned()), false)
                }
            };
            rt.login_sources.insert(
                name.clone(),
                crate::login::LoginSource {
                    name: name.clone(),
                    directory: sc.directory.clone(),
                    wait: sc.login_wait,
                    graph,
                    read_by_source,
                },
            );
        }
        for (name, tc) in &config.targets {
            let target: Arc<dyn Target> = match &tc.kind {
                TargetKind::Jira(c) => Arc::new(crate::jira_target::build(name, c)?),
                TargetKind::Confluence(c) => Arc::new(crate::confluence_target::build(name, c)?),
                TargetKind::Bamboo(c) => Arc::new(crate::bamboo_target::build(name, c)?),
                TargetKind::Bitbucket(c) => Arc::new(crate::bitbucket_target::build(name, c)?),
                TargetKind::Test(t) => {
                    let setup = |e: idsync_connectors::targets::test::TestTargetError| {
                        EngineError::Setup(format!("target {name}: {e}"))
                    };
                    let target = TestTarget::with_journal(&t.journal).map_err(setup)?;
                    target
                        .reject_user_names(&t.reject_user_names)
                        .map_err(setup)?;
                    target.rate_limit(t.accept_rate);
                    target.keep_only(&t.drop_attributes, &t.compute_attributes);
                    target.without_patch(t.no_patch);
                    target.refuse_attributes(&t.refuse_attributes);
                    target.take_members_in_create(t.members_in_create);
                    target.require_members_on_create(t.requires_members_on_create);
                    target.fail_rate(t.fail_rate, Fault::ServerError(503));
                    for (kind, status, detail) in &t.fail_every {
                        target.fail_every(kind, *status, detail);
                    }
                    Arc::new(target)
                }
                TargetKind::Crowd(c) => {
                    // The configuration check makes sure exactly one flow feeds it.
                    let flow = config
                        .flows
                        .values()
                        .find(|f| f.target == *name)
                        .map(|f| f.name.clone())
                        .ok_or_else(|| {
                            EngineError::Setup(format!("target {name}: no flow feeds it"))
                        })?;
                    rt.crowd.insert(
                        name.clone(),
                        CrowdEntry {
                            config: c.clone(),
                            flow,
                        },
                    );
                    Arc::new(crate::served::ServedTarget::new(name))
                }
                TargetKind::Scim(c) => {
                    use idsync_connectors::targets::scim::{
                        Profile, ScimTarget, ScimTargetConfig, UserMatch,
                    };
                    let cfg = ScimTargetConfig {
                        base_url: c.url.clone(),
                        token: c.token.expose().to_string(),
                        profile: match c.profile {
                            idsync_config::ScimProfile::Generic => Profile::Generic,
                            idsync_config::ScimProfile::AtlassianCloud => Profile::AtlassianCloud,
                        },
                        user_match: c
                            .user_match
                            .iter()
                            .map(|m| match m {
                                idsync_config::UserMatch::UserName => UserMatch::UserName,
                                idsync_config::UserMatch::Email => UserMatch::Email,
                            })
                            .collect(),
                        member_batch: c.member_batch,
                        verified_domains: c.verified_domains.clone(),
                        timeout: c.timeout,
                        shape: idsync_connectors::targets::scim::Shape {
                            omit: c.omit.clone(),
                            required_name_formatted: c.required_name_formatted,
                        },
                        members_in_create: c.members_in_create,
                    };
                    Arc::new(
                        ScimTarget::new(cfg)
                            .map_err(|e| EngineError::Setup(format!("target {name}: {e}")))?,
                    )
                }
            };
            let mut entry = TargetEntry::new(name, target, tc.max_rate);
            entry.served = tc.kind.is_served();
            rt.targets.insert(name.clone(), entry);
        }
        for (name, fc) in &config.flows {
            rt.flows.insert(
                name.clone(),
                FlowEntry {
                    spec: FlowSpec {
                        name: name.clone(),
                        directory: fc.directory.clone(),
                        target: fc.target.clone(),
                        plan: fc.plan_options(),
                        concurrency: fc.concurrency,
                        backoff: Backoff {
                            max_retries: fc.max_retries,
                            ..Backoff::default()
                        },
                        deletion_threshold: fc.deletion_threshold,
                        mapping: fc.mapping.clone(),
                        scope: fc.scope.clone(),
                        only_users: None,
                        inactivity: fc.inactivity.clone(),
                        memberships: fc.memberships.clone(),
                        groups: crate::jira_target::flow_groups(
                            fc.groups.clone(),
                            config.targets.get(&fc.target),
                        ),
                        nested_groups: config.targets.get(&fc.target).is_some_and(|t| {
                            matches!(&t.kind, idsync_config::TargetKind::Crowd(c) if c.nested_groups)
                        }),
                    },
                    // A flow reads its source first only when there is something to read.
                    source: rt
                        .sources
                        .contains_key(&fc.source)
                        .then(|| fc.source.clone()),
                    enabled: fc.enabled,
                    full_reconcile_interval: fc.full_reconcile_interval,
                },
            );
        }
        Ok(rt)
    }

    pub fn flow(&self, name: &str) -> Result<&FlowEntry, EngineError> {
        self.flows
            .get(name)
            .ok_or_else(|| EngineError::UnknownFlow(name.to_string()))
    }

    pub(crate) fn target_of(&self, flow: &FlowEntry) -> Result<&TargetEntry, EngineError> {
        self.targets
            .get(&flow.spec.target)
            .ok_or_else(|| EngineError::Setup(format!("no target named {:?}", flow.spec.target)))
    }

    /// Read a source into its directory.
    pub async fn ingest(&self, source: &str) -> Result<IngestReport, EngineError> {
        let entry = self
            .sources
            .get(source)
            .ok_or_else(|| EngineError::UnknownSource(source.to_string()))?;
        ingest(
            &self.store,
            &entry.name,
            &entry.directory,
            entry.source.as_ref(),
            self.clock.as_ref(),
        )
        .await
    }

    /// Run a flow. With `read_source`, the flow's source is read first (what `idsync sync`
    /// does); the service reads sources on their own schedule instead.
    pub async fn run(
        &self,
        flow: &str,
        opts: RunOptions,
        read_source: bool,
        progress: &dyn Progress,
    ) -> Result<RunReport, EngineError> {
        let entry = self.flow(flow)?;
        let work = self.run_unwatched(entry, opts, read_source, progress);
        // A dry run changes nothing in the target: it needs no lease.
        let result = if opts.dry_run {
            work.await
        } else {
            self.leased(flow, work).await
        };
        // Another process running the flow is not a bad run of it, nor is a reconcile asked
        // of a flow whose target has nothing remote (nothing was run).
        if !opts.dry_run
            && !matches!(
                result,
                Err(EngineError::Busy { .. } | EngineError::NothingToReconcile { .. })
            )
        {
            self.watch(entry, &result).await;
        }
        result
    }

    async fn run_unwatched(
        &self,
        entry: &FlowEntry,
        opts: RunOptions,
        read_source: bool,
        progress: &dyn Progress,
    ) -> Result<RunReport, EngineError> {
        let flow = entry.spec.name.as_str();
        if read_source {
            if let Some(src) = &entry.source {
                self.ingest(src).await?;
            }
        }
        let target = self.target_of(entry)?;
        if target.served && opts.mode == Mode::Reconcile {
            return Err(EngineError::NothingToReconcile {
                flow: flow.to_string(),
                target: target.name.clone(),
            });
        }
        // The flow's memory is taken for the run (runs of one flow do not overlap; a second one
        // would simply load from the store) and put back when the run succeeds.
        let mut memory = self.take_memory(flow);
        let ctx = RunContext {
            store: &self.store,
            flow: &entry.spec,
            target: target.target.as_ref(),
            limiter: &target.limiter,
            progress,
            clock: self.clock.as_ref(),
            served: target.served.then_some(target.name.as_str()),
            stop: self.stop_signal(),
        };
        let report = run_flow(&ctx, opts, &mut memory).await;
        self.keep_memory(flow, memory);
        report
    }

    /// The flow's memory, taken for a run (runs of one flow do not overlap: they hold its
    /// lock; a run that finds none loads from the store).
    pub(crate) fn take_memory(&self, flow: &str) -> Option<FlowMemory> {
        self.memory.lock().ok().and_then(|mut m| m.remove(flow))
    }

    /// Put back what a run left of the flow's memory (nothing after a failed run).
    pub(crate) fn keep_memory(&self, flow: &str, memory: Option<FlowMemory>) {
        if let Ok(mut m) = self.memory.lock() {
            if let Some(kept) = memory {
                m.insert(flow.to_string(), kept);
            }
        }
    }

    /// After a run: keep the flow's health (bad runs in a row, quarantine) and tell people what
    /// they need to know: a new hold, a first failure after good runs, quarantine entered or
    /// left. Nothing here fails the run.
    pub(crate) async fn watch(&self, entry: &FlowEntry, result: &Result<RunReport, EngineError>) {
        let flow = entry.spec.name.as_str();
        let now = self.clock.now_ms();
        let bad = match result {
            Err(e) => Some(e.to_string()),
            Ok(r) => {
                let (failed, applied) = (r.count("failed"), r.count("applied"));
                (r.status == RunStatus::Failed || (failed > 0 && failed >= applied)).then(|| {
                    format!(
                        "{failed} of {} operations failed (see `idsync log {}`)",
                        failed + applied,
                        r.run_id
                    )
                })
            }
        };
        let run_id = result.as_ref().ok().map(|r| r.run_id.clone());
        let mut notices = Vec::new();
        match &bad {
            Some(reason) => {
                match self
                    .store
                    .record_flow_failure(flow, &entry.spec.directory, reason, now, QUARANTINE_AFTER)
                    .await
                {
                    Ok((health, entered)) => {
                        if health.failures == 1 {
                            notices.push(Notice {
                                event: NotifyEvent::Failed,
                                flow: flow.to_string(),
                                run_id: run_id.clone(),
                                subject: format!("flow {flow}: a run failed"),
                                text: format!("A run of flow {flow} failed after good runs:\n\n  {reason}\n\nidsync tries again on its schedule; after {QUARANTINE_AFTER} bad runs in a row the flow is quarantined."),
                                details: json!({"reason": reason, "failures": health.failures}),
                            });
                        }
                        if entered {
                            tracing::error!(
                                flow,
                                failures = health.failures,
                                reason,
                                "flow quarantined"
                            );
                            notices.push(Notice {
                                event: NotifyEvent::Quarantined,
                                flow: flow.to_string(),
                                run_id: run_id.clone(),
                                subject: format!("flow {flow} is quarantined"),
                                text: format!("Flow {flow} failed {} runs in a row and is quarantined: it runs less and less often (at most once a day) until a run succeeds.\n\nLast error:\n\n  {reason}\n\nFix the cause, then `idsync sync {flow}` (a good run ends the quarantine) or `idsync quarantine --reset {flow}`.", health.failures),
                                details: json!({"quarantined": true, "reason": reason, "failures": health.failures}),
                            });
                        }
                    }
                    Err(e) => tracing::warn!(flow, error = %e, "cannot record the flow's health"),
                }
            }
            None => match self.store.record_flow_success(flow).await {
                Ok(before) if before.quarantined_ms.is_some() => {
                    tracing::info!(flow, "flow left quarantine");
                    notices.push(Notice {
                        event: NotifyEvent::Quarantined,
                        flow: flow.to_string(),
                        run_id: run_id.clone(),
                        subject: format!("flow {flow} left quarantine"),
                        text: format!("A run of flow {flow} succeeded: the flow is out of quarantine and back on its schedule."),
                        details: json!({"quarantined": false}),
                    });
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(flow, error = %e, "cannot record the flow's health"),
            },
        }
        if let Ok(r) = result {
            if r.status == RunStatus::Held && !r.hold_was_waiting {
                let held = r.count("held");
                let deprovisions = r.count("disable_user.held") + r.count("delete_user.held");
                // Users held for the licence seats: to create, to enable, or to add to
                // groups that grant application access.
                let creations = held - deprovisions;
                // Deprovisions above the threshold, creations over the licence seats, or both.
                let (subject, what) = match (deprovisions, creations) {
                    (d, 0) => (
                        format!("{d} deprovisions wait for approval"),
                        format!("would deprovision {d} users, above the flow's deletion threshold. Everything else was applied; these users keep their accounts and groups until you answer."),
                    ),
                    (0, c) => (
                        format!("{c} users wait for licence seats (approval)"),
                        format!("would give {c} users application access (creating, enabling or adding them to groups that grant it) over the target's licence seats. Everything else was applied; these users get none until you answer."),
                    ),
                    (d, c) => (
                        format!("{d} deprovisions and {c} users waiting for licence seats wait for approval"),
                        format!("would deprovision {d} users (above the flow's deletion threshold) and give {c} users application access over the target's licence seats. Everything else was applied; these wait until you answer."),
                    ),
                };
                notices.push(Notice {
                    event: NotifyEvent::Held,
                    flow: flow.to_string(),
                    run_id: Some(r.run_id.clone()),
                    subject: format!("flow {flow}: {subject}"),
                    text: format!("Run {} of flow {flow} {what}\n\n{}\n\nSee them: idsync log {}\nApprove:  idsync approve {}\nReject:   idsync reject {}", r.run_id, r.plan.warnings.join("\n"), r.run_id, r.run_id, r.run_id),
                    details: json!({"held": held, "counts": r.counts}),
                });
            }
        }
        for n in &notices {
            self.notifier.send(&self.store, now, n).await;
        }
    }

    /// Shorthand for a manual full run.
    pub async fn sync(
        &self,
        flow: &str,
        mode: Mode,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<RunReport, EngineError> {
        self.run(
            flow,
            RunOptions {
                trigger: Trigger::Manual,
                mode,
                dry_run,
            },
            true,
            progress,
        )
        .await
    }

    /// Provision on demand: read the source, then run the flow for one user now. Returns each
    /// step: the user as the directory holds it, the scope verdict, the mapped values, the
    /// target object it was known as, and the run with its operations.
    pub async fn provision(
        &self,
        flow: &str,
        query: &str,
        progress: &dyn Progress,
    ) -> Result<Provisioned, EngineError> {
        let entry = self.flow(flow)?;
        if let Some(src) = &entry.source {
            self.ingest(src).await?;
        }
        let dir = &entry.spec.directory;
        let snapshot = self.store.load_directory(dir).await?;
        let q = query.to_lowercase();
        let user = snapshot
            .users
            .into_iter()
            .find(|u| {
                u.source_id == query
                    || u.user_name.to_lowercase() == q
                    || u.emails.iter().any(|e| e.value.to_lowercase() == q)
            })
            .ok_or_else(|| EngineError::UnknownUser {
                directory: dir.clone(),
                query: query.to_string(),
            })?;
        let verdict = entry.spec.scope.verdict(&user);
        let ledger = self.store.load_ledger(flow).await?;
        let known = ledger.users.get(&user.source_id);
        let mapped = if entry.spec.mapping.is_empty() {
            Ok(Vec::new())
        } else {
            let mut taken = |attr: &str, value: &str| {
                ledger.users.iter().any(|(k, l)| {
                    *k != user.source_id
                        && idsync_core::mapping::get(&l.user, attr)
                            .text()
                            .is_some_and(|v| v.eq_ignore_ascii_case(value))
                })
            };
            entry
                .spec
                .mapping
                .map_user(&user, &mut taken)
                .map(|(_, values)| {
                    values
                        .into_iter()
                        .map(|(a, v)| {
                            let shown = match v {
                                idsync_core::mapping::Value::Null => "(empty)".to_string(),
                                idsync_core::mapping::Value::List(l) => format!("{l:?}"),
                                other => format!("{:?}", other.text().unwrap_or_default()),
                            };
                            (a, shown)
                        })
                        .collect()
                })
                .map_err(|(a, e)| format!("{a}: {e}"))
        };
        let target_id = known.map(|l| l.target_id.clone());
        let target = self.target_of(entry)?;
        let mut spec = entry.spec.clone();
        spec.only_users = Some(BTreeSet::from([user.source_id.clone()]));
        let ctx = RunContext {
            store: &self.store,
            flow: &spec,
            target: target.target.as_ref(),
            limiter: &target.limiter,
            progress,
            clock: self.clock.as_ref(),
            served: target.served.then_some(target.name.as_str()),
            stop: self.stop_signal(),
        };
        let opts = RunOptions {
            trigger: Trigger::OnDemand,
            mode: Mode::Full,
            dry_run: false,
        };
        let report = self.leased(flow, run_flow(&ctx, opts, &mut None)).await?;
        let ops = self.store.run_ops(&report.run_id).await?;
        Ok(Provisioned {
            user,
            verdict,
            mapped,
            target_id,
            report,
            ops,
        })
    }
}
