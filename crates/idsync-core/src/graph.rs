//! Effective (transitive) membership: nested groups flattened, cycles included.
//!
//! Groups and their group-members form a directed graph that may contain cycles (directories
//! allow them, and a cycle means every group in it has the members of all the others). The
//! graph is condensed into strongly connected components (Tarjan, iteratively, so deep nesting
//! cannot overflow the stack); components are finished children-first, so each component's
//! user set is the union of its own direct users and its children's sets.

use crate::model::{Group, Key, MemberKind, Membership, User};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The membership graph of one directory, indexed for repeated queries.
#[derive(Debug, Clone)]
pub struct MembershipGraph {
    group_keys: Vec<String>,
    user_keys: Vec<Key>,
    /// Per group, sorted and deduplicated indices of its effective users.
    effective: Vec<Vec<u32>>,
    /// Per group, whether it takes part in a membership cycle.
    in_cycle: Vec<bool>,
}

impl MembershipGraph {
    /// Build from a directory's groups, users and direct memberships. Memberships that name an
    /// unknown group or member are ignored.
    pub fn build(groups: &[Group], users: &[User], memberships: &[Membership]) -> Self {
        let group_keys: Vec<String> = groups.iter().map(|g| g.source_id.clone()).collect();
        let user_keys: Vec<Key> = users
            .iter()
            .map(|u| Key::from(u.source_id.as_str()))
            .collect();
        let gidx: HashMap<&str, usize> = group_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let uidx: HashMap<&str, u32> = user_keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| u32::try_from(i).ok().map(|i| (&**k, i)))
            .collect();
        let n = group_keys.len();
        let mut direct_users: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        for m in memberships {
            let Some(&g) = gidx.get(m.group.as_str()) else {
                continue;
            };
            match m.member.kind {
                MemberKind::User => {
                    if let Some(&u) = uidx.get(m.member.id.as_str()) {
                        direct_users[g].push(u);
                    }
                }
                MemberKind::Group => {
                    if let Some(&c) = gidx.get(m.member.id.as_str()) {
                        children[g].push(c);
                    }
                }
            }
        }
        let (effective, in_cycle) = closure(&direct_users, &children);
        Self {
            group_keys,
            user_keys,
            effective,
            in_cycle,
        }
    }

    /// The effective users of every group, by source id.
    pub fn effective_members(&self) -> BTreeMap<String, BTreeSet<Key>> {
        self.group_keys
            .iter()
            .zip(&self.effective)
            .map(|(g, users)| {
                let set = users
                    .iter()
                    .filter_map(|&u| self.user_keys.get(u as usize).cloned())
                    .collect();
                (g.clone(), set)
            })
            .collect()
    }

    /// Source ids of the groups that take part in a membership cycle.
    pub fn cyclic_groups(&self) -> Vec<&str> {
        self.group_keys
            .iter()
            .zip(&self.in_cycle)
            .filter(|(_, c)| **c)
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// Effective users of every group (nested groups flattened, cycles included).
pub fn effective_members(
    groups: &[Group],
    users: &[User],
    memberships: &[Membership],
) -> BTreeMap<String, BTreeSet<Key>> {
    MembershipGraph::build(groups, users, memberships).effective_members()
}

/// The transitive closure of a membership graph by indices: per group, the sorted effective
/// user indices, and whether it takes part in a cycle.
pub(crate) fn closure(
    direct_users: &[Vec<u32>],
    children: &[Vec<usize>],
) -> (Vec<Vec<u32>>, Vec<bool>) {
    let n = children.len();
    let (comp, comps) = tarjan(children);
    let mut in_cycle = vec![false; n];
    let mut comp_users: Vec<Vec<u32>> = vec![Vec::new(); comps.len()];
    for (c, members) in comps.iter().enumerate() {
        let cyclic = members.len() > 1 || members.iter().any(|&g| children[g].contains(&g));
        let mut set: Vec<u32> = Vec::new();
        for &g in members {
            in_cycle[g] = cyclic;
            set.extend_from_slice(&direct_users[g]);
            for &child in &children[g] {
                let cc = comp[child];
                if cc != c {
                    set.extend_from_slice(&comp_users[cc]);
                }
            }
        }
        set.sort_unstable();
        set.dedup();
        comp_users[c] = set;
    }
    let effective = (0..n).map(|g| comp_users[comp[g]].clone()).collect();
    (effective, in_cycle)
}

/// Iterative Tarjan. Returns each node's component and the components in the order they were
/// completed, which is a reverse topological order (children before parents).
fn tarjan(children: &[Vec<usize>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    const UNSEEN: usize = usize::MAX;
    let n = children.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut comp = vec![0usize; n];
    let mut comps: Vec<Vec<usize>> = Vec::new();
    let mut next = 0usize;
    // Call stack of (node, position in its child list).
    let mut call: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        call.push((root, 0));
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut pos)) = call.last_mut() {
            if let Some(&w) = children[v].get(*pos) {
                *pos += 1;
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let id = comps.len();
                let mut members = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = id;
                    members.push(w);
                    if w == v {
                        break;
                    }
                }
                comps.push(members);
            }
        }
    }
    (comp, comps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MemberRef;

    fn m(g: &str, member: MemberRef) -> Membership {
        Membership {
            group: g.into(),
            member,
        }
    }

    #[test]
    fn nested_three_levels_with_cycle() {
        let groups: Vec<Group> = ["a", "b", "c", "d"]
            .iter()
            .map(|g| Group::new(*g, *g))
            .collect();
        let users: Vec<User> = ["u1", "u2", "u3", "u4"]
            .iter()
            .map(|u| User::new(*u, *u))
            .collect();
        let ms = vec![
            m("a", MemberRef::group("b")),
            m("b", MemberRef::group("c")),
            m("c", MemberRef::group("b")), // cycle b <-> c
            m("a", MemberRef::user("u1")),
            m("b", MemberRef::user("u2")),
            m("c", MemberRef::user("u3")),
            m("d", MemberRef::user("u4")),
            m("c", MemberRef::user("ghost")),
        ];
        let g = MembershipGraph::build(&groups, &users, &ms);
        let eff = g.effective_members();
        let set = |xs: &[&str]| xs.iter().map(|s| Key::from(*s)).collect::<BTreeSet<_>>();
        assert_eq!(eff["a"], set(&["u1", "u2", "u3"]));
        assert_eq!(eff["b"], set(&["u2", "u3"]));
        assert_eq!(eff["c"], set(&["u2", "u3"]));
        assert_eq!(eff["d"], set(&["u4"]));
        assert_eq!(g.cyclic_groups(), vec!["b", "c"]);
    }
}
