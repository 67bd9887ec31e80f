//! The served directory: the flow's ledger as Crowd entities, with the indexes every query of
//! the API needs. Built once per ledger version by the front-end, then read-only (share it).
//!
//! Names are unique without regard to case, as in Crowd: lookups lowercase the name, and lists
//! are ordered by lowercased name. When two users (or groups) of the ledger share a name but for
//! case, the one with the smaller ledger key is served and the other is listed in
//! [`Directory::conflicts`].
//!
//! Memberships: direct user members and child groups as the flow serves them (decision 0033;
//! with `nested_groups = false` `child_groups` is empty and nested answers equal direct ones).
//! The nested queries follow child groups and stop at cycles.
//!
//! A built directory follows the ledger in place with [`Directory::apply`] (module `update`).

use crate::model::{CrowdGroup, CrowdUser};
use crate::restriction::{MatchMode, Restriction};
use idsync_core::{Group, User};
use std::collections::HashMap;

mod update;
pub use update::{Change, NeedsRebuild};

/// Index of a user or group in the directory's sorted lists.
type Ix = u32;

/// The served users, groups and memberships.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directory {
    users: Vec<CrowdUser>,
    /// The manager key of each user as the ledger has it (its served name is resolved).
    managers: Vec<Option<String>>,
    groups: Vec<CrowdGroup>,
    user_ix: HashMap<String, Ix>,
    user_key_ix: HashMap<String, Ix>,
    group_ix: HashMap<String, Ix>,
    group_key_ix: HashMap<String, Ix>,
    /// Direct groups of each user, ordered like `groups`.
    user_groups: Vec<Vec<Ix>>,
    /// Direct user members of each group, ordered like `users`.
    group_users: Vec<Vec<Ix>>,
    /// Direct child groups (member groups) of each group.
    group_children: Vec<Vec<Ix>>,
    /// Direct parent groups of each group.
    group_parents: Vec<Vec<Ix>>,
    conflicts: Vec<String>,
    memberships: usize,
}

/// The name an exact `name = "x"` restriction asks for (answered from the index).
fn exact_name(r: &Restriction) -> Option<&str> {
    match r {
        Restriction::Property {
            property,
            mode: MatchMode::ExactlyMatches,
            value,
            ..
        } if property == "name" => Some(value),
        _ => None,
    }
}

/// Crowd's case folding of names.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

impl Directory {
    /// The directory of a flow's ledger: users and groups by ledger key, user memberships
    /// `(group key, user key)`, and group memberships `(parent key, child key)`. Memberships naming a key that is not served are skipped.
    pub fn build(
        users: Vec<(String, User)>,
        groups: Vec<(String, Group)>,
        members: Vec<(String, String)>,
        child_groups: Vec<(String, String)>,
    ) -> Directory {
        let mut conflicts = Vec::new();

        // Users, ordered by folded name then ledger key (an index sort: entries stay put); the
        // manager attribute names the manager's user name when the manager is served.
        let names_by_key: HashMap<&str, &str> = users
            .iter()
            .map(|(k, u)| (k.as_str(), u.user_name.as_str()))
            .collect();
        let mut order: Vec<(String, usize)> = users
            .iter()
            .enumerate()
            .map(|(i, (_, u))| (fold(&u.user_name), i))
            .collect();
        order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| {
                users
                    .get(a.1)
                    .map(|u| &u.0)
                    .cmp(&users.get(b.1).map(|u| &u.0))
            })
        });
        let mut user_ix = HashMap::with_capacity(order.len());
        let mut user_key_ix: HashMap<String, Ix> = HashMap::with_capacity(order.len());
        let mut user_list = Vec::with_capacity(order.len());
        let mut managers = Vec::with_capacity(order.len());
        for (folded, i) in order {
            let Some((key, u)) = users.get(i) else {
                continue;
            };
            if user_ix.contains_key(&folded) {
                conflicts.push(format!(
                    "user {:?} (key {key:?}) has the name of another user but for case; not served",
                    u.user_name
                ));
                continue;
            }
            let Ok(ix) = Ix::try_from(user_list.len()) else {
                conflicts.push(format!(
                    "user {:?} is past the directory's size limit",
                    u.user_name
                ));
                continue;
            };
            let manager = u
                .manager
                .as_deref()
                .and_then(|m| names_by_key.get(m).copied());
            user_ix.insert(folded, ix);
            user_key_ix.insert(key.clone(), ix);
            user_list.push(CrowdUser::from_user(key, u, manager));
            managers.push(u.manager.clone());
        }
        drop(names_by_key);

        // Groups, the same way.
        let mut order: Vec<(String, usize)> = groups
            .iter()
            .enumerate()
            .map(|(i, (_, g))| (fold(&g.display_name), i))
            .collect();
        order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| {
                groups
                    .get(a.1)
                    .map(|g| &g.0)
                    .cmp(&groups.get(b.1).map(|g| &g.0))
            })
        });
        let mut group_ix = HashMap::with_capacity(order.len());
        let mut group_list = Vec::with_capacity(order.len());
        let mut group_key_ix: HashMap<String, Ix> = HashMap::with_capacity(order.len());
        for (folded, i) in order {
            let Some((key, g)) = groups.get(i) else {
                continue;
            };
            if group_ix.contains_key(&folded) {
                conflicts.push(format!(
                    "group {:?} (key {key:?}) has the name of another group but for case; not served",
                    g.display_name
                ));
                continue;
            }
            let Ok(ix) = Ix::try_from(group_list.len()) else {
                conflicts.push(format!(
                    "group {:?} is past the directory's size limit",
                    g.display_name
                ));
                continue;
            };
            group_ix.insert(folded, ix);
            group_key_ix.insert(key.clone(), ix);
            group_list.push(CrowdGroup::from_group(g));
        }

        // Memberships, as index lists sorted by the member's position (that is, by name).
        let mut user_groups: Vec<Vec<Ix>> = vec![Vec::new(); user_list.len()];
        let mut group_users: Vec<Vec<Ix>> = vec![Vec::new(); group_list.len()];
        // Memberships usually come group by group: the last group's lookup is kept.
        let mut last: Option<(&str, Option<Ix>)> = None;
        for (g, u) in &members {
            let gi = match last {
                Some((k, ix)) if k == g.as_str() => ix,
                _ => {
                    let ix = group_key_ix.get(g.as_str()).copied();
                    last = Some((g.as_str(), ix));
                    ix
                }
            };
            if let (Some(gi), Some(&ui)) = (gi, user_key_ix.get(u.as_str())) {
                if let (Some(ug), Some(gu)) = (
                    user_groups.get_mut(ui as usize),
                    group_users.get_mut(gi as usize),
                ) {
                    ug.push(gi);
                    gu.push(ui);
                }
            }
        }
        let mut group_children: Vec<Vec<Ix>> = vec![Vec::new(); group_list.len()];
        let mut group_parents: Vec<Vec<Ix>> = vec![Vec::new(); group_list.len()];
        for (p, c) in &child_groups {
            if let (Some(&pi), Some(&ci)) =
                (group_key_ix.get(p.as_str()), group_key_ix.get(c.as_str()))
            {
                if pi == ci {
                    continue;
                }
                if let Some(children) = group_children.get_mut(pi as usize) {
                    children.push(ci);
                }
                if let Some(parents) = group_parents.get_mut(ci as usize) {
                    parents.push(pi);
                }
            }
        }
        let mut memberships = 0;
        for list in user_groups
            .iter_mut()
            .chain(group_users.iter_mut())
            .chain(group_children.iter_mut())
            .chain(group_parents.iter_mut())
        {
            list.sort_unstable();
            list.dedup();
            list.shrink_to_fit();
        }
        for list in group_users.iter().chain(group_children.iter()) {
            memberships += list.len();
        }

        Directory {
            users: user_list,
            managers,
            groups: group_list,
            user_ix,
            user_key_ix,
            group_ix,
            group_key_ix,
            user_groups,
            group_users,
            group_children,
            group_parents,
            conflicts,
            memberships,
        }
    }

    /// Users and groups left out because their name clashed with another's but for case.
    pub fn conflicts(&self) -> &[String] {
        &self.conflicts
    }

    /// Every served user, ordered by lowercased name.
    pub fn users(&self) -> &[CrowdUser] {
        &self.users
    }

    /// Every served group, ordered by lowercased name.
    pub fn groups(&self) -> &[CrowdGroup] {
        &self.groups
    }

    /// The number of direct memberships (user and group members).
    pub fn membership_count(&self) -> usize {
        self.memberships
    }

    /// A user by name, without regard to case.
    pub fn user(&self, name: &str) -> Option<&CrowdUser> {
        self.user_index(name)
            .and_then(|ix| self.users.get(ix as usize))
    }

    /// A user by its key (the ledger key).
    pub fn user_by_key(&self, key: &str) -> Option<&CrowdUser> {
        self.user_key_ix
            .get(key)
            .and_then(|ix| self.users.get(*ix as usize))
    }

    /// The users matching `restriction`, by name, from the `start`th match on, `max` at most.
    pub fn search_users(
        &self,
        restriction: &Restriction,
        start: usize,
        max: usize,
    ) -> Vec<&CrowdUser> {
        if let Some(name) = exact_name(restriction) {
            return self
                .user(name)
                .filter(|u| restriction.matches_user(u))
                .into_iter()
                .skip(start)
                .take(max)
                .collect();
        }
        self.users
            .iter()
            .filter(|u| restriction.matches_user(u))
            .skip(start)
            .take(max)
            .collect()
    }

    /// The groups matching `restriction`, by name, from the `start`th match on, `max` at most.
    pub fn search_groups(
        &self,
        restriction: &Restriction,
        start: usize,
        max: usize,
    ) -> Vec<&CrowdGroup> {
        if let Some(name) = exact_name(restriction) {
            return self
                .group(name)
                .filter(|g| restriction.matches_group(g))
                .into_iter()
                .skip(start)
                .take(max)
                .collect();
        }
        self.groups
            .iter()
            .filter(|g| restriction.matches_group(g))
            .skip(start)
            .take(max)
            .collect()
    }

    /// A group by name, without regard to case.
    pub fn group(&self, name: &str) -> Option<&CrowdGroup> {
        self.group_index(name)
            .and_then(|ix| self.groups.get(ix as usize))
    }

    fn user_index(&self, name: &str) -> Option<Ix> {
        self.user_ix.get(&fold(name)).copied()
    }

    fn group_index(&self, name: &str) -> Option<Ix> {
        self.group_ix.get(&fold(name)).copied()
    }

    fn user_at(&self, ix: Ix) -> Option<&CrowdUser> {
        self.users.get(ix as usize)
    }

    fn group_at(&self, ix: Ix) -> Option<&CrowdGroup> {
        self.groups.get(ix as usize)
    }

    fn list(lists: &[Vec<Ix>], ix: Ix) -> &[Ix] {
        lists.get(ix as usize).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every group reachable from `start` through `next` (not `start` itself unless a cycle
    /// leads back to it), each once, ordered by name.
    fn closure(&self, start: &[Ix], next: &[Vec<Ix>]) -> Vec<Ix> {
        let mut seen = vec![false; self.groups.len()];
        let mut stack: Vec<Ix> = start.to_vec();
        let mut out = Vec::new();
        while let Some(g) = stack.pop() {
            match seen.get_mut(g as usize) {
                Some(s) if !*s => *s = true,
                _ => continue,
            }
            out.push(g);
            stack.extend_from_slice(Self::list(next, g));
        }
        out.sort_unstable();
        out
    }

    /// The groups `user` is a direct member of, by name; `None` when the user is not served.
    pub fn user_groups_direct(&self, user: &str) -> Option<Vec<&CrowdGroup>> {
        let ix = self.user_index(user)?;
        Some(self.groups_at(Self::list(&self.user_groups, ix)))
    }

    /// The groups `user` is a member of directly or through member groups.
    pub fn user_groups_nested(&self, user: &str) -> Option<Vec<&CrowdGroup>> {
        let ix = self.user_index(user)?;
        let all = self.closure(Self::list(&self.user_groups, ix), &self.group_parents);
        Some(self.groups_at(&all))
    }

    /// The direct user members of `group`; `None` when the group is not served.
    pub fn group_users_direct(&self, group: &str) -> Option<Vec<&CrowdUser>> {
        let ix = self.group_index(group)?;
        Some(self.users_at(Self::list(&self.group_users, ix)))
    }

    /// The users of `group` and of every group nested in it, each once, by name.
    pub fn group_users_nested(&self, group: &str) -> Option<Vec<&CrowdUser>> {
        let ix = self.group_index(group)?;
        if Self::list(&self.group_children, ix).is_empty() {
            return Some(self.users_at(Self::list(&self.group_users, ix)));
        }
        let mut groups = self.closure(Self::list(&self.group_children, ix), &self.group_children);
        groups.push(ix);
        let mut users: Vec<Ix> = groups
            .iter()
            .flat_map(|g| Self::list(&self.group_users, *g).iter().copied())
            .collect();
        users.sort_unstable();
        users.dedup();
        Some(self.users_at(&users))
    }

    /// The direct child groups (member groups) of `group`.
    pub fn child_groups_direct(&self, group: &str) -> Option<Vec<&CrowdGroup>> {
        let ix = self.group_index(group)?;
        Some(self.groups_at(Self::list(&self.group_children, ix)))
    }

    /// Every group nested in `group`, at any depth.
    pub fn child_groups_nested(&self, group: &str) -> Option<Vec<&CrowdGroup>> {
        let ix = self.group_index(group)?;
        let all = self.closure(Self::list(&self.group_children, ix), &self.group_children);
        Some(self.groups_at(&all))
    }

    /// The direct parent groups of `group`.
    pub fn parent_groups_direct(&self, group: &str) -> Option<Vec<&CrowdGroup>> {
        let ix = self.group_index(group)?;
        Some(self.groups_at(Self::list(&self.group_parents, ix)))
    }

    /// Every group `group` is nested in, at any depth.
    pub fn parent_groups_nested(&self, group: &str) -> Option<Vec<&CrowdGroup>> {
        let ix = self.group_index(group)?;
        let all = self.closure(Self::list(&self.group_parents, ix), &self.group_parents);
        Some(self.groups_at(&all))
    }

    /// Every group with its direct user and group members, ordered by name: the answer of
    /// `group/membership`.
    pub fn memberships(
        &self,
    ) -> impl Iterator<Item = (&CrowdGroup, Vec<&CrowdUser>, Vec<&CrowdGroup>)> {
        self.groups.iter().enumerate().map(|(ix, g)| {
            let ix = Ix::try_from(ix).unwrap_or(Ix::MAX);
            (
                g,
                self.users_at(Self::list(&self.group_users, ix)),
                self.groups_at(Self::list(&self.group_children, ix)),
            )
        })
    }

    fn users_at(&self, ixs: &[Ix]) -> Vec<&CrowdUser> {
        ixs.iter().filter_map(|ix| self.user_at(*ix)).collect()
    }

    fn groups_at(&self, ixs: &[Ix]) -> Vec<&CrowdGroup> {
        ixs.iter().filter_map(|ix| self.group_at(*ix)).collect()
    }
}
