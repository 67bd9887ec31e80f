//! The traits every source and target implements.
//!
//! A **source** yields either a complete snapshot or the changes since an opaque cursor, with the
//! new cursor. The engine stores that cursor only after the changes were committed to the
//! directory. A **target** applies one operation at a time and says, per item, whether it was
//! applied, may be retried, or was rejected; it can search for an existing object by the
//! matching attributes, read back its real state for a reconcile, and check its health.

use crate::model::{Group, MemberRef, Snapshot, User};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One change to a directory, as a delta-capable source reports it (and as the change log
/// records it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    UpsertUser { user: User },
    DeleteUser { source_id: String },
    UpsertGroup { group: Group },
    DeleteGroup { source_id: String },
    AddMember { group: String, member: MemberRef },
    RemoveMember { group: String, member: MemberRef },
}

impl Change {
    /// The kind of object changed and its source id (for memberships: the group).
    pub fn object(&self) -> (&'static str, &str) {
        match self {
            Change::UpsertUser { user } => ("user", &user.source_id),
            Change::DeleteUser { source_id } => ("user", source_id),
            Change::UpsertGroup { group } => ("group", &group.source_id),
            Change::DeleteGroup { source_id } => ("group", source_id),
            Change::AddMember { group, .. } | Change::RemoveMember { group, .. } => {
                ("membership", group)
            }
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Change::UpsertUser { .. } => "upsert_user",
            Change::DeleteUser { .. } => "delete_user",
            Change::UpsertGroup { .. } => "upsert_group",
            Change::DeleteGroup { .. } => "delete_group",
            Change::AddMember { .. } => "add_member",
            Change::RemoveMember { .. } => "remove_member",
        }
    }
}

/// What a source read yields.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceRead {
    /// The whole directory, read completely. Replaces the directory's contents.
    Full {
        snapshot: Snapshot,
        cursor: Option<String>,
    },
    /// The changes since the cursor that was passed in, and the cursor to pass next time.
    Delta {
        changes: Vec<Change>,
        cursor: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("invalid data in {location}: {message}")]
    Invalid { location: String, message: String },
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("the source is unavailable: {0}")]
    Unavailable(String),
    #[error("the cursor is no longer valid: {0}")]
    CursorExpired(String),
}

/// What a source's reads have cost so far (counters only grow). A read's cost is the
/// difference of the counters around it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadStats {
    pub requests: u64,
    pub retries: u64,
    pub throttled: u64,
    /// Microsoft Graph's resource units.
    pub resource_units: u64,
}

impl ReadStats {
    /// `self - earlier`, per counter.
    pub fn since(&self, earlier: &ReadStats) -> ReadStats {
        ReadStats {
            requests: self.requests.saturating_sub(earlier.requests),
            retries: self.retries.saturating_sub(earlier.retries),
            throttled: self.throttled.saturating_sub(earlier.throttled),
            resource_units: self.resource_units.saturating_sub(earlier.resource_units),
        }
    }
}

/// A source of identities.
#[async_trait]
pub trait Source: Send + Sync {
    /// A short description for logs ("file users.json").
    fn describe(&self) -> String;
    /// Counters of what the source's reads cost (remote sources); `None` for local ones.
    fn stats(&self) -> Option<ReadStats> {
        None
    }
    /// Read the changes since `cursor`, or everything when `cursor` is `None` or the source
    /// cannot answer incrementally. A failed read must return an error, never a partial
    /// snapshot.
    async fn read(&self, cursor: Option<&str>) -> Result<SourceRead, SourceError>;
}

/// An operation with target ids resolved, as a target receives it.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetOp {
    CreateUser {
        user: User,
    },
    UpdateUser {
        target_id: String,
        before: User,
        after: User,
    },
    DeleteUser {
        target_id: String,
    },
    CreateGroup {
        group: Group,
        /// Target ids of the first members, created with the group: a target must have them
        /// all as members when it answers `Applied` (in the create, or added right after).
        members: Vec<String>,
    },
    UpdateGroup {
        target_id: String,
        before: Group,
        after: Group,
    },
    DeleteGroup {
        target_id: String,
    },
    AddMembers {
        group_id: String,
        user_ids: Vec<String>,
    },
    RemoveMembers {
        group_id: String,
        user_ids: Vec<String>,
    },
    /// Nested groups: groups become direct members of a group (only a target that serves
    /// nested groups is sent these; see `idsync_core::nesting`).
    AddChildGroups {
        group_id: String,
        child_ids: Vec<String>,
    },
    RemoveChildGroups {
        group_id: String,
        child_ids: Vec<String>,
    },
}

impl TargetOp {
    /// The operation's kind, as plans and logs name it.
    pub fn kind(&self) -> &'static str {
        match self {
            TargetOp::CreateUser { .. } => "create_user",
            TargetOp::UpdateUser { .. } => "update_user",
            TargetOp::DeleteUser { .. } => "delete_user",
            TargetOp::CreateGroup { .. } => "create_group",
            TargetOp::UpdateGroup { .. } => "update_group",
            TargetOp::DeleteGroup { .. } => "delete_group",
            TargetOp::AddMembers { .. } => "add_members",
            TargetOp::RemoveMembers { .. } => "remove_members",
            TargetOp::AddChildGroups { .. } => "add_child_groups",
            TargetOp::RemoveChildGroups { .. } => "remove_child_groups",
        }
    }
}

/// The outcome of one operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Applied. Creates return the id the target gave the object.
    Applied { target_id: Option<String> },
    /// Failed in a way that may pass later (throttled, 5xx, timeout).
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Refused for good (invalid value, conflict, forbidden); retrying will not help.
    Rejected { reason: String },
    /// The object the operation names does not exist in the target (deleted by hand, or a
    /// delete that was applied before a crash). A delete counts this as done; an update makes
    /// the engine forget the object so that the next plan creates it again.
    NotFound { reason: String },
    /// The target does not take this object by its own rules (a user outside an Atlassian
    /// organisation's verified domains): nothing was written, nothing is wrong, and the reason
    /// goes to the log.
    Skipped { reason: String },
}

/// Errors of the target as a whole (as opposed to one operation).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("the target is unavailable: {0}")]
    Unavailable(String),
    /// The target answers but asks the caller to slow down (429, or 503 with `Retry-After`):
    /// not a failure of the target or of the object; wait `retry_after` and ask again.
    #[error("the target asks to slow down (retry after {} s): {reason}", retry_after.as_secs_f64())]
    Throttled {
        reason: String,
        retry_after: std::time::Duration,
    },
    #[error("the target answered something unexpected: {0}")]
    Protocol(String),
    /// More than one object of the target verifies as the match of `object`: nothing is
    /// written to any of them (the target's own search is never trusted blindly).
    #[error("{object} matches {} objects in the target ({}): a conflict, nothing is written to any of them", candidates.len(), candidates.join(", "))]
    Ambiguous {
        object: String,
        candidates: Vec<String>,
    },
    /// The target cannot be searched in a way whose answers can be verified (it neither
    /// filters nor lets itself be listed): nothing is created or linked.
    #[error("cannot match safely (nothing is created or linked): {0}")]
    CannotMatch(String),
    /// The target answers, but every operation of one kind fails the same way (the first
    /// few in a row, none succeeded): retrying each object would only repeat it.
    #[error("every {kind} fails the same way (its first {failed} failed alike, none succeeded): {error}")]
    Deterministic {
        kind: String,
        failed: u32,
        error: String,
    },
}

/// A user or group as the target holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteUser {
    pub target_id: String,
    pub user: User,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoteGroup {
    pub target_id: String,
    pub group: Group,
    /// Target ids of the group's user members.
    pub members: Vec<String>,
}

/// The real state of a target, read for a full reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetSnapshot {
    pub users: Vec<RemoteUser>,
    pub groups: Vec<RemoteGroup>,
}

/// What a target holds none of at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Emptiness {
    pub users: bool,
    pub groups: bool,
}

/// The existing object a create was matched to, and by what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub target_id: String,
    /// The matching attribute and the value that verified the match, as people read it
    /// (`userName "ann@example.com"`); None where the target does not say.
    pub by: Option<String>,
}

impl Match {
    /// How a log line says it: `matched the existing user 17 by userName "ann@example.com"`.
    pub fn describe(&self, kind: &str) -> String {
        match &self.by {
            Some(by) => format!("matched the existing {kind} {} by {by}", self.target_id),
            None => format!(
                "matched the existing {kind} {} by the matching attributes",
                self.target_id
            ),
        }
    }
}

/// A target application.
#[async_trait]
pub trait Target: Send + Sync {
    fn describe(&self) -> String;
    /// Whether the target answers and accepts our credentials.
    async fn health(&self) -> Result<(), TargetError>;
    /// Find an existing user by the matching attributes (userName, then email). Called before
    /// every create so that a create repeated after a crash links to the first one.
    async fn find_user(&self, user: &User) -> Result<Option<String>, TargetError>;
    /// Find an existing group by its display name.
    async fn find_group(&self, group: &Group) -> Result<Option<String>, TargetError>;
    /// [`Target::find_user`], saying which matching attribute matched. A target that cannot
    /// say keeps this default (the match without the attribute).
    async fn find_user_match(&self, user: &User) -> Result<Option<Match>, TargetError> {
        Ok(self.find_user(user).await?.map(|target_id| Match {
            target_id,
            by: None,
        }))
    }
    /// [`Target::find_group`], saying which matching attribute matched.
    async fn find_group_match(&self, group: &Group) -> Result<Option<Match>, TargetError> {
        Ok(self.find_group(group).await?.map(|target_id| Match {
            target_id,
            by: None,
        }))
    }
    /// Whether the target holds no users, and no groups, at all. A run that finds it empty
    /// when it starts creates without searching first (nothing there could match; a retried
    /// create still searches). A target that cannot tell cheaply says neither.
    async fn emptiness(&self) -> Result<Emptiness, TargetError> {
        Ok(Emptiness::default())
    }
    /// Apply one operation.
    async fn apply(&self, op: &TargetOp) -> Outcome;
    /// Read everything the target holds (users, groups, members).
    async fn read_state(&self) -> Result<TargetSnapshot, TargetError>;
    /// A user as this target can hold it: attributes it cannot store are dropped, so that the
    /// plan does not chase differences the target can never remove.
    fn project_user(&self, user: User) -> User {
        user
    }
    /// A user read from the target (for a reconcile's comparison) without what this target is
    /// set never to be sent: what is never sent is never compared.
    fn project_observed_user(&self, user: User) -> User {
        user
    }
    /// A group as this target can hold it.
    fn project_group(&self, group: Group) -> Group {
        group
    }
    /// Whether the target takes a group's first members with its create
    /// (`TargetOp::CreateGroup::members`): the plan then creates a group with members after
    /// those users, and no separate `AddMembers` for them.
    fn members_in_create(&self) -> bool {
        false
    }
    /// Whether the target can rename a group in place (Atlassian Cloud cannot).
    fn can_rename_groups(&self) -> bool {
        true
    }
    /// The form of the user ids this target answers, where it changed between idsync
    /// versions (Bitbucket's numeric user ids became usernames): the engine translates a
    /// flow's ledger whose recorded form differs, once, before a run plans
    /// ([`Target::translate_user_ids`]). `None`: the ids have one form, nothing to translate.
    fn user_id_form(&self) -> Option<&'static str> {
        None
    }
    /// The ledger's user ids in the form `from` (`None`: recorded before forms were), each
    /// one this target can place mapped to its id in [`Target::user_id_form`]. An id left out
    /// is kept as it is (its user is gone from the target).
    async fn translate_user_ids(
        &self,
        _from: Option<&str>,
        _ids: &[String],
    ) -> Result<std::collections::HashMap<String, String>, TargetError> {
        Ok(std::collections::HashMap::new())
    }
    /// Whether some user in the target holds `value` in `attribute` (a target attribute name,
    /// as attribute mappings write them), for SelectUniqueValue. A target that cannot tell
    /// answers false.
    async fn value_taken(&self, _attribute: &str, _value: &str) -> Result<bool, TargetError> {
        Ok(false)
    }
    /// Start with these request forms, remembered from earlier runs (decision 0026). A target
    /// with one way of sending each change ignores them.
    fn use_forms(&self, _forms: &[crate::LearnedForm]) {}
    /// Leave out these user attributes too, remembered from earlier refusals (issue 16).
    fn use_omissions(&self, _paths: &[String]) {}
    /// The user attributes found refused during the run (handed over once).
    fn take_learned_omissions(&self) -> Vec<crate::LearnedOmission> {
        Vec::new()
    }
    /// The request forms this target learned since this was last asked (each is handed over
    /// once, for the engine to remember).
    fn take_learned_forms(&self) -> Vec<crate::LearnedForm> {
        Vec::new()
    }
    /// Start with what the target's answers showed it keeps, remembered from earlier runs
    /// (issue 16, decision 0029).
    fn use_keeps(&self, _learned: &[crate::keeps::LearnedKeep]) {}
    /// What is known of what the target keeps before a reconcile reads it (its schema, its
    /// answers to what it was sent): compared, or not, whatever the read shows. A target that
    /// cannot tell knows nothing, and the read alone decides.
    async fn known_keeps(&self) -> crate::keeps::Known {
        crate::keeps::Known::default()
    }
    /// What the target's answers showed it keeps during the run (handed over once).
    fn take_learned_keeps(&self) -> Vec<crate::keeps::LearnedKeep> {
        Vec::new()
    }
    /// How this target disables a user, in words, for the plan to say (targets that differ by
    /// version or setting, such as Jira before 8.3); `None` where disabling is just that.
    async fn disable_note(&self) -> Result<Option<String>, TargetError> {
        Ok(None)
    }
    /// The application roles whose seats a licence limits (Jira's application roles), with
    /// the groups that grant each, read when a plan may give users application access;
    /// empty where the target counts no seats or they are unlimited.
    async fn seat_roles(&self) -> Result<Vec<crate::SeatRole>, TargetError> {
        Ok(Vec::new())
    }
    /// What these existing users (target ids) hold of those roles now, and what they get
    /// back when enabled; users the target does not know are left out.
    async fn seat_holders(
        &self,
        _target_ids: &[String],
    ) -> Result<std::collections::HashMap<String, crate::SeatHolder>, TargetError> {
        Ok(std::collections::HashMap::new())
    }
    /// The run is over: what the target held for it alone (a listing to match creates
    /// against) is let go, so the next run starts from the target as it is then.
    fn end_run(&self) {}
    /// The run is about to create these many users and groups (each a first attempt): a
    /// target that can match many creates more cheaply against one listing of what it holds
    /// than with a search each may decide to list (Jira, decision 0040). Called once per run
    /// that creates, before its creates.
    fn expect_creates(&self, _users: usize, _groups: usize) {}
}

/// An error with its causes, as `e: cause: cause` (a cause whose text the line already ends
/// with is not said again). Transport errors say only "error sending request" themselves; the
/// reason ("Connection refused") is in their causes.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
