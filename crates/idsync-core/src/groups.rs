//! Group rules: which groups a flow provisions and under which names, as the products admins
//! know offer them (resolution User Sync, miniOrange): manual mapping of a source group to one
//! or more target groups, groups made on the fly under their own name, regex renames, include
//! and exclude filters, required groups, default groups, a table from group ids to names (B2C
//! and JIT logins send only ids), and a policy for groups no rule matches.
//!
//! With rules, a target group is keyed by its target name (`name:<lower-case name>`), so that
//! several source groups can feed one target group and one source group several.

use crate::model::{Group, Key};
use crate::scope::GroupPattern;
use crate::state::{DesiredState, LedgerState};
use std::collections::{BTreeMap, BTreeSet};

/// What happens with a source group no manual mapping names (manual mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unmatched {
    /// Leave it out of the target (the default in manual mode).
    #[default]
    Ignore,
    /// Provision it under its own (renamed) name.
    Keep,
    /// Its members get no groups at all in the target.
    Clear,
    /// Its members are not provisioned.
    LeaveOut,
}

/// A flow's group rules.
#[derive(Debug, Clone, Default)]
pub struct GroupRules {
    /// Only groups the map names (and what `unmatched` says for the others).
    pub manual: bool,
    /// Source group (display name or id, any case) to target group names.
    pub map: BTreeMap<String, Vec<String>>,
    /// Renames of on-the-fly names: the first pattern that matches is replaced.
    pub rename: Vec<(regex::Regex, String)>,
    /// Target groups provisioned: all when empty.
    pub include: Vec<GroupPattern>,
    pub exclude: Vec<GroupPattern>,
    /// Only members of one of these source groups are provisioned.
    pub required: Vec<GroupPattern>,
    /// Target groups every provisioned user is in (made if missing).
    pub default_all: Vec<String>,
    /// Target groups a user is put in when it is created (and not taken out of later).
    pub default_new: Vec<String>,
    /// Group ids to names, for sources that send only ids.
    pub names: BTreeMap<String, String>,
    pub unmatched: Unmatched,
    /// Keep members added by hand in the target (seen by a reconcile run) instead of removing
    /// them: idsync then only removes the memberships it made.
    pub keep_manual: bool,
}

impl GroupRules {
    pub fn is_empty(&self) -> bool {
        !self.manual
            && self.map.is_empty()
            && self.rename.is_empty()
            && self.include.is_empty()
            && self.exclude.is_empty()
            && self.required.is_empty()
            && self.default_all.is_empty()
            && self.default_new.is_empty()
            && self.names.is_empty()
    }

    fn name_of(&self, key: &str, display: &str) -> String {
        self.names
            .get(key)
            .or_else(|| self.names.get(display))
            .cloned()
            .unwrap_or_else(|| display.to_string())
    }

    fn renamed(&self, name: &str) -> String {
        for (re, replacement) in &self.rename {
            if re.is_match(name) {
                return re.replace(name, replacement.as_str()).into_owned();
            }
        }
        name.to_string()
    }

    fn mapped(&self, key: &str, name: &str) -> Option<&Vec<String>> {
        self.map.get(key).or_else(|| {
            self.map
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    }

    fn wanted(&self, target: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(target)))
            && !self.exclude.iter().any(|p| p.matches(target))
    }
}

/// The key of a target group made by rules.
pub fn group_key(name: &str) -> String {
    format!("name:{}", name.to_lowercase())
}

/// The keys of the target groups a source group feeds under a flow's rules (the source key
/// itself without rules): what `apply_group_rules` maps it to, for carrying nested groups
/// over (`crate::nesting`).
pub fn target_keys(rules: &GroupRules, key: &str, display: &str) -> Vec<String> {
    if rules.is_empty() {
        return vec![key.to_string()];
    }
    let name = rules.name_of(key, display);
    let names: Vec<String> = match rules.mapped(key, &name) {
        Some(list) => list.clone(),
        None if !rules.manual || rules.unmatched == Unmatched::Keep => vec![rules.renamed(&name)],
        None => Vec::new(),
    };
    names
        .into_iter()
        .filter(|t| rules.wanted(t))
        .map(|t| group_key(&t))
        .collect()
}

/// Apply group rules to a desired state. Returns the users left out, with why.
pub fn apply_group_rules(
    desired: &mut DesiredState,
    ledger: &LedgerState,
    rules: &GroupRules,
) -> BTreeMap<String, String> {
    let mut left_out: BTreeMap<String, String> = BTreeMap::new();
    if rules.is_empty() {
        return left_out;
    }
    // Required groups: only their (effective) members.
    if !rules.required.is_empty() {
        let mut allowed: BTreeSet<Key> = BTreeSet::new();
        for (key, g) in &desired.groups {
            let name = rules.name_of(key, &g.display_name);
            if rules.required.iter().any(|p| p.matches(&name)) {
                if let Some(m) = desired.members.get(key) {
                    allowed.extend(m.iter().cloned());
                }
            }
        }
        for key in desired.users.keys() {
            if !allowed.contains(key.as_str()) {
                left_out.insert(key.clone(), "not a member of a required group".into());
            }
        }
    }
    // Target groups: lower-case name -> (display name, members, contributing source groups).
    let mut targets: BTreeMap<String, (String, BTreeSet<Key>, Vec<&Group>)> = BTreeMap::new();
    let mut cleared: BTreeSet<Key> = BTreeSet::new();
    let empty = BTreeSet::new();
    for (key, g) in &desired.groups {
        let name = rules.name_of(key, &g.display_name);
        let members = desired.members.get(key).unwrap_or(&empty);
        let names: Vec<String> = match rules.mapped(key, &name) {
            Some(list) => list.clone(),
            None if !rules.manual => vec![rules.renamed(&name)],
            None => match rules.unmatched {
                Unmatched::Keep => vec![rules.renamed(&name)],
                Unmatched::Ignore => Vec::new(),
                Unmatched::Clear => {
                    cleared.extend(members.iter().cloned());
                    Vec::new()
                }
                Unmatched::LeaveOut => {
                    for m in members {
                        left_out.entry(m.to_string()).or_insert_with(|| {
                            format!("member of {name:?}, which no group rule maps")
                        });
                    }
                    Vec::new()
                }
            },
        };
        for target in names.into_iter().filter(|t| rules.wanted(t)) {
            let entry = targets
                .entry(target.to_lowercase())
                .or_insert_with(|| (target.clone(), BTreeSet::new(), Vec::new()));
            entry.1.extend(members.iter().cloned());
            entry.2.push(g);
        }
    }
    // Default groups.
    for (names, only_new) in [(&rules.default_all, false), (&rules.default_new, true)] {
        for target in names {
            let entry = targets
                .entry(target.to_lowercase())
                .or_insert_with(|| (target.clone(), BTreeSet::new(), Vec::new()));
            let key = group_key(target);
            for u in desired.users.keys() {
                let new = !ledger.users.contains_key(u);
                let had = ledger
                    .members
                    .get(&key)
                    .is_some_and(|m| m.contains(u.as_str()));
                if !only_new || new || had {
                    entry.1.insert(Key::from(u.as_str()));
                }
            }
        }
    }
    for key in left_out.keys() {
        desired.users.remove(key);
    }
    let mut groups = BTreeMap::new();
    let mut members = BTreeMap::new();
    for (lower, (display, mut m, sources)) in targets {
        let key = group_key(&lower);
        let mut group = match sources.as_slice() {
            // One source group: it keeps its other attributes.
            [one] => (*one).clone(),
            _ => Group::new(key.clone(), display.clone()),
        };
        group.source_id.clone_from(&key);
        group.display_name = display;
        m.retain(|u| desired.users.contains_key(&**u) && !cleared.contains(u));
        if !m.is_empty() {
            members.insert(key.clone(), m);
        }
        groups.insert(key, group);
    }
    desired.groups = groups;
    desired.members = members;
    left_out
}

/// With memberships kept by hand: of what a reconcile run found in the target, keep in the
/// ledger only the memberships idsync made (`recorded`) or wants (`desired`). The others were
/// made by hand in the application: idsync does not own them, so no plan ever removes them.
pub fn forget_manual_members(
    observed: &mut LedgerState,
    recorded: &LedgerState,
    desired: &DesiredState,
) {
    for (group, seen) in observed.members.iter_mut() {
        let made = recorded.members.get(group);
        let wanted = desired.members.get(group);
        seen.retain(|m| {
            made.is_some_and(|r| r.contains(m)) || wanted.is_some_and(|w| w.contains(m))
        });
    }
    observed.members.retain(|_, m| !m.is_empty());
}
