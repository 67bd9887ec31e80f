//! The store's records.

use idsync_core::{Action, Change};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteSummary {
    pub changes: usize,
    pub last_seq: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedChange {
    pub seq: i64,
    pub at_ms: i64,
    pub change: Change,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryCounts {
    pub users: i64,
    pub groups: i64,
    pub memberships: i64,
    pub last_seq: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeSummary {
    pub runs: u64,
    pub operations: u64,
    pub changes: u64,
}

/// The outcome of one operation of a run, as the engine hands it to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct OpRecord {
    /// Position of the operation in the run's plan.
    pub seq: i64,
    pub op: idsync_core::Operation,
    /// Whether the ledger changes (the operation took effect in the target).
    pub applied: bool,
    /// The id the target gave (or matching found) for a created object.
    pub target_id: Option<String>,
    /// "applied", "linked", "rejected", "failed", "not_found", "forgotten", ...
    pub outcome: String,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRun {
    pub id: String,
    pub flow: String,
    pub trigger: String,
    pub mode: String,
    pub started_ms: i64,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    PartiallyFailed,
    Failed,
    Held,
    /// The process running it stopped before the end (killed, the machine went down, the
    /// disk was full); its counts are what its provisioning log recorded.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::PartiallyFailed => "partially_failed",
            RunStatus::Failed => "failed",
            RunStatus::Held => "held",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "partially_failed" => RunStatus::PartiallyFailed,
            "failed" => RunStatus::Failed,
            "held" => RunStatus::Held,
            "interrupted" => RunStatus::Interrupted,
            other => return Err(format!("unknown run status {other:?}")),
        })
    }
}

/// Counters of a run ("planned", "applied", "failed", "create_user.applied", "read.users", ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunCounts(pub BTreeMap<String, i64>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub flow: String,
    pub trigger: String,
    pub mode: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub status: RunStatus,
    pub counts: RunCounts,
    pub error: Option<String>,
    pub dry_run: bool,
    /// For a held run: `approved`, `rejected` or `superseded` once answered.
    pub resolution: Option<String>,
    pub resolved_ms: Option<i64>,
}

/// One line of the provisioning log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpLog {
    pub run_id: String,
    pub seq: i64,
    pub key: String,
    /// userName or displayName of the object.
    pub object: String,
    pub action: String,
    pub reason: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub changed: Vec<String>,
    pub outcome: String,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub at_ms: i64,
}

/// A line of the provisioning log as it is written: its values as JSON text, encoded once (a
/// created user's text is also the ledger's).
pub(crate) struct OpRow<'a> {
    pub rec: &'a OpRecord,
    pub object: String,
    pub reason: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub changed: String,
}

impl<'a> OpRow<'a> {
    pub(crate) fn of(rec: &'a OpRecord) -> Result<OpRow<'a>, serde_json::Error> {
        #[derive(Serialize)]
        struct Members<'a> {
            users: &'a [idsync_core::Key],
        }
        #[derive(Serialize)]
        struct ChildGroups<'a> {
            groups: &'a [String],
        }
        fn text<T: Serialize>(v: &T) -> Result<Option<String>, serde_json::Error> {
            serde_json::to_string(v).map(Some)
        }
        const NOTHING: &str = "[]";
        let op = &rec.op;
        let (before, after, changed) = match &op.action {
            Action::CreateUser { user } => (None, text(user)?, NOTHING.to_string()),
            Action::UpdateUser {
                before,
                after,
                changed,
            } => (text(before)?, text(after)?, serde_json::to_string(changed)?),
            Action::DisableUser { before, after } => {
                (text(before)?, text(after)?, r#"["active"]"#.to_string())
            }
            Action::DeleteUser { before } => (text(before)?, None, NOTHING.to_string()),
            Action::CreateGroup { group, .. } => (None, text(group)?, NOTHING.to_string()),
            Action::UpdateGroup {
                before,
                after,
                changed,
            } => (text(before)?, text(after)?, serde_json::to_string(changed)?),
            Action::DeleteGroup { before } => (text(before)?, None, NOTHING.to_string()),
            Action::AddMembers { users, .. } => {
                (None, text(&Members { users })?, NOTHING.to_string())
            }
            Action::RemoveMembers { users, .. } => {
                (text(&Members { users })?, None, NOTHING.to_string())
            }
            Action::AddChildGroups { groups, .. } => {
                (None, text(&ChildGroups { groups })?, NOTHING.to_string())
            }
            Action::RemoveChildGroups { groups, .. } => {
                (text(&ChildGroups { groups })?, None, NOTHING.to_string())
            }
        };
        Ok(OpRow {
            rec,
            object: op.object_label(),
            reason: op.reason.to_string(),
            before,
            after,
            changed,
        })
    }
}

/// One notification sent (or tried).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRecord {
    pub at_ms: i64,
    /// `held`, `failed`, `quarantined`.
    pub event: String,
    pub flow: String,
    pub run_id: Option<String>,
    /// `email` or `webhook`.
    pub channel: String,
    /// The recipients, or the webhook URL.
    pub destination: String,
    pub subject: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// A flow's health: bad runs in a row and quarantine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowHealth {
    /// Bad runs in a row (runs that failed, or where most operations failed).
    pub failures: i64,
    pub last_failure_ms: Option<i64>,
    /// What went wrong the last time.
    pub last_failure: Option<String>,
    /// Since when the flow is quarantined, if it is.
    pub quarantined_ms: Option<i64>,
}
