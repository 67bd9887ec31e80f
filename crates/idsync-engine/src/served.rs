//! Targets idsync serves itself (`type = "crowd"`, decision 0031): applying an operation
//! writes nothing remote. The flow's ledger is the served directory, and each ledger change
//! becomes an event of the target's feed, written in the same transaction.

use async_trait::async_trait;
use idsync_core::{Group, Outcome, Target, TargetError, TargetOp, TargetSnapshot, User};

/// A served target: every operation is applied by being recorded in the flow's ledger.
#[derive(Debug, Clone)]
pub struct ServedTarget {
    name: String,
}

impl ServedTarget {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
        }
    }
}

#[async_trait]
impl Target for ServedTarget {
    fn describe(&self) -> String {
        format!(
            "Crowd-compatible directory served by idsync at /crowd/{}/rest/usermanagement/1/",
            self.name
        )
    }

    async fn health(&self) -> Result<(), TargetError> {
        Ok(())
    }

    /// Nothing exists outside the ledger: a create repeated after a crash finds no earlier
    /// object (the ledger would have it), so there is never anything to link to.
    async fn find_user(&self, _user: &User) -> Result<Option<String>, TargetError> {
        Ok(None)
    }

    async fn find_group(&self, _group: &Group) -> Result<Option<String>, TargetError> {
        Ok(None)
    }

    /// Recorded, not sent: a created object's target id is its source key (stable, and what
    /// the served directory keys it by).
    async fn apply(&self, op: &TargetOp) -> Outcome {
        let target_id = match op {
            TargetOp::CreateUser { user } => Some(user.source_id.clone()),
            TargetOp::CreateGroup { group } => Some(group.source_id.clone()),
            _ => None,
        };
        Outcome::Applied { target_id }
    }

    /// A served target has no remote state: the ledger is what the products read, so there is
    /// nothing to compare it with. The engine refuses a reconcile of it before asking.
    async fn read_state(&self) -> Result<TargetSnapshot, TargetError> {
        Err(TargetError::Unavailable(format!(
            "target {} is served by idsync (type crowd): it has no remote state to read back; its ledger is what the products read",
            self.name
        )))
    }

    /// Crowd groups are known by name: a renamed group is served under its new name (the
    /// products follow the update event; permissions granted to the old name in a product
    /// must be granted again, as with a rename in Crowd).
    fn can_rename_groups(&self) -> bool {
        true
    }
}
