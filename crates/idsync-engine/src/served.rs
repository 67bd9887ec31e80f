//! Targets idsync serves itself (`type = "crowd"`, decision 0031): applying an operation
//! writes nothing remote. The flow's ledger is the served directory, and each ledger change
//! becomes an event of the target's feed, written in the same transaction.

use async_trait::async_trait;
use idsync_core::{
    Action, Group, LedgerState, Operation, Outcome, Target, TargetError, TargetOp, TargetSnapshot,
    User,
};
use idsync_crowd::Event;

/// A served target: every operation is applied by being recorded in the flow's ledger.
#[derive(Debug, Clone)]
pub struct ServedTarget {
    name: String,
}

impl ServedTarget {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
        }
    }
}

#[async_trait]
impl Target for ServedTarget {
    fn describe(&self) -> String {
        format!(
            "Crowd-compatible directory served by idsync at /crowd/{}/rest/usermanagement/1/",
            self.name
        )
    }

    async fn health(&self) -> Result<(), TargetError> {
        Ok(())
    }

    /// Nothing exists outside the ledger: a create repeated after a crash finds no earlier
    /// object (the ledger would have it), so there is never anything to link to.
    async fn find_user(&self, _user: &User) -> Result<Option<String>, TargetError> {
        Ok(None)
    }

    async fn find_group(&self, _group: &Group) -> Result<Option<String>, TargetError> {
        Ok(None)
    }

    /// Recorded, not sent: a created object's target id is its source key (stable, and what
    /// the served directory keys it by).
    async fn apply(&self, op: &TargetOp) -> Outcome {
        let target_id = match op {
            TargetOp::CreateUser { user } => Some(user.source_id.clone()),
            TargetOp::CreateGroup { group, .. } => Some(group.source_id.clone()),
            _ => None,
        };
        Outcome::Applied { target_id }
    }

    /// A served target has no remote state: the ledger is what the products read, so there is
    /// nothing to compare it with. The engine refuses a reconcile of it before asking.
    async fn read_state(&self) -> Result<TargetSnapshot, TargetError> {
        Err(TargetError::Unavailable(format!(
            "target {} is served by idsync (type crowd): it has no remote state to read back; its ledger is what the products read",
            self.name
        )))
    }

    /// Crowd groups are known by name, and the products grant permissions by name: a group
    /// renamed in the source follows the flow's `group_rename` policy, as for a target that
    /// cannot rename (kept under its old name by default, so the permissions granted to it
    /// stay; or created anew under the new name with `recreate`, the old one left as it was).
    fn can_rename_groups(&self) -> bool {
        false
    }
}

/// The events of the feed for one applied operation, from the ledger as it was before the
/// operation was recorded in it (the state the products last saw). Changes Crowd does not show
/// (an attribute it does not serve) make no event; a member added twice or removed when it was
/// not a member makes none either.
pub(crate) fn events_of(ledger: &LedgerState, op: &Operation) -> Vec<Event> {
    let key = op.key.as_str();
    match &op.action {
        Action::CreateUser { user } => vec![Event::user_created(key, user)],
        Action::UpdateUser { before, after, .. } | Action::DisableUser { before, after } => {
            let before = ledger.users.get(key).map_or(before, |u| &u.user);
            Event::user_updated(key, before, after)
        }
        Action::DeleteUser { before } => {
            let before = ledger.users.get(key).map_or(before, |u| &u.user);
            vec![Event::user_deleted(key, before)]
        }
        Action::CreateGroup { group, members } => {
            // A group created again under its key replaces the old one (without members).
            let mut out: Vec<Event> = ledger
                .groups
                .get(key)
                .map(|old| Event::group_deleted(&old.group))
                .into_iter()
                .collect();
            out.push(Event::group_created(group));
            // A served target takes no members in a create (`members_in_create` is false),
            // but were they given, each would be a membership the products must see.
            out.extend(
                members
                    .iter()
                    .filter_map(|u| ledger.users.get(&**u))
                    .map(|u| Event::membership_created(group, &u.user)),
            );
            out
        }
        Action::UpdateGroup { before, after, .. } => {
            let before = ledger.groups.get(key).map_or(before, |g| &g.group);
            Event::group_updated(before, after)
        }
        Action::DeleteGroup { before } => {
            let before = ledger.groups.get(key).map_or(before, |g| &g.group);
            vec![Event::group_deleted(before)]
        }
        Action::AddMembers { users, .. } | Action::RemoveMembers { users, .. } => {
            let adding = matches!(op.action, Action::AddMembers { .. });
            let Some(group) = ledger.groups.get(key) else {
                return Vec::new();
            };
            let current = ledger.members.get(key);
            users
                .iter()
                .filter(|u| current.is_some_and(|s| s.contains(&***u)) != adding)
                .filter_map(|u| ledger.users.get(&**u))
                .map(|u| {
                    if adding {
                        Event::membership_created(&group.group, &u.user)
                    } else {
                        Event::membership_deleted(&group.group, &u.user)
                    }
                })
                .collect()
        }
        Action::AddChildGroups { groups, .. } | Action::RemoveChildGroups { groups, .. } => {
            child_group_events(ledger, op, groups)
        }
    }
}

/// Nested groups (decision 0033): an edge added or taken out, only where it changes what the
/// ledger holds.
fn child_group_events(ledger: &LedgerState, op: &Operation, children: &[String]) -> Vec<Event> {
    let adding = matches!(op.action, Action::AddChildGroups { .. });
    let Some(parent) = ledger.groups.get(&op.key) else {
        return Vec::new();
    };
    let current = ledger.child_groups.get(&op.key);
    children
        .iter()
        .filter(|c| current.is_some_and(|s| s.contains(*c)) != adding)
        .filter_map(|c| ledger.groups.get(c))
        .map(|child| {
            if adding {
                Event::child_group_created(&parent.group, &child.group)
            } else {
                Event::child_group_deleted(&parent.group, &child.group)
            }
        })
        .collect()
}

/// The events of an operation, serialised as the store keeps them.
pub(crate) fn serialised_events_of(ledger: &LedgerState, op: &Operation) -> Vec<String> {
    events_of(ledger, op)
        .iter()
        .filter_map(|e| match serde_json::to_string(e) {
            Ok(s) => Some(s),
            Err(err) => {
                tracing::error!(key = %op.key, error = %err, "cannot serialise a crowd event");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use idsync_core::{Key, LedgerGroup, LedgerUser, Reason};

    fn op(key: &str, action: Action) -> Operation {
        Operation {
            key: key.into(),
            action,
            reason: Reason::NewInSource,
        }
    }

    fn ledger() -> LedgerState {
        let mut l = LedgerState::default();
        for (k, n) in [("u1", "ann"), ("u2", "bob")] {
            l.users
                .insert(k.into(), LedgerUser::new(k, User::new(k, n)));
        }
        l.groups.insert(
            "g1".into(),
            LedgerGroup {
                target_id: "g1".into(),
                group: Group::new("g1", "devs"),
            },
        );
        l.members
            .entry("g1".into())
            .or_default()
            .insert(Key::from("u1"));
        l
    }

    fn users(keys: &[&str]) -> Vec<Key> {
        keys.iter().map(|k| Key::from(*k)).collect()
    }

    #[test]
    fn only_real_membership_changes_make_events() {
        let l = ledger();
        let add = op(
            "g1",
            Action::AddMembers {
                group: "devs".into(),
                users: users(&["u1", "u2"]),
            },
        );
        assert_eq!(
            events_of(&l, &add),
            vec![Event::MembershipCreated {
                group: "devs".into(),
                user: "bob".into()
            }]
        );
        let remove = op(
            "g1",
            Action::RemoveMembers {
                group: "devs".into(),
                users: users(&["u1", "u2"]),
            },
        );
        assert_eq!(
            events_of(&l, &remove),
            vec![Event::MembershipDeleted {
                group: "devs".into(),
                user: "ann".into()
            }]
        );
    }

    #[test]
    fn updates_compare_with_what_the_products_last_saw() {
        let l = ledger();
        let mut after = User::new("u2", "bob");
        after.active = false;
        // The plan's `before` is not what the ledger holds: the ledger wins.
        let disable = op(
            "u2",
            Action::DisableUser {
                before: User::new("u2", "someone-else"),
                after,
            },
        );
        let events = events_of(&l, &disable);
        assert!(
            matches!(&events[..], [Event::UserUpdated { user, old_name: None, .. }] if !user.active),
            "{events:?}"
        );
        // Nothing Crowd shows changed: no event.
        let same = op(
            "u1",
            Action::UpdateUser {
                before: User::new("u1", "ann"),
                after: User::new("u1", "ann"),
                changed: vec![],
            },
        );
        assert!(events_of(&l, &same).is_empty());
    }

    #[test]
    fn a_renamed_group_names_its_old_name_and_a_recreated_one_is_deleted_first() {
        let l = ledger();
        let rename = op(
            "g1",
            Action::UpdateGroup {
                before: Group::new("g1", "devs"),
                after: Group::new("g1", "engineers"),
                changed: vec!["displayName".into()],
            },
        );
        let events = events_of(&l, &rename);
        assert!(
            matches!(&events[..], [Event::GroupUpdated { group, old_name: Some(old), .. }] if group.name == "engineers" && old == "devs"),
            "{events:?}"
        );
        let recreate = op(
            "g1",
            Action::CreateGroup {
                group: Group::new("g1", "engineers"),
                members: Vec::new(),
            },
        );
        let events = events_of(&l, &recreate);
        assert!(
            matches!(&events[..], [Event::GroupDeleted { name }, Event::GroupCreated { .. }] if name == "devs"),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn applying_writes_nothing_and_reading_back_says_why_not() {
        let t = ServedTarget::new("dc");
        let created = t
            .apply(&TargetOp::CreateUser {
                user: User::new("u9", "zed"),
            })
            .await;
        assert_eq!(
            created,
            Outcome::Applied {
                target_id: Some("u9".into())
            }
        );
        let e = t.read_state().await.unwrap_err().to_string();
        assert!(e.contains("no remote state"), "{e}");
    }
}
