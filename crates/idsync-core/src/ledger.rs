//! Recording applied operations in a flow's ledger (what the target now holds).

use crate::plan::{Action, Operation};
use crate::state::{LedgerGroup, LedgerState, LedgerUser};

impl LedgerState {
    /// Record in the ledger that `op` was applied at `at_ms`. `target_id` is the id the target
    /// gave a created object, or the new id of a user an update moved (a target whose only
    /// user id is the username, renamed: Bamboo); ignored for other actions.
    pub fn record(&mut self, op: &Operation, target_id: Option<&str>, at_ms: i64) {
        let key = &op.key;
        match &op.action {
            Action::CreateUser { user } => {
                self.users.insert(
                    key.clone(),
                    LedgerUser::new(target_id.unwrap_or_default(), user.clone()),
                );
            }
            Action::UpdateUser { after, .. } => {
                if let Some(u) = self.users.get_mut(key) {
                    if let Some(id) = target_id.filter(|id| !id.is_empty()) {
                        u.target_id = id.to_string();
                    }
                    u.user = after.clone();
                    if after.active {
                        u.disabled_ms = None;
                        u.original = None;
                    }
                }
            }
            Action::DisableUser { before, after } => {
                if let Some(u) = self.users.get_mut(key) {
                    if let Some(id) = target_id.filter(|id| !id.is_empty()) {
                        u.target_id = id.to_string();
                    }
                    u.disabled_ms.get_or_insert(at_ms);
                    // An anonymized copy: keep the real values (once).
                    if before.user_name != after.user_name && u.original.is_none() {
                        u.original = Some(before.clone());
                    }
                    u.user = after.clone();
                }
            }
            Action::DeleteUser { .. } => {
                self.users.remove(key);
                for set in self.members.values_mut() {
                    set.remove(key.as_str());
                }
                self.members.retain(|_, s| !s.is_empty());
            }
            Action::CreateGroup { group, members } => {
                // A new group in the target starts without members (also when it replaces
                // one the target could not rename), or with those it was created with.
                self.members.remove(key);
                self.child_groups.remove(key);
                if !members.is_empty() {
                    self.members
                        .insert(key.clone(), members.iter().cloned().collect());
                }
                self.groups.insert(
                    key.clone(),
                    LedgerGroup {
                        target_id: target_id.unwrap_or_default().to_string(),
                        group: group.clone(),
                    },
                );
            }
            Action::UpdateGroup { after, .. } => {
                if let Some(g) = self.groups.get_mut(key) {
                    g.group = after.clone();
                }
            }
            Action::DeleteGroup { .. } => {
                self.groups.remove(key);
                self.members.remove(key);
                // A deleted group is nobody's child any more either.
                self.child_groups.remove(key);
                for set in self.child_groups.values_mut() {
                    set.remove(key.as_str());
                }
                self.child_groups.retain(|_, s| !s.is_empty());
            }
            Action::AddMembers { users, .. } => {
                self.members
                    .entry(key.clone())
                    .or_default()
                    .extend(users.iter().cloned());
            }
            Action::RemoveMembers { users, .. } => {
                if let Some(set) = self.members.get_mut(key) {
                    for u in users {
                        set.remove(&**u);
                    }
                    if set.is_empty() {
                        self.members.remove(key);
                    }
                }
            }
            Action::AddChildGroups { groups, .. } => {
                self.child_groups
                    .entry(key.clone())
                    .or_default()
                    .extend(groups.iter().cloned());
            }
            Action::RemoveChildGroups { groups, .. } => {
                if let Some(set) = self.child_groups.get_mut(key) {
                    for g in groups {
                        set.remove(g);
                    }
                    if set.is_empty() {
                        self.child_groups.remove(key);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::plan::Reason;
    use crate::User;

    #[test]
    fn an_update_that_answers_a_new_id_moves_the_user_to_it() {
        let mut l = LedgerState::default();
        let ann = User::new("s1", "ann");
        l.users
            .insert("s1".into(), LedgerUser::new("ann", ann.clone()));
        let mut renamed = ann.clone();
        renamed.user_name = "ann.lee".into();
        let op = Operation {
            key: "s1".into(),
            action: Action::UpdateUser {
                before: ann.clone(),
                after: renamed.clone(),
                changed: vec!["userName".into()],
            },
            reason: Reason::ChangedInSource(vec!["userName".into()]),
        };
        l.record(&op, None, 1);
        assert_eq!(l.users["s1"].target_id, "ann", "no id answered: kept");
        l.record(&op, Some(""), 2);
        assert_eq!(l.users["s1"].target_id, "ann", "an empty id: kept");
        l.record(&op, Some("ann.lee"), 3);
        assert_eq!(l.users["s1"].target_id, "ann.lee");
        assert_eq!(l.users["s1"].user, renamed);
    }
}
