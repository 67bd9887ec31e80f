//! A run for a few users (a login's, decision 0042) plans on their slice: the users, their
//! memberships, every group and the memberships between groups, against the ledger's entries
//! of those users, every ledger group, and the ledger memberships of those users. The plan of
//! the slice is the whole plan's part about those users (what `only_users` keeps of it): each
//! group is in both sides as in the whole plan (so nothing is created, renamed or deleted that
//! the whole plan would not), and each membership diff is the whole one restricted to the
//! users. Its cost grows with the users and the groups, not with the other users and their
//! memberships; the deletion threshold still counts the whole ledger.
//!
//! Flows whose plan reads other users than the run's are planned whole: a target served with
//! nested groups when the directory has groups in groups (whether a group's members are all in
//! another one is a question about every user), `SelectUniqueValue` mappings (a value is free
//! when no other user has it) and `inactive_after` (which also counts the users seen for the
//! first time).

use crate::run::{FlowSpec, Mode, RunOptions};
use idsync_core::{Key, LedgerState, MemberKind, Snapshot};
use std::collections::BTreeSet;

/// The users a run may plan on the slice of, or None: plan the whole directory.
pub(crate) fn users<'a>(flow: &'a FlowSpec, opts: &RunOptions) -> Option<&'a BTreeSet<String>> {
    let keys = flow.only_users.as_ref()?;
    let unique = flow.mapping.rules.iter().any(|r| {
        matches!(&r.expr, idsync_core::mapping::Expr::Call { name, .. } if name.eq_ignore_ascii_case("SelectUniqueValue"))
    });
    (opts.mode != Mode::Reconcile && !unique && flow.inactivity.is_none()).then_some(keys)
}

/// Whether the flow's plan of `slice` (made by [`snapshot`]) is the whole plan's part about its
/// users: always, but for a flow that serves nested groups from a directory that has some
/// (the slice holds every membership between groups).
pub(crate) fn plannable(flow: &FlowSpec, slice: &Snapshot) -> bool {
    !flow.nested_groups
        || !slice
            .memberships
            .iter()
            .any(|m| m.member.kind == MemberKind::Group)
}

/// The users `keys` of a directory, their memberships, every group and the memberships
/// between groups.
pub(crate) fn snapshot(full: &Snapshot, keys: &BTreeSet<String>) -> Snapshot {
    Snapshot {
        users: full
            .users
            .iter()
            .filter(|u| keys.contains(&u.source_id))
            .cloned()
            .collect(),
        groups: full.groups.clone(),
        memberships: full
            .memberships
            .iter()
            .filter(|m| m.member.kind == MemberKind::Group || keys.contains(&m.member.id))
            .cloned()
            .collect(),
    }
}

/// The ledger's entries of the users `keys`, every group (with its nested groups), and the
/// memberships of those users.
pub(crate) fn ledger(full: &LedgerState, keys: &BTreeSet<String>) -> LedgerState {
    LedgerState {
        users: keys
            .iter()
            .filter_map(|k| full.users.get(k).map(|u| (k.clone(), u.clone())))
            .collect(),
        groups: full.groups.clone(),
        members: full
            .members
            .iter()
            .filter_map(|(g, m)| {
                let of_users: BTreeSet<Key> = keys
                    .iter()
                    .filter_map(|k| m.get(k.as_str()).cloned())
                    .collect();
                (!of_users.is_empty()).then(|| (g.clone(), of_users))
            })
            .collect(),
        child_groups: full.child_groups.clone(),
    }
}
