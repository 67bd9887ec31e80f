//! What is sent to a service with stricter rules than SCIM's (issue 16, item 4): per-target
//! settings that leave attributes out (`omit = ["emails.primary", "title"]`) and fill in
//! `name.formatted` for services that require it.
//!
//! The shape works at two levels. On the model (`user`), so that the desired state, the ledger
//! and a reconcile's comparison never hold what is never sent: an omitted attribute is neither
//! sent nor compared, and a computed `name.formatted` is sent and recorded like any other
//! value. On the wire (`body`), so that no request to `/Users` carries an omitted attribute,
//! whatever built it (a POST, a PUT of the whole resource, a PATCH operation).

use idsync_core::User;
use serde_json::Value;

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
