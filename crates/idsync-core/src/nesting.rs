//! Nested groups for a target that serves them (a Crowd directory, decision 0033).
//!
//! A flow computes memberships flat: every rule (scope, group rules, required and default
//! groups, the memberships kept for deprovisioned users) works on effective memberships. For a
//! target that serves nested groups the flat result is then turned into direct memberships
//! and group-in-group edges ([`nest`]) such that the nested membership the target serves is
//! exactly the flat one:
//!
//! - an edge `parent -> child` is kept when both groups are the flow's and every effective
//!   member of the child is an effective member of the parent (a rule can break that, e.g. a
//!   default group or two source groups mapped to one target group: the edge is then left out
//!   and the child's users are direct members of the parent);
//! - a child group outside the flow's groups is looked through: its own groups that are the
//!   flow's become children of the parent, and its users are lifted into the parent as direct
//!   members, so nobody loses a membership;
//! - a user is a direct member where the source says so, plus wherever the nesting kept would
//!   otherwise miss it (lifted users, default groups);
//! - cycles are kept (Crowd allows them; its nested queries stop at a group seen before).
//!   A group is never its own child.

use crate::groups::{target_keys, GroupRules};
use crate::model::{Key, MemberKind, Snapshot};
use crate::plan::{Action, Operation, Reason};
use crate::state::{DesiredState, LedgerState};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Group keys to sets of direct member group keys.
pub type ChildGroups = BTreeMap<String, BTreeSet<String>>;

/// The effective users of every group named in `members` or `child_groups`, given its direct
/// users and direct member groups (cycles included): what a nested directory answers for
/// `group/user/nested`.
pub fn effective(
    members: &BTreeMap<String, BTreeSet<Key>>,
    child_groups: &ChildGroups,
) -> BTreeMap<String, BTreeSet<Key>> {
    let mut group_keys: BTreeSet<&str> = members.keys().map(String::as_str).collect();
    for (parent, children) in child_groups {
        group_keys.insert(parent);
        group_keys.extend(children.iter().map(String::as_str));
    }
    let group_keys: Vec<&str> = group_keys.into_iter().collect();
    let gidx: HashMap<&str, usize> = group_keys
        .iter()
        .enumerate()
        .map(|(i, g)| (*g, i))
        .collect();
    let mut users: Vec<&Key> = Vec::new();
    let mut uidx: HashMap<&str, u32> = HashMap::new();
    let mut direct_users: Vec<Vec<u32>> = vec![Vec::new(); group_keys.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); group_keys.len()];
    for (g, us) in members {
        let Some(&gi) = gidx.get(g.as_str()) else {
            continue;
        };
        for u in us {
            let ui = *uidx.entry(&**u).or_insert_with(|| {
                users.push(u);
                u32::try_from(users.len() - 1).unwrap_or(u32::MAX)
            });
            direct_users[gi].push(ui);
        }
    }
    for (g, cs) in child_groups {
        if let Some(&gi) = gidx.get(g.as_str()) {
            children[gi].extend(cs.iter().filter_map(|c| gidx.get(c.as_str()).copied()));
        }
    }
    let (closed, _) = crate::graph::closure(&direct_users, &children);
    group_keys
        .iter()
        .zip(closed)
        .map(|(g, us)| {
            let set = us
                .iter()
                .filter_map(|&u| users.get(u as usize).map(|k| Key::clone(k)))
                .collect();
            (g.to_string(), set)
        })
        .collect()
}

/// A nested ledger as a flat target would hold it: the effective users of each group as its
/// members, no child groups. The flat rules of a flow (default groups, memberships kept for
/// deprovisioned users) read this.
pub fn flattened(ledger: &LedgerState) -> LedgerState {
    let mut flat = ledger.clone();
    if ledger.child_groups.is_empty() {
        return flat;
    }
    flat.members = effective(&ledger.members, &ledger.child_groups)
        .into_iter()
        .filter(|(g, m)| !m.is_empty() && ledger.groups.contains_key(g))
        .collect();
    flat.child_groups.clear();
    flat
}

/// What [`nest`] made of a flow's groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nested {
    /// Group-in-group edges kept.
    pub edges: usize,
    /// Direct memberships added where the source had the user only through a group the flow
    /// does not serve, or through a rule (a default group).
    pub lifted: usize,
    /// Edges of the source left out because a rule made the child's members more than the
    /// parent's (parent key, child key).
    pub dropped: Vec<(String, String)>,
}

/// Turn a flow's flat desired state (effective members, after every rule) into direct members
/// and child groups, from the source's nesting in `snapshot` carried through the group `rules`.
/// `ledger` is what the target holds (direct members kept for deprovisioned users stay direct).
/// The served nested membership of every group is then exactly its flat one.
pub fn nest(
    desired: &mut DesiredState,
    snapshot: &Snapshot,
    rules: &GroupRules,
    ledger: &LedgerState,
) -> Nested {
    let mut out = Nested::default();
    // Each source group's target groups that the flow serves.
    let targets: HashMap<&str, Vec<String>> = snapshot
        .groups
        .iter()
        .map(|g| {
            let keys = target_keys(rules, &g.source_id, &g.display_name)
                .into_iter()
                .filter(|k| desired.groups.contains_key(k))
                .collect();
            (g.source_id.as_str(), keys)
        })
        .collect();
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    // Per target group, the users the source (or the ledger) has as its direct members.
    let mut hint: HashMap<&str, Vec<&str>> = HashMap::new();
    for m in &snapshot.memberships {
        match m.member.kind {
            MemberKind::Group => children
                .entry(m.group.as_str())
                .or_default()
                .push(m.member.id.as_str()),
            MemberKind::User => {
                for t in targets.get(m.group.as_str()).into_iter().flatten() {
                    hint.entry(t.as_str()).or_default().push(&m.member.id);
                }
            }
        }
    }
    // Users the target keeps that the flow no longer provisions stay where they were.
    for (g, members) in &ledger.members {
        for u in members {
            if !desired.users.contains_key(&**u) {
                hint.entry(g.as_str()).or_default().push(u);
            }
        }
    }
    // Edges between served groups, looking through groups the flow does not serve.
    let mut candidates: BTreeSet<(String, String)> = BTreeSet::new();
    for (&source, parents) in &targets {
        if parents.is_empty() {
            continue;
        }
        let mut seen: HashSet<&str> = HashSet::new();
        let mut stack: Vec<&str> = children.get(source).cloned().unwrap_or_default();
        while let Some(c) = stack.pop() {
            if !seen.insert(c) {
                continue;
            }
            match targets.get(c) {
                Some(keys) if !keys.is_empty() => {
                    for p in parents {
                        for k in keys {
                            candidates.insert((p.clone(), k.clone()));
                        }
                    }
                }
                // Not served (or not a group the source has): look through it.
                _ => stack.extend(children.get(c).into_iter().flatten().copied()),
            }
        }
    }
    let empty = BTreeSet::new();
    let flat = std::mem::take(&mut desired.members);
    let mut edges: ChildGroups = BTreeMap::new();
    for (parent, child) in candidates {
        if parent == child {
            continue;
        }
        let (pm, cm) = (
            flat.get(&parent).unwrap_or(&empty),
            flat.get(&child).unwrap_or(&empty),
        );
        if cm.is_subset(pm) {
            edges.entry(parent).or_default().insert(child);
        } else {
            out.dropped.push((parent, child));
        }
    }
    // Direct members where the source (or the ledger) has them, then whatever the nesting
    // kept does not reach.
    let mut direct: BTreeMap<String, BTreeSet<Key>> = flat
        .iter()
        .map(|(g, m)| {
            let d = hint
                .get(g.as_str())
                .into_iter()
                .flatten()
                .filter_map(|u| m.get(*u).cloned())
                .collect();
            (g.clone(), d)
        })
        .collect();
    let reached = effective(&direct, &edges);
    for (g, m) in &flat {
        let got = reached.get(g).unwrap_or(&empty);
        let missing: Vec<Key> = m.difference(got).cloned().collect();
        out.lifted += missing.len();
        direct.entry(g.clone()).or_default().extend(missing);
    }
    direct.retain(|_, m| !m.is_empty());
    out.edges = edges.values().map(BTreeSet::len).sum();
    desired.members = direct;
    desired.child_groups = edges;
    out
}

/// The plan's group-in-group operations: edges to add and to take out, per parent group the
/// flow serves (`recreated`: groups made anew, which start without children).
pub(crate) fn plan_child_groups(
    desired: &DesiredState,
    ledger: &LedgerState,
    recreated: &BTreeSet<&String>,
    batch: usize,
    ops: &mut Vec<Operation>,
) {
    let empty = BTreeSet::new();
    for (key, group) in &desired.groups {
        let want = desired.child_groups.get(key).unwrap_or(&empty);
        let have = if recreated.contains(key) {
            &empty
        } else {
            ledger.child_groups.get(key).unwrap_or(&empty)
        };
        let add: Vec<String> = want.difference(have).cloned().collect();
        let remove: Vec<String> = have.difference(want).cloned().collect();
        for chunk in add.chunks(batch.max(1)) {
            ops.push(Operation {
                key: key.clone(),
                action: Action::AddChildGroups {
                    group: group.display_name.clone(),
                    groups: chunk.to_vec(),
                },
                reason: Reason::ChildGroupsAdded,
            });
        }
        for chunk in remove.chunks(batch.max(1)) {
            ops.push(Operation {
                key: key.clone(),
                action: Action::RemoveChildGroups {
                    group: group.display_name.clone(),
                    groups: chunk.to_vec(),
                },
                reason: Reason::ChildGroupsRemoved,
            });
        }
    }
}
