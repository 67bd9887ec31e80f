//! Applying one operation: matching before create, retries with backoff, and the circuit that
//! ends a run when the target as a whole is gone, or fails every operation of a kind the same
//! way (`same_failure`).

use crate::pacing::{Backoff, RateLimiter};
use crate::run::Stop;
use idsync_core::{Emptiness, Match, Outcome, Target, TargetOp, User};
use std::time::Duration;

/// Whether the target as a whole still answers. Failures of single operations are the
/// objects' own (a value refused, a 503 now and then) until several fail in a row, or the
/// first ones fail before any succeeded: then the target is asked whether it answers at all
/// (`Target::health`). A target that refuses the credentials or cannot be reached ends the run
/// at once, with one error naming it, instead of failing each remaining operation after its
/// retries. Operations cut short are not recorded: the ledger keeps what was applied.
#[derive(Default)]
pub(crate) struct Circuit {
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
    /// Operation kinds whose first operations all fail the same way (see `same_failure`).
    same: crate::same_failure::SameFailure,
}

/// How often one operation waits for a target that throttles it (`Retry-After`) before the
/// waits count as failed attempts: with the pause shared by every operation of the target,
/// this is minutes of a target answering nothing but "slow down".
const MAX_THROTTLED_WAITS: u32 = 50;
/// The longest one `Retry-After` holds the operations back: a target asking for an hour is
/// asked again after this (and answers "slow down" again if it meant it).
const MAX_THROTTLED_PAUSE: Duration = Duration::from_secs(60);

/// Failed attempts in a row after which the target is asked whether it answers.
const PROBE_AFTER: u32 = 3;
/// A target that could not be reached is asked again once after this, before the run ends.
const PROBE_AGAIN: Duration = Duration::from_millis(500);

impl Circuit {
    fn tripped(&self) -> bool {
        self.tripped.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// End the run with this error (the first one set is kept).
    fn trip(&self, e: idsync_core::TargetError) {
        if let Ok(mut slot) = self.error.lock() {
            if slot.is_none() {
                *slot = Some(e);
            }
        }
        self.tripped
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// After an operation's first attempt failed: stop the run when the first operations of
    /// its kind all failed the same way.
    fn same_failure(&self, op: &TargetOp, outcome: &Outcome) {
        if let Some((kind, failed, error)) = self.same.failure(op, outcome) {
            tracing::info!(kind = %kind, failed, error = %error, "every operation of this kind fails the same way: the run stops");
            self.trip(idsync_core::TargetError::Deterministic {
                kind,
                failed,
                error,
            });
        }
    }

    pub(crate) fn take_error(&self) -> Option<idsync_core::TargetError> {
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
pub(crate) struct Exec<'a> {
    pub(crate) target: &'a dyn Target,
    pub(crate) limiter: &'a RateLimiter,
    pub(crate) backoff: Backoff,
    /// What the target held none of when the run started.
    pub(crate) empty: Emptiness,
    pub(crate) circuit: std::sync::Arc<Circuit>,
    pub(crate) stop: &'a Stop,
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
    /// does not search. Returns the outcome and, when the object was linked rather than
    /// created, the match (to which object, by which attribute); None when the operation was not applied because the run stops (the target is
    /// gone, or a stop was requested).
    pub(crate) async fn execute(&self, op: &TargetOp) -> Option<(Outcome, Option<Match>)> {
        if matches!(op, TargetOp::AddMembers { user_ids, .. } | TargetOp::RemoveMembers { user_ids, .. } if user_ids.is_empty())
        {
            return Some((Outcome::Applied { target_id: None }, None));
        }
        let mut attempt = 0u32;
        let mut waited = 0u32;
        loop {
            if self.halted() {
                return None;
            }
            tokio::select! {
                _ = self.limiter.acquire() => {}
                _ = self.stop.wait() => return None,
            }
            let search = attempt + waited > 0
                || match op {
                    TargetOp::CreateUser { .. } => !self.empty.users,
                    TargetOp::CreateGroup { .. } => !self.empty.groups,
                    _ => true,
                };
            let (outcome, linked) = attempt_once(self.target, op, search).await;
            match &outcome {
                // The target answered, and asks every caller to wait (the pause below): a
                // throttled attempt is neither the object's failure nor the target's, and
                // does not use up the operation's retries.
                Outcome::Retryable {
                    reason,
                    retry_after: Some(ra),
                } if waited < MAX_THROTTLED_WAITS => {
                    waited += 1;
                    self.limiter.throttled((*ra).min(MAX_THROTTLED_PAUSE));
                    tracing::debug!(%reason, waited, retry_after_ms = ra.as_millis() as u64, "throttled by the target: waiting");
                    continue;
                }
                Outcome::Retryable { .. } | Outcome::Rejected { .. } => {
                    if attempt == 0 {
                        self.circuit.same_failure(op, &outcome);
                        if self.circuit.tripped() {
                            return None;
                        }
                    }
                    self.circuit.failure(self.target).await;
                    if self.circuit.tripped() {
                        return None;
                    }
                }
                _ => {
                    self.circuit.same.success(op);
                    self.circuit.success();
                    self.limiter.succeeded();
                }
            }
            match outcome {
                Outcome::Retryable {
                    reason,
                    retry_after,
                } if attempt < self.backoff.max_retries => {
                    attempt += 1;
                    let delay = self.backoff.delay(attempt, retry_after);
                    if let Some(ra) = retry_after {
                        self.limiter.pause(ra);
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

async fn attempt_once(
    target: &dyn Target,
    op: &TargetOp,
    search: bool,
) -> (Outcome, Option<Match>) {
    // A search refused for the credentials will not pass by retrying.
    let retryable = |e: idsync_core::TargetError| match e {
        idsync_core::TargetError::Auth(_) => Outcome::Rejected {
            reason: e.to_string(),
        },
        // A conflict between candidates, or a target that cannot be searched safely: nothing
        // is written, and retrying finds the same.
        idsync_core::TargetError::Ambiguous { .. } | idsync_core::TargetError::CannotMatch(_) => {
            Outcome::Rejected {
                reason: e.to_string(),
            }
        }
        idsync_core::TargetError::Throttled {
            reason,
            retry_after,
        } => Outcome::Retryable {
            reason,
            retry_after: Some(retry_after),
        },
        e => Outcome::Retryable {
            reason: e.to_string(),
            retry_after: None,
        },
    };
    match op {
        TargetOp::CreateUser { .. } | TargetOp::CreateGroup { .. } if !search => {
            (target.apply(op).await, None)
        }
        TargetOp::CreateUser { user } => match target.find_user_match(user).await {
            Err(e) => (retryable(e), None),
            Ok(None) => (target.apply(op).await, None),
            Ok(Some(found)) => {
                // Unknown current values: send every attribute.
                let mut before = User::new(user.source_id.clone(), String::new());
                before.active = !user.active;
                let update = TargetOp::UpdateUser {
                    target_id: found.target_id.clone(),
                    before,
                    after: user.clone(),
                };
                let outcome = with_id(target.apply(&update).await, &found.target_id);
                (outcome, Some(found))
            }
        },
        TargetOp::CreateGroup { group, members } => match target.find_group_match(group).await {
            Err(e) => (retryable(e), None),
            Ok(None) => (target.apply(op).await, None),
            Ok(Some(found)) => {
                let mut before = group.clone();
                before.display_name.clear();
                before.description = None;
                let update = TargetOp::UpdateGroup {
                    target_id: found.target_id.clone(),
                    before,
                    after: group.clone(),
                };
                let mut outcome = target.apply(&update).await;
                // The members the create was to bring, added to the group it found.
                if matches!(outcome, Outcome::Applied { .. }) && !members.is_empty() {
                    outcome = target
                        .apply(&TargetOp::AddMembers {
                            group_id: found.target_id.clone(),
                            user_ids: members.clone(),
                        })
                        .await;
                }
                (with_id(outcome, &found.target_id), Some(found))
            }
        },
        _ => (target.apply(op).await, None),
    }
}

/// The outcome of the update that linked a create to the object found: that object's id,
/// unless the update moved it to another (a target whose user id is its username renamed it).
fn with_id(outcome: Outcome, id: &str) -> Outcome {
    match outcome {
        Outcome::Applied {
            target_id: Some(moved),
        } if !moved.is_empty() => Outcome::Applied {
            target_id: Some(moved),
        },
        Outcome::Applied { .. } => Outcome::Applied {
            target_id: Some(id.to_string()),
        },
        other => other,
    }
}
