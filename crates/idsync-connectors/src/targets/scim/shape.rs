//! What is sent to a service with stricter rules than SCIM's (issue 16, item 4): per-target
//! settings that leave attributes out (`omit = ["emails.primary", "title"]`) and fill in
//! `name.formatted` for services that require it.
//!
//! The shape works at two levels. On the model (`user`), so that the desired state, the ledger
//! and a reconcile's comparison never hold what is never sent: an omitted attribute is neither
//! sent nor compared, and a computed `name.formatted` is sent and recorded like any other
//! value. On the wire (`body`), so that no request to `/Users` carries an omitted attribute,
//! whatever built it (a POST, a PUT of the whole resource, a PATCH operation).

use idsync_core::{LearnedOmission, OpKind, Outcome, TargetOp, User};
use serde_json::Value;
use std::sync::{Mutex, MutexGuard};

/// How users are shaped for one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// Attribute paths never sent (`title`, `name.formatted`, `emails.primary`), SCIM names.
    pub omit: Vec<String>,
    /// `name.formatted` is filled in from the given and family names where the source has none.
    pub required_name_formatted: bool,
}

/// The model's name for a SCIM attribute where they differ.
fn model_name(scim: &str) -> &str {
    match scim {
        "employeeNumber" => "employeeId",
        other => other,
    }
}

/// Remove `path` (`a` or `a.b`, where `a` may hold a list of objects) from `v`.
fn strip(v: &mut Value, path: &str, model: bool) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let head = if model { model_name(head) } else { head };
    let Some(o) = v.as_object_mut() else {
        return;
    };
    match rest {
        None => {
            o.remove(head);
        }
        Some(rest) => match o.get_mut(head) {
            Some(Value::Array(items)) => {
                for item in items {
                    strip(item, rest, model);
                }
            }
            Some(inner @ Value::Object(_)) => strip(inner, rest, model),
            _ => {}
        },
    }
}

/// A PATCH path without filters, extension prefix or quotes: `emails[type eq "work"].value`
/// is `emails.value`, `urn:...:enterprise:2.0:User:department` is `department`.
fn plain_path(path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    if out.starts_with("urn:") {
        // The attribute is what follows the schema URN's last colon.
        if let Some((_, attr)) = out.rsplit_once(':') {
            return attr.to_string();
        }
    }
    out
}

impl Shape {
    pub fn is_empty(&self) -> bool {
        self.omit.is_empty() && !self.required_name_formatted
    }

    /// A user as this target is sent it: omitted attributes removed, `name.formatted` filled
    /// in where required.
    pub fn user(&self, mut user: User) -> User {
        if self.required_name_formatted && user.name.formatted.as_deref().unwrap_or("").is_empty() {
            let parts: Vec<&str> = [&user.name.given_name, &user.name.family_name]
                .into_iter()
                .filter_map(|p| p.as_deref())
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            if !parts.is_empty() {
                user.name.formatted = Some(parts.join(" "));
            } else if let Some(d) = user.display_name.as_deref().filter(|d| !d.is_empty()) {
                user.name.formatted = Some(d.to_string());
            }
        }
        self.without_omitted(user)
    }

    /// A user with the omitted attributes removed (for what a reconcile reads from the target:
    /// what is never sent is never compared).
    pub fn without_omitted(&self, user: User) -> User {
        if self.omit.is_empty() {
            return user;
        }
        let Ok(mut v) = serde_json::to_value(&user) else {
            return user;
        };
        for p in &self.omit {
            strip(&mut v, p, true);
        }
        serde_json::from_value(v).unwrap_or(user)
    }

    /// The JSON text of a request to `path`, without omitted attributes (requests to users
    /// only; other requests and text that is not JSON are sent as they are).
    pub fn body(&self, path: &str, body: String) -> String {
        if self.omit.is_empty() || !path.starts_with("/Users") {
            return body;
        }
        let Ok(mut v) = serde_json::from_str::<Value>(&body) else {
            return body;
        };
        self.strip_request(&mut v);
        v.to_string()
    }

    fn strip_resource(&self, v: &mut Value) {
        for p in &self.omit {
            strip(v, p, false);
            // Enterprise attributes travel inside their schema's object.
            if let Some(o) = v.as_object_mut() {
                for (k, ext) in o.iter_mut() {
                    if k.starts_with("urn:") && ext.is_object() {
                        strip(ext, p, false);
                    }
                }
            }
        }
    }

    fn strip_request(&self, v: &mut Value) {
        let Some(ops) = v.get_mut("Operations").and_then(Value::as_array_mut) else {
            self.strip_resource(v);
            return;
        };
        ops.retain_mut(|op| {
            let path = op.get("path").and_then(Value::as_str).map(plain_path);
            match path {
                None => {
                    if let Some(value) = op.get_mut("value") {
                        self.strip_resource(value);
                    }
                    true
                }
                Some(path) => {
                    // An operation on an omitted attribute (or inside one) goes.
                    if self
                        .omit
                        .iter()
                        .any(|o| path == *o || path.starts_with(&format!("{o}.")))
                    {
                        return false;
                    }
                    // Omitted sub-attributes of what the operation sets are taken out.
                    let Some(value) = op.get_mut("value") else {
                        return true;
                    };
                    for o in &self.omit {
                        if let Some(rest) = o.strip_prefix(&format!("{path}.")) {
                            match &mut *value {
                                Value::Array(items) => {
                                    for item in items {
                                        strip(item, rest, false);
                                    }
                                }
                                other => strip(other, rest, false),
                            }
                        }
                    }
                    true
                }
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether `detail` names `path`: `emails.primary` as written, or as `emails[primary]`,
/// `emails[].primary`; a single name (`title`) as a whole word.
fn names(detail: &str, path: &str) -> bool {
    let detail = detail.to_ascii_lowercase();
    let path = path.to_ascii_lowercase();
    let forms = match path.split_once('.') {
        Some((a, b)) => vec![
            path.clone(),
            format!("{a}[{b}]"),
            format!("{a}[].{b}"),
            format!("{a}[*].{b}"),
        ],
        None => vec![path.clone()],
    };
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    forms.iter().any(|f| {
        detail.match_indices(f.as_str()).any(|(i, _)| {
            !word(detail[..i].chars().next_back()) && !word(detail[i + f.len()..].chars().next())
        })
    })
}

/// The attribute paths of a user body as sent: `title`, `name.formatted`, `emails.primary`,
/// and enterprise attributes by their own name (`department`).
fn sent_paths(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(o) = v.as_object() else {
        return out;
    };
    for (k, x) in o {
        match x {
            Value::Object(inner) if k.starts_with("urn:") => out.extend(inner.keys().cloned()),
            Value::Object(inner) => out.extend(inner.keys().map(|s| format!("{k}.{s}"))),
            Value::Array(items) => {
                for item in items.iter().filter_map(Value::as_object) {
                    out.extend(item.keys().map(|s| format!("{k}.{s}")));
                }
            }
            _ => {}
        }
        out.push(k.clone());
    }
    out.sort();
    out.dedup();
    out
}

/// The shape in use: the target's settings and what it learned (a `400` naming an attribute
/// it was sent), with what was learned in this run to hand over to the store.
pub(super) struct Current {
    /// What the settings leave out (never sent, so never learned).
    configured: Vec<String>,
    shape: Mutex<Shape>,
    learned: Mutex<Vec<LearnedOmission>>,
}

impl Current {
    pub(super) fn new(shape: Shape) -> Self {
        Self {
            configured: shape.omit.clone(),
            shape: Mutex::new(shape),
            learned: Mutex::new(Vec::new()),
        }
    }

    pub(super) fn body(&self, path: &str, body: String) -> String {
        lock(&self.shape).body(path, body)
    }

    pub(super) fn user(&self, user: User) -> User {
        lock(&self.shape).user(user)
    }

    pub(super) fn without_omitted(&self, user: User) -> User {
        lock(&self.shape).without_omitted(user)
    }

    /// Leave these out too (remembered from earlier runs); paths idsync would not learn are
    /// ignored, so a store edited by hand cannot take `userName` away.
    pub(super) fn use_omissions(&self, paths: &[String]) {
        let mut shape = lock(&self.shape);
        for p in paths {
            if idsync_core::LEARNABLE_OMISSIONS.contains(&p.as_str()) && !shape.omit.contains(p) {
                shape.omit.push(p.clone());
            }
        }
    }

    pub(super) fn take_learned(&self) -> Vec<LearnedOmission> {
        std::mem::take(&mut *lock(&self.learned))
    }

    /// The attribute a refusal names, when it is one this user was sent and one that may be
    /// learned away; it is then left out from now on (a concurrent request may have learned it
    /// a moment before: it is named again, not learned twice). Anything else (a refusal naming
    /// `userName`, naming nothing, or naming two attributes) is not learned from.
    pub(super) fn learn_from(&self, reason: &str, user: &User) -> Option<String> {
        if !reason.contains("HTTP 400") {
            return None;
        }
        let sent = idsync_scim::resource::user_body(user);
        let named: Vec<String> = sent_paths(&sent)
            .into_iter()
            .filter(|p| idsync_core::LEARNABLE_OMISSIONS.contains(&p.as_str()))
            .filter(|p| !self.configured.contains(p))
            .filter(|p| names(reason, p))
            .collect();
        let [path] = named.as_slice() else {
            return None;
        };
        let mut shape = lock(&self.shape);
        if shape.omit.contains(path) {
            return Some(path.clone());
        }
        shape.omit.push(path.clone());
        lock(&self.learned).push(LearnedOmission {
            path: path.clone(),
            reason: reason.to_string(),
        });
        Some(path.clone())
    }
}

impl super::ScimTarget {
    /// A user create or update; refused for an attribute that may be learned away, it is sent
    /// once more without it.
    pub(super) async fn apply_user(&self, op: &TargetOp, user: &User) -> Outcome {
        let first = self.apply_user_once(op, user).await;
        let Outcome::Rejected { reason } = &first else {
            return first;
        };
        match self.shape.learn_from(reason, user) {
            Some(path) => {
                tracing::debug!(attribute = %path, "refused attribute left out; sending again");
                self.apply_user_once(op, user).await
            }
            None => first,
        }
    }

    async fn apply_user_once(&self, op: &TargetOp, user: &User) -> Outcome {
        match op {
            TargetOp::CreateUser { .. } => {
                self.create("/Users", idsync_scim::resource::user_body(user))
                    .await
            }
            TargetOp::UpdateUser {
                target_id,
                before,
                after,
            } => {
                // Both sides without what is left out (learned a moment ago, say): a change of
                // an omitted attribute alone is no request to send.
                let op = TargetOp::UpdateUser {
                    target_id: target_id.clone(),
                    before: self.shape.without_omitted(before.clone()),
                    after: self.shape.without_omitted(after.clone()),
                };
                self.send_in_form(OpKind::UpdateUser, &op).await
            }
            _ => self.send_in_form(OpKind::UpdateUser, op).await,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(omit: &[&str], formatted: bool) -> Shape {
        Shape {
            omit: omit.iter().map(|s| s.to_string()).collect(),
            required_name_formatted: formatted,
        }
    }

    #[test]
    fn omitted_attributes_leave_every_kind_of_request() {
        let s = shape(&["emails.primary", "title", "department"], false);
        let post = json!({"userName": "a", "title": "x", "emails": [{"value": "a@x", "primary": true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "d"}});
        let out: Value = serde_json::from_str(&s.body("/Users", post.to_string())).unwrap();
        assert_eq!(
            out,
            json!({"userName": "a", "emails": [{"value": "a@x"}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {}})
        );
        let patch = json!({"Operations": [
            {"op": "replace", "path": "title", "value": "y"},
            {"op": "replace", "path": "emails", "value": [{"value": "b@x", "primary": true}]},
            {"op": "replace", "path": "emails[type eq \"work\"].primary", "value": true},
            {"op": "replace", "value": {"title": "z", "displayName": "B"}},
            {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "e"}
        ]});
        let out: Value = serde_json::from_str(&s.body("/Users/1", patch.to_string())).unwrap();
        assert_eq!(
            out,
            json!({"Operations": [
                {"op": "replace", "path": "emails", "value": [{"value": "b@x"}]},
                {"op": "replace", "value": {"displayName": "B"}}
            ]})
        );
        // Groups are not users.
        let g = json!({"displayName": "g", "title": "kept"}).to_string();
        assert_eq!(s.body("/Groups", g.clone()), g);
    }

    #[test]
    fn only_a_sent_optional_attribute_named_alone_is_learned() {
        let mut u = User::new("s1", "ann@x");
        u.title = Some("Boss".into());
        u.emails = vec![idsync_core::Email {
            value: "ann@x".into(),
            kind: None,
            primary: true,
            display: None,
        }];
        let c = Current::new(Shape::default());
        let r = |d: &str| format!("POST /Users: HTTP 400 (invalidValue): {d}");
        // Never the attributes users are known by, nothing unsent, nothing ambiguous.
        assert_eq!(c.learn_from(&r("userName must be unique"), &u), None);
        assert_eq!(c.learn_from(&r("emails.value is invalid"), &u), None);
        assert_eq!(c.learn_from(&r("department is not supported"), &u), None);
        assert_eq!(
            c.learn_from(&r("title and emails[primary] refused"), &u),
            None
        );
        assert_eq!(c.learn_from(&r("subtitle is odd"), &u), None);
        assert_eq!(c.learn_from("POST /Users: HTTP 409: title taken", &u), None);
        assert!(c.take_learned().is_empty());
        assert_eq!(
            c.learn_from(&r("Attribute emails[primary] is not supported"), &u),
            Some("emails.primary".into())
        );
        // A request in flight when it was learned is answered alike: named, not learned twice.
        assert_eq!(
            c.learn_from(&r("Attribute emails[primary] is not supported"), &u),
            Some("emails.primary".into())
        );
        assert_eq!(
            c.learn_from(&r("Attribute title is not supported"), &u),
            Some("title".into())
        );
        let learned: Vec<String> = c.take_learned().into_iter().map(|l| l.path).collect();
        assert_eq!(learned, vec!["emails.primary", "title"]);
        // What the settings leave out was never sent: not learned.
        let c = Current::new(shape(&["title"], false));
        assert_eq!(
            c.learn_from(&r("Attribute title is not supported"), &u),
            None
        );
        assert!(c.take_learned().is_empty(), "handed over once");
        // Remembered paths idsync would never learn are ignored.
        let c = Current::new(Shape::default());
        c.use_omissions(&["userName".into(), "emails.primary".into()]);
        assert_eq!(lock(&c.shape).omit, vec!["emails.primary"]);
    }

    #[test]
    fn name_formatted_is_filled_in_where_required_and_omitted_attributes_leave_the_model() {
        let mut u = User::new("s1", "ann@x");
        u.name.given_name = Some("Ann".into());
        u.name.family_name = Some("Lee".into());
        u.title = Some("Boss".into());
        u.emails = vec![idsync_core::Email {
            value: "ann@x".into(),
            kind: Some("work".into()),
            primary: true,
            display: None,
        }];
        let out = shape(&["title", "emails.primary"], true).user(u.clone());
        assert_eq!(out.name.formatted.as_deref(), Some("Ann Lee"));
        assert_eq!(out.title, None);
        assert!(!out.emails[0].primary);
        assert_eq!(out.emails[0].kind.as_deref(), Some("work"));
        // A formatted name of the source's own is kept; without the setting none is made up.
        u.name.formatted = Some("Dr Ann Lee".into());
        assert_eq!(
            shape(&[], true).user(u.clone()).name.formatted.as_deref(),
            Some("Dr Ann Lee")
        );
        u.name.formatted = None;
        assert_eq!(shape(&[], false).user(u).name.formatted, None);
    }
}
