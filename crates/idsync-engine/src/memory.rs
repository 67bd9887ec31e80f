//! What a flow keeps in memory between runs in one process (the service): its directory image
//! and its ledger. The next run brings the image up to date from the change log (re-reading only
//! the objects that changed) and uses the ledger as is when nothing else wrote to it, instead
//! of loading both whole: at 100,000 users and a million memberships that is seconds per run.
//!
//! The plan is still the one full diff of the desired state against the ledger (decision 0001);
//! only the loading is incremental. Anything that makes the memory doubtful (a gap in the change
//! log, a directory that went back, a ledger written by another process, a failed run) makes the
//! next run load from the store again.

use idsync_core::{DirectoryImage, LedgerState, MemberRef};
use idsync_store::Store;
use std::collections::{BTreeMap, BTreeSet};

/// More changes than this since the last run: loading the directory whole is cheaper.
const MAX_REFRESH_CHANGES: i64 = 50_000;

/// A flow's memory between runs.
#[derive(Debug, Clone)]
pub struct FlowMemory {
    pub image: DirectoryImage,
    /// The change-log position the image reflects.
    pub seq: i64,
    /// The ledger, when it matches the store's at `ledger_version`.
    pub ledger: Option<(LedgerState, i64)>,
}

/// Bring `image` (at change-log position `seq`) up to `now` (or later); None when the change
/// log cannot tell what changed. Returns the image and the position it reflects.
pub async fn refresh_image(
    store: &Store,
    dir: &str,
    mut image: DirectoryImage,
    seq: i64,
    now: i64,
) -> Result<Option<(DirectoryImage, i64)>, idsync_store::StoreError> {
    if now == seq {
        return Ok(Some((image, seq)));
    }
    if now < seq {
        return Ok(None);
    }
    let changes = store
        .changes_since(dir, seq, MAX_REFRESH_CHANGES + 1)
        .await?;
    let contiguous = changes.first().is_some_and(|c| c.seq == seq + 1);
    if !contiguous || changes.len() as i64 > MAX_REFRESH_CHANGES {
        return Ok(None);
    }
    let mut users = BTreeSet::new();
    let mut groups = BTreeSet::new();
    let mut membership_groups = BTreeSet::new();
    // Groups whose members only were added or removed: their members follow from the image
    // and these changes, in order, without reading the group's members again (a group of
    // everyone changes at every login).
    let mut member_changes: BTreeMap<String, Vec<(bool, MemberRef)>> = BTreeMap::new();
    // Deleted at some point of these changes (maybe created again since).
    let mut deleted: BTreeSet<MemberRef> = BTreeSet::new();
    for c in &changes {
        use idsync_core::Change::*;
        match &c.change {
            UpsertUser { user } => {
                users.insert(user.source_id.clone());
            }
            DeleteUser { source_id } => {
                users.insert(source_id.clone());
                deleted.insert(MemberRef::user(source_id.clone()));
            }
            UpsertGroup { group } => {
                groups.insert(group.source_id.clone());
                membership_groups.insert(group.source_id.clone());
            }
            DeleteGroup { source_id } => {
                groups.insert(source_id.clone());
                membership_groups.insert(source_id.clone());
                deleted.insert(MemberRef::group(source_id.clone()));
            }
            AddMember { group, member } => member_changes
                .entry(group.clone())
                .or_default()
                .push((true, member.clone())),
            RemoveMember { group, member } => member_changes
                .entry(group.clone())
                .or_default()
                .push((false, member.clone())),
        }
    }
    let last = changes.last().map_or(now, |c| c.seq);
    let mut refresh = store
        .refresh(dir, &users, &groups, &membership_groups)
        .await?;
    // A deleted user or group leaves every group it was in (the store drops those memberships
    // without logging each): re-read the groups that held it.
    let gone: BTreeSet<MemberRef> = deleted
        .into_iter()
        .chain(
            refresh
                .users
                .iter()
                .filter(|(_, u)| u.is_none())
                .map(|(id, _)| MemberRef::user(id.clone())),
        )
        .chain(
            refresh
                .groups
                .iter()
                .filter(|(_, g)| g.is_none())
                .map(|(id, _)| MemberRef::group(id.clone())),
        )
        .collect();
    let parents: BTreeSet<String> = image
        .groups_containing(&gone)
        .into_iter()
        .filter(|g| !refresh.memberships.contains_key(g))
        .collect();
    if !parents.is_empty() {
        let more = store
            .refresh(dir, &BTreeSet::new(), &BTreeSet::new(), &parents)
            .await?;
        refresh.memberships.extend(more.memberships);
    }
    let followed = member_changes.len();
    for (group, changes) in member_changes {
        // Read again (created, deleted, or a gone member's group): the store's word.
        if refresh.memberships.contains_key(&group) {
            continue;
        }
        let mut members: BTreeSet<MemberRef> = image.members_of(&group).cloned().collect();
        for (added, member) in changes {
            if added {
                members.insert(member);
            } else {
                members.remove(&member);
            }
        }
        refresh
            .memberships
            .insert(group, members.into_iter().collect());
    }
    tracing::debug!(
        changes = changes.len(),
        users = users.len(),
        groups = groups.len(),
        membership_groups = membership_groups.len() + parents.len(),
        followed_groups = followed,
        "directory image refreshed"
    );
    image.apply(refresh);
    Ok(Some((image, last)))
}
