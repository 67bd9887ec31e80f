//! A user as Jira holds it: its own fields (username, display name, one email address,
//! active) and, in a user property under the configured key, the attributes Jira has no
//! field for (names, title, department, phone numbers, custom attributes...) as JSON, with
//! the application-access groups idsync removed when it disabled the user without
//! `"active"` (Jira before 8.3).
//!
//! The property's value: `{"user": {<attributes, as idsync's model names them>},
//! "accessRemoved": ["jira-software-users", ...]}`, each member present only when it has
//! something.

use idsync_core::{Email, User};
use serde_json::{json, Map, Value};

/// The model's attributes Jira keeps in fields of its own (never in the property).
const JIRA_FIELDS: &[&str] = &[
    "id",
    "sourceId",
    "userName",
    "displayName",
    "emails",
    "active",
];

/// The display name Jira will hold: Jira requires one, so a user without one gets its
/// formatted name, its given and family names, or its username.
pub fn display_name_of(u: &User) -> String {
    if let Some(d) = u.display_name.as_deref().filter(|d| !d.trim().is_empty()) {
        return d.to_string();
    }
    if let Some(f) = u.name.formatted.as_deref().filter(|f| !f.trim().is_empty()) {
        return f.to_string();
    }
    let parts: Vec<&str> = [u.name.given_name.as_deref(), u.name.family_name.as_deref()]
        .into_iter()
        .flatten()
        .filter(|p| !p.trim().is_empty())
        .collect();
    if parts.is_empty() {
        u.user_name.clone()
    } else {
        parts.join(" ")
    }
}

/// The user as Jira can hold it: one email (the primary, without type), a display name, and
/// the rest only where the property carries it.
pub fn project(mut u: User, properties: bool) -> User {
    u.display_name = Some(display_name_of(&u));
    u.emails = u
        .primary_email()
        .map(|e| Email {
            value: e.to_string(),
            kind: None,
            primary: true,
            display: None,
        })
        .into_iter()
        .collect();
    if !properties {
        let keep = User {
            id: u.id,
            source_id: u.source_id,
            user_name: u.user_name,
            display_name: u.display_name,
            emails: u.emails,
            active: u.active,
            ..User::new("", "")
        };
        return keep;
    }
    u
}

/// The attributes the property carries for `u` (an empty object when there are none).
pub fn attributes(u: &User) -> Map<String, Value> {
    let Ok(Value::Object(mut o)) = serde_json::to_value(u) else {
        return Map::new();
    };
    for k in JIRA_FIELDS {
        o.remove(*k);
    }
    o
}

/// The property value for these attributes and removed access groups; `None` when both
/// are empty (no property at all).
pub fn property_value(attrs: &Map<String, Value>, access_removed: &[String]) -> Option<Value> {
    let mut o = Map::new();
    if !attrs.is_empty() {
        o.insert("user".into(), Value::Object(attrs.clone()));
    }
    if !access_removed.is_empty() {
        o.insert("accessRemoved".into(), json!(access_removed));
    }
    (!o.is_empty()).then_some(Value::Object(o))
}

/// What a property holds: the attributes and the removed access groups (a value idsync did
/// not write, or one changed by hand into another shape, holds neither).
pub fn read_property(v: Option<&Value>) -> (Map<String, Value>, Vec<String>) {
    let attrs = v
        .and_then(|v| v.get("user"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let removed = v
        .and_then(|v| v.get("accessRemoved"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    (attrs, removed)
}

/// A Jira user (`/rest/api/2/user` JSON) with its property's attributes, as idsync's model.
/// `None` when the answer has no username.
pub fn from_jira(v: &Value, attrs: &Map<String, Value>, access_removed: bool) -> Option<User> {
    let name = v.get("name").and_then(Value::as_str)?;
    let mut o = attrs.clone();
    for k in JIRA_FIELDS {
        o.remove(*k);
    }
    o.insert("sourceId".into(), json!(""));
    o.insert("userName".into(), json!(name));
    if let Some(d) = v.get("displayName").and_then(Value::as_str) {
        o.insert("displayName".into(), json!(d));
    }
    if let Some(e) = v
        .get("emailAddress")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
    {
        o.insert("emails".into(), json!([{"value": e, "primary": true}]));
    }
    let active = v.get("active").and_then(Value::as_bool).unwrap_or(true) && !access_removed;
    o.insert("active".into(), json!(active));
    match serde_json::from_value::<User>(Value::Object(o)) {
        Ok(u) => Some(u),
        // Attributes changed by hand into something the model does not take are left out.
        Err(_) => {
            let mut u = User::new("", name);
            u.display_name = v
                .get("displayName")
                .and_then(Value::as_str)
                .map(str::to_string);
            u.emails = v
                .get("emailAddress")
                .and_then(Value::as_str)
                .map(|e| Email {
                    value: e.to_string(),
                    kind: None,
                    primary: true,
                    display: None,
                })
                .into_iter()
                .collect();
            u.active = active;
            Some(u)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn attributes_round_trip_through_the_property() {
        let mut u = User::new("s1", "ann");
        u.name.given_name = Some("Ann".into());
        u.name.family_name = Some("Lee".into());
        u.title = Some("Engineer".into());
        u.emails = vec![Email {
            value: "ann@example.com".into(),
            kind: Some("work".into()),
            primary: true,
            display: None,
        }];
        let p = project(u, true);
        assert_eq!(p.display_name.as_deref(), Some("Ann Lee"));
        let attrs = attributes(&p);
        assert!(attrs.contains_key("name") && attrs.contains_key("title"));
        assert!(!attrs.contains_key("userName") && !attrs.contains_key("emails"));
        let value = property_value(&attrs, &["jira-software-users".into()]).unwrap();
        let (a, removed) = read_property(Some(&value));
        let jira = json!({"name": "ann", "displayName": "Ann Lee", "emailAddress": "ann@example.com", "active": true});
        let mut back = from_jira(&jira, &a, !removed.is_empty()).unwrap();
        assert!(!back.active, "access removed reads as disabled");
        back.active = true;
        back.source_id = "s1".into();
        assert_eq!(back, p);
        let bare = project(p.clone(), false);
        assert!(attributes(&bare).is_empty());
        assert_eq!(property_value(&Map::new(), &[]), None);
    }
}
