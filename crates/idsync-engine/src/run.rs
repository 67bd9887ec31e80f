//! One run of a flow: read the directory and the ledger, plan, apply, record.

use crate::apply::{apply_plan, Applier};
use crate::error::EngineError;
use crate::memory::{refresh_image, FlowMemory};
use crate::pacing::{Backoff, RateLimiter};
use crate::progress::Progress;
use idsync_core::groups::{apply_group_rules, forget_manual_members, GroupRules};
use idsync_core::mapping::{apply_mapping, Mapping};
use idsync_core::scope::{
    apply_scope, explain_out_of_scope, keep_memberships, MembershipPolicy, Scope,
};
use idsync_core::{
    dangling_members, desired_state, observed_ledger, plan, Action, Clock, DeletionThreshold,
    DirectoryImage, LedgerState, Plan, PlanOptions, Target, User, GONE_MEMBER_PREFIX,
};
use idsync_store::{NewRun, RunCounts, RunStatus, Store};
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Instant;
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
    /// Provision on demand, or at a login: only these users (by key), their groups and their
    /// memberships.
    pub only_users: Option<BTreeSet<String>>,
    /// `inactive_after`: users without a login for so long are deprovisioned (decision 0043).
    pub inactivity: Option<idsync_core::inactivity::Inactivity>,
    /// What happens to a deprovisioned user's group memberships.
    pub memberships: MembershipPolicy,
    /// Which groups, under which names.
    pub groups: GroupRules,
    /// The target serves nested groups (a crowd target with `nested_groups`): memberships are
    /// planned as direct members and child groups rather than flattened (decision 0033).
    pub nested_groups: bool,
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
    /// The name of the target when idsync serves it (its feed gets an event for each ledger
    /// change, written with it); None for targets written to remotely.
    pub served: Option<&'a str>,
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
    // A hold of creations alone (over the licence seats) holds no later deprovisions.
    let pending_deprovisions = match &pending {
        Some(p) => store.held_keys(&p.id).await?,
        None => BTreeSet::new(),
    };
    let hold = HoldContext {
        approved: match (&pending, opts.trigger) {
            (Some(p), Trigger::Approval) => {
                let mut keys = pending_deprovisions.clone();
                keys.extend(crate::seats::approved_grants(
                    &store.held_grant_ops(&p.id).await?,
                ));
                keys
            }
            _ => BTreeSet::new(),
        },
        waiting: !pending_deprovisions.is_empty() && opts.trigger != Trigger::Approval,
    };
    let hold_deprovisions_waited = !pending_deprovisions.is_empty();
    let mut known = RunCounts::default();
    crate::forms::start(store, &flow.target, ctx.target).await?;
    crate::id_forms::settle(store, &flow.name, ctx.target)
        .await
        .map_err(|e| match e {
            crate::id_forms::Settle::Engine(e) => e,
            crate::id_forms::Settle::Target(e) => target_err(e),
        })?;
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
    if let Err(e) = crate::forms::keep(store, &flow.target, ctx.target, clock.now_ms()).await {
        // The run's own outcome matters more; the form is learned again next time.
        tracing::warn!(error = %e, "cannot remember the request forms the target learned");
    }
    ctx.target.end_run();
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
                } else if pending.is_some() && !hold_deprovisions_waited {
                    // A hold of creations alone that this run no longer needed (seats were
                    // freed): it waits no more.
                    store.supersede_holds(&flow.name, &run_id, ended_ms).await?;
                }
                if status == RunStatus::Held {
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
                let why = match &e {
                    EngineError::Interrupted { .. } => {
                        "stopped on request (SIGTERM or Ctrl-C) after the operations in flight; the next run carries on".to_string()
                    }
                    other => other.to_string(),
                };
                store
                    .finish_run(&run_id, status, &counts, ended_ms, Some(&why))
                    .await?;
            }
            progress.finished();
            Err(e)
        }
    }
}

/// Keep of a plan what concerns some users: their own operations, their group memberships,
/// and the groups they are (to be) in, so that they exist first.
fn only_users(
    plan: &mut Plan,
    keys: &BTreeSet<String>,
    desired: &idsync_core::DesiredState,
    ledger: &LedgerState,
) {
    let in_group = |g: &str| {
        let any = |m: &BTreeSet<idsync_core::Key>| keys.iter().any(|k| m.contains(k.as_str()));
        desired.members.get(g).is_some_and(any) || ledger.members.get(g).is_some_and(any)
    };
    plan.operations.retain_mut(|op| match &mut op.action {
        Action::AddMembers { users, .. } | Action::RemoveMembers { users, .. } => {
            users.retain(|u| keys.contains(&**u));
            !users.is_empty()
        }
        Action::CreateGroup { .. } | Action::UpdateGroup { .. } | Action::DeleteGroup { .. } => {
            in_group(&op.key)
        }
        _ => keys.contains(&op.key),
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

pub(crate) enum Failure {
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
pub(crate) fn bump(counts: &mut RunCounts, key: &str, by: i64) {
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
    // A run for a few users plans on their slice (crate::slice), one for all on the whole.
    let sliced = crate::slice::users(flow, &opts)
        .map(|keys| (keys, crate::slice::snapshot(image.snapshot(), keys)))
        .filter(|(_, s)| crate::slice::plannable(flow, s));
    let (for_users, sliced) = match sliced {
        Some((keys, s)) => (Some(keys), Some(s)),
        None => (None, None),
    };
    let snapshot = sliced.as_ref().unwrap_or(image.snapshot());
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
    let inactive = crate::inactive::inactive_users(ctx, &mut desired, opts.dry_run).await?;

    let desired_ms = started.elapsed().as_millis() as u64 - load_directory_ms;
    let ledger_version = store.ledger_version(&flow.name).await?;
    let (mut ledger, ledger_from_memory) = match remembered_ledger {
        Some((l, v)) if v == ledger_version => (l, true),
        _ => (store.load_ledger(&flow.name).await?, false),
    };
    // What the target is set never to be sent leaves the ledger's copy too: an attribute
    // omitted after it was sent is no change to send (and could not be sent). A ledger kept in
    // memory was projected by the run that kept it: a slice's run projects its users again.
    let project = |u: &mut idsync_core::LedgerUser| {
        u.user = target.project_observed_user(std::mem::replace(&mut u.user, User::new("", "")));
    };
    match for_users {
        Some(keys) if ledger_from_memory => {
            for k in keys {
                if let Some(u) = ledger.users.get_mut(k) {
                    project(u);
                }
            }
        }
        _ => ledger.users.values_mut().for_each(project),
    }
    // The whole ledger's users (the deletion threshold's base), and for a slice's run the
    // whole ledger aside: the run plans on the slice, and applies to (and keeps) the whole.
    let ledger_users = ledger.users.len();
    let (mut ledger, whole_ledger) = match for_users {
        Some(keys) => (crate::slice::ledger(&ledger, keys), Some(ledger)),
        None => (ledger, None),
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
    plan_opts.members_in_create = target.members_in_create();
    let mut recorded = None;
    let mut dangling = Vec::new();
    let mut unkept = Vec::new();
    if opts.mode == Mode::Reconcile {
        let mut real = target.read_state().await.map_err(Failure::Target)?;
        // What the target is set never to be sent is not compared either.
        for u in &mut real.users {
            u.user =
                target.project_observed_user(std::mem::replace(&mut u.user, User::new("", "")));
        }
        dangling = dangling_members(&ledger, &real);
        if flow.groups.keep_manual {
            recorded = Some(ledger.clone());
        }
        // The run plans against what the target holds, but the store keeps the ledger as it
        // was: each repair applied is recorded as it lands, and what could not be repaired
        // stays as idsync left it (had the observed state been stored, every later run would
        // plan the failed repairs again as changes in the source, and fail on them).
        let mut observed = observed_ledger(&ledger, &real);
        // Only what the target keeps is compared (what it drops or computes itself is not).
        // What is known before the read (the target's schema, its answers) comes first.
        let known = target.known_keeps().await;
        unkept = idsync_core::keeps::compare_only_what_is_kept(&ledger, &mut observed, &known)
            .describe();
        ledger = observed;
        plan_opts.reconcile = true;
    }
    // Group rules (names, mappings, required and default groups), then what stays of the
    // memberships of users being deprovisioned and of those made by hand in the target.
    // A nested target's ledger, as the flat rules below read it (its effective members).
    let flat_ledger = (flow.nested_groups && !ledger.child_groups.is_empty())
        .then(|| idsync_core::nesting::flattened(&ledger));
    out_of_scope.extend(apply_group_rules(
        &mut desired,
        flat_ledger.as_ref().unwrap_or(&ledger),
        &flow.groups,
    ));
    if !out_of_scope.is_empty() {
        bump(counts, "out_of_scope", out_of_scope.len() as i64);
    }
    if let Some(recorded) = &recorded {
        forget_manual_members(&mut ledger, recorded, &desired);
    }
    keep_memberships(
        &mut desired,
        flat_ledger.as_ref().unwrap_or(&ledger),
        &flow.memberships,
    );
    if flow.nested_groups {
        // Every rule has had the flat memberships; now the nesting the target serves.
        let nested = idsync_core::nesting::nest(&mut desired, snapshot, &flow.groups, &ledger);
        for (parent, child) in &nested.dropped {
            tracing::info!(parent = %parent, child = %child, "nesting left out: a group rule gives the child members the parent does not have; its users are direct members of the parent");
        }
        tracing::debug!(
            edges = nested.edges,
            lifted = nested.lifted,
            "nested groups planned"
        );
    }
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
    // Member ids that name no user the target holds are taken out of their groups.
    for (key, group, gone) in dangling {
        for chunk in gone.chunks(plan_opts.member_batch.max(1)) {
            plan.operations.push(idsync_core::Operation {
                key: key.clone(),
                action: Action::RemoveMembers {
                    group: group.clone(),
                    users: chunk
                        .iter()
                        .map(|id| idsync_core::Key::from(format!("{GONE_MEMBER_PREFIX}{id}")))
                        .collect(),
                },
                reason: idsync_core::Reason::MembersGoneFromTarget,
            });
        }
    }
    explain_out_of_scope(&mut plan, &out_of_scope);
    idsync_core::inactivity::explain_inactive(&mut plan, &inactive);
    plan.warnings.extend(unkept);
    if let Some(keys) = &flow.only_users {
        only_users(&mut plan, keys, &desired, &ledger);
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
    let over = flow.deletion_threshold.exceeded(unapproved, ledger_users);
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
    let mut held = held;
    held.extend(crate::seats::hold_over_seats(target, &mut plan, &ledger, &hold.approved).await?);
    if plan
        .operations
        .iter()
        .any(|o| matches!(o.action, idsync_core::Action::DisableUser { .. }))
    {
        match target.disable_note().await {
            Ok(Some(note)) => plan.notes.push(note),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot tell how the target disables users"),
        }
    }
    let plan_ms = started.elapsed().as_millis() as u64 - before_plan;
    for n in &plan.notes {
        tracing::info!(note = %n, "plan");
    }
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
        let held_users = held
            .iter()
            .filter(|o| o.action.is_deprovision() || o.action.name() == "create_user")
            .count();
        if held_users > 0 {
            bump(counts, "held", held_users as i64);
        }
        let kept = FlowMemory {
            image,
            seq: image_seq,
            ledger: (opts.mode != Mode::Reconcile)
                .then_some((whole_ledger.unwrap_or(ledger), ledger_version)),
        };
        return Ok((plan, std::mem::take(counts), Some(kept)));
    }

    let mut applier = Applier::new(
        ctx,
        run_id,
        whole_ledger.unwrap_or(ledger),
        ledger_version,
        std::mem::take(counts),
    );
    let applied = apply_plan(&mut applier, &plan, held).await;
    *counts = std::mem::take(&mut applier.counts);
    applied?;
    let kept = FlowMemory {
        image,
        seq: image_seq,
        // After a reconcile the ledger in memory is the observed one, not the store's: the
        // next run loads the store's.
        ledger: applier
            .ledger_version
            .filter(|_| opts.mode != Mode::Reconcile)
            .map(|v| (applier.ledger, v)),
    };
    // A run for one user has not brought the whole flow up to the change log.
    if flow.only_users.is_none() {
        store.set_flow_cursor(&flow.name, seq).await?;
    }
    Ok((plan, std::mem::take(counts), Some(kept)))
}
