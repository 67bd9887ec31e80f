//! The listing a service that cannot be searched is matched against, once per run (decision
//! 0025; the list itself, `Listed`, is shared with the Jira target): the first create that
//! needs it lists the endpoint page by page, and every later create of the run is matched
//! against that list, which the run's own creates, changes and deletes keep up to date. A
//! thousand creates cost one listing instead of a thousand. The list is let go when the run
//! ends (`Target::end_run`): the next run lists the service as it is then.

use idsync_core::{Outcome, TargetOp};
use serde_json::Value;

pub(super) use crate::targets::listed::{values_at, Listed};

/// The endpoint an operation changes, and what it leaves there: the resource as sent (with
/// the id the service gave it) for a create or an update, None for a delete.
pub(super) fn change_of(
    op: &TargetOp,
    outcome: &Outcome,
) -> Option<(&'static str, String, Option<Value>)> {
    let with_id = |mut v: Value, id: &str| {
        if let Some(o) = v.as_object_mut() {
            o.insert("id".into(), Value::String(id.to_string()));
        }
        v
    };
    let Outcome::Applied { target_id } = outcome else {
        return None;
    };
    match op {
        TargetOp::CreateUser { user } => {
            let id = target_id.as_deref()?;
            Some((
                "/Users",
                id.to_string(),
                Some(with_id(idsync_scim::resource::user_body(user), id)),
            ))
        }
        TargetOp::UpdateUser {
            target_id, after, ..
        } => Some((
            "/Users",
            target_id.clone(),
            Some(with_id(idsync_scim::resource::user_body(after), target_id)),
        )),
        TargetOp::DeleteUser { target_id } => Some(("/Users", target_id.clone(), None)),
        TargetOp::CreateGroup { group, .. } => {
            let id = target_id.as_deref()?;
            Some((
                "/Groups",
                id.to_string(),
                Some(with_id(super::group_body(group), id)),
            ))
        }
        TargetOp::UpdateGroup {
            target_id, after, ..
        } => Some((
            "/Groups",
            target_id.clone(),
            Some(with_id(super::group_body(after), target_id)),
        )),
        TargetOp::DeleteGroup { target_id } => Some(("/Groups", target_id.clone(), None)),
        TargetOp::AddMembers { .. }
        | TargetOp::RemoveMembers { .. }
        | TargetOp::AddChildGroups { .. }
        | TargetOp::RemoveChildGroups { .. } => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn applied_operations_say_what_they_leave() {
        let user = idsync_core::User::new("s1", "ann@x.org");
        let created = change_of(
            &TargetOp::CreateUser { user: user.clone() },
            &Outcome::Applied {
                target_id: Some("9".into()),
            },
        )
        .unwrap();
        assert_eq!((created.0, created.1.as_str()), ("/Users", "9"));
        assert_eq!(created.2.unwrap()["userName"], "ann@x.org");
        let refused = change_of(
            &TargetOp::CreateUser { user },
            &Outcome::Rejected {
                reason: "no".into(),
            },
        );
        assert!(refused.is_none());
        let deleted = change_of(
            &TargetOp::DeleteGroup {
                target_id: "g".into(),
            },
            &Outcome::Applied { target_id: None },
        )
        .unwrap();
        assert_eq!(deleted, ("/Groups", "g".to_string(), None));
    }
}
