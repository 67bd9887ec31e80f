//! What the service keeps, as its `/Schemas` and its answers show it (issue 16, decision 0029).
//!
//! Every create, PUT or PATCH the service answers with the resource is evidence: what was sent
//! and is given back is kept, what was sent and is not given back is not. The engine remembers
//! the verdicts per target (`take_learned`, `use_remembered`) and asks for all that is known
//! (`known`) before a reconcile compares the service's objects with what was sent. The service's
//! `/Schemas` is read once: what it does not list is not kept, what it marks `returned: never`
//! or `request` is never shown in a read. Paths are the model's (`title`, `emails.type`,
//! `employeeId`, `custom.<urn>:<attribute>`), the same the reconcile compares.

use idsync_core::keeps::{answer_shows, AnswerTally, Keep, Known, LearnedKeep, Resource};
use idsync_scim::resource::{extension_attributes, group_from_scim, known_only, user_from_scim};
use idsync_scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use idsync_scim::{ENTERPRISE_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};
use reqwest::Method;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the service's schema lists, per kind of object (None: not served).
type SchemaKeeps = (
    Option<BTreeMap<String, Keep>>,
    Option<BTreeMap<String, Keep>>,
);

#[derive(Debug, Default)]
pub(super) struct Keeps {
    /// Remembered from earlier runs (the store), and what was handed over since.
    remembered: Mutex<BTreeMap<(Resource, String), bool>>,
    /// This run's (this process's) answers.
    answers: Mutex<AnswerTally>,
    schema: tokio::sync::OnceCell<SchemaKeeps>,
}

impl Keeps {
    pub(super) fn use_remembered(&self, learned: &[LearnedKeep]) {
        let mut r = lock(&self.remembered);
        for l in learned {
            r.insert((l.resource, l.path.clone()), l.kept);
        }
    }

    /// The verdicts of the answers that are new or changed since they were last handed over.
    pub(super) fn take_learned(&self) -> Vec<LearnedKeep> {
        let learned = lock(&self.answers).learned();
        let mut r = lock(&self.remembered);
        learned
            .into_iter()
            .filter(|l| r.insert((l.resource, l.path.clone()), l.kept) != Some(l.kept))
            .collect()
    }

    /// What one answer to a request with `sent` as body shows.
    pub(super) fn observe(&self, method: &Method, path: &str, sent: &str, answer: &Value) {
        let Some(resource) = resource_of(path) else {
            return;
        };
        // Member changes (most PATCHes of groups, by far) say nothing of what is kept.
        if resource == Resource::Group
            && *method == Method::PATCH
            && !sent.contains("displayName")
            && !sent.contains("externalId")
        {
            return;
        }
        let Ok(sent) = serde_json::from_str::<Value>(sent) else {
            return;
        };
        let sent = if *method == Method::PATCH {
            match patched(&sent) {
                Some(p) => p,
                None => return,
            }
        } else if *method == Method::POST || *method == Method::PUT {
            sent
        } else {
            return;
        };
        let (Some(sent), Some(back)) =
            (model(resource, &sent, true), model(resource, answer, false))
        else {
            return;
        };
        let shown = answer_shows(&sent, &back);
        if !shown.is_empty() {
            let evidence = format!("{method} {path}: answered with the resource");
            lock(&self.answers).add(resource, &shown, &evidence);
        }
    }

    /// Everything known: the schema (read once), then what answers showed (remembered, then
    /// this run's).
    pub(super) async fn known(&self, target: &super::ScimTarget) -> Known {
        let (users, groups) = self
            .schema
            .get_or_init(|| async { read_schema(target).await })
            .await
            .clone();
        let mut known = Known::default();
        known.users.schema = users;
        known.groups.schema = groups;
        for ((resource, path), kept) in lock(&self.remembered).iter() {
            known.of_mut(*resource).answers.insert(path.clone(), *kept);
        }
        for l in lock(&self.answers).learned() {
            known.of_mut(l.resource).answers.insert(l.path, l.kept);
        }
        known
    }
}

/// The kind of object a request path is about (`/Users`, `/Users/<id>`, `/Groups/<id>`).
fn resource_of(path: &str) -> Option<Resource> {
    let path = path.split('?').next().unwrap_or(path);
    if path == "/Users" || path.starts_with("/Users/") {
        Some(Resource::User)
    } else if path == "/Groups" || path.starts_with("/Groups/") {
        Some(Resource::Group)
    } else {
        None
    }
}

/// A resource as the model serializes it; `partial` allows the required attribute to be
/// missing (what a PATCH set), a placeholder standing in for it.
fn model(resource: Resource, v: &Value, partial: bool) -> Option<Value> {
    let o = v.as_object()?;
    let required = match resource {
        Resource::User => "userName",
        Resource::Group => "displayName",
    };
    let mut v = v.clone();
    let placeholder = !o.contains_key(required);
    if placeholder {
        if !partial {
            // An answer without it is not the resource (a bare `{"id": ...}`): no evidence.
            return None;
        }
        v.as_object_mut()?
            .insert(required.into(), Value::String("-".into()));
    }
    let mut out = match resource {
        Resource::User => {
            let mut u = user_from_scim(&known_only(&v, &USER_RESOURCE), "").ok()?;
            u.custom = extension_attributes(&v);
            serde_json::to_value(u).ok()?
        }
        Resource::Group => {
            let (g, _) = group_from_scim(&known_only(&v, &GROUP_RESOURCE), "").ok()?;
            serde_json::to_value(g).ok()?
        }
    };
    if placeholder && resource == Resource::Group {
        out.as_object_mut()?.remove("displayName");
    }
    Some(out)
}

/// What the operations of a PATCH set, as a partial resource: replaced or added values by
/// their path (`title`, `name.givenName`, `urn:...:User:department`, a value list), or the
/// value of an operation without path. Paths with filters say too little and are left out.
fn patched(body: &Value) -> Option<Value> {
    let ops = body.get("Operations")?.as_array()?;
    let mut out = Map::new();
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        if !kind.eq_ignore_ascii_case("add") && !kind.eq_ignore_ascii_case("replace") {
            continue;
        }
        let Some(value) = op.get("value") else {
            continue;
        };
        match op.get("path").and_then(Value::as_str) {
            None => {
                if let Some(o) = value.as_object() {
                    for (k, v) in o {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            Some(p) if p.contains('[') => {}
            Some(p) if p.starts_with("urn:") => {
                if let Some((schema, attr)) = p.rsplit_once(':') {
                    if let Value::Object(ext) = out
                        .entry(schema.to_string())
                        .or_insert_with(|| Value::Object(Map::new()))
                    {
                        ext.insert(attr.to_string(), value.clone());
                    }
                }
            }
            Some(p) => match p.split_once('.') {
                Some((head, sub)) => {
                    if let Value::Object(inner) = out
                        .entry(head.to_string())
                        .or_insert_with(|| Value::Object(Map::new()))
                    {
                        inner.insert(sub.to_string(), value.clone());
                    }
                }
                None => {
                    out.insert(p.to_string(), value.clone());
                }
            },
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// The model's name of an attribute of the service's schema.
fn model_name(schema: &str, name: &str) -> String {
    match (schema, name) {
        (ENTERPRISE_SCHEMA, "employeeNumber") => "employeeId".into(),
        (USER_SCHEMA | ENTERPRISE_SCHEMA | GROUP_SCHEMA, n) => n.to_string(),
        (urn, n) => format!("custom.{urn}:{n}"),
    }
}

fn returned(a: &Value, parent: Keep) -> Keep {
    match a.get("returned").and_then(Value::as_str) {
        Some(r) if r.eq_ignore_ascii_case("never") || r.eq_ignore_ascii_case("request") => {
            Keep::NotReturned
        }
        _ => parent,
    }
}

/// The paths one schema resource lists, with whether a read shows them.
fn listed(schema: &Value, out: &mut BTreeMap<String, Keep>) {
    let Some(id) = schema.get("id").and_then(Value::as_str) else {
        return;
    };
    for a in schema
        .get("attributes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = a.get("name").and_then(Value::as_str) else {
            continue;
        };
        let path = model_name(id, name);
        let keep = returned(a, Keep::Kept);
        out.insert(path.clone(), keep);
        // The manager is one value in the model (its id).
        if id == ENTERPRISE_SCHEMA && name == "manager" {
            continue;
        }
        for s in a
            .get("subAttributes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(sub) = s.get("name").and_then(Value::as_str) {
                out.insert(format!("{path}.{sub}"), returned(s, keep));
            }
        }
    }
}

/// What the service's `/Schemas` lists for users (core, enterprise and other extensions) and
/// for groups; nothing for a kind whose core schema it does not serve.
fn schema_keeps(schemas: &[Value]) -> SchemaKeeps {
    let id = |s: &Value| s.get("id").and_then(Value::as_str).map(str::to_string);
    let ids: Vec<String> = schemas.iter().filter_map(id).collect();
    let users = ids.iter().any(|i| i == USER_SCHEMA).then(|| {
        let mut out = BTreeMap::new();
        for s in schemas
            .iter()
            .filter(|s| id(s).as_deref() != Some(GROUP_SCHEMA))
        {
            listed(s, &mut out);
        }
        out
    });
    let groups = ids.iter().any(|i| i == GROUP_SCHEMA).then(|| {
        let mut out = BTreeMap::new();
        for s in schemas
            .iter()
            .filter(|s| id(s).as_deref() == Some(GROUP_SCHEMA))
        {
            listed(s, &mut out);
        }
        out
    });
    (users, groups)
}

/// The service's schemas: `/Schemas` as a list (a plain array or a ListResponse), else the
/// core ones one by one; nothing where it serves none (a service need not).
async fn read_schema(target: &super::ScimTarget) -> SchemaKeeps {
    let list = match target.get("/Schemas").await {
        Ok(Value::Array(items)) => items,
        Ok(v) => v
            .get("Resources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut list: Vec<Value> = list
        .into_iter()
        .filter(|s| s.get("attributes").is_some())
        .collect();
    if list.is_empty() {
        for urn in [USER_SCHEMA, ENTERPRISE_SCHEMA, GROUP_SCHEMA] {
            if let Ok(s) = target.get(&format!("/Schemas/{urn}")).await {
                if s.get("attributes").is_some() {
                    list.push(s);
                }
            }
        }
    }
    let keeps = schema_keeps(&list);
    tracing::debug!(
        users = keeps.0.as_ref().map(BTreeMap::len),
        groups = keeps.1.as_ref().map(BTreeMap::len),
        "the target's schema read"
    );
    keeps
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verdicts(k: &Keeps) -> BTreeMap<String, bool> {
        lock(&k.answers)
            .learned()
            .into_iter()
            .map(|l| (format!("{}:{}", l.resource, l.path), l.kept))
            .collect()
    }

    #[test]
    fn create_put_and_patch_answers_show_what_is_kept() {
        let k = Keeps::default();
        let sent = json!({"schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA], "userName": "a", "title": "T",
            "emails": [{"value": "a@x", "type": "work"}],
            ENTERPRISE_SCHEMA: {"department": "D", "employeeNumber": "7"}});
        let answer = json!({"id": "1", "userName": "a", "emails": [{"value": "a@x"}],
            ENTERPRISE_SCHEMA: {"employeeNumber": "7"}, "name": {"formatted": "A"}});
        k.observe(&Method::POST, "/Users", &sent.to_string(), &answer);
        let v = verdicts(&k);
        assert_eq!(v.get("user:title"), Some(&false));
        assert_eq!(v.get("user:department"), Some(&false));
        assert_eq!(v.get("user:employeeId"), Some(&true));
        assert_eq!(v.get("user:emails.type"), Some(&false));
        assert_eq!(v.get("user:name.formatted"), None, "never sent");

        // A PATCH that sets title, answered with the resource holding it: kept after all.
        let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": "replace", "path": "title", "value": "T"},
            {"op": "replace", "path": "name.givenName", "value": "A"},
            {"op": "remove", "path": "nickName"},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@x"}]});
        let answer = json!({"id": "1", "userName": "a", "title": "T", "name": {"givenName": "A"}});
        k.observe(&Method::PATCH, "/Users/1", &patch.to_string(), &answer);
        let v = verdicts(&k);
        assert_eq!(v.get("user:title"), Some(&true));
        assert_eq!(v.get("user:name.givenName"), Some(&true));
        assert_eq!(v.get("user:nickName"), None);

        // A bare answer is no evidence; neither is a GET or another endpoint.
        let before = verdicts(&k);
        k.observe(
            &Method::POST,
            "/Users",
            &json!({"userName": "b", "nickName": "N"}).to_string(),
            &json!({"id": "2"}),
        );
        k.observe(&Method::POST, "/Bulk", &sent.to_string(), &answer);
        assert_eq!(verdicts(&k), before);

        // Groups: externalId dropped; displayName is not judged from a PATCH placeholder.
        k.observe(
            &Method::POST,
            "/Groups",
            &json!({"displayName": "g", "externalId": "e"}).to_string(),
            &json!({"id": "g1", "displayName": "g"}),
        );
        k.observe(
            &Method::PATCH,
            "/Groups/g1",
            &json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": "1"}]}]})
                .to_string(),
            &json!({"id": "g1", "displayName": "g"}),
        );
        let v = verdicts(&k);
        assert_eq!(v.get("group:externalId"), Some(&false));
        assert_eq!(v.get("group:displayName"), Some(&true));

        // Handed over once; a changed verdict is handed over again.
        let first = k.take_learned();
        assert!(first.iter().any(|l| l.path == "title" && l.kept));
        assert!(k.take_learned().is_empty());
        k.use_remembered(&[LearnedKeep {
            resource: Resource::User,
            path: "title".into(),
            kept: false,
            evidence: String::new(),
        }]);
        let again = k.take_learned();
        assert_eq!(again.len(), 1, "{again:?}");
    }

    #[test]
    fn the_schema_lists_what_is_kept_and_what_is_never_returned() {
        let core = json!({"id": USER_SCHEMA, "attributes": [
            {"name": "userName"}, {"name": "title"},
            {"name": "emails", "subAttributes": [{"name": "value"}, {"name": "type"}]},
            {"name": "nickName", "returned": "request"},
            {"name": "name", "returned": "never", "subAttributes": [{"name": "givenName"}]}]});
        let ent = json!({"id": ENTERPRISE_SCHEMA, "attributes": [{"name": "employeeNumber"},
            {"name": "manager", "subAttributes": [{"name": "value"}]}]});
        let group = json!({"id": GROUP_SCHEMA, "attributes": [{"name": "displayName"}]});
        let custom = json!({"id": "urn:x:app", "attributes": [{"name": "badge"}]});
        let (users, groups) = schema_keeps(&[core, ent, group, custom]);
        let users = users.unwrap();
        assert_eq!(users.get("title"), Some(&Keep::Kept));
        assert_eq!(users.get("emails.type"), Some(&Keep::Kept));
        assert_eq!(users.get("nickName"), Some(&Keep::NotReturned));
        assert_eq!(users.get("name.givenName"), Some(&Keep::NotReturned));
        assert_eq!(users.get("employeeId"), Some(&Keep::Kept));
        assert_eq!(users.get("manager"), Some(&Keep::Kept));
        assert_eq!(users.get("manager.value"), None);
        assert_eq!(users.get("custom.urn:x:app:badge"), Some(&Keep::Kept));
        assert_eq!(users.get("department"), None);
        assert_eq!(users.get("displayName"), None, "the group's");
        assert_eq!(groups.unwrap().get("displayName"), Some(&Keep::Kept));
        assert_eq!(schema_keeps(&[]), (None, None));
    }
}
