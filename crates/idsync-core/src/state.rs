//! The two states a flow compares: the *desired* state (the directory through the flow's rules)
//! and the *ledger* (what idsync has written to the target, with the target's ids).

use crate::graph::MembershipGraph;
use crate::model::{Group, Key, Snapshot, User};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What the target should hold. Keys are source ids. Group members are effective (flattened)
/// user keys: targets such as Atlassian Cloud have no nested groups. A flow to a target that
/// serves nested groups turns them into direct members and `child_groups` last
/// (`crate::nesting::nest`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    pub users: BTreeMap<String, User>,
    pub groups: BTreeMap<String, Group>,
    pub members: BTreeMap<String, BTreeSet<Key>>,
    /// Per group key, the keys of the groups that are its direct members (nested groups);
    /// empty for flat targets.
    pub child_groups: BTreeMap<String, BTreeSet<String>>,
}

/// A user as written to the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerUser {
    pub target_id: String,
    pub user: User,
    /// When the target user was disabled (for deletion after a grace period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_ms: Option<i64>,
    /// The user's real values, kept while the target holds an anonymized copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<User>,
}

impl LedgerUser {
    pub fn new(target_id: impl Into<String>, user: User) -> Self {
        LedgerUser {
            target_id: target_id.into(),
            user,
            disabled_ms: None,
            original: None,
        }
    }
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
    /// Direct user members; effective ones for a flat target.
    pub members: BTreeMap<String, BTreeSet<Key>>,
    /// Per group key, its direct member groups (a target that serves nested groups).
    pub child_groups: BTreeMap<String, BTreeSet<String>>,
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
        child_groups: BTreeMap::new(),
    }
}

/// The ledger as the target really is, for a full reconcile: every object the ledger knows is
/// looked up by its target id in the target's real state. Objects the ledger knows that the
/// target no longer holds are left out (the plan creates them again, after matching); objects
/// the target holds that idsync never wrote are ignored (they are not ours to manage).
pub fn observed_ledger(
    ledger: &LedgerState,
    real: &crate::connector::TargetSnapshot,
) -> LedgerState {
    use std::collections::HashMap;
    let user_keys: HashMap<&str, &str> = ledger
        .users
        .iter()
        .map(|(k, u)| (u.target_id.as_str(), k.as_str()))
        .collect();
    let group_keys: HashMap<&str, &str> = ledger
        .groups
        .iter()
        .map(|(k, g)| (g.target_id.as_str(), k.as_str()))
        .collect();
    let mut out = LedgerState::default();
    for remote in &real.users {
        if let Some(&key) = user_keys.get(remote.target_id.as_str()) {
            let mut user = remote.user.clone();
            user.id.clear();
            user.source_id = key.to_string();
            out.users.insert(
                key.to_string(),
                LedgerUser {
                    target_id: remote.target_id.clone(),
                    user,
                    disabled_ms: ledger.users.get(key).and_then(|l| l.disabled_ms),
                    original: ledger.users.get(key).and_then(|l| l.original.clone()),
                },
            );
        }
    }
    for remote in &real.groups {
        let Some(&key) = group_keys.get(remote.target_id.as_str()) else {
            continue;
        };
        let mut group = remote.group.clone();
        group.id.clear();
        group.source_id = key.to_string();
        out.groups.insert(
            key.to_string(),
            LedgerGroup {
                target_id: remote.target_id.clone(),
                group,
            },
        );
        let members: BTreeSet<Key> = remote
            .members
            .iter()
            .filter_map(|id| user_keys.get(id.as_str()).map(|k| Key::from(*k)))
            // A member the target no longer holds as a user is not a member (some services
            // keep dangling references after a delete).
            .filter(|k| out.users.contains_key(&**k))
            .collect();
        if !members.is_empty() {
            out.members.insert(key.to_string(), members);
        }
    }
    out
}

/// The prefix of a member key that stands for a raw target id (a dangling member, see
/// `dangling_members`) rather than a source key.
pub const GONE_MEMBER_PREFIX: &str = "gone-from-target:";

/// For a full reconcile: the member ids of groups idsync manages that name no user the target
/// holds (services that keep references after a user is deleted). Per group key, its display
/// name and those ids, sorted.
pub fn dangling_members(
    ledger: &LedgerState,
    real: &crate::connector::TargetSnapshot,
) -> Vec<(String, String, Vec<String>)> {
    use std::collections::{HashMap, HashSet};
    let group_keys: HashMap<&str, &str> = ledger
        .groups
        .iter()
        .map(|(k, g)| (g.target_id.as_str(), k.as_str()))
        .collect();
    let users: HashSet<&str> = real.users.iter().map(|u| u.target_id.as_str()).collect();
    let mut out = Vec::new();
    for remote in &real.groups {
        let Some(&key) = group_keys.get(remote.target_id.as_str()) else {
            continue;
        };
        let mut gone: Vec<String> = remote
            .members
            .iter()
            .filter(|id| !users.contains(id.as_str()))
            .cloned()
            .collect();
        gone.sort();
        gone.dedup();
        if !gone.is_empty() {
            out.push((key.to_string(), remote.group.display_name.clone(), gone));
        }
    }
    out
}
