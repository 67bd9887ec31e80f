//! Applying a run's plan: phase by phase, operations with bounded concurrency, outcomes
//! recorded in batches while the target keeps working (ledger and log in one transaction).

use crate::execute::{Circuit, Exec};
use crate::run::{bump, Failure, RunContext};
use futures::stream::{self, StreamExt};
use idsync_core::{
    Action, Emptiness, Key, LedgerState, Match, Operation, Outcome, Plan, Reason, TargetOp,
    GONE_MEMBER_PREFIX,
};
use idsync_store::{OpRecord, RunCounts};
use std::time::{Duration, Instant};

/// Apply the plan phase by phase, then log what was held. Stops early (after recording what
/// the operations in flight did) when the target as a whole is gone or a stop is requested.
pub(crate) async fn apply_plan(
    applier: &mut Applier<'_>,
    plan: &Plan,
    held: Vec<Operation>,
) -> Result<(), Failure> {
    let target = applier.ctx.target;
    for op in &plan.operations {
        if matches!(
            op.action,
            Action::CreateUser { .. } | Action::UpdateUser { .. } | Action::DisableUser { .. }
        ) {
            applier.names.insert(op.key.clone(), op.object_label());
        }
    }
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
    let creates = |f: fn(&Action) -> bool| plan.operations.iter().filter(|o| f(&o.action)).count();
    let (users, groups) = (
        creates(|a| matches!(a, Action::CreateUser { .. })),
        creates(|a| matches!(a, Action::CreateGroup { .. })),
    );
    if users + groups > 0 {
        target.expect_creates(users, groups);
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
    // Users held for the licence seats: each counts once (its creation or enabling, else
    // its memberships in the groups that grant access).
    let whole: std::collections::BTreeSet<String> = held
        .iter()
        .filter(|o| {
            matches!(
                o.action,
                Action::CreateUser { .. } | Action::UpdateUser { .. }
            )
        })
        .map(|o| o.key.clone())
        .collect();
    let mut granted = std::collections::BTreeSet::new();
    for (i, op) in held.into_iter().enumerate() {
        let action = op.action.name();
        // Creations (and their memberships) are held over the licence seats, deprovisions
        // (and their group removals) above the deletion threshold.
        let seats = matches!(
            op.action,
            Action::CreateUser { .. } | Action::UpdateUser { .. } | Action::AddMembers { .. }
        );
        if op.action.is_deprovision()
            || matches!(
                op.action,
                Action::CreateUser { .. } | Action::UpdateUser { .. }
            )
        {
            bump(&mut applier.counts, "held", 1);
        }
        if let Action::AddMembers { users, .. } = &op.action {
            for u in users {
                let u: &str = u;
                if !whole.contains(u) && granted.insert(u.to_string()) {
                    bump(&mut applier.counts, "held", 1);
                }
            }
        }
        bump(&mut applier.counts, &format!("{action}.held"), 1);
        applier.pending.push(OpRecord {
            seq: (plan.operations.len() + i) as i64,
            op,
            applied: false,
            target_id: None,
            outcome: "held".into(),
            error: Some(
                if seats {
                    "over the target's licence seats: waiting for approval"
                } else {
                    "above the flow's deletion threshold: waiting for approval"
                }
                .into(),
            ),
            duration_ms: 0,
            at_ms,
        });
    }
    applier.flush().await
}

pub(crate) struct Applier<'a> {
    ctx: &'a RunContext<'a>,
    run_id: &'a str,
    /// The ledger as this run has changed it so far (target ids of objects created earlier).
    pub(crate) ledger: LedgerState,
    /// The store's version of that ledger; None once another writer changed it too.
    pub(crate) ledger_version: Option<i64>,
    pending: Vec<OpRecord>,
    /// The feed events of the pending ledger changes (a served target only), serialised.
    pending_events: Vec<String>,
    pub(crate) counts: RunCounts,
    /// Whether the target as a whole still answers (see `Circuit`).
    circuit: std::sync::Arc<Circuit>,
    /// Objects the target skipped in this run (their memberships are skipped too).
    skipped: std::collections::HashSet<String>,
    /// What the target held none of when the run started.
    empty: Emptiness,
    /// The userNames of the users this run's plan creates or changes (to name members the
    /// ledger does not know yet).
    names: std::collections::HashMap<String, String>,
}

/// What happened to one planned operation; becomes one or more op-log records.
struct Done {
    seq: i64,
    op: Operation,
    outcome: Outcome,
    /// The existing object a create was matched to (linked and updated, not created).
    linked: Option<Match>,
    duration: Duration,
    /// Members left out because their user or group has no target id.
    unresolved: Vec<Key>,
}

const FLUSH_EVERY: usize = 256;

/// A planned operation with its position, what the target will receive (or why it cannot),
/// and the members left out for lack of a target id.
type Job = (i64, Operation, Result<TargetOp, String>, Vec<Key>);

impl<'a> Applier<'a> {
    pub(crate) fn new(
        ctx: &'a RunContext<'a>,
        run_id: &'a str,
        ledger: LedgerState,
        ledger_version: i64,
        counts: RunCounts,
    ) -> Self {
        Self {
            ctx,
            run_id,
            ledger,
            ledger_version: Some(ledger_version),
            pending: Vec::new(),
            pending_events: Vec::new(),
            counts,
            circuit: Default::default(),
            skipped: std::collections::HashSet::new(),
            empty: Emptiness::default(),
            names: std::collections::HashMap::new(),
        }
    }

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
                    Err(reason) => (Outcome::Rejected { reason }, None),
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
                        let events = std::mem::take(&mut self.pending_events);
                        let (served, at_ms) = (ctx.served, ctx.clock.now_ms());
                        writing = Some(Box::pin(async move {
                            record(store, &flow.name, run_id, &batch, served, at_ms, events).await
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
        // Objects named as people know them (userName, group name), the source key beside.
        let object = done.op.object_label();
        let members = match &done.op.action {
            Action::AddMembers { users, .. }
            | Action::RemoveMembers { users, .. }
            | Action::CreateGroup { members: users, .. }
                if !users.is_empty() =>
            {
                Some(member_names(&self.ledger, &self.names, users))
            }
            _ => None,
        };
        let served = self.ctx.served.is_some();
        // The members a group was created with (those with a target id), as people know them.
        let first_members = match &done.op.action {
            Action::CreateGroup { members, .. } => {
                let sent: Vec<Key> = members
                    .iter()
                    .filter(|u| !done.unresolved.contains(u))
                    .cloned()
                    .collect();
                (!sent.is_empty()).then(|| member_names(&self.ledger, &self.names, &sent))
            }
            _ => None,
        };
        let mut record = |op: Operation,
                          applied: bool,
                          target_id: Option<String>,
                          outcome: &str,
                          error: Option<String>| {
            if applied {
                if served {
                    self.pending_events
                        .extend(crate::served::serialised_events_of(&self.ledger, &op));
                }
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
                let outcome = if done.linked.is_some() {
                    "linked"
                } else {
                    "applied"
                };
                // A create that found the object already there says so, and by what.
                let note = done.linked.as_ref().map(|m| {
                    let said = m.describe(kind_of(&done.op));
                    tracing::info!(object = %object, key = %done.op.key, action, target_id = %m.target_id, matched_by = m.by.as_deref(), "{said}: linked and updated, not created");
                    format!("{said}: linked and updated, not created")
                });
                // A group created with its first members says which (the log's `after` is
                // the group).
                let note = match (note, &first_members) {
                    (note, None) => note,
                    (Some(n), Some(names)) => {
                        Some(format!("{n}; its first members added: {names}"))
                    }
                    (None, Some(names)) => Some(format!("created with its first members: {names}")),
                };
                tracing::debug!(key = %done.op.key, action, outcome, "operation done");
                // Members without a target id were left out of the call: not in the ledger.
                let mut op = done.op.clone();
                if let Action::AddMembers { users, .. }
                | Action::RemoveMembers { users, .. }
                | Action::CreateGroup { members: users, .. } = &mut op.action
                {
                    users.retain(|u| !done.unresolved.contains(u));
                }
                record(op, true, target_id, outcome, note);
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
                    tracing::warn!(object = %object, key = %done.op.key, action, %reason, "object is gone from the target");
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
                let reason = after_match(&done.linked, &done.op, reason);
                tracing::warn!(object = %object, key = %done.op.key, action, members = members.as_deref(), %reason, "operation rejected");
                record(done.op.clone(), false, None, "rejected", Some(reason));
                "failed"
            }
            Outcome::Retryable { reason, .. } => {
                let reason = after_match(&done.linked, &done.op, reason);
                tracing::warn!(object = %object, key = %done.op.key, action, members = members.as_deref(), %reason, "operation failed after retries");
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
        // A group created without some of its first members was still created: those members
        // count (and are logged) as members not added, and the next run adds them.
        let group_created = matches!(done.op.action, Action::CreateGroup { .. });
        let class = if class == "applied" && !missing.is_empty() && !group_created {
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
            if outcome == "rejected" {
                tracing::warn!(object = %object, key = %done.op.key, action, members = %member_names(&self.ledger, &self.names, &users), "{why}");
            }
            let mut op = done.op.clone();
            op.action = match op.action {
                Action::RemoveMembers { group, .. } => Action::RemoveMembers { group, users },
                Action::AddMembers { group, .. } => Action::AddMembers { group, users },
                // First members of a group's create: recorded as members not added.
                Action::CreateGroup { group, .. } => Action::AddMembers {
                    group: group.display_name,
                    users,
                },
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
        let events = std::mem::take(&mut self.pending_events);
        let ctx = self.ctx;
        let version = record(
            ctx.store,
            &ctx.flow.name,
            self.run_id,
            &batch,
            ctx.served,
            ctx.clock.now_ms(),
            events,
        )
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

/// Write a batch of outcomes (and, for a served target, the feed events of its ledger
/// changes, in the same transaction). Returns the ledger's new version.
async fn record(
    store: &idsync_store::Store,
    flow: &str,
    run_id: &str,
    batch: &[OpRecord],
    served: Option<&str>,
    at_ms: i64,
    events: Vec<String>,
) -> Result<i64, idsync_store::StoreError> {
    match served {
        Some(target) => {
            let served = idsync_store::ServedEvents {
                target,
                at_ms,
                events,
            };
            store
                .record_ops_served(flow, run_id, batch, Some(&served))
                .await
        }
        None => store.record_ops(flow, run_id, batch).await,
    }
}

/// The members of a membership operation by userName (from the ledger, else from this run's
/// plan, else the source key), at most 20 and a count of the rest.
fn member_names(
    ledger: &LedgerState,
    planned: &std::collections::HashMap<String, String>,
    users: &[Key],
) -> String {
    let mut names: Vec<String> = users
        .iter()
        .take(20)
        .map(|k| {
            ledger
                .users
                .get(&**k)
                .map(|u| u.user.user_name.clone())
                .or_else(|| planned.get(&**k).cloned())
                .unwrap_or_else(|| k.to_string())
        })
        .collect();
    if users.len() > names.len() {
        names.push(format!("and {} more", users.len() - names.len()));
    }
    names.join(", ")
}

/// A group's target id, or why it has none.
fn group_id_of(ledger: &LedgerState, key: &str) -> Result<String, String> {
    ledger
        .group_target_id(key)
        .map(str::to_string)
        .ok_or_else(|| format!("group {key} is not provisioned in the target"))
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
    let group_id = |key: &str| group_id_of(ledger, key);
    let key = op.key.as_str();
    let mut unresolved = Vec::new();
    let mut members = |users: &[Key]| -> Vec<String> {
        users
            .iter()
            .filter_map(|u| match ledger.user_target_id(u) {
                Some(id) => Some(id.to_string()),
                // A member id that names no user of the target (a reconcile takes it out).
                None if u.starts_with(GONE_MEMBER_PREFIX) => {
                    u.strip_prefix(GONE_MEMBER_PREFIX).map(str::to_string)
                }
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
        Action::CreateGroup {
            group,
            members: first,
        } => Ok(TargetOp::CreateGroup {
            group: group.clone(),
            members: members(first),
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
        // Nested groups: the parent and every child must be in the target.
        Action::AddChildGroups { groups, .. } | Action::RemoveChildGroups { groups, .. } => {
            let adding = matches!(op.action, Action::AddChildGroups { .. });
            group_id(key).and_then(|group_id| {
                let child_ids = groups
                    .iter()
                    .map(|g| group_id_of(ledger, g))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if adding {
                    TargetOp::AddChildGroups {
                        group_id,
                        child_ids,
                    }
                } else {
                    TargetOp::RemoveChildGroups {
                        group_id,
                        child_ids,
                    }
                })
            })
        }
    };
    // A membership op whose group is missing fails as a whole: nothing is unresolved apart.
    if resolved.is_err() {
        unresolved.clear();
    }
    (resolved, unresolved)
}

/// A failure of the update that a create became (its object matched an existing one) says
/// which object it matched: the update, not a create, is what failed.
fn after_match(linked: &Option<Match>, op: &Operation, reason: String) -> String {
    match linked {
        Some(m) => format!("{}, whose update failed: {reason}", m.describe(kind_of(op))),
        None => reason,
    }
}

/// "user" or "group", for the matched object of a create.
fn kind_of(op: &Operation) -> &'static str {
    match op.action {
        Action::CreateGroup { .. } | Action::UpdateGroup { .. } | Action::DeleteGroup { .. } => {
            "group"
        }
        _ => "user",
    }
}
