//! A group's create with its first members (issue 16, item 4).
//!
//! The plan gives a new group its first members with the create (`Target::members_in_create`),
//! and the target must have them all as members when it answers `Applied`. Two request forms
//! (`OpKind::CreateGroup`):
//!
//! - `post-with-members` (the default, and `members_in_create = true`): one POST carrying
//!   them. What the service answers is checked: a service that drops members it was sent in a
//!   create (django-scim2 answers 201 with `"members": []`) gets the missing ones added by a
//!   PATCH right after, so nothing is lost silently;
//! - `post` (`members_in_create = false`, for a service that refuses members in the create):
//!   the POST without members, then a PATCH adding them. A service that answers such a POST
//!   `400` naming `members` (it requires them) is sent the create again with them at once, and
//!   `post-with-members` is learned for it (remembered by the engine like the other forms).

use super::{group_body, Answer, ScimTarget};
use idsync_core::{Form, Group, OpKind, Outcome, TargetOp};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

impl ScimTarget {
    /// The form a group's create goes out in: what was learned or remembered, else the setting.
    fn create_form(&self) -> Form {
        match self.forms.remembered(OpKind::CreateGroup) {
            Some(f @ (Form::Post | Form::PostWithMembers)) => f,
            _ if self.cfg.members_in_create => Form::PostWithMembers,
            _ => Form::Post,
        }
    }

    /// Create a group with these first members (target ids).
    pub(super) async fn create_group(&self, group: &Group, members: &[String]) -> Outcome {
        let mut form = self.create_form();
        // No more in the POST than one PATCH would carry; the rest are added after.
        let (first, rest) = members.split_at(members.len().min(self.cfg.member_batch.max(1)));
        loop {
            let with = form == Form::PostWithMembers && !first.is_empty();
            let mut body = group_body(group);
            if let (true, Some(o)) = (with, body.as_object_mut()) {
                let list = first.iter().map(|id| json!({ "value": id })).collect();
                o.insert("members".into(), Value::Array(list));
            }
            let answer = self
                .send(Method::POST, "/Groups", Some(body.to_string()))
                .await;
            let v = match answer {
                Answer::Ok(v) => v,
                Answer::Failed(o) if !with => match refusal_naming_members(&o) {
                    Some(reason) if !members.is_empty() => {
                        tracing::debug!(%reason, "the service requires members in a group's create");
                        self.forms
                            .learn(OpKind::CreateGroup, Form::PostWithMembers, &reason);
                        form = Form::PostWithMembers;
                        continue;
                    }
                    Some(reason) => {
                        return Outcome::Rejected {
                            reason: format!(
                                "{reason} (the service requires members when a group is created, and none of this group's members is in the target yet: it is created once one is)"
                            ),
                        }
                    }
                    None => return o,
                },
                // Refused for the members it carried: an unknown member, or a service that
                // takes no members in a create (which the setting is for; not learned, since
                // an unknown id reads the same).
                Answer::Failed(o) => return with_setting_hint(o),
            };
            let Some(id) = v.get("id").and_then(Value::as_str).map(str::to_string) else {
                return Outcome::Rejected {
                    reason: "POST /Groups: the service answered without an id".into(),
                };
            };
            let mut missing = if with {
                self.members_not_kept(&id, &v, first).await
            } else {
                first.to_vec()
            };
            if with && !missing.is_empty() {
                tracing::debug!(group_id = %id, missing = missing.len(), "the service did not keep members sent with the group's create: adding them");
            }
            missing.extend_from_slice(rest);
            if missing.is_empty() {
                return Outcome::Applied {
                    target_id: Some(id),
                };
            }
            let add = TargetOp::AddMembers {
                group_id: id.clone(),
                user_ids: missing,
            };
            return match self.send_in_form(OpKind::AddMembers, &add).await {
                Outcome::Applied { .. } => Outcome::Applied {
                    target_id: Some(id),
                },
                // The group is there without them: a retry, or the next run, finds it by
                // its name and adds them (the engine's match before a create).
                Outcome::Rejected { reason } => Outcome::Rejected {
                    reason: format!(
                        "group {id} was created, but its first members were not added: {reason}"
                    ),
                },
                Outcome::Retryable {
                    reason,
                    retry_after,
                } => Outcome::Retryable {
                    reason: format!(
                        "group {id} was created, but its first members were not added: {reason}"
                    ),
                    retry_after,
                },
                other => other,
            };
        }
    }

    /// Of the members sent with a group's create, those the service does not have: read from
    /// its answer, or from the group itself when the answer does not list members. A group
    /// that cannot be read counts as having none of them (adding a member twice is harmless
    /// where losing one is not).
    async fn members_not_kept(&self, id: &str, answer: &Value, sent: &[String]) -> Vec<String> {
        let listed = |v: &Value| -> Option<BTreeSet<String>> {
            let list = v.get("members")?.as_array()?;
            Some(
                list.iter()
                    .filter_map(|m| m.get("value").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect(),
            )
        };
        let kept = match listed(answer) {
            Some(k) => k,
            None => match self.send(Method::GET, &format!("/Groups/{id}"), None).await {
                Answer::Ok(v) => listed(&v).unwrap_or_default(),
                Answer::Failed(_) => BTreeSet::new(),
            },
        };
        sent.iter()
            .filter(|m| !kept.contains(*m))
            .cloned()
            .collect()
    }
}

/// A group create's refusal naming members: a `400` whose detail or `scimType` names them.
/// To a POST that carried none, members can only be refused for being absent (required).
/// Returns the refusal's reason.
fn refusal_naming_members(o: &Outcome) -> Option<String> {
    let Outcome::Rejected { reason } = o else {
        return None;
    };
    let (_, rest) = reason.split_once(": HTTP 400")?;
    reason.starts_with("POST /Groups").then_some(())?;
    rest.to_ascii_lowercase()
        .contains("member")
        .then(|| reason.clone())
}

/// A `400` naming members, to a group create that carried them, says how to send them after
/// the create instead.
fn with_setting_hint(o: Outcome) -> Outcome {
    match refusal_naming_members(&o) {
        Some(reason) => Outcome::Rejected {
            reason: format!(
                "{reason} (if the service takes no members in a group's create, set members_in_create = false on the target: they are then added after it)"
            ),
        },
        None => o,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn rejected(reason: &str) -> Outcome {
        Outcome::Rejected {
            reason: reason.into(),
        }
    }

    #[test]
    fn a_refusal_of_the_members_sent_says_how_to_send_them_after() {
        let o = with_setting_hint(rejected(
            "POST /Groups: HTTP 400 (invalidValue): members are not allowed here",
        ));
        let Outcome::Rejected { reason } = o else {
            panic!("{o:?}")
        };
        assert!(reason.starts_with("POST /Groups: HTTP 400"), "{reason}");
        assert!(reason.contains("members_in_create = false"), "{reason}");
        let other = rejected("POST /Groups: HTTP 409 (uniqueness): taken");
        assert_eq!(with_setting_hint(other.clone()), other);
    }

    #[test]
    fn only_a_400_to_a_group_create_naming_members_says_they_are_required() {
        for yes in [
            "POST /Groups: HTTP 400 (invalidValue): members is required",
            "POST /Groups: HTTP 400: A group must have at least one Member",
            "POST /Groups: HTTP 400 (members): required",
        ] {
            assert_eq!(refusal_naming_members(&rejected(yes)).as_deref(), Some(yes));
        }
        for no in [
            "POST /Groups: HTTP 400 (invalidValue): displayName is required",
            "POST /Groups: HTTP 409 (uniqueness): members group exists",
            "POST /Users: HTTP 400: members required",
            "PATCH /Groups/1: HTTP 400: members required",
        ] {
            assert_eq!(refusal_naming_members(&rejected(no)), None, "{no}");
        }
        assert_eq!(
            refusal_naming_members(&Outcome::Retryable {
                reason: "POST /Groups: HTTP 400: members".into(),
                retry_after: None
            }),
            None
        );
    }
}
