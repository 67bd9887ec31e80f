//! One run of a flow: read the directory and the ledger, plan, apply, record.

use crate::error::EngineError;
use crate::memory::{refresh_image, FlowMemory};
use crate::pacing::{Backoff, RateLimiter};
use crate::progress::Progress;
use futures::stream::{self, StreamExt};
use idsync_core::groups::{apply_group_rules, forget_manual_members, GroupRules};
use idsync_core::mapping::{apply_mapping, Mapping};
use idsync_core::scope::{
    apply_scope, explain_out_of_scope, keep_memberships, MembershipPolicy, Scope,
};
use idsync_core::{
    desired_state, observed_ledger, plan, Action, Clock, DeletionThreshold, DirectoryImage,
    Emptiness, Key, LedgerState, Operation, Outcome, Plan, PlanOptions, Reason, Target, TargetOp,
    User,
};
use idsync_store::{NewRun, OpRecord, RunCounts, RunStatus, Store};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// A flow as the engine runs it.
#[derive(Debug, Clone)]
pub struct FlowSpec {
    pub name: String,
    pub directory: String,
    pub target: String,
    pub plan: PlanOptions,
    pub concurrency: usize,
    pub backoff: Backoff,
    pub deletion_threshold: DeletionThreshold,
    /// Target attributes computed by expressions (empty: users as the directory holds them).
    pub mapping: Mapping,
    /// Which users the flow provisions (empty: all).
    pub scope: Scope,
    /// Provision on demand: only this user (by key), its groups and its memberships.
    pub only_user: Option<String>,
    /// What happens to a deprovisioned user's group memberships.
    pub memberships: MembershipPolicy,
    /// Which groups, under which names.
    pub groups: GroupRules,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Schedule,
    Manual,
    Push,
    Login,
    /// An admin approved the deprovisions a run held.
    Approval,
    /// `idsync provision FLOW --user NAME`: one user, now.
    OnDemand,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Push => "push",
            Trigger::Login => "login",
            Trigger::Approval => "approval",
            Trigger::OnDemand => "on_demand",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Compare the directory with the ledger.
    Full,
    /// Started because the change log moved; compares the same way as a full run, from the
    /// directory image and ledger the previous run left in memory when it can.
    Incremental,
    /// Read the target's real state first and repair drift.
    Reconcile,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
            Mode::Reconcile => "reconcile",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub trigger: Trigger,
    pub mode: Mode,
    /// Plan only: nothing is written to the target or recorded.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub flow: String,
    pub status: RunStatus,
    pub plan: Plan,
    pub counts: RunCounts,
    pub started_ms: i64,
    pub ended_ms: i64,
    /// An earlier held run was waiting for an answer when this one started.
    pub hold_was_waiting: bool,
}

impl RunReport {
    pub fn count(&self, key: &str) -> i64 {
        self.counts.0.get(key).copied().unwrap_or(0)
    }
}

/// What a run works with: where it records, what it provisions, how it is paced, who watches
/// it, and the signal that asks it to stop.
pub struct RunContext<'a> {
    pub store: &'a Store,
    pub flow: &'a FlowSpec,
    pub target: &'a dyn Target,
    pub limiter: &'a RateLimiter,
    pub progress: &'a dyn Progress,
    pub clock: &'a dyn Clock,
    /// Turns true when the process is asked to stop (SIGTERM, Ctrl-C): no new operation
    /// starts, the ones in flight finish and are recorded, and the run ends `interrupted`.
    pub stop: Stop,
}

/// A request to stop, shared by everything a process runs.
#[derive(Debug, Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    pub fn new(rx: tokio::sync::watch::Receiver<bool>) -> Self {
        Self(rx)
    }

    /// A signal that never fires.
    pub fn never() -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        // The receiver keeps the last value once the sender is gone.
        drop(tx);
        Self(rx)
    }

    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Wait until a stop is requested (forever when it never is).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|v| *v).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Run a flow once.
pub async fn run_flow(
    ctx: &RunContext<'_>,
    opts: RunOptions,
    memory: &mut Option<FlowMemory>,
) -> Result<RunReport, EngineError> {
    let run_id = uuid::Uuid::now_v7().to_string();
    let span = tracing::info_span!("run", run_id = %run_id, flow = %ctx.flow.name, mode = opts.mode.as_str());
    run_inner(ctx, opts, run_id, memory).instrument(span).await
}

async fn run_inner(
    ctx: &RunContext<'_>,
    opts: RunOptions,
    run_id: String,
    memory: &mut Option<FlowMemory>,
) -> Result<RunReport, EngineError> {
    let RunContext {
        store,
        flow,
        clock,
        progress,
        ..
    } = *ctx;
    let started_ms = clock.now_ms();
    let target_err = |error| EngineError::Target {
        target: flow.target.clone(),
        error,
    };
    if !opts.dry_run {
        store.register_flow(&flow.name, &flow.directory).await?;
        store
            .start_run(&NewRun {
                id: run_id.clone(),
                flow: flow.name.clone(),
                trigger: opts.trigger.as_str().to_string(),
                mode: opts.mode.as_str().to_string(),
                started_ms,
                dry_run: false,
            })
            .await?;
    }
    tracing::info!(
        trigger = opts.trigger.as_str(),
        dry_run = opts.dry_run,
        "run started"
    );

    // Taken: a run that fails leaves no memory behind, and the next one loads from the store.
    let remembered = memory.take();
    // A hold waiting for an answer: an approval run may deprovision the users it held; any other
    // run holds its deprovisions too until the hold is answered.
    let pending = store.pending_hold(&flow.name).await?;
    let hold = HoldContext {
        approved: match (&pending, opts.trigger) {
            (Some(p), Trigger::Approval) => store.held_keys(&p.id).await?,
            _ => BTreeSet::new(),
        },
        waiting: pending.is_some() && opts.trigger != Trigger::Approval,
    };
    let mut known = RunCounts::default();
    let result = plan_and_apply(ctx, opts, &run_id, remembered, hold, &mut known)
        .await
        .map_err(|e| match e {
            Failure::Engine(e) => e,
            Failure::Target(e) => target_err(e),
            Failure::Stopped => EngineError::Interrupted {
                flow: flow.name.clone(),
                run: run_id.clone(),
            },
        });
    let ended_ms = clock.now_ms();
    match result {
        Ok((plan, counts, kept)) => {
            *memory = kept;
            let failed = counts.0.get("failed").copied().unwrap_or(0);
            let applied = counts.0.get("applied").copied().unwrap_or(0);
            let held = counts.0.get("held").copied().unwrap_or(0);
            let status = if held > 0 {
                RunStatus::Held
            } else if failed == 0 {
                RunStatus::Succeeded
            } else if applied > 0 {
                RunStatus::PartiallyFailed
            } else {
                RunStatus::Failed
            };
            if !opts.dry_run {
                store
                    .finish_run(&run_id, status, &counts, ended_ms, None)
                    .await?;
                if let (Some(p), Trigger::Approval) = (&pending, opts.trigger) {
                    store.resolve_hold(&p.id, "approved", ended_ms).await?;
                }
                if status == RunStatus::Held {
                    store.supersede_holds(&flow.name, &run_id, ended_ms).await?;
                    tracing::warn!(
                        held,
                        "deprovisions held: answer with `idsync approve {run_id}` or `idsync reject {run_id}`"
                    );
                }
            }
            tracing::info!(
                status = status.as_str(),
                planned = plan.len(),
                applied,
                failed,
                duration_ms = ended_ms - started_ms,
                "run finished"
            );
            progress.finished();
            Ok(RunReport {
                run_id,
                flow: flow.name.clone(),
                status,
                plan,
                counts,
                started_ms,
                ended_ms,
                hold_was_waiting: pending.is_some(),
            })
        }
        Err(e) => {
            // Said here for the record; the caller reports the error (the command line prints
            // it, the service logs it), so it is not said twice.
            let status = if matches!(e, EngineError::Interrupted { .. }) {
                tracing::info!("run interrupted: stopped after the operations in flight");
                RunStatus::Interrupted
            } else {
                tracing::info!(error = %e, "run failed");
                RunStatus::Failed
            };
            if !opts.dry_run {
                // What the run knew (read, planned), and what was done as its provisioning
                // log has it: the operations applied before the failure count.
                let mut counts = known;
                counts.0.extend(store.counts_from_log(&run_id).await?.0);
                store
                    .finish_run(&run_id, status, &counts, ended_ms, Some(&e.to_string()))
                    .await?;
            }
            progress.finished();
            Err(e)
        }
    }
}

/// Keep of a plan what concerns one user: its own operation, its group memberships, and the
/// groups it is (to be) in, so that they exist first.
fn only_user(
    plan: &mut Plan,
    key: &str,
    desired: &idsync_core::DesiredState,
    ledger: &LedgerState,
) {
    let in_group = |g: &str| {
        desired.members.get(g).is_some_and(|m| m.contains(key))
            || ledger.members.get(g).is_some_and(|m| m.contains(key))
    };
    plan.operations.retain_mut(|op| match &mut op.action {
        Action::AddMembers { users, .. } | Action::RemoveMembers { users, .. } => {
            users.retain(|u| &**u == key);
            !users.is_empty()
        }
        Action::CreateGroup { .. } | Action::UpdateGroup { .. } | Action::DeleteGroup { .. } => {
            in_group(&op.key)
        }
        _ => op.key == key,
    });
}

/// For SelectUniqueValue: ask the target about the candidates of users it does not have yet,
/// in order, until one is free; the ones it holds come back as `(attribute, lower-case value)`.
/// Candidates idsync itself gave other users are known taken without asking.
async fn unique_values_taken(
    target: &dyn Target,
    desired: &idsync_core::DesiredState,
    ledger: &LedgerState,
    flow: &FlowSpec,
) -> Result<BTreeSet<(String, String)>, Failure> {
    let mut taken = BTreeSet::new();
    if !flow.mapping.rules.iter().any(|r| {
        matches!(&r.expr, idsync_core::mapping::Expr::Call { name, .. } if name.eq_ignore_ascii_case("SelectUniqueValue"))
    }) {
        return Ok(taken);
    }
    let new_users: Vec<&User> = desired
        .users
        .iter()
        .filter(|(k, _)| !ledger.users.contains_key(*k))
        .map(|(_, u)| u)
        .collect();
    for u in new_users {
        for (attr, candidates) in flow.mapping.unique_candidates(u) {
            for c in candidates {
                let probe = (attr.clone(), c.to_lowercase());
                if taken.contains(&probe)
                    || target
                        .value_taken(&attr, &c)
                        .await
                        .map_err(Failure::Target)?
                {
                    taken.insert(probe);
                } else {
                    break;
                }
            }
        }
    }
    Ok(taken)
}

/// What a run knows of its flow's hold.
struct HoldContext {
    /// Users whose deprovisioning an admin approved (an approval run).
    approved: BTreeSet<String>,
    /// An earlier hold waits for an answer.
    waiting: bool,
}

fn describe_threshold(t: &DeletionThreshold) -> String {
    match (t.count, t.percent) {
        (Some(c), Some(p)) => format!("{c} users or {p}% of those provisioned"),
        (Some(c), None) => format!("{c} users"),
        (None, Some(p)) => format!("{p}% of the users provisioned"),
        (None, None) => "none".into(),
    }
}

enum Failure {
    Engine(EngineError),
    Target(idsync_core::TargetError),
    /// A stop was requested: the run ended after the operations in flight.
    Stopped,
}

impl From<idsync_store::StoreError> for Failure {
    fn from(e: idsync_store::StoreError) -> Self {
        Failure::Engine(e.into())
    }
}

/// Bump a counter.
fn bump(counts: &mut RunCounts, key: &str, by: i64) {
    *counts.0.entry(key.to_string()).or_insert(0) += by;
}

/// Plan, hold, apply, record. `counts` keeps what the run counted even when it fails.
async fn plan_and_apply(
    ctx: &RunContext<'_>,
    opts: RunOptions,
    run_id: &str,
    remembered: Option<FlowMemory>,
    hold: HoldContext,
    counts: &mut RunCounts,
) -> Result<(Plan, RunCounts, Option<FlowMemory>), Failure> {
    let RunContext {
        store,
        flow,
        target,
        progress,
        clock,
        ..
    } = *ctx;
    // The change-log position this run covers: read before the directory, so a change that
    // lands while we work is seen by the next run.
    let seq = store.last_seq(&flow.directory).await?;
    let started = Instant::now();
    // Full and reconcile runs read everything from the store again: they are also how an
    // admin makes sure nothing in memory went astray.
    let (remembered_image, remembered_ledger) = match remembered {
        Some(m) if opts.mode == Mode::Incremental => (Some((m.image, m.seq)), m.ledger),
        _ => (None, None),
    };
    let refreshed = match remembered_image {
        Some((image, at)) => refresh_image(store, &flow.directory, image, at, seq).await?,
        None => None,
    };
    let from_memory = refreshed.is_some();
    let (image, image_seq) = match refreshed {
        Some(r) => r,
        None => (
            DirectoryImage::new(store.load_directory(&flow.directory).await?),
            seq,
        ),
    };
    let snapshot = image.snapshot();
    let load_directory_ms = started.elapsed().as_millis() as u64;
    progress.read(
        snapshot.users.len(),
        snapshot.groups.len(),
        snapshot.memberships.len(),
    );
    bump(counts, "read.users", snapshot.users.len() as i64);
    bump(counts, "read.groups", snapshot.groups.len() as i64);
    bump(
        counts,
        "read.memberships",
        snapshot.memberships.len() as i64,
    );
    let mut desired = desired_state(snapshot);
    let mut out_of_scope = apply_scope(&mut desired, &flow.scope);

    let desired_ms = started.elapsed().as_millis() as u64 - load_directory_ms;
    let mut ledger_version = store.ledger_version(&flow.name).await?;
    let (mut ledger, ledger_from_memory) = match remembered_ledger {
        Some((l, v)) if v == ledger_version => (l, true),
        _ => (store.load_ledger(&flow.name).await?, false),
    };
    let load_ledger_ms = started.elapsed().as_millis() as u64 - load_directory_ms - desired_ms;
    // How this run loaded its state (the sync history shows it).
    for (what, yes) in [
        ("from_memory.directory", from_memory),
        ("from_memory.ledger", ledger_from_memory),
    ] {
        if yes {
            bump(counts, what, 1);
        }
    }
    let mut plan_opts = flow.plan.clone();
    plan_opts.now_ms = clock.now_ms();
    plan_opts.can_rename_groups = target.can_rename_groups();
    let mut recorded = None;
    if opts.mode == Mode::Reconcile {
        let real = target.read_state().await.map_err(Failure::Target)?;
        if flow.groups.keep_manual {
            recorded = Some(ledger.clone());
        }
        ledger = observed_ledger(&ledger, &real);
        plan_opts.reconcile = true;
        if !opts.dry_run {
            ledger_version = store.replace_ledger(&flow.name, &ledger).await?;
        }
    }
    // Group rules (names, mappings, required and default groups), then what stays of the
    // memberships of users being deprovisioned and of those made by hand in the target.
    out_of_scope.extend(apply_group_rules(&mut desired, &ledger, &flow.groups));
    if !out_of_scope.is_empty() {
        bump(counts, "out_of_scope", out_of_scope.len() as i64);
    }
    if let Some(recorded) = &recorded {
        forget_manual_members(&mut ledger, recorded, &desired);
        if !opts.dry_run {
            ledger_version = store.replace_ledger(&flow.name, &ledger).await?;
        }
    }
    keep_memberships(&mut desired, &ledger, &flow.memberships);
    // The flow's attribute mappings, then what the target can hold.
    let taken_in_target = unique_values_taken(target, &desired, &ledger, flow).await?;
    let unmapped = apply_mapping(&mut desired, &ledger, &flow.mapping, &taken_in_target);
    for user in desired.users.values_mut() {
        *user = target.project_user(std::mem::replace(user, User::new("", "")));
    }
    for group in desired.groups.values_mut() {
        *group = target.project_group(std::mem::replace(group, idsync_core::Group::new("", "")));
    }
    let before_plan = started.elapsed().as_millis() as u64;
    let mut plan = plan(&desired, &ledger, &plan_opts);
    explain_out_of_scope(&mut plan, &out_of_scope);
    if let Some(key) = &flow.only_user {
        only_user(&mut plan, key, &desired, &ledger);
    }
    for u in &unmapped {
        let fate = if ledger.users.contains_key(&u.key) {
            "left as the target has it"
        } else {
            "not created"
        };
        plan.warnings.push(format!(
            "user {}: mapping of {} failed ({}): {fate}",
            u.key, u.attribute, u.error
        ));
    }
    if !unmapped.is_empty() {
        bump(counts, "unmapped", unmapped.len() as i64);
    }
    // The accidental-deletion threshold.
    let unapproved = plan
        .operations
        .iter()
        .filter(|o| o.action.is_deprovision() && !hold.approved.contains(&o.key))
        .count();
    let over = flow
        .deletion_threshold
        .exceeded(unapproved, ledger.users.len());
    let held = if unapproved > 0 && (over || hold.waiting) {
        let why = if over {
            format!(
                "{unapproved} users to deprovision, above the flow's deletion threshold ({})",
                describe_threshold(&flow.deletion_threshold)
            )
        } else {
            format!("{unapproved} users to deprovision while an earlier hold waits for an answer")
        };
        plan.warnings.push(format!(
            "{why}: their deprovisioning is held until `idsync approve` or `idsync reject`"
        ));
        plan.hold_deprovisions(&hold.approved)
    } else {
        Vec::new()
    };
    let plan_ms = started.elapsed().as_millis() as u64 - before_plan;
    for w in &plan.warnings {
        tracing::warn!(warning = %w, "plan");
    }
    bump(counts, "warnings", plan.warnings.len() as i64);
    progress.planned(&plan);
    bump(counts, "planned", plan.len() as i64);
    tracing::info!(
        operations = plan.len(),
        deprovisions = plan.deprovisions(),
        load_directory_ms,
        desired_ms,
        load_ledger_ms,
        plan_ms,
        directory_from_memory = from_memory,
        ledger_from_memory,
        "planned"
    );
    if opts.dry_run {
        // A plan says what is held too (its operations are not in it).
        let held_users = held.iter().filter(|o| o.action.is_deprovision()).count();
        if held_users > 0 {
            bump(counts, "held", held_users as i64);
        }
        let kept = FlowMemory {
            image,
            seq: image_seq,
            ledger: (opts.mode != Mode::Reconcile).then_some((ledger, ledger_version)),
        };
        return Ok((plan, std::mem::take(counts), Some(kept)));
    }

    let mut applier = Applier {
        ctx,
        run_id,
        ledger,
        ledger_version: Some(ledger_version),
        pending: Vec::new(),
        counts: std::mem::take(counts),
        skipped: std::collections::HashSet::new(),
        empty: Emptiness::default(),
        circuit: Default::default(),
    };
    let applied = apply_plan(&mut applier, &plan, held).await;
    *counts = std::mem::take(&mut applier.counts);
    applied?;
    let kept = FlowMemory {
        image,
        seq: image_seq,
        ledger: applier.ledger_version.map(|v| (applier.ledger, v)),
    };
    // A run for one user has not brought the whole flow up to the change log.
    if flow.only_user.is_none() {
        store.set_flow_cursor(&flow.name, seq).await?;
    }
    Ok((plan, std::mem::take(counts), Some(kept)))
}

/// Apply the plan phase by phase, then log what was held. Stops early (after recording what
/// the operations in flight did) when the target as a whole is gone or a stop is requested.
async fn apply_plan(
    applier: &mut Applier<'_>,
    plan: &Plan,
    held: Vec<Operation>,
) -> Result<(), Failure> {
    let target = applier.ctx.target;
    // Against a target that holds nothing yet (a first sync), creates need not search first.
    // Only a flow that has provisioned no users or no groups asks: any other run would spend
    // two requests to learn what its ledger already says.
    let first = applier.ledger.users.is_empty() || applier.ledger.groups.is_empty();
    if first
        && plan.operations.iter().any(|o| {
            matches!(
                o.action,
                Action::CreateUser { .. } | Action::CreateGroup { .. }
            )
        })
    {
        applier.empty = target.emptiness().await.unwrap_or_default();
        if applier.empty != Emptiness::default() {
            tracing::info!(
                no_users = applier.empty.users,
                no_groups = applier.empty.groups,
                "the target is empty: creates do not search it first"
            );
        }
    }
    let mut start = 0;
    while start < plan.operations.len() {
        let phase = plan.operations[start].action.phase();
        let end = plan.operations[start..]
            .iter()
            .position(|o| o.action.phase() != phase)
            .map_or(plan.operations.len(), |p| start + p);
        let phase_started = Instant::now();
        applier
            .apply_phase(&plan.operations[start..end], start)
            .await?;
        if let Some(e) = applier.circuit.take_error() {
            applier.flush().await?;
            return Err(Failure::Target(e));
        }
        if applier.ctx.stop.requested() {
            applier.flush().await?;
            return Err(Failure::Stopped);
        }
        tracing::info!(
            phase,
            operations = end - start,
            ms = phase_started.elapsed().as_millis() as u64,
            "phase applied"
        );
        start = end;
    }
    // What was held, in the log: the users and the group removals waiting for an answer.
    let at_ms = applier.ctx.clock.now_ms();
    for (i, op) in held.into_iter().enumerate() {
        let action = op.action.name();
        if op.action.is_deprovision() {
            bump(&mut applier.counts, "held", 1);
        }
        bump(&mut applier.counts, &format!("{action}.held"), 1);
        applier.pending.push(OpRecord {
            seq: (plan.operations.len() + i) as i64,
            op,
            applied: false,
            target_id: None,
            outcome: "held".into(),
            error: Some("above the flow's deletion threshold: waiting for approval".into()),
            duration_ms: 0,
            at_ms,
        });
    }
    applier.flush().await
}

struct Applier<'a> {
    ctx: &'a RunContext<'a>,
    run_id: &'a str,
    /// The ledger as this run has changed it so far (target ids of objects created earlier).
    ledger: LedgerState,
    /// The store's version of that ledger; None once another writer changed it too.
    ledger_version: Option<i64>,
    pending: Vec<OpRecord>,
    counts: RunCounts,
    /// Whether the target as a whole still answers (see `Circuit`).
    circuit: std::sync::Arc<Circuit>,
    /// Objects the target skipped in this run (their memberships are skipped too).
    skipped: std::collections::HashSet<String>,
    /// What the target held none of when the run started.
    empty: Emptiness,
}

/// What happened to one planned operation; becomes one or more op-log records.
struct Done {
    seq: i64,
    op: Operation,
    outcome: Outcome,
    linked: bool,
    duration: Duration,
    /// Members left out because their user or group has no target id.
    unresolved: Vec<Key>,
}

const FLUSH_EVERY: usize = 256;

/// A planned operation with its position, what the target will receive (or why it cannot),
/// and the members left out for lack of a target id.
type Job = (i64, Operation, Result<TargetOp, String>, Vec<Key>);

impl Applier<'_> {
    async fn apply_phase(&mut self, ops: &[Operation], first_seq: usize) -> Result<(), Failure> {
        // Resolve target ids against the ledger as earlier phases left it.
        let jobs: Vec<Job> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| {
                let (resolved, unresolved) = resolve(&self.ledger, op);
                ((first_seq + i) as i64, op.clone(), resolved, unresolved)
            })
            .collect();
        let ctx = self.ctx;
        let exec = Exec {
            target: ctx.target,
            limiter: ctx.limiter,
            backoff: ctx.flow.backoff,
            empty: self.empty,
            circuit: self.circuit.clone(),
            stop: &ctx.stop,
        };
        let exec = &exec;
        let mut results = stream::iter(jobs)
            .map(|(seq, op, resolved, unresolved)| async move {
                let started = Instant::now();
                let (outcome, linked) = match resolved {
                    Ok(top) => exec.execute(&top).await?,
                    Err(reason) => (Outcome::Rejected { reason }, false),
                };
                Some(Done {
                    seq,
                    op,
                    outcome,
                    linked,
                    duration: started.elapsed(),
                    unresolved,
                })
            })
            .buffer_unordered(ctx.flow.concurrency.max(1));
        // Outcomes are recorded in batches while the target keeps working: the results are
        // still taken while a batch is being written (one write at a time, in order).
        let (store, flow, run_id) = (ctx.store, ctx.flow, self.run_id);
        let mut writing: Option<
            std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>>,
        > = None;
        loop {
            tokio::select! {
                done = results.next() => {
                    let Some(done) = done else { break };
                    // Not attempted, or cut short: the target is gone or a stop was asked.
                    // Nothing was applied; nothing is recorded.
                    let Some(done) = done else { continue };
                    self.finish(done);
                    if self.pending.len() >= FLUSH_EVERY && writing.is_none() {
                        let batch = std::mem::take(&mut self.pending);
                        writing = Some(Box::pin(async move {
                            store.record_ops(&flow.name, run_id, &batch).await
                        }));
                    }
                }
                written = async {
                    match writing.as_mut() {
                        Some(w) => w.await,
                        None => std::future::pending().await,
                    }
                }, if writing.is_some() => {
                    writing = None;
                    self.recorded(written?);
                }
            }
        }
        if let Some(w) = writing {
            self.recorded(w.await?);
        }
        Ok(())
    }

    fn finish(&mut self, done: Done) {
        let at_ms = self.ctx.clock.now_ms();
        let duration_ms = i64::try_from(done.duration.as_millis()).unwrap_or(i64::MAX);
        let action = done.op.action.name();
        let mut record = |op: Operation,
                          applied: bool,
                          target_id: Option<String>,
                          outcome: &str,
                          error: Option<String>| {
            if applied {
                self.ledger.record(&op, target_id.as_deref(), at_ms);
            }
            self.pending.push(OpRecord {
                seq: done.seq,
                op,
                applied,
                target_id,
                outcome: outcome.to_string(),
                error,
                duration_ms,
                at_ms,
            });
        };
        let class = match done.outcome {
            Outcome::Skipped { reason } => {
                tracing::info!(key = %done.op.key, action, %reason, "skipped by the target");
                self.skipped.insert(done.op.key.clone());
                record(done.op.clone(), false, None, "skipped", Some(reason));
                "skipped"
            }
            Outcome::Applied { target_id } => {
                let outcome = if done.linked { "linked" } else { "applied" };
                tracing::debug!(key = %done.op.key, action, outcome, "operation done");
                // Members without a target id were left out of the call: not in the ledger.
                let mut op = done.op.clone();
                if let Action::AddMembers { users, .. } | Action::RemoveMembers { users, .. } =
                    &mut op.action
                {
                    users.retain(|u| !done.unresolved.contains(u));
                }
                record(op, true, target_id, outcome, None);
                "applied"
            }
            Outcome::NotFound { reason } => match &done.op.action {
                Action::DeleteUser { .. }
                | Action::DeleteGroup { .. }
                | Action::RemoveMembers { .. } => {
                    record(done.op.clone(), true, None, "applied", Some(reason));
                    "applied"
                }
                Action::UpdateUser { .. }
                | Action::DisableUser { .. }
                | Action::UpdateGroup { .. } => {
                    // Gone from the target (deleted by hand): forget it, so that the next plan
                    // creates it again.
                    tracing::warn!(key = %done.op.key, action, %reason, "object is gone from the target");
                    let forget = match &done.op.action {
                        Action::UpdateGroup { before, .. } => Action::DeleteGroup {
                            before: before.clone(),
                        },
                        Action::UpdateUser { before, .. } | Action::DisableUser { before, .. } => {
                            Action::DeleteUser {
                                before: before.clone(),
                            }
                        }
                        other => other.clone(),
                    };
                    record(done.op.clone(), false, None, "not_found", Some(reason));
                    let forget = Operation {
                        key: done.op.key.clone(),
                        action: forget,
                        reason: Reason::MissingInTarget,
                    };
                    record(forget, true, None, "forgotten", None);
                    "failed"
                }
                _ => {
                    record(done.op.clone(), false, None, "rejected", Some(reason));
                    "failed"
                }
            },
            Outcome::Rejected { reason } => {
                tracing::warn!(key = %done.op.key, action, %reason, "operation rejected");
                record(done.op.clone(), false, None, "rejected", Some(reason));
                "failed"
            }
            Outcome::Retryable { reason, .. } => {
                tracing::warn!(key = %done.op.key, action, %reason, "operation failed after retries");
                record(done.op.clone(), false, None, "failed", Some(reason));
                "failed"
            }
        };
        // Members left out of the call: skipped with their user, or not provisioned (failed).
        let (skipped, missing): (Vec<Key>, Vec<Key>) = done
            .unresolved
            .iter()
            .cloned()
            .partition(|u| self.skipped.contains(&**u));
        // Each planned operation counts once: a member batch some of whose members could not
        // be added counts as failed (the log says which), so applied + failed + skipped never
        // exceeds what was planned.
        let class = if class == "applied" && !missing.is_empty() {
            "failed"
        } else {
            class
        };
        for (users, outcome, why) in [
            (skipped, "skipped", "the target skipped this member"),
            (
                missing,
                "rejected",
                "member is not provisioned in the target",
            ),
        ] {
            if users.is_empty() {
                continue;
            }
            let n = users.len() as i64;
            let mut op = done.op.clone();
            op.action = match op.action {
                Action::RemoveMembers { group, .. } => Action::RemoveMembers { group, users },
                Action::AddMembers { group, .. } => Action::AddMembers { group, users },
                other => other,
            };
            bump(
                &mut self.counts,
                if outcome == "skipped" {
                    "members.skipped"
                } else {
                    "members.failed"
                },
                n,
            );
            self.pending.push(OpRecord {
                seq: done.seq,
                op,
                applied: false,
                target_id: None,
                outcome: outcome.to_string(),
                error: Some(why.to_string()),
                duration_ms,
                at_ms,
            });
        }
        bump(&mut self.counts, class, 1);
        bump(&mut self.counts, &format!("{action}.{class}"), 1);
        self.ctx.progress.applied(class == "failed");
    }

    async fn flush(&mut self) -> Result<(), Failure> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        let version = self
            .ctx
            .store
            .record_ops(&self.ctx.flow.name, self.run_id, &batch)
            .await?;
        self.recorded(version);
        Ok(())
    }

    /// A batch of outcomes was written and the ledger's version in the store is `version`.
    fn recorded(&mut self, version: i64) {
        // Our write is the only one since the version we knew: the ledger in memory is the
        // store's. Otherwise the next run loads it again.
        self.ledger_version = self
            .ledger_version
            .filter(|v| v + 1 == version)
            .map(|_| version);
    }
}

/// Turn a planned operation into what the target receives, with target ids from the ledger.
/// Membership operations leave out members that have no target id yet (returned apart).
fn resolve(ledger: &LedgerState, op: &Operation) -> (Result<TargetOp, String>, Vec<Key>) {
    let user_id = |key: &str| {
        ledger
            .user_target_id(key)
            .map(str::to_string)
            .ok_or_else(|| format!("user {key} is not provisioned in the target"))
    };
    let group_id = |key: &str| {
        ledger
            .group_target_id(key)
            .map(str::to_string)
            .ok_or_else(|| format!("group {key} is not provisioned in the target"))
    };
    let key = op.key.as_str();
    let mut unresolved = Vec::new();
    let mut members = |users: &[Key]| -> Vec<String> {
        users
            .iter()
            .filter_map(|u| match ledger.user_target_id(u) {
                Some(id) => Some(id.to_string()),
                None => {
                    unresolved.push(u.clone());
                    None
                }
            })
            .collect()
    };
    let resolved = match &op.action {
        Action::CreateUser { user } => Ok(TargetOp::CreateUser { user: user.clone() }),
        Action::UpdateUser { before, after, .. } | Action::DisableUser { before, after } => {
            user_id(key).map(|target_id| TargetOp::UpdateUser {
                target_id,
                before: before.clone(),
                after: after.clone(),
            })
        }
        Action::DeleteUser { .. } => {
            user_id(key).map(|target_id| TargetOp::DeleteUser { target_id })
        }
        Action::CreateGroup { group } => Ok(TargetOp::CreateGroup {
            group: group.clone(),
        }),
        Action::UpdateGroup { before, after, .. } => {
            group_id(key).map(|target_id| TargetOp::UpdateGroup {
                target_id,
                before: before.clone(),
                after: after.clone(),
            })
        }
        Action::DeleteGroup { .. } => {
            group_id(key).map(|target_id| TargetOp::DeleteGroup { target_id })
        }
        Action::AddMembers { users, .. } => {
            let ids = members(users);
            group_id(key).map(|group_id| TargetOp::AddMembers {
                group_id,
                user_ids: ids,
            })
        }
        Action::RemoveMembers { users, .. } => {
            let ids = members(users);
            group_id(key).map(|group_id| TargetOp::RemoveMembers {
                group_id,
                user_ids: ids,
            })
        }
    };
    // A membership op whose group is missing fails as a whole: nothing is unresolved apart.
    if resolved.is_err() {
        unresolved.clear();
    }
    (resolved, unresolved)
}

/// Whether the target as a whole still answers. Failures of single operations are the
/// objects' own (a value refused, a 503 now and then) until several fail in a row, or the
/// first ones fail before any succeeded: then the target is asked whether it answers at all
/// (`Target::health`). A target that refuses the credentials or cannot be reached ends the run
/// at once, with one error naming it, instead of failing each remaining operation after its
/// retries. Operations cut short are not recorded: the ledger keeps what was applied.
#[derive(Default)]
struct Circuit {
    /// Failed attempts since the last success.
    streak: std::sync::atomic::AtomicU32,
    /// Whether an attempt of this run succeeded yet.
    answered: std::sync::atomic::AtomicBool,
    /// The streak at which the target is asked next (doubles after each healthy answer).
    probe_at: std::sync::atomic::AtomicU32,
    /// One question at a time.
    probing: tokio::sync::Mutex<()>,
    /// Set when the target as a whole failed: no operation starts after that.
    error: std::sync::Mutex<Option<idsync_core::TargetError>>,
    tripped: std::sync::atomic::AtomicBool,
}

/// Failed attempts in a row after which the target is asked whether it answers.
const PROBE_AFTER: u32 = 3;
/// A target that could not be reached is asked again once after this, before the run ends.
const PROBE_AGAIN: Duration = Duration::from_millis(500);

impl Circuit {
    fn tripped(&self) -> bool {
        self.tripped.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn take_error(&self) -> Option<idsync_core::TargetError> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    fn success(&self) {
        self.streak.store(0, std::sync::atomic::Ordering::SeqCst);
        self.answered
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// After a failed attempt: ask the target when enough failed in a row (at the first
    /// failure while nothing succeeded yet). Failures wait for the answer, so that none is
    /// recorded against its object when it was the target's.
    async fn failure(&self, target: &dyn Target) {
        use std::sync::atomic::Ordering::SeqCst;
        let streak = self.streak.fetch_add(1, SeqCst) + 1;
        let due = if self.answered.load(SeqCst) {
            self.probe_at.load(SeqCst).max(PROBE_AFTER)
        } else {
            self.probe_at.load(SeqCst).max(1)
        };
        if streak < due || self.tripped() {
            return;
        }
        let _one = self.probing.lock().await;
        if self.tripped() || self.streak.load(SeqCst) < due {
            return;
        }
        let mut verdict = target.health().await;
        if matches!(verdict, Err(idsync_core::TargetError::Unavailable(_))) {
            tokio::time::sleep(PROBE_AGAIN).await;
            verdict = target.health().await;
        }
        match verdict {
            Err(
                e @ (idsync_core::TargetError::Auth(_) | idsync_core::TargetError::Unavailable(_)),
            ) => {
                tracing::info!(error = %e, failed_in_a_row = streak, "the target does not answer: the run stops");
                if let Ok(mut slot) = self.error.lock() {
                    *slot = Some(e);
                }
                self.tripped.store(true, SeqCst);
            }
            _ => {
                // The target answers: the failures are the objects' own. Ask again after
                // twice as many in a row.
                self.probe_at
                    .store(streak.max(PROBE_AFTER).saturating_mul(2), SeqCst);
            }
        }
    }
}

/// What applying one operation needs.
struct Exec<'a> {
    target: &'a dyn Target,
    limiter: &'a RateLimiter,
    backoff: Backoff,
    /// What the target held none of when the run started.
    empty: Emptiness,
    circuit: std::sync::Arc<Circuit>,
    stop: &'a Stop,
}

impl Exec<'_> {
    /// Whether operations must stop starting (and retrying).
    fn halted(&self) -> bool {
        self.circuit.tripped() || self.stop.requested()
    }

    /// Apply one operation with retries. A create first searches the target by the matching
    /// attributes (on every attempt: an earlier attempt may have been applied before it timed
    /// out) and, when it finds the object, links to it and brings its attributes up to date.
    /// Only a first attempt against a target that held no such objects when the run started
    /// does not search. Returns the outcome and whether the object was linked rather than
    /// created; None when the operation was not applied because the run stops (the target is
    /// gone, or a stop was requested).
    async fn execute(&self, op: &TargetOp) -> Option<(Outcome, bool)> {
        if matches!(op, TargetOp::AddMembers { user_ids, .. } | TargetOp::RemoveMembers { user_ids, .. } if user_ids.is_empty())
        {
            return Some((Outcome::Applied { target_id: None }, false));
        }
        let mut attempt = 0u32;
        loop {
            if self.halted() {
                return None;
            }
            self.limiter.acquire().await;
            let search = attempt > 0
                || match op {
                    TargetOp::CreateUser { .. } => !self.empty.users,
                    TargetOp::CreateGroup { .. } => !self.empty.groups,
                    _ => true,
                };
            let (outcome, linked) = attempt_once(self.target, op, search).await;
            match &outcome {
                Outcome::Retryable { .. } | Outcome::Rejected { .. } => {
                    self.circuit.failure(self.target).await;
                    if self.circuit.tripped() {
                        return None;
                    }
                }
                _ => self.circuit.success(),
            }
            match outcome {
                Outcome::Retryable {
                    reason,
                    retry_after,
                } if attempt < self.backoff.max_retries => {
                    attempt += 1;
                    let delay = self.backoff.delay(attempt, retry_after);
                    if let Some(ra) = retry_after {
                        self.limiter.pause(ra).await;
                    }
                    tracing::debug!(%reason, attempt, delay_ms = delay.as_millis() as u64, "retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.stop.wait() => return None,
                    }
                }
                other => return Some((other, linked)),
            }
        }
    }
}

async fn attempt_once(target: &dyn Target, op: &TargetOp, search: bool) -> (Outcome, bool) {
    // A search refused for the credentials will not pass by retrying.
    let retryable = |e: idsync_core::TargetError| match e {
        idsync_core::TargetError::Auth(_) => Outcome::Rejected {
            reason: e.to_string(),
        },
        e => Outcome::Retryable {
            reason: e.to_string(),
            retry_after: None,
        },
    };
    match op {
        TargetOp::CreateUser { .. } | TargetOp::CreateGroup { .. } if !search => {
            (target.apply(op).await, false)
        }
        TargetOp::CreateUser { user } => match target.find_user(user).await {
            Err(e) => (retryable(e), false),
            Ok(None) => (target.apply(op).await, false),
            Ok(Some(found)) => {
                // Unknown current values: send every attribute.
                let mut before = User::new(user.source_id.clone(), String::new());
                before.active = !user.active;
                let update = TargetOp::UpdateUser {
                    target_id: found.clone(),
                    before,
                    after: user.clone(),
                };
                (with_id(target.apply(&update).await, found), true)
            }
        },
        TargetOp::CreateGroup { group } => match target.find_group(group).await {
            Err(e) => (retryable(e), false),
            Ok(None) => (target.apply(op).await, false),
            Ok(Some(found)) => {
                let mut before = group.clone();
                before.display_name.clear();
                before.description = None;
                let update = TargetOp::UpdateGroup {
                    target_id: found.clone(),
                    before,
                    after: group.clone(),
                };
                (with_id(target.apply(&update).await, found), true)
            }
        },
        _ => (target.apply(op).await, false),
    }
}

fn with_id(outcome: Outcome, id: String) -> Outcome {
    match outcome {
        Outcome::Applied { .. } => Outcome::Applied {
            target_id: Some(id),
        },
        other => other,
    }
}
