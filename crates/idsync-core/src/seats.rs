//! Licence seats: a target that counts users against a licence (Jira's application roles)
//! says, for each role with a seat limit, the seats left and the groups that grant it, and a
//! plan never gives more users application access than that. A user takes a seat in a role
//! when it is created active (the roles new users join, and those of the groups it is added
//! to), when an existing user is added to a group that grants a role it does not hold, and
//! when a returning user is enabled (the roles of the groups it is in or gets back). A user
//! counts once per role, however many of its groups grant it. The grants over the limit are
//! held, like deprovisions over the deletion threshold (decision 0039): an admin approves
//! (they go through, the target may refuse) or rejects them (the next run judges again).

use crate::plan::{Action, Operation, Plan};
use crate::Key;
use std::collections::{BTreeMap, BTreeSet};

/// One application role with a seat limit, as the target counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatRole {
    /// What the seats are for, in words ("Jira Software").
    pub application: String,
    /// Seats on the licence.
    pub total: u64,
    /// Seats left (0 when the licence is already over its limit).
    pub remaining: u64,
    /// The groups that grant it, lower-cased.
    pub groups: BTreeSet<String>,
    /// Whether every new user joins it (Jira: selected by default, or one of the target's
    /// default groups grants it).
    pub new_users: bool,
}

/// An existing user as its seats stand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeatHolder {
    /// Active in the target: an inactive user takes no seat, whatever its groups.
    pub active: bool,
    /// The roles (`SeatRole::application`) it holds now.
    pub holds: BTreeSet<String>,
    /// The groups (lower-cased) that give it access again when it is enabled: those it is
    /// in, or those recorded when its access was removed.
    pub returns_with: BTreeSet<String>,
}

/// How a user comes to application access in a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SeatGrant {
    /// Created active.
    Created,
    /// An existing user added to a group that grants access.
    Added,
    /// A returning user enabled.
    Returning,
}

/// A user a plan may give application access to: the groups (lower-cased) the plan adds it
/// to, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatTaker {
    pub key: String,
    pub grant: SeatGrant,
    pub groups: BTreeSet<String>,
}

impl SeatTaker {
    /// The roles this user takes a new seat in (`holder`: what an existing user holds now;
    /// `None` for a created user).
    pub fn roles<'a>(
        &self,
        roles: &'a [SeatRole],
        holder: Option<&SeatHolder>,
    ) -> Vec<&'a SeatRole> {
        let empty = BTreeSet::new();
        let (holds, returns) = match (self.grant, holder) {
            (SeatGrant::Created, _) => (&empty, &empty),
            // Unknown to the target: judged as a new user would be, minus the default roles.
            (_, None) => (&empty, &empty),
            (SeatGrant::Added, Some(h)) if !h.active => return Vec::new(),
            (SeatGrant::Added, Some(h)) => (&h.holds, &empty),
            (SeatGrant::Returning, Some(h)) => (&h.holds, &h.returns_with),
        };
        roles
            .iter()
            .filter(|r| {
                (self.grant == SeatGrant::Created && r.new_users)
                    || r.groups
                        .iter()
                        .any(|g| self.groups.contains(g) || returns.contains(g))
            })
            .filter(|r| !holds.contains(&r.application))
            .collect()
    }
}

impl Plan {
    /// The users this plan may give application access to, in plan order: users created
    /// active, users enabled (an update from inactive to active), and existing users added
    /// to a group in `granting` (lower-cased names), each once with every group the plan adds
    /// it to.
    pub fn seat_takers(&self, granting: &BTreeSet<String>) -> Vec<SeatTaker> {
        let mut order: Vec<String> = Vec::new();
        let mut takers: BTreeMap<String, SeatTaker> = BTreeMap::new();
        let mut added: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut added_order: Vec<String> = Vec::new();
        for op in &self.operations {
            let (group, users) = match &op.action {
                Action::CreateUser { user } if user.active => {
                    order.push(op.key.clone());
                    takers.insert(op.key.clone(), taker(&op.key, SeatGrant::Created));
                    continue;
                }
                Action::UpdateUser { before, after, .. } if !before.active && after.active => {
                    order.push(op.key.clone());
                    takers.insert(op.key.clone(), taker(&op.key, SeatGrant::Returning));
                    continue;
                }
                Action::AddMembers { group, users } => (group.to_lowercase(), users),
                Action::CreateGroup { group, members } => {
                    (group.display_name.to_lowercase(), members)
                }
                _ => continue,
            };
            for u in users {
                let u: &str = u;
                let groups = added.entry(u.to_string()).or_insert_with(|| {
                    added_order.push(u.to_string());
                    BTreeSet::new()
                });
                groups.insert(group.clone());
            }
        }
        for u in added_order {
            let groups = added.remove(&u).unwrap_or_default();
            if let Some(t) = takers.get_mut(&u) {
                t.groups.extend(groups);
            } else if groups.iter().any(|g| granting.contains(g)) {
                order.push(u.clone());
                let mut t = taker(&u, SeatGrant::Added);
                t.groups = groups;
                takers.insert(u, t);
            }
        }
        order
            .into_iter()
            .filter_map(|k| takers.remove(&k))
            .collect()
    }

    /// Hold what gives these users application access: a created user's creation and every
    /// membership that names it (a group created with it as a first member loses it to a
    /// held `AddMembers`); a returning user's enabling; and the memberships of returning and
    /// existing users in the groups of `granting`. Returns what was held; the plan keeps the
    /// rest in order.
    pub fn hold_grants(
        &mut self,
        held_users: &BTreeSet<String>,
        granting: &BTreeSet<String>,
    ) -> Vec<Operation> {
        if held_users.is_empty() {
            return Vec::new();
        }
        let created: BTreeSet<String> = self
            .operations
            .iter()
            .filter(|o| matches!(o.action, Action::CreateUser { .. }))
            .filter(|o| held_users.contains(&o.key))
            .map(|o| o.key.clone())
            .collect();
        let mut held = Vec::new();
        let mut kept = Vec::with_capacity(self.operations.len());
        for mut op in std::mem::take(&mut self.operations) {
            let whole = match &op.action {
                Action::CreateUser { .. } => created.contains(&op.key),
                Action::UpdateUser { before, after, .. } => {
                    !before.active && after.active && held_users.contains(&op.key)
                }
                _ => false,
            };
            if whole {
                held.push(op);
                continue;
            }
            let (group, users) = match &mut op.action {
                Action::AddMembers { group, users } => (group.clone(), users),
                Action::CreateGroup { group, members } => (group.display_name.clone(), members),
                _ => {
                    kept.push(op);
                    continue;
                }
            };
            let grants = granting.contains(&group.to_lowercase());
            let (hold, keep): (Vec<Key>, Vec<Key>) = std::mem::take(users)
                .into_iter()
                .partition(|u| created.contains(&**u) || (grants && held_users.contains(&**u)));
            let emptied = keep.is_empty();
            *users = keep;
            if !hold.is_empty() {
                held.push(Operation {
                    key: op.key.clone(),
                    action: Action::AddMembers { group, users: hold },
                    reason: op.reason.clone(),
                });
            }
            if emptied && matches!(op.action, Action::AddMembers { .. }) {
                continue;
            }
            kept.push(op);
        }
        self.operations = kept;
        held
    }
}

fn taker(key: &str, grant: SeatGrant) -> SeatTaker {
    SeatTaker {
        key: key.to_string(),
        grant,
        groups: BTreeSet::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::plan::Reason;
    use crate::{Group, User};

    fn create(key: &str, active: bool) -> Operation {
        let mut user = User::new(key, key);
        user.active = active;
        Operation {
            key: key.into(),
            action: Action::CreateUser { user },
            reason: Reason::NewInSource,
        }
    }

    fn enable(key: &str) -> Operation {
        let mut before = User::new(key, key);
        before.active = false;
        Operation {
            key: key.into(),
            action: Action::UpdateUser {
                before,
                after: User::new(key, key),
                changed: vec!["active".into()],
            },
            reason: Reason::NewInSource,
        }
    }

    fn add(group: &str, users: &[&str]) -> Operation {
        Operation {
            key: group.to_lowercase(),
            action: Action::AddMembers {
                group: group.into(),
                users: users.iter().map(|u| Key::from(*u)).collect(),
            },
            reason: Reason::NewInSource,
        }
    }

    fn role(app: &str, groups: &[&str], new_users: bool) -> SeatRole {
        SeatRole {
            application: app.into(),
            total: 10,
            remaining: 1,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            new_users,
        }
    }

    #[test]
    fn takers_are_created_enabled_and_added_users_each_once() {
        let plan = Plan {
            operations: vec![
                create("a", true),
                create("off", false),
                enable("r"),
                add("Jira-Software-Users", &["a", "x", "r"]),
                add("jira-core", &["x"]),
                add("wiki", &["y"]),
                Operation {
                    key: "g".into(),
                    action: Action::CreateGroup {
                        group: Group::new("g", "Staff"),
                        members: vec!["a".into()],
                    },
                    reason: Reason::NewInSource,
                },
            ],
            ..Plan::default()
        };
        let granting: BTreeSet<String> =
            ["jira-software-users".to_string(), "jira-core".into()].into();
        let t = plan.seat_takers(&granting);
        let keys: Vec<(&str, SeatGrant)> = t.iter().map(|t| (t.key.as_str(), t.grant)).collect();
        assert_eq!(
            keys,
            vec![
                ("a", SeatGrant::Created),
                ("r", SeatGrant::Returning),
                ("x", SeatGrant::Added)
            ],
            "y joins no group that grants access"
        );
        assert_eq!(t[2].groups.len(), 2, "x once, with both groups");
        let roles = vec![
            role("Software", &["jira-software-users"], false),
            role("Core", &["jira-core"], true),
        ];
        // x already holds Core: one new seat (Software), however many groups grant it.
        let holder = SeatHolder {
            active: true,
            holds: ["Core".to_string()].into(),
            returns_with: BTreeSet::new(),
        };
        let apps = |v: Vec<&SeatRole>| v.iter().map(|r| r.application.clone()).collect::<Vec<_>>();
        assert_eq!(apps(t[2].roles(&roles, Some(&holder))), vec!["Software"]);
        // An inactive user added to a group takes no seat.
        let off = SeatHolder::default();
        assert!(t[2].roles(&roles, Some(&off)).is_empty());
        // The created user: Core by default, Software by its group.
        assert_eq!(apps(t[0].roles(&roles, None)), vec!["Software", "Core"]);
        // The returning user gets back what it is in (or was recorded in).
        let back = SeatHolder {
            active: false,
            holds: BTreeSet::new(),
            returns_with: ["jira-core".to_string()].into(),
        };
        assert_eq!(
            apps(t[1].roles(&roles, Some(&back))),
            vec!["Software", "Core"]
        );
    }

    #[test]
    fn held_grants_take_their_memberships_in_granting_groups_only() {
        let mut plan = Plan {
            operations: vec![
                create("a", true),
                enable("r"),
                add("jira-software-users", &["a", "x", "r", "z"]),
                add("wiki", &["a", "x"]),
                Operation {
                    key: "g".into(),
                    action: Action::CreateGroup {
                        group: Group::new("g", "G"),
                        members: vec!["a".into(), "z".into()],
                    },
                    reason: Reason::NewInSource,
                },
            ],
            ..Plan::default()
        };
        let granting: BTreeSet<String> = ["jira-software-users".to_string()].into();
        let held_users: BTreeSet<String> = ["a".to_string(), "r".into(), "x".into()].into();
        let held = plan.hold_grants(&held_users, &granting);
        let names: Vec<(&str, &str)> = held
            .iter()
            .map(|o| (o.key.as_str(), o.action.name()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("a", "create_user"),
                ("r", "update_user"),
                ("jira-software-users", "add_members"),
                ("wiki", "add_members"),
                ("g", "add_members")
            ]
        );
        match &held[2].action {
            Action::AddMembers { users, .. } => {
                assert_eq!(users, &vec![Key::from("a"), "x".into(), "r".into()]);
            }
            other => panic!("{other:?}"),
        }
        match &held[3].action {
            Action::AddMembers { users, .. } => assert_eq!(users, &vec![Key::from("a")]),
            other => panic!("{other:?}"),
        }
        // Kept: z in the granting group, x in wiki, the group with z.
        assert_eq!(plan.operations.len(), 3);
        match &plan.operations[1].action {
            Action::AddMembers { users, .. } => assert_eq!(users, &vec![Key::from("x")]),
            other => panic!("{other:?}"),
        }
    }
}
