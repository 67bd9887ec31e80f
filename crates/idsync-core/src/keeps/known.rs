//! What a target is known to keep before a reconcile reads it (issue 16, decision 0029).
//!
//! A reconcile's own read is weak evidence: an attribute removed by hand from every object
//! that had it looks exactly like an attribute the service drops. Two better witnesses exist:
//! the service's `/Schemas` (what it lists, and what it never returns), and its answers to
//! what idsync sends (a create, a PUT or PATCH answered with the resource): an attribute sent
//! and given back is kept, one sent and not given back is not. What the answers show is
//! remembered per target in the store, so a reconcile compares only what is kept from its
//! first run, and an attribute known to be kept is compared (its absence is drift, repaired)
//! whatever the read shows.

use serde_json::Value;
use std::collections::BTreeMap;

use super::{leaf_values, ALWAYS_COMPARED};

/// The kind of object an attribute path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    User,
    Group,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::User => "user",
            Resource::Group => "group",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Resource::User),
            "group" => Some(Resource::Group),
            _ => None,
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known of one attribute path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The service keeps it: compared, and its absence is drift.
    Kept,
    /// The service does not keep it: never compared.
    Dropped,
    /// The service keeps it but never shows it in a read (`returned: never` or `request` in
    /// its schema): never compared.
    NotReturned,
}

/// Why a verdict holds, as the plan's warning says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Witness {
    /// The service's answers to what it was sent (this run's, or remembered).
    Answers,
    /// The service's `/Schemas`.
    Schema,
}

/// One attribute path's verdict learned from the service's answers, to remember per target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedKeep {
    pub resource: Resource,
    /// The path as the model writes it (`title`, `emails.type`, `employeeId`).
    pub path: String,
    pub kept: bool,
    /// What showed it (`POST /Users: sent and given back`); empty when remembered.
    pub evidence: String,
}

/// What is known of one kind of object's attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownOf {
    /// From the service's answers (remembered, then this run's): kept or not.
    pub answers: BTreeMap<String, bool>,
    /// The paths the service's schema lists, with [`Keep::Kept`] or [`Keep::NotReturned`];
    /// None when the service serves no schema for the resource. A path it does not list is
    /// not kept.
    pub schema: Option<BTreeMap<String, Keep>>,
}

impl KnownOf {
    /// The verdict on `path`, and what it rests on; None where nothing is known (the
    /// reconcile's own evidence decides).
    ///
    /// An answer that gave it back beats everything (a service that gave a value back keeps
    /// it, whatever its schema says); a schema that says it is never returned explains an
    /// answer without it; an answer without it beats a schema that lists it (services serve
    /// the RFC's schemas whole and keep less); then the schema.
    pub fn verdict(&self, path: &str) -> Option<(Keep, Witness)> {
        if ALWAYS_COMPARED.contains(&path) {
            return None;
        }
        let listed = self.schema.as_ref().map(|s| s.get(path).copied());
        match (self.answers.get(path), listed) {
            (Some(true), _) => Some((Keep::Kept, Witness::Answers)),
            (_, Some(Some(Keep::NotReturned))) => Some((Keep::NotReturned, Witness::Schema)),
            (Some(false), _) => Some((Keep::Dropped, Witness::Answers)),
            (None, Some(Some(k))) => Some((k, Witness::Schema)),
            (None, Some(None)) => Some((Keep::Dropped, Witness::Schema)),
            (None, None) => None,
        }
    }
}

/// What is known of a target's users and groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub users: KnownOf,
    pub groups: KnownOf,
}

impl Known {
    /// Remembered verdicts (from the store).
    pub fn remembered(learned: &[LearnedKeep]) -> Self {
        let mut k = Known::default();
        for l in learned {
            k.of_mut(l.resource).answers.insert(l.path.clone(), l.kept);
        }
        k
    }

    pub fn of(&self, resource: Resource) -> &KnownOf {
        match resource {
            Resource::User => &self.users,
            Resource::Group => &self.groups,
        }
    }

    pub fn of_mut(&mut self, resource: Resource) -> &mut KnownOf {
        match resource {
            Resource::User => &mut self.users,
            Resource::Group => &mut self.groups,
        }
    }
}

/// What one answer shows: for every non-empty attribute path of `sent` (an object as the
/// model serializes it, or the part of it a PATCH set), whether `answer` (the resource the
/// service answered with, serialized the same way) gives it back: holds a value sent there
/// (case aside). An answer holding another value (its own, or one set there before) did not
/// keep what was sent. `userName`, `active`, `sourceId` and `id` are not judged (always
/// compared, or not attributes).
pub fn answer_shows(sent: &Value, answer: &Value) -> Vec<(String, bool)> {
    let back = leaf_values(answer);
    leaf_values(sent)
        .into_iter()
        .filter(|(p, _)| !ALWAYS_COMPARED.contains(&p.as_str()) && p != "id")
        .map(|(p, values)| {
            let kept = back
                .get(&p)
                .is_some_and(|there| values.iter().any(|v| there.contains(v)));
            (p, kept)
        })
        .collect()
}

/// Verdicts gathered over several answers: a path given back by any answer is kept (a
/// service that gave it back once keeps it), one given back by none is not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerTally {
    seen: BTreeMap<(Resource, String), (bool, String)>,
}

impl AnswerTally {
    /// Add what one answer showed; `evidence` names the request.
    pub fn add(&mut self, resource: Resource, shown: &[(String, bool)], evidence: &str) {
        for (path, kept) in shown {
            let slot = self
                .seen
                .entry((resource, path.clone()))
                .or_insert_with(|| (*kept, String::new()));
            if slot.1.is_empty() || (*kept && !slot.0) {
                *slot = (*kept, evidence.to_string());
            }
        }
    }

    /// The verdict on a path so far.
    pub fn get(&self, resource: Resource, path: &str) -> Option<bool> {
        self.seen
            .get(&(resource, path.to_string()))
            .map(|(kept, _)| *kept)
    }

    /// Every verdict, with the evidence of the answer that settled it.
    pub fn learned(&self) -> Vec<LearnedKeep> {
        self.seen
            .iter()
            .map(|((resource, path), (kept, evidence))| LearnedKeep {
                resource: *resource,
                path: path.clone(),
                kept: *kept,
                evidence: evidence.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_answer_shows_what_is_kept_of_what_was_sent() {
        let sent = json!({"userName": "a", "title": "T", "department": "D", "nickName": "N",
            "emails": [{"value": "a@x", "type": "work", "primary": true}], "name": {"givenName": "A"}});
        let answer = json!({"id": "1", "userName": "a", "title": "T", "nickName": "Its own",
            "emails": [{"value": "A@X", "primary": true}], "name": {"givenName": "A", "formatted": "A"}});
        let shown: BTreeMap<String, bool> = answer_shows(&sent, &answer).into_iter().collect();
        assert_eq!(shown.get("title"), Some(&true));
        assert_eq!(
            shown.get("nickName"),
            Some(&false),
            "another value than was sent"
        );
        assert_eq!(shown.get("department"), Some(&false));
        assert_eq!(shown.get("emails.type"), Some(&false));
        assert_eq!(shown.get("emails.value"), Some(&true));
        assert_eq!(shown.get("name.givenName"), Some(&true));
        assert_eq!(shown.get("userName"), None, "always compared");
        assert_eq!(shown.get("name.formatted"), None, "not sent: not judged");
    }

    #[test]
    fn one_answer_that_gives_it_back_settles_kept() {
        let mut t = AnswerTally::default();
        t.add(Resource::User, &[("title".into(), false)], "POST /Users");
        assert_eq!(t.get(Resource::User, "title"), Some(false));
        t.add(Resource::User, &[("title".into(), true)], "PUT /Users/1");
        t.add(Resource::User, &[("title".into(), false)], "POST /Users");
        assert_eq!(t.get(Resource::User, "title"), Some(true));
        assert_eq!(t.learned()[0].evidence, "PUT /Users/1");
        assert_eq!(t.get(Resource::Group, "title"), None);
    }

    #[test]
    fn verdicts_weigh_answers_above_the_schema_but_for_what_it_never_returns() {
        let schema: BTreeMap<String, Keep> = [
            ("title".to_string(), Keep::Kept),
            ("emails.type".to_string(), Keep::Kept),
            ("nickName".to_string(), Keep::NotReturned),
        ]
        .into_iter()
        .collect();
        let mut k = KnownOf {
            answers: [("emails.type".to_string(), false)].into_iter().collect(),
            schema: Some(schema),
        };
        assert_eq!(k.verdict("title"), Some((Keep::Kept, Witness::Schema)));
        assert_eq!(
            k.verdict("emails.type"),
            Some((Keep::Dropped, Witness::Answers))
        );
        assert_eq!(
            k.verdict("department"),
            Some((Keep::Dropped, Witness::Schema)),
            "not listed"
        );
        assert_eq!(
            k.verdict("nickName"),
            Some((Keep::NotReturned, Witness::Schema))
        );
        k.answers.insert("nickName".into(), false);
        assert_eq!(
            k.verdict("nickName"),
            Some((Keep::NotReturned, Witness::Schema))
        );
        k.answers.insert("nickName".into(), true);
        assert_eq!(k.verdict("nickName"), Some((Keep::Kept, Witness::Answers)));
        assert_eq!(k.verdict("userName"), None);
        k.schema = None;
        assert_eq!(k.verdict("title"), None);
    }
}
