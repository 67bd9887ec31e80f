//! The Jira target's operations, one by one.

use super::{leads, JiraTarget};
use crate::targets::atlassian_dc::client::enc;
use crate::targets::atlassian_dc::{group_update, no_nested_groups, Failure};
use idsync_core::{Outcome, TargetOp};
use reqwest::Method;
use serde_json::{json, Value};

impl JiraTarget {
    /// Apply one operation (`Target::apply` keeps the run's listing up to date after it).
    pub(super) async fn apply_op(&self, op: &TargetOp) -> Outcome {
        let done = |r: Result<(), Failure>| match r {
            Ok(()) => Outcome::Applied { target_id: None },
            Err(f) => f.outcome(),
        };
        match op {
            TargetOp::CreateUser { user } => match self.create_user(user).await {
                Ok(key) => Outcome::Applied {
                    target_id: Some(key),
                },
                Err(f) => f.outcome(),
            },
            TargetOp::UpdateUser {
                target_id,
                before,
                after,
            } => done(self.update_user(target_id, before, after).await),
            TargetOp::DeleteUser { target_id } => done(leads::delete_user(self, target_id).await),
            TargetOp::CreateGroup { group, members } => {
                let body = json!({"name": group.display_name});
                let name = match self
                    .client
                    .call(Method::POST, "/rest/api/2/group", Some(&body))
                    .await
                {
                    Ok(v) => v
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or(&group.display_name)
                        .to_string(),
                    Err(f) => return f.outcome(),
                };
                // Jira takes no members in a group's create: the plan sends none
                // (`members_in_create` is false), but any given are added right after.
                match self.add_members(&name, members).await {
                    Ok(()) => Outcome::Applied {
                        target_id: Some(name),
                    },
                    Err(f) => Outcome::Rejected {
                        reason: format!(
                            "group {name} was created, but its first members were not added: {}",
                            f.reason
                        ),
                    },
                }
            }
            TargetOp::UpdateGroup {
                target_id, after, ..
            } => group_update("Jira", target_id, &after.display_name),
            TargetOp::DeleteGroup { target_id } => {
                let path = format!("/rest/api/2/group?groupname={}", enc(target_id));
                done(
                    self.client
                        .call(Method::DELETE, &path, None)
                        .await
                        .map(|_| ()),
                )
            }
            TargetOp::AddChildGroups { .. } | TargetOp::RemoveChildGroups { .. } => {
                no_nested_groups("Jira")
            }
            TargetOp::AddMembers { group_id, user_ids } => {
                match self.add_members(group_id, user_ids).await {
                    Ok(()) => Outcome::Applied { target_id: None },
                    Err(f) => f.outcome(),
                }
            }
            TargetOp::RemoveMembers { group_id, user_ids } => {
                for key in user_ids {
                    let r = match self.username(key).await {
                        Ok(name) => self.remove_from_group(group_id, &name).await,
                        // A user gone from Jira is in no group.
                        Err(f) if f.status == Some(404) => Ok(()),
                        Err(f) => Err(f),
                    };
                    if let Err(f) = r {
                        return f.outcome();
                    }
                }
                Outcome::Applied { target_id: None }
            }
        }
    }
}
