//! A directory held in memory between runs of a flow, brought up to date by replacing only
//! what changed instead of reading the whole directory again.
//!
//! The image is a [`Snapshot`] kept sorted (users and groups by source id, memberships by
//! group, member kind and member id), so the planner reads it exactly as it reads a snapshot
//! loaded from the store. An update is a [`Refresh`]: the current state of some users and
//! groups (absent means deleted) and the complete direct memberships of some groups, as the
//! store holds them now. Applying it is one merge pass over each list.

use crate::model::{Group, MemberRef, Membership, Snapshot, User};
use std::collections::{BTreeMap, BTreeSet};

/// What to replace in an image: every object named here is taken from here, and the object is
/// gone when it is named but has no value.
#[derive(Debug, Clone, Default)]
pub struct Refresh {
    pub users: BTreeMap<String, Option<User>>,
    pub groups: BTreeMap<String, Option<Group>>,
    /// Groups whose direct memberships are replaced, with their memberships now.
    pub memberships: BTreeMap<String, Vec<MemberRef>>,
}

/// A directory in memory (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectoryImage {
    snapshot: Snapshot,
}

impl DirectoryImage {
    /// From a snapshot in any order.
    pub fn new(mut snapshot: Snapshot) -> Self {
        snapshot
            .users
            .sort_unstable_by(|a, b| a.source_id.cmp(&b.source_id));
        snapshot
            .groups
            .sort_unstable_by(|a, b| a.source_id.cmp(&b.source_id));
        snapshot.memberships.sort_unstable();
        snapshot.memberships.dedup();
        DirectoryImage { snapshot }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The direct members of `group`, per this image (the memberships are sorted by group).
    pub fn members_of<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a MemberRef> + 'a {
        let all = &self.snapshot.memberships;
        let start = all.partition_point(|m| m.group.as_str() < group);
        all[start..]
            .iter()
            .take_while(move |m| m.group == group)
            .map(|m| &m.member)
    }

    /// Groups that hold any of `members` as a direct member, per this image.
    pub fn groups_containing(&self, members: &BTreeSet<MemberRef>) -> BTreeSet<String> {
        if members.is_empty() {
            return BTreeSet::new();
        }
        self.snapshot
            .memberships
            .iter()
            .filter(|m| members.contains(&m.member))
            .map(|m| m.group.clone())
            .collect()
    }

    /// Replace what the refresh names.
    pub fn apply(&mut self, refresh: Refresh) {
        let s = &mut self.snapshot;
        s.users = merge(std::mem::take(&mut s.users), refresh.users, |u| {
            u.source_id.as_str()
        });
        s.groups = merge(std::mem::take(&mut s.groups), refresh.groups, |g| {
            g.source_id.as_str()
        });
        if refresh.memberships.is_empty() {
            return;
        }
        let old = std::mem::take(&mut s.memberships);
        let mut fresh: Vec<Membership> = refresh
            .memberships
            .iter()
            .flat_map(|(g, members)| {
                members.iter().map(|m| Membership {
                    group: g.clone(),
                    member: m.clone(),
                })
            })
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        let mut out = Vec::with_capacity(old.len() + fresh.len());
        let mut fresh = fresh.into_iter().peekable();
        for m in old {
            while let Some(f) = fresh.next_if(|f| *f < m) {
                out.push(f);
            }
            if !refresh.memberships.contains_key(&m.group) {
                out.push(m);
            }
        }
        out.extend(fresh);
        s.memberships = out;
    }
}

/// Merge sorted `old` with replacements keyed by the same key (None removes).
fn merge<T>(old: Vec<T>, replace: BTreeMap<String, Option<T>>, key: impl Fn(&T) -> &str) -> Vec<T> {
    if replace.is_empty() {
        return old;
    }
    let mut out = Vec::with_capacity(old.len() + replace.len());
    let mut rep = replace.into_iter().peekable();
    for item in old {
        while let Some((_, v)) = rep.next_if(|(k, _)| k.as_str() < key(&item)) {
            out.extend(v);
        }
        match rep.next_if(|(k, _)| k.as_str() == key(&item)) {
            Some((_, v)) => out.extend(v),
            None => out.push(item),
        }
    }
    out.extend(rep.filter_map(|(_, v)| v));
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            users: vec![
                User::new("u3", "c"),
                User::new("u1", "a"),
                User::new("u2", "b"),
            ],
            groups: vec![Group::new("g2", "G2"), Group::new("g1", "G1")],
            memberships: vec![
                Membership {
                    group: "g1".into(),
                    member: MemberRef::user("u1"),
                },
                Membership {
                    group: "g1".into(),
                    member: MemberRef::group("g2"),
                },
                Membership {
                    group: "g2".into(),
                    member: MemberRef::user("u2"),
                },
                Membership {
                    group: "g2".into(),
                    member: MemberRef::user("u3"),
                },
            ],
        }
    }

    #[test]
    fn a_groups_direct_members_are_read_from_the_image() {
        let image = DirectoryImage::new(snap());
        let of = |g: &str| image.members_of(g).cloned().collect::<Vec<_>>();
        assert_eq!(
            of("g1"),
            vec![MemberRef::user("u1"), MemberRef::group("g2")]
        );
        assert_eq!(of("g2"), vec![MemberRef::user("u2"), MemberRef::user("u3")]);
        assert!(of("g0").is_empty() && of("g3").is_empty());
    }

    #[test]
    fn a_refresh_gives_what_a_full_load_would() {
        let mut image = DirectoryImage::new(snap());
        // u2 renamed, u3 deleted, u0 and u4 new; g2 deleted, g0 new; g1's members replaced.
        let mut r = Refresh::default();
        r.users.insert("u2".into(), Some(User::new("u2", "b2")));
        r.users.insert("u3".into(), None);
        r.users.insert("u0".into(), Some(User::new("u0", "z")));
        r.users.insert("u4".into(), Some(User::new("u4", "d")));
        r.users.insert("u9".into(), None);
        r.groups.insert("g2".into(), None);
        r.groups.insert("g0".into(), Some(Group::new("g0", "G0")));
        r.memberships.insert(
            "g1".into(),
            vec![MemberRef::user("u4"), MemberRef::user("u0")],
        );
        r.memberships.insert("g2".into(), vec![]);
        r.memberships
            .insert("g0".into(), vec![MemberRef::user("u1")]);
        image.apply(r);
        let expected = DirectoryImage::new(Snapshot {
            users: vec![
                User::new("u0", "z"),
                User::new("u1", "a"),
                User::new("u2", "b2"),
                User::new("u4", "d"),
            ],
            groups: vec![Group::new("g0", "G0"), Group::new("g1", "G1")],
            memberships: vec![
                Membership {
                    group: "g0".into(),
                    member: MemberRef::user("u1"),
                },
                Membership {
                    group: "g1".into(),
                    member: MemberRef::user("u0"),
                },
                Membership {
                    group: "g1".into(),
                    member: MemberRef::user("u4"),
                },
            ],
        });
        assert_eq!(image, expected);
    }

    #[test]
    fn groups_containing_finds_direct_parents() {
        let image = DirectoryImage::new(snap());
        let members: BTreeSet<MemberRef> = [MemberRef::user("u3"), MemberRef::group("g2")].into();
        assert_eq!(
            image.groups_containing(&members),
            ["g1".to_string(), "g2".to_string()].into()
        );
        assert!(image.groups_containing(&BTreeSet::new()).is_empty());
    }
}
