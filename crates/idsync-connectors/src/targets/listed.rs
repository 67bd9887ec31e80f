//! A target's objects listed once for a run, looked up by the value of an attribute: what
//! a target that cannot be searched (SCIM services that ignore filters, decision 0025), or
//! that is cheaper to list than to search once per create (Jira, decision 0040), matches its
//! creates against. The run keeps the list current with what it creates, changes and deletes.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The values a resource holds at `path` (`userName`, `emails.value`: a sub-attribute of any
/// element of a list), as text.
pub(crate) fn values_at<'a>(resource: &'a Value, path: &str) -> Vec<&'a str> {
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
pub(crate) struct Listed {
    by_id: BTreeMap<String, Value>,
    lookups: HashMap<String, HashMap<String, BTreeSet<String>>>,
}

impl Listed {
    pub(crate) fn new(resources: Vec<Value>) -> Self {
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
    pub(crate) fn candidates(&mut self, path: &str, value: &str) -> Vec<&Value> {
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
    pub(crate) fn put(&mut self, resource: Value) {
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

    pub(crate) fn remove(&mut self, id: &str) {
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
}
