//! Following the ledger in place (issue 17): the changes of the ledger since the directory was
//! built, each giving the ledger's current state of what it names, are applied to the
//! directory itself, in time proportional to the change (plus one pass over the index lists
//! when users or groups appear, vanish or change place by a rename), and without a second
//! copy of the directory. The result answers every query exactly as
//! [`Directory::build`] of the ledger would.
//!
//! A user or group that starts being served starts without memberships: its memberships come
//! as [`Change::Member`]s (the ledger holds no membership of a user or group it does not hold:
//! deletes take their memberships with them, a group's create starts from its given members).
//! A directory with names that differ only by case, or a change that would make one, answers
//! [`NeedsRebuild`]: which of two such entries is served depends on the whole ledger. The
//! directory may then be half updated: build it again.

use super::{fold, Directory, Ix};
use crate::model::{attr, CrowdGroup, CrowdUser};
use idsync_core::{Group, User};
use std::collections::{HashMap, HashSet};

/// One change of the ledger, as the ledger now is.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The user under `key` as the ledger holds it now (`None`: gone). `restarted`: its
    /// memberships were dropped (it was deleted since, maybe created again).
    User {
        key: String,
        user: Option<User>,
        restarted: bool,
    },
    /// The group under `key` as the ledger holds it now. `restarted`: its memberships were
    /// dropped (deleted, or created again).
    Group {
        key: String,
        group: Option<Group>,
        restarted: bool,
    },
    /// Whether the user under `user` is now a direct member of the group under `group` (keys).
    Member {
        group: String,
        user: String,
        member: bool,
    },
}

/// The changes cannot be applied in place: build the directory from the ledger again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the served directory is built again: {0}")]
pub struct NeedsRebuild(pub String);

/// What one entity change does to the directory's order.
struct Placed {
    key: String,
    folded: String,
    /// Its index before the change when it was served (it moves: a rename).
    old: Option<Ix>,
}

fn at<T>(list: &[T], ix: Ix) -> Option<&T> {
    list.get(ix as usize)
}

/// Apply an old-to-new index map to a list of indexes: dropped entries go, the rest are
/// renumbered (and sorted again when an entry moved).
fn remap_list(list: &mut Vec<Ix>, remap: &[Ix], moved: bool) {
    list.retain_mut(|x| match remap.get(*x as usize) {
        Some(&n) if n != Ix::MAX => {
            *x = n;
            true
        }
        _ => false,
    });
    if moved {
        list.sort_unstable();
    }
}

fn remap_map(map: &mut HashMap<String, Ix>, remap: &[Ix]) {
    map.retain(|_, v| match remap.get(*v as usize) {
        Some(&n) if n != Ix::MAX => {
            *v = n;
            true
        }
        _ => false,
    });
}

fn insert_sorted(list: &mut Vec<Ix>, x: Ix) {
    if let Err(p) = list.binary_search(&x) {
        list.insert(p, x);
    }
}

fn remove_sorted(list: &mut Vec<Ix>, x: Ix) {
    if let Ok(p) = list.binary_search(&x) {
        list.remove(p);
    }
}

/// Where an entry of the new order comes from: an old index, or the nth placed entry.
enum From {
    Old(Ix),
    New(usize),
}

/// The new order of a sorted list after removing `gone` and placing `placed` (sorted by
/// folded name; `position(folded)` is where a folded name goes among the old entries):
/// returns the old-to-new index map and, in new order, where each entry comes from.
fn reorder(
    len: usize,
    gone: &HashSet<Ix>,
    placed: &[Placed],
    position: impl Fn(&str) -> usize,
) -> Result<(Vec<Ix>, Vec<From>), NeedsRebuild> {
    let too_big = || NeedsRebuild("past the directory's size limit".into());
    let mut remap = vec![Ix::MAX; len];
    let mut order = Vec::with_capacity(len + placed.len());
    // Each placed entry's position among the old ones, found once (a binary search).
    let positions: Vec<usize> = placed.iter().map(|p| position(&p.folded)).collect();
    let mut next = placed.iter().zip(positions).enumerate().peekable();
    for old in 0..=len {
        while let Some((i, (p, at))) = next.peek() {
            if *at > old {
                break;
            }
            let new = Ix::try_from(order.len()).map_err(|_| too_big())?;
            if let Some(o) = p.old {
                if let Some(r) = remap.get_mut(o as usize) {
                    *r = new;
                }
            }
            order.push(From::New(*i));
            next.next();
        }
        if old == len {
            break;
        }
        let ix = Ix::try_from(old).map_err(|_| too_big())?;
        if gone.contains(&ix) {
            continue;
        }
        let new = Ix::try_from(order.len()).map_err(|_| too_big())?;
        if let Some(r) = remap.get_mut(old) {
            *r = new;
        }
        order.push(From::Old(ix));
    }
    Ok((remap, order))
}

/// Take the entries of `list` into the new `order`; placed entries from `fresh`.
fn rearrange<T>(list: &mut Vec<T>, order: &[From], mut fresh: impl FnMut(usize) -> T) {
    let mut old: Vec<Option<T>> = std::mem::take(list).into_iter().map(Some).collect();
    list.reserve_exact(order.len());
    for from in order {
        let v = match from {
            // Each old entry is taken once; `fresh` of no placed entry is a blank one.
            From::Old(ix) => match old.get_mut(*ix as usize).and_then(Option::take) {
                Some(v) => v,
                None => fresh(usize::MAX),
            },
            From::New(i) => fresh(*i),
        };
        list.push(v);
    }
}

impl Directory {
    /// Apply the ledger's changes since this directory was built (or last updated). On
    /// [`NeedsRebuild`] the directory may be half updated: build it again.
    pub fn apply(&mut self, changes: Vec<Change>) -> Result<(), NeedsRebuild> {
        if !self.conflicts.is_empty() {
            return Err(NeedsRebuild(
                "it serves names that differ only by case".into(),
            ));
        }
        let mut users: HashMap<String, (Option<User>, bool)> = HashMap::new();
        let mut groups: HashMap<String, (Option<Group>, bool)> = HashMap::new();
        let mut members = Vec::new();
        for c in changes {
            match c {
                Change::User {
                    key,
                    user,
                    restarted,
                } => {
                    let e = users.entry(key).or_insert((None, false));
                    e.0 = user;
                    e.1 |= restarted;
                }
                Change::Group {
                    key,
                    group,
                    restarted,
                } => {
                    let e = groups.entry(key).or_insert((None, false));
                    e.0 = group;
                    e.1 |= restarted;
                }
                Change::Member {
                    group,
                    user,
                    member,
                } => members.push((group, user, member)),
            }
        }
        self.apply_users(users)?;
        self.apply_groups(groups)?;
        for (g, u, member) in members {
            self.set_member(&g, &u, member);
        }
        self.memberships = self
            .group_users
            .iter()
            .chain(self.group_children.iter())
            .map(Vec::len)
            .sum();
        Ok(())
    }

    fn apply_users(
        &mut self,
        changes: HashMap<String, (Option<User>, bool)>,
    ) -> Result<(), NeedsRebuild> {
        let users = &self.users;
        let sorted = sort_changes(
            changes,
            &self.user_key_ix,
            |ix| at(users, ix).map(|u| u.name.as_str()),
            |u: &User| u.user_name.as_str(),
        );
        // A restarted user loses its memberships (before it moves: they are by index).
        for &ix in &sorted.restarted {
            let groups = take_at(&mut self.user_groups, ix);
            leave_all(&mut self.group_users, groups, ix);
        }
        if !sorted.placed.is_empty() || !sorted.gone.is_empty() {
            self.move_users(&sorted.gone, sorted.placed)?;
        }
        // The changed users, their manager named as the directory now serves it.
        for (key, u) in sorted.now {
            let Some(&ix) = self.user_key_ix.get(&key) else {
                continue;
            };
            let manager = u
                .manager
                .as_deref()
                .and_then(|m| self.user_by_key(m))
                .map(|m| m.name.clone());
            let crowd = CrowdUser::from_user(&key, &u, manager.as_deref());
            if let Some(slot) = self.users.get_mut(ix as usize) {
                *slot = crowd;
            }
            if let Some(slot) = self.managers.get_mut(ix as usize) {
                *slot = u.manager;
            }
        }
        // Keys whose served name changed, appeared or vanished: their reports' manager
        // attribute follows.
        if !sorted.renamed.is_empty() {
            self.follow_managers(&sorted.renamed);
        }
        Ok(())
    }

    /// Remove the `gone` users and place `placed` ones (new or renamed) in name order.
    fn move_users(&mut self, gone: &HashSet<Ix>, placed: Vec<Placed>) -> Result<(), NeedsRebuild> {
        let users = &self.users;
        let (placed, remap, order) =
            place(placed, users, |u| &u.name, &mut self.user_ix, gone, "users")?;
        let moved = placed.iter().any(|p| p.old.is_some());
        // A renamed user keeps its memberships; every placed user is set from its change.
        carry(&mut self.user_groups, &placed, &order);
        rearrange(&mut self.managers, &order, |_| None);
        rearrange(&mut self.users, &order, |i| {
            placeholder(placed.get(i).map_or("", |p| p.key.as_str()))
        });
        for list in &mut self.group_users {
            remap_list(list, &remap, moved);
        }
        reindex(
            &mut self.user_ix,
            &mut self.user_key_ix,
            &remap,
            placed,
            &order,
        );
        Ok(())
    }

    /// Users whose manager is one of `keys` show the manager's served name again.
    fn follow_managers(&mut self, keys: &HashSet<String>) {
        let mut fixes = Vec::new();
        for (ix, m) in self.managers.iter().enumerate() {
            if let Some(m) = m.as_deref().filter(|m| keys.contains(*m)) {
                let shown = self.user_by_key(m).map_or(m, |u| u.name.as_str());
                fixes.push((ix, shown.to_string()));
            }
        }
        for (ix, shown) in fixes {
            if let Some(u) = self.users.get_mut(ix) {
                if shown.is_empty() {
                    u.attributes.remove(attr::MANAGER);
                } else {
                    u.attributes.insert(attr::MANAGER.to_string(), vec![shown]);
                }
            }
        }
    }

    fn apply_groups(
        &mut self,
        changes: HashMap<String, (Option<Group>, bool)>,
    ) -> Result<(), NeedsRebuild> {
        let groups = &self.groups;
        let sorted = sort_changes(
            changes,
            &self.group_key_ix,
            |ix| at(groups, ix).map(|g| g.name.as_str()),
            |g: &Group| g.display_name.as_str(),
        );
        // A restarted group loses its members, and its child groups with them (the ledger
        // starts it afresh).
        for &ix in &sorted.restarted {
            let users = take_at(&mut self.group_users, ix);
            leave_all(&mut self.user_groups, users, ix);
            let children = take_at(&mut self.group_children, ix);
            leave_all(&mut self.group_parents, children, ix);
        }
        if !sorted.placed.is_empty() || !sorted.gone.is_empty() {
            self.move_groups(&sorted.gone, sorted.placed)?;
        }
        for (key, g) in sorted.now {
            if let Some(&ix) = self.group_key_ix.get(&key) {
                if let Some(slot) = self.groups.get_mut(ix as usize) {
                    *slot = CrowdGroup::from_group(&g);
                }
            }
        }
        Ok(())
    }

    /// Remove the `gone` groups and place `placed` ones (new or renamed) in name order.
    fn move_groups(&mut self, gone: &HashSet<Ix>, placed: Vec<Placed>) -> Result<(), NeedsRebuild> {
        let groups = &self.groups;
        let (placed, remap, order) = place(
            placed,
            groups,
            |g| &g.name,
            &mut self.group_ix,
            gone,
            "groups",
        )?;
        let moved = placed.iter().any(|p| p.old.is_some());
        // A renamed group keeps its lists; a new one starts empty; every placed group is set
        // from its change.
        for lists in [
            &mut self.group_users,
            &mut self.group_children,
            &mut self.group_parents,
        ] {
            carry(lists, &placed, &order);
        }
        rearrange(&mut self.groups, &order, |_| empty_group());
        for list in self
            .user_groups
            .iter_mut()
            .chain(self.group_children.iter_mut())
            .chain(self.group_parents.iter_mut())
        {
            remap_list(list, &remap, moved);
        }
        reindex(
            &mut self.group_ix,
            &mut self.group_key_ix,
            &remap,
            placed,
            &order,
        );
        Ok(())
    }

    fn set_member(&mut self, group: &str, user: &str, member: bool) {
        let (Some(&g), Some(&u)) = (self.group_key_ix.get(group), self.user_key_ix.get(user))
        else {
            return;
        };
        let (Some(users), Some(groups)) = (
            self.group_users.get_mut(g as usize),
            self.user_groups.get_mut(u as usize),
        ) else {
            return;
        };
        if member {
            insert_sorted(users, u);
            insert_sorted(groups, g);
        } else {
            remove_sorted(users, u);
            remove_sorted(groups, g);
        }
    }
}

/// What one batch of user (or group) changes does: the entries that go, the ones placed anew
/// (new, or renamed to another place in name order), the ones restarted (by their index before
/// moving), each changed entry as it now is, and the keys whose served name changed at all.
struct Sorted<T> {
    gone: HashSet<Ix>,
    placed: Vec<Placed>,
    restarted: Vec<Ix>,
    now: Vec<(String, T)>,
    renamed: HashSet<String>,
}

fn sort_changes<'a, T>(
    changes: HashMap<String, (Option<T>, bool)>,
    key_ix: &HashMap<String, Ix>,
    served: impl Fn(Ix) -> Option<&'a str>,
    name: impl Fn(&T) -> &str,
) -> Sorted<T> {
    let mut out = Sorted {
        gone: HashSet::new(),
        placed: Vec::new(),
        restarted: Vec::new(),
        now: Vec::new(),
        renamed: HashSet::new(),
    };
    for (key, (entry, restart)) in changes {
        let old = key_ix.get(&key).copied();
        if restart {
            out.restarted.extend(old);
        }
        match (old, entry) {
            (None, None) => {}
            (Some(ix), None) => {
                out.gone.insert(ix);
                out.renamed.insert(key);
            }
            (old, Some(e)) => {
                let folded = fold(name(&e));
                let was = old.and_then(&served);
                if was.is_none_or(|s| s != name(&e)) {
                    out.renamed.insert(key.clone());
                }
                if was.is_none_or(|s| fold(s) != folded) {
                    if let Some(ix) = old {
                        out.gone.insert(ix);
                    }
                    out.placed.push(Placed {
                        key: key.clone(),
                        folded,
                        old,
                    });
                }
                out.now.push((key, e));
            }
        }
    }
    out
}

/// The list at `ix`, taken (left empty).
fn take_at(lists: &mut [Vec<Ix>], ix: Ix) -> Vec<Ix> {
    lists
        .get_mut(ix as usize)
        .map(std::mem::take)
        .unwrap_or_default()
}

/// `ix` leaves the lists of each of `of` (the other side of a taken list).
fn leave_all(lists: &mut [Vec<Ix>], of: Vec<Ix>, ix: Ix) {
    for o in of {
        if let Some(list) = lists.get_mut(o as usize) {
            remove_sorted(list, ix);
        }
    }
}

/// The placed entries in name order, the old-to-new index map, and where each entry of the
/// new order comes from.
type Placement = (Vec<Placed>, Vec<Ix>, Vec<From>);

/// The new order of a list (users or groups) after removing `gone` and placing `placed`:
/// placed entries sorted and checked for names that clash but for case, the gone names out of
/// the name index; returns them with the old-to-new index map and where each entry comes from.
fn place<T>(
    mut placed: Vec<Placed>,
    list: &[T],
    name: impl Fn(&T) -> &str,
    names: &mut HashMap<String, Ix>,
    gone: &HashSet<Ix>,
    what: &str,
) -> Result<Placement, NeedsRebuild> {
    placed.sort_by(|a, b| a.folded.cmp(&b.folded));
    no_clash(&placed, names, gone, what)?;
    for ix in gone {
        if let Some(e) = list.get(*ix as usize) {
            names.remove(&fold(name(e)));
        }
    }
    let (remap, order) = reorder(list.len(), gone, &placed, |folded| {
        list.partition_point(|e| fold(name(e)).as_str() < folded)
    })?;
    Ok((placed, remap, order))
}

/// Rearrange index lists into the new order: a placed entry that was served (a rename) keeps
/// its list, a new one starts empty.
fn carry(lists: &mut Vec<Vec<Ix>>, placed: &[Placed], order: &[From]) {
    let mut kept: Vec<Vec<Ix>> = placed
        .iter()
        .map(|p| p.old.map(|o| take_at(lists, o)).unwrap_or_default())
        .collect();
    rearrange(lists, order, |i| {
        kept.get_mut(i).map(std::mem::take).unwrap_or_default()
    });
}

/// The name and key indexes after a reorder: renumbered, and the placed entries in.
fn reindex(
    names: &mut HashMap<String, Ix>,
    keys: &mut HashMap<String, Ix>,
    remap: &[Ix],
    placed: Vec<Placed>,
    order: &[From],
) {
    remap_map(names, remap);
    remap_map(keys, remap);
    for (p, n) in placed.into_iter().zip(new_places(order)) {
        names.insert(p.folded, n);
        keys.insert(p.key, n);
    }
}

/// Where the placed entries landed, in their order.
fn new_places(order: &[From]) -> Vec<Ix> {
    order
        .iter()
        .enumerate()
        .filter_map(|(n, f)| match f {
            From::New(_) => Ix::try_from(n).ok(),
            From::Old(_) => None,
        })
        .collect()
}

/// Two placed entries, or a placed one and one staying, with the same name but for case.
fn no_clash(
    placed: &[Placed],
    ix: &HashMap<String, Ix>,
    gone: &HashSet<Ix>,
    what: &str,
) -> Result<(), NeedsRebuild> {
    for (i, p) in placed.iter().enumerate() {
        let twice = placed.get(i + 1).is_some_and(|q| q.folded == p.folded);
        let stays = ix.get(&p.folded).is_some_and(|o| !gone.contains(o));
        if twice || stays {
            return Err(NeedsRebuild(format!(
                "two {what} named {:?} but for case",
                p.folded
            )));
        }
    }
    Ok(())
}

fn empty_group() -> CrowdGroup {
    CrowdGroup {
        name: String::new(),
        description: String::new(),
        active: true,
        attributes: Default::default(),
    }
}

/// A user entry about to be filled in (every placed user is set from its change).
fn placeholder(key: &str) -> CrowdUser {
    CrowdUser {
        name: String::new(),
        key: key.to_string(),
        active: false,
        first_name: String::new(),
        last_name: String::new(),
        display_name: String::new(),
        email: String::new(),
        attributes: Default::default(),
    }
}
