//! A user as Confluence holds it: a username (case-insensitive, kept in lower case), a full
//! name (its display name), an email address and whether it is active. Confluence's REST API
//! has no other profile field for a user (no names, title, department or phone), so the rest
//! of idsync's model is not sent and not compared.

use idsync_core::{Email, User};
use serde_json::Value;

/// The user as Confluence can hold it; `email` false where Confluence could not show this
/// user's email address (`profile.rs`): it is then not compared.
pub fn project(u: User, email: bool) -> User {
    let display = crate::targets::jira::users::display_name_of(&u);
    let emails = if email {
        u.primary_email()
            .map(|e| Email {
                value: e.to_string(),
                kind: None,
                primary: true,
                display: None,
            })
            .into_iter()
            .collect()
    } else {
        Vec::new()
    };
    User {
        id: u.id,
        source_id: u.source_id,
        user_name: u.user_name.to_lowercase(),
        display_name: Some(display),
        emails,
        active: u.active,
        ..User::new("", "")
    }
}

/// A Confluence user (`/rest/api/user` JSON, with `status` expanded) as idsync's model, with
/// its email where known. `None` when the answer has no username.
pub fn from_confluence(v: &Value, email: Option<&str>, access_removed: bool) -> Option<User> {
    let name = v.get("username").and_then(Value::as_str)?;
    let mut u = User::new("", name);
    u.display_name = v
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_string);
    u.emails = email
        .filter(|e| !e.is_empty())
        .map(|e| Email {
            value: e.to_string(),
            kind: None,
            primary: true,
            display: None,
        })
        .into_iter()
        .collect();
    let deactivated = v.get("status").and_then(Value::as_str) == Some("Deactivated");
    u.active = !deactivated && !access_removed;
    Some(u)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn what_confluence_holds_round_trips() {
        let mut u = User::new("s1", "Ann.Lee");
        u.name.given_name = Some("Ann".into());
        u.name.family_name = Some("Lee".into());
        u.title = Some("Engineer".into());
        u.emails = vec![Email {
            value: "ann@example.com".into(),
            kind: Some("work".into()),
            primary: true,
            display: None,
        }];
        let p = project(u.clone(), true);
        assert_eq!(p.user_name, "ann.lee");
        assert_eq!(p.display_name.as_deref(), Some("Ann Lee"));
        assert_eq!(p.title, None);
        let v = json!({"username": "ann.lee", "displayName": "Ann Lee", "status": "Active"});
        let mut back = from_confluence(&v, Some("ann@example.com"), false).unwrap();
        back.source_id = "s1".into();
        assert_eq!(back, p);
        assert!(project(u, false).emails.is_empty());
        let off = json!({"username": "ann.lee", "displayName": "Ann Lee", "status": "Deactivated"});
        assert!(!from_confluence(&off, None, false).unwrap().active);
        assert!(!from_confluence(&v, None, true).unwrap().active);
    }
}
