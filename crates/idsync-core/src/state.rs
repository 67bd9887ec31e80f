//! The two states a flow compares: the *desired* state (the directory through the flow's rules)
//! and the *ledger* (what idsync has written to the target, with the target's ids).

use crate::graph::MembershipGraph;
use crate::model::{Group, Snapshot, User};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What the target should hold. Keys are source ids. Group members are effective (flattened)
/// user keys: targets such as Atlassian Cloud have no nested groups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    pub users: BTreeMap<String, User>,
    pub groups: BTreeMap<String, Group>,
    pub members: BTreeMap<String, BTreeSet<String>>,
}

/// A user as written to the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerUser {
    pub target_id: String,
    pub user: User,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerGroup {
    pub target_id: String,
    pub group: Group,
}

/// What a flow has written to its target. Keys are source ids.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LedgerState {
    pub users: BTreeMap<String, LedgerUser>,
    pub groups: BTreeMap<String, LedgerGroup>,
    pub members: BTreeMap<String, BTreeSet<String>>,
}

impl LedgerState {
    pub fn user_target_id(&self, key: &str) -> Option<&str> {
        self.users.get(key).map(|u| u.target_id.as_str())
    }
    pub fn group_target_id(&self, key: &str) -> Option<&str> {
        self.groups.get(key).map(|g| g.target_id.as_str())
    }
    /// Number of memberships recorded.
    pub fn membership_count(&self) -> usize {
        self.members.values().map(BTreeSet::len).sum()
    }
}

/// The desired state of a flow with identity mapping: every user and group of the directory,
/// with nested groups flattened into their effective users. Internal ids are cleared: they are
/// the store's business, not the target's.
pub fn desired_state(snapshot: &Snapshot) -> DesiredState {
    let graph = MembershipGraph::build(&snapshot.groups, &snapshot.users, &snapshot.memberships);
    let users = snapshot
        .users
        .iter()
        .map(|u| {
            let mut u = u.clone();
            u.id.clear();
            (u.source_id.clone(), u)
        })
        .collect();
    let groups = snapshot
        .groups
        .iter()
        .map(|g| {
            let mut g = g.clone();
            g.id.clear();
            (g.source_id.clone(), g)
        })
        .collect();
    let members = graph
        .effective_members()
        .into_iter()
        .filter(|(_, m)| !m.is_empty())
        .collect();
    DesiredState {
        users,
        groups,
        members,
    }
}
