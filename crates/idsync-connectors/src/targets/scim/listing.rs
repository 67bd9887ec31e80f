//! The listing a service that cannot be searched is matched against, once per run (decision
//! 0025): the first create that needs it lists the endpoint page by page, and every later
//! create of the run is matched against that list, which the run's own creates, changes and
//! deletes keep up to date. A thousand creates cost one listing instead of a thousand. The
//! list is let go when the run ends (`Target::end_run`): the next run lists the service as it
//! is then.

use idsync_core::{Outcome, TargetOp};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The values a resource holds at `path` (`userName`, `emails.value`: a sub-attribute of any
/// element of a list), as text.
pub(super) fn values_at<'a>(resource: &'a Value, path: &str) -> Vec<&'a str> {
    let (head, sub) = match path.split_once('.') {
        Some((h, s)) => (h, Some(s)),
        None => (path, None),
    };
    let Some(v) = resource.get(head) else {
        return Vec::new();
    };
    let at = |v: &'a Value| match sub {
        Some(s) => v.get(s).and_then(Value::as_str),
        None => v.as_str(),
    };
    match v {
        Value::Array(items) => items.iter().filter_map(at).collect(),
        other => at(other).into_iter().collect(),
    }
}

/// One endpoint's resources, by id, with lookups by the value of an attribute (lower-cased:
/// the caller verifies the candidates by the attribute's own case rule).
#[derive(Debug, Default)]
pub(super) struct Listed {
    by_id: BTreeMap<String, Value>,
    lookups: HashMap<String, HashMap<String, BTreeSet<String>>>,
}

impl Listed {
    pub(super) fn new(resources: Vec<Value>) -> Self {
        let mut l = Listed::default();
        for r in resources {
            l.put(r);
        }
        l
    }

    fn id(resource: &Value) -> Option<String> {
        resource
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The resources that may hold `value` at `path` (by lower-cased value).
    pub(super) fn candidates(&mut self, path: &str, value: &str) -> Vec<&Value> {
        if !self.lookups.contains_key(path) {
            let mut by_value: HashMap<String, BTreeSet<String>> = HashMap::new();
            for (id, r) in &self.by_id {
                for v in values_at(r, path) {
                    by_value
                        .entry(v.to_lowercase())
                        .or_default()
                        .insert(id.clone());
                }
            }
            self.lookups.insert(path.to_string(), by_value);
        }
        let ids = self
            .lookups
            .get(path)
            .and_then(|m| m.get(&value.to_lowercase()));
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
            .collect()
    }

    /// Add or replace a resource (by its id).
    pub(super) fn put(&mut self, resource: Value) {
        let Some(id) = Self::id(&resource) else {
            return;
        };
        self.remove(&id);
        for (path, by_value) in &mut self.lookups {
            for v in values_at(&resource, path) {
                by_value
                    .entry(v.to_lowercase())
                    .or_default()
                    .insert(id.clone());
            }
        }
        self.by_id.insert(id, resource);
    }

    pub(super) fn remove(&mut self, id: &str) {
        let Some(old) = self.by_id.remove(id) else {
            return;
        };
        for (path, by_value) in &mut self.lookups {
            for v in values_at(&old, path) {
                if let Some(ids) = by_value.get_mut(&v.to_lowercase()) {
                    ids.remove(id);
                }
            }
        }
    }
}

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
    use serde_json::json;

    fn ids(l: &mut Listed, path: &str, value: &str) -> Vec<String> {
        l.candidates(path, value)
            .into_iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn the_listing_finds_by_value_and_follows_the_runs_changes() {
        let mut l = Listed::new(vec![
            json!({"id": "1", "userName": "Ann@x.org", "emails": [{"value": "ann@x.org"}, {"value": "a2@x.org"}]}),
            json!({"id": "2", "userName": "bob@x.org"}),
        ]);
        assert_eq!(ids(&mut l, "userName", "ann@X.org"), vec!["1"]);
        assert_eq!(ids(&mut l, "emails.value", "A2@x.org"), vec!["1"]);
        assert!(ids(&mut l, "userName", "cy@x.org").is_empty());
        // Created by this run: found by the next create's lookup.
        l.put(json!({"id": "3", "userName": "cy@x.org", "emails": [{"value": "cy@x.org"}]}));
        assert_eq!(ids(&mut l, "userName", "cy@x.org"), vec!["3"]);
        assert_eq!(ids(&mut l, "emails.value", "cy@x.org"), vec!["3"]);
        // Renamed by this run: found by its new name only.
        l.put(json!({"id": "2", "userName": "robert@x.org"}));
        assert!(ids(&mut l, "userName", "bob@x.org").is_empty());
        assert_eq!(ids(&mut l, "userName", "robert@x.org"), vec!["2"]);
        // Deleted by this run: gone.
        l.remove("1");
        assert!(ids(&mut l, "userName", "ann@x.org").is_empty());
        assert!(ids(&mut l, "emails.value", "a2@x.org").is_empty());
        assert_eq!(l.by_id.len(), 2);
    }

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
