//! Telling a target that fails every operation of one kind the same way (a deterministic
//! server error: 500 "not supported" on every user create) from objects that fail on their
//! own, so that the run stops with one message instead of retrying each object for minutes.
//!
//! An operation kind is judged failing when its first [`SAME_FAILURES`] distinct operations
//! (their first attempts) all failed with the same reason, with the operation's own ids taken
//! out, while none of that kind succeeded. A success of the kind ends the judging for it: from
//! then on a failure is the object's own (a 400 or 409 on one user while others pass). Answers
//! that are transient by nature (throttling, 502/503/504, timeouts, no answer) and those that
//! are about one object's state (404, 409) are never counted; a target that cannot be matched
//! safely counts whatever its cause.

use idsync_core::{Outcome, TargetOp};
use std::collections::HashMap;
use std::sync::Mutex;

/// Distinct operations of one kind failing the same way, none succeeding, that stop the run.
pub(crate) const SAME_FAILURES: u32 = 3;

#[derive(Debug, Default)]
struct Kind {
    succeeded: bool,
    /// The failure the kind's operations share, and how many did.
    reason: Option<String>,
    count: u32,
}

/// Per operation kind, what its first operations did.
#[derive(Debug, Default)]
pub(crate) struct SameFailure {
    kinds: Mutex<HashMap<&'static str, Kind>>,
}

/// The failure's text with the operation's own ids replaced, so that "PATCH /Users/1: HTTP
/// 500" and "PATCH /Users/2: HTTP 500" are the same failure. None for failures that are never
/// counted.
fn shared_reason(op: &TargetOp, outcome: &Outcome) -> Option<String> {
    let reason = match outcome {
        Outcome::Retryable {
            retry_after: None,
            reason,
        }
        | Outcome::Rejected { reason } => reason,
        _ => return None,
    };
    let transient = [
        "HTTP 404", "HTTP 409", "HTTP 429", "HTTP 502", "HTTP 503", "HTTP 504",
    ];
    // A target that cannot be searched safely is so for every object (`TargetError::CannotMatch`).
    let unmatchable = reason.starts_with("cannot match safely");
    if !(reason.contains("HTTP ") || unmatchable) || transient.iter().any(|t| reason.contains(t)) {
        return None;
    }
    let mut text = reason.clone();
    let ids: Vec<&String> = match op {
        TargetOp::UpdateUser { target_id, .. }
        | TargetOp::DeleteUser { target_id }
        | TargetOp::UpdateGroup { target_id, .. }
        | TargetOp::DeleteGroup { target_id } => vec![target_id],
        TargetOp::AddMembers { group_id, user_ids }
        | TargetOp::RemoveMembers { group_id, user_ids }
        | TargetOp::AddChildGroups {
            group_id,
            child_ids: user_ids,
        }
        | TargetOp::RemoveChildGroups {
            group_id,
            child_ids: user_ids,
        } => std::iter::once(group_id).chain(user_ids.iter()).collect(),
        TargetOp::CreateUser { .. } | TargetOp::CreateGroup { .. } => Vec::new(),
    };
    for id in ids.into_iter().filter(|id| !id.is_empty()) {
        text = text.replace(id.as_str(), "{id}");
    }
    Some(text)
}

impl SameFailure {
    pub(crate) fn success(&self, op: &TargetOp) {
        if let Ok(mut k) = self.kinds.lock() {
            k.entry(op.kind()).or_default().succeeded = true;
        }
    }

    /// After the first failed attempt of an operation: the kind and the shared failure when
    /// this makes [`SAME_FAILURES`] of its kind failing the same way.
    pub(crate) fn failure(
        &self,
        op: &TargetOp,
        outcome: &Outcome,
    ) -> Option<(String, u32, String)> {
        let mut kinds = self.kinds.lock().ok()?;
        let k = kinds.entry(op.kind()).or_default();
        if k.succeeded {
            return None;
        }
        let Some(reason) = shared_reason(op, outcome) else {
            // Not a failure of the kind: whatever the kind shared so far is no longer shared.
            k.reason = None;
            k.count = 0;
            return None;
        };
        if k.reason.as_deref() == Some(reason.as_str()) {
            k.count += 1;
        } else {
            k.reason = Some(reason.clone());
            k.count = 1;
        }
        (k.count >= SAME_FAILURES).then(|| (op.kind().to_string(), k.count, reason))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use idsync_core::User;

    fn create(name: &str) -> TargetOp {
        TargetOp::CreateUser {
            user: User::new(name.to_string(), name.to_string()),
        }
    }

    fn update(id: &str) -> TargetOp {
        TargetOp::UpdateUser {
            target_id: id.into(),
            before: User::new("a".to_string(), "a".to_string()),
            after: User::new("a".to_string(), "a".to_string()),
        }
    }

    fn rejected(r: &str) -> Outcome {
        Outcome::Rejected { reason: r.into() }
    }

    #[test]
    fn the_same_error_on_the_first_few_of_a_kind_is_deterministic() {
        let s = SameFailure::default();
        let e = rejected("POST /Users: HTTP 500: not supported");
        assert!(s.failure(&create("a"), &e).is_none());
        assert!(s.failure(&create("b"), &e).is_none());
        let (kind, n, reason) = s.failure(&create("c"), &e).unwrap();
        assert_eq!((kind.as_str(), n), ("create_user", 3));
        assert!(reason.contains("not supported"));
    }

    #[test]
    fn a_target_that_cannot_be_matched_is_deterministic() {
        let s = SameFailure::default();
        let e = rejected("cannot match safely (nothing is created or linked): no Resources list");
        assert!(s.failure(&create("a"), &e).is_none());
        assert!(s.failure(&create("b"), &e).is_none());
        assert!(s.failure(&create("c"), &e).is_some());
        // Transport errors are the health circuit's, not counted here.
        let s = SameFailure::default();
        let e = rejected("POST /Users: error sending request: Connection refused");
        for n in ["a", "b", "c", "d"] {
            assert!(s.failure(&create(n), &e).is_none());
        }
    }

    #[test]
    fn ids_in_the_path_do_not_make_failures_different() {
        let s = SameFailure::default();
        for id in ["u1", "u2"] {
            let e = rejected(&format!("PATCH /Users/{id}: HTTP 501: no PATCH"));
            assert!(s.failure(&update(id), &e).is_none());
        }
        let e = rejected("PATCH /Users/u3: HTTP 501: no PATCH");
        assert!(s.failure(&update("u3"), &e).is_some());
    }

    #[test]
    fn object_failures_and_transient_ones_do_not_count() {
        let s = SameFailure::default();
        let conflict = rejected("POST /Users: HTTP 409 (uniqueness): exists");
        let busy = Outcome::Retryable {
            reason: "POST /Users: HTTP 503".into(),
            retry_after: None,
        };
        for n in ["a", "b", "c", "d"] {
            assert!(s.failure(&create(n), &conflict).is_none());
            assert!(s.failure(&create(n), &busy).is_none());
        }
        // Different failures are the objects' own.
        assert!(s
            .failure(&create("e"), &rejected("HTTP 400: bad a"))
            .is_none());
        assert!(s
            .failure(&create("f"), &rejected("HTTP 400: bad b"))
            .is_none());
        assert!(s
            .failure(&create("g"), &rejected("HTTP 400: bad a"))
            .is_none());
        // Once one of the kind succeeded, failures are the objects'.
        s.success(&create("h"));
        let e = rejected("POST /Users: HTTP 500: boom");
        for n in ["i", "j", "k", "l"] {
            assert!(s.failure(&create(n), &e).is_none());
        }
    }
}
