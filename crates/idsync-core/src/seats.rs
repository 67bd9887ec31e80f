//! Licence seats: a target that counts users against a licence (Jira's application roles)
//! says how many seats are left, and a plan never creates more users with application access
//! than that. The creations over the limit are held, like deprovisions over the deletion
//! threshold (decision 0039): an admin approves (they are created, the target may refuse)
//! or rejects them (the next run judges again).

use crate::plan::{Action, Operation, Plan};
use crate::Key;
use std::collections::BTreeSet;

/// The seats a new user would take, as the target counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seats {
    /// What the seats are for, in words ("Jira Software").
    pub application: String,
    /// Seats on the licence.
    pub total: u64,
    /// Seats left (0 when the licence is already over its limit).
    pub remaining: u64,
}

impl Plan {
    /// Creations of active users (not in `allowed`) beyond the first `room`, held with the
    /// memberships that name them (a group created with them as first members loses them to
    /// a held `AddMembers`). Returns what was held; the plan keeps the rest in order.
    pub fn hold_creations(&mut self, room: usize, allowed: &BTreeSet<String>) -> Vec<Operation> {
        let held_users: BTreeSet<String> = self
            .operations
            .iter()
            .filter(|o| matches!(&o.action, Action::CreateUser { user } if user.active))
            .filter(|o| !allowed.contains(&o.key))
            .skip(room)
            .map(|o| o.key.clone())
            .collect();
        if held_users.is_empty() {
            return Vec::new();
        }
        let mut held = Vec::new();
        let mut kept = Vec::with_capacity(self.operations.len());
        for mut op in std::mem::take(&mut self.operations) {
            if matches!(op.action, Action::CreateUser { .. }) && held_users.contains(&op.key) {
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
            let (hold, keep): (Vec<Key>, Vec<Key>) = std::mem::take(users)
                .into_iter()
                .partition(|u| held_users.contains(&**u));
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

    /// Users this plan creates active (each takes a seat), those in `allowed` left out.
    pub fn seat_takers(&self, allowed: &BTreeSet<String>) -> usize {
        self.operations
            .iter()
            .filter(|o| matches!(&o.action, Action::CreateUser { user } if user.active))
            .filter(|o| !allowed.contains(&o.key))
            .count()
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

    #[test]
    fn creations_over_the_room_are_held_with_their_memberships() {
        let mut plan = Plan {
            operations: vec![
                create("a", true),
                create("off", false),
                create("b", true),
                create("c", true),
                Operation {
                    key: "g".into(),
                    action: Action::CreateGroup {
                        group: Group::new("g", "G"),
                        members: vec!["a".into(), "c".into()],
                    },
                    reason: Reason::NewInSource,
                },
                Operation {
                    key: "h".into(),
                    action: Action::AddMembers {
                        group: "H".into(),
                        users: vec!["b".into()],
                    },
                    reason: Reason::NewInSource,
                },
            ],
            ..Plan::default()
        };
        let allowed: BTreeSet<String> = ["b".to_string()].into();
        assert_eq!(plan.seat_takers(&allowed), 2);
        let held = plan.hold_creations(1, &allowed);
        let keys: Vec<(&str, &str)> = held
            .iter()
            .map(|o| (o.key.as_str(), o.action.name()))
            .collect();
        assert_eq!(keys, vec![("c", "create_user"), ("g", "add_members")]);
        assert_eq!(plan.operations.len(), 5);
        match &plan.operations[3].action {
            Action::CreateGroup { members, .. } => assert_eq!(members, &vec![Key::from("a")]),
            other => panic!("{other:?}"),
        }
    }
}
