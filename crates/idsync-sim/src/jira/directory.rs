//! The Jira internal directory the simulator holds: users (username, user key, email, display
//! name, active), groups, memberships, user properties and application roles, with Jira's
//! rules: usernames and group names are matched without regard to case, user keys never change
//! (from Jira 8.4 they are `JIRAUSER<id>`, before that the lower-cased first username), emails
//! need not be unique, and `active` is honoured from Jira 8.3 only.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// An error as Jira's REST API answers it: a status and `{"errorMessages": [...], "errors": {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct JiraError {
    pub status: u16,
    pub messages: Vec<String>,
    pub errors: BTreeMap<String, String>,
}

impl JiraError {
    pub fn message(status: u16, m: impl Into<String>) -> Self {
        JiraError {
            status,
            messages: vec![m.into()],
            errors: BTreeMap::new(),
        }
    }
    pub fn field(status: u16, field: &str, m: impl Into<String>) -> Self {
        let mut errors = BTreeMap::new();
        errors.insert(field.to_string(), m.into());
        JiraError {
            status,
            messages: Vec::new(),
            errors,
        }
    }
    pub fn body(&self) -> Value {
        json!({"errorMessages": self.messages, "errors": self.errors})
    }
}

/// A Jira version as `serverInfo` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// `"9.12.2"`; missing parts are 0; `None` when a part is not a number.
    pub fn parse(s: &str) -> Option<Version> {
        let mut it = s.trim().split('.');
        let mut next = || -> Option<u32> {
            match it.next() {
                None => Some(0),
                Some(p) => p.parse().ok(),
            }
        };
        Some(Version(next()?, next()?, next()?))
    }
    /// `PUT /user` takes `"active"` (Jira 8.3 and later); older versions ignore it.
    pub fn honours_active(self) -> bool {
        self >= Version(8, 3, 0)
    }
    /// New users get keys `JIRAUSER<id>` (Jira 8.4 and later).
    pub fn opaque_keys(self) -> bool {
        self >= Version(8, 4, 0)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[derive(Debug, Clone)]
pub struct JiraUser {
    pub id: u64,
    pub key: String,
    pub name: String,
    pub email: String,
    pub display_name: String,
    pub active: bool,
    pub properties: BTreeMap<String, Value>,
}

#[derive(Debug, Clone)]
pub struct JiraGroup {
    pub name: String,
    pub members: BTreeSet<u64>,
}

/// An application role (`/rest/api/2/applicationrole`): the groups that grant access to the
/// application, those new users join, and the licence's seats.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRole {
    pub key: String,
    pub name: String,
    pub groups: Vec<String>,
    pub default_groups: Vec<String>,
    pub seats: Option<u64>,
    pub selected_by_default: bool,
}

impl AppRole {
    pub fn software(seats: Option<u64>) -> AppRole {
        AppRole {
            key: "jira-software".into(),
            name: "Jira Software".into(),
            groups: vec!["jira-software-users".into(), "jira-administrators".into()],
            default_groups: vec!["jira-software-users".into()],
            seats,
            selected_by_default: true,
        }
    }
}

/// Largest user property value, in characters (Jira: 32,768).
pub const MAX_PROPERTY: usize = 32_768;

#[derive(Debug, Clone)]
pub struct Directory {
    pub version: Version,
    next_id: u64,
    users: BTreeMap<u64, JiraUser>,
    by_name: BTreeMap<String, u64>,
    by_key: BTreeMap<String, u64>,
    groups: BTreeMap<String, JiraGroup>,
    pub roles: Vec<AppRole>,
    /// Projects by key, with their leads and components (`projects.rs`).
    pub(super) projects: BTreeMap<String, super::projects::Project>,
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// What `POST /user` and `PUT /user` carry.
#[derive(Debug, Clone, Default)]
pub struct UserFields {
    pub name: Option<String>,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub active: Option<bool>,
}

impl UserFields {
    /// From a request body; wrong types are Jira's 400.
    pub fn from_json(v: &Value) -> Result<UserFields, JiraError> {
        let Some(o) = v.as_object() else {
            return Err(JiraError::message(
                400,
                "Can not deserialize instance of UserWriteBean out of the request body",
            ));
        };
        let s = |k: &str| -> Result<Option<String>, JiraError> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(JiraError::message(
                    400,
                    format!("Can not deserialize {k}: a string is expected"),
                )),
            }
        };
        let active = match o.get("active") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            // Jackson takes "true"/"false" strings for booleans.
            Some(Value::String(s)) if s == "true" || s == "false" => Some(s == "true"),
            Some(_) => {
                return Err(JiraError::message(
                    400,
                    "Can not deserialize active: a boolean is expected",
                ))
            }
        };
        Ok(UserFields {
            name: s("name")?,
            email: s("emailAddress")?,
            display_name: s("displayName")?,
            active,
        })
    }
}

fn valid_email(e: &str) -> bool {
    let mut parts = e.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(l), Some(d), None) if !l.is_empty() && !d.is_empty())
}

impl Directory {
    /// An instance with its administrator (`admin`, in `jira-administrators` and the default
    /// groups) and the given roles' groups.
    pub fn new(version: Version, roles: Vec<AppRole>, admin: &str) -> Directory {
        let mut d = Directory {
            version,
            next_id: 10_000,
            users: BTreeMap::new(),
            by_name: BTreeMap::new(),
            by_key: BTreeMap::new(),
            groups: BTreeMap::new(),
            roles,
            projects: BTreeMap::new(),
        };
        let mut names: Vec<String> = vec!["jira-administrators".into()];
        for r in &d.roles {
            names.extend(r.groups.iter().cloned());
        }
        for g in names {
            let _ = d.create_group(&g);
        }
        if let Ok(id) = d.create_user(
            UserFields {
                name: Some(admin.into()),
                email: Some(format!("{admin}@example.com")),
                display_name: Some("Administrator".into()),
                active: None,
            },
            false,
        ) {
            let _ = d.add_member("jira-administrators", id);
        }
        d
    }

    pub fn user(&self, id: u64) -> Option<&JiraUser> {
        self.users.get(&id)
    }
    pub fn users(&self) -> impl Iterator<Item = &JiraUser> {
        self.users.values()
    }
    pub fn user_count(&self) -> usize {
        self.users.len()
    }
    pub fn by_name(&self, name: &str) -> Option<u64> {
        self.by_name.get(&lower(name)).copied()
    }
    pub fn by_key(&self, key: &str) -> Option<u64> {
        self.by_key.get(key).copied()
    }
    /// The user a request names by `username` or `key` (Jira's 404 otherwise).
    pub fn find(&self, username: Option<&str>, key: Option<&str>) -> Result<u64, JiraError> {
        match (username, key) {
            (Some(n), _) => self.by_name(n).ok_or_else(|| {
                JiraError::message(404, format!("The user named '{n}' does not exist"))
            }),
            (None, Some(k)) => self.by_key(k).ok_or_else(|| {
                JiraError::message(404, format!("The user with the key '{k}' does not exist"))
            }),
            (None, None) => Err(JiraError::message(
                404,
                "Either the 'username' or the 'key' query parameters need to be provided",
            )),
        }
    }

    /// `POST /user`. New users join the default groups of the roles selected by default
    /// (Jira's default application access) unless `no_default_access`.
    pub fn create_user(
        &mut self,
        f: UserFields,
        no_default_access: bool,
    ) -> Result<u64, JiraError> {
        let name = f.name.unwrap_or_default();
        if name.trim().is_empty() {
            return Err(JiraError::field(
                400,
                "username",
                "You must specify a username.",
            ));
        }
        if name.len() > 255 {
            return Err(JiraError::field(
                400,
                "username",
                "The username must not exceed 255 characters in length.",
            ));
        }
        if name.chars().any(|c| c.is_whitespace() && c != ' ')
            || name.starts_with(' ')
            || name.ends_with(' ')
        {
            return Err(JiraError::field(
                400,
                "username",
                "The username must not contain leading or trailing whitespace.",
            ));
        }
        let email = f.email.unwrap_or_default();
        if !valid_email(&email) {
            return Err(JiraError::field(
                400,
                "email",
                "You must specify a valid email address.",
            ));
        }
        let display_name = f.display_name.unwrap_or_default();
        if display_name.trim().is_empty() {
            return Err(JiraError::field(
                400,
                "fullName",
                "You must specify a full name.",
            ));
        }
        if self.by_name(&name).is_some() {
            return Err(JiraError::field(
                400,
                "username",
                "A user with that username already exists.",
            ));
        }
        self.next_id += 100;
        let id = self.next_id;
        let key = if self.version.opaque_keys() {
            format!("JIRAUSER{id}")
        } else {
            lower(&name)
        };
        if self.by_key.contains_key(&key) {
            // A pre-8.4 key stays with the account that first had the name, even after a
            // rename: a new user with that name gets a key of its own.
            return Err(JiraError::field(
                400,
                "username",
                "A user with that username already exists.",
            ));
        }
        self.by_name.insert(lower(&name), id);
        self.by_key.insert(key.clone(), id);
        self.users.insert(
            id,
            JiraUser {
                id,
                key,
                name,
                email,
                display_name,
                active: true,
                properties: BTreeMap::new(),
            },
        );
        if !no_default_access {
            let defaults: Vec<String> = self
                .roles
                .iter()
                .filter(|r| r.selected_by_default)
                .flat_map(|r| r.default_groups.iter().cloned())
                .collect();
            for g in defaults {
                let _ = self.add_member(&g, id);
            }
        }
        Ok(id)
    }

    /// `PUT /user`: rename, email, display name, and `active` where the version takes it.
    pub fn update_user(
        &mut self,
        id: u64,
        f: UserFields,
        caller: Option<u64>,
    ) -> Result<(), JiraError> {
        let Some(current) = self.users.get(&id).cloned() else {
            return Err(JiraError::message(404, "The user does not exist"));
        };
        if let Some(e) = &f.email {
            if !valid_email(e) {
                return Err(JiraError::field(
                    400,
                    "email",
                    "You must specify a valid email address.",
                ));
            }
        }
        if let Some(d) = &f.display_name {
            if d.trim().is_empty() {
                return Err(JiraError::field(
                    400,
                    "fullName",
                    "You must specify a full name.",
                ));
            }
        }
        if let Some(n) = &f.name {
            if n.trim().is_empty() {
                return Err(JiraError::field(
                    400,
                    "username",
                    "You must specify a username.",
                ));
            }
            if let Some(other) = self.by_name(n) {
                if other != id {
                    return Err(JiraError::field(
                        400,
                        "username",
                        "A user with that username already exists.",
                    ));
                }
            }
        }
        if f.active == Some(false) && caller == Some(id) && self.version.honours_active() {
            return Err(JiraError::field(
                400,
                "active",
                "You cannot deactivate your own user.",
            ));
        }
        let honours = self.version.honours_active();
        if f.active == Some(false) && honours {
            self.check_may_deactivate(id)?;
        }
        let Some(u) = self.users.get_mut(&id) else {
            return Err(JiraError::message(404, "The user does not exist"));
        };
        if let Some(n) = f.name {
            self.by_name.remove(&lower(&current.name));
            self.by_name.insert(lower(&n), id);
            u.name = n;
        }
        if let Some(e) = f.email {
            u.email = e;
        }
        if let Some(d) = f.display_name {
            u.display_name = d;
        }
        if let (Some(a), true) = (f.active, honours) {
            u.active = a;
        }
        Ok(())
    }

    /// `DELETE /user`: memberships and properties go with it.
    pub fn delete_user(&mut self, id: u64, caller: Option<u64>) -> Result<(), JiraError> {
        if caller == Some(id) {
            return Err(JiraError::message(
                400,
                "You cannot delete the currently logged in user.",
            ));
        }
        if !self.users.contains_key(&id) {
            return Err(JiraError::message(404, "The user does not exist"));
        }
        // A project lead cannot be deleted; a component lead can (the component loses it).
        self.check_not_project_lead(id)?;
        self.drop_component_leads(id);
        let Some(u) = self.users.remove(&id) else {
            return Err(JiraError::message(404, "The user does not exist"));
        };
        self.by_name.remove(&lower(&u.name));
        self.by_key.remove(&u.key);
        for g in self.groups.values_mut() {
            g.members.remove(&id);
        }
        Ok(())
    }

    /// `GET /user/search?username=`: users whose username, email, display name, or a word of
    /// the display name starts with the query (any case); `.` matches everyone. Sorted by
    /// username.
    pub fn search(&self, query: &str, active: bool, inactive: bool) -> Vec<&JiraUser> {
        let q = lower(query);
        let mut out: Vec<&JiraUser> = self
            .users
            .values()
            .filter(|u| (u.active && active) || (!u.active && inactive))
            .filter(|u| {
                q == "."
                    || lower(&u.name).starts_with(&q)
                    || lower(&u.email).starts_with(&q)
                    || lower(&u.display_name).starts_with(&q)
                    || lower(&u.display_name)
                        .split_whitespace()
                        .any(|w| w.starts_with(&q))
            })
            .collect();
        out.sort_by_key(|u| lower(&u.name));
        out
    }

    pub fn group(&self, name: &str) -> Option<&JiraGroup> {
        self.groups.get(&lower(name))
    }
    pub fn groups(&self) -> impl Iterator<Item = &JiraGroup> {
        self.groups.values()
    }
    /// The names of the groups `id` is in.
    pub fn groups_of(&self, id: u64) -> Vec<String> {
        self.groups
            .values()
            .filter(|g| g.members.contains(&id))
            .map(|g| g.name.clone())
            .collect()
    }

    pub fn create_group(&mut self, name: &str) -> Result<(), JiraError> {
        if name.trim().is_empty() {
            return Err(JiraError::message(
                400,
                "You must specify a valid group name.",
            ));
        }
        if name.len() > 255 {
            return Err(JiraError::message(
                400,
                "The group name must not exceed 255 characters in length.",
            ));
        }
        if self.groups.contains_key(&lower(name)) {
            return Err(JiraError::message(
                400,
                "A group or user with this name already exists.",
            ));
        }
        self.groups.insert(
            lower(name),
            JiraGroup {
                name: name.to_string(),
                members: BTreeSet::new(),
            },
        );
        Ok(())
    }

    pub fn delete_group(&mut self, name: &str, swap: Option<&str>) -> Result<(), JiraError> {
        if let Some(s) = swap {
            if lower(s) == lower(name) || self.group(s).is_none() {
                return Err(JiraError::message(
                    400,
                    format!("The swap group '{s}' is not valid."),
                ));
            }
        }
        if self.groups.remove(&lower(name)).is_none() {
            return Err(JiraError::message(404, "Specified group does not exist."));
        }
        Ok(())
    }

    pub fn add_member(&mut self, group: &str, id: u64) -> Result<(), JiraError> {
        let uname = self
            .users
            .get(&id)
            .map(|u| u.name.clone())
            .unwrap_or_default();
        let Some(g) = self.groups.get_mut(&lower(group)) else {
            return Err(JiraError::message(404, "Specified group does not exist."));
        };
        if !g.members.insert(id) {
            return Err(JiraError::message(
                400,
                format!(
                    "Cannot add user. '{uname}' is already a member of '{}'",
                    g.name
                ),
            ));
        }
        Ok(())
    }

    pub fn remove_member(&mut self, group: &str, id: u64) -> Result<(), JiraError> {
        let uname = self
            .users
            .get(&id)
            .map(|u| u.name.clone())
            .unwrap_or_default();
        let Some(g) = self.groups.get_mut(&lower(group)) else {
            return Err(JiraError::message(404, "Specified group does not exist."));
        };
        if !g.members.remove(&id) {
            return Err(JiraError::message(
                404,
                format!("Cannot remove user '{uname}' from group '{}' since user is not a member of '{}'", g.name, g.name),
            ));
        }
        Ok(())
    }

    pub fn set_property(&mut self, id: u64, key: &str, value: Value) -> Result<bool, JiraError> {
        if key.is_empty() || key.len() > 255 {
            return Err(JiraError::message(
                400,
                "The property key must be between 1 and 255 characters long.",
            ));
        }
        if value.to_string().chars().count() > MAX_PROPERTY {
            return Err(JiraError::message(
                400,
                format!("The property value is too long: at most {MAX_PROPERTY} characters."),
            ));
        }
        let Some(u) = self.users.get_mut(&id) else {
            return Err(JiraError::message(404, "The user does not exist"));
        };
        Ok(u.properties.insert(key.to_string(), value).is_none())
    }

    pub fn delete_property(&mut self, id: u64, key: &str) -> Result<(), JiraError> {
        let Some(u) = self.users.get_mut(&id) else {
            return Err(JiraError::message(404, "The user does not exist"));
        };
        match u.properties.remove(key) {
            Some(_) => Ok(()),
            None => Err(JiraError::message(
                404,
                format!("The property with key '{key}' does not exist."),
            )),
        }
    }

    /// Active users who hold the role through one of its groups.
    pub fn role_users(&self, r: &AppRole) -> usize {
        self.users
            .values()
            .filter(|u| u.active)
            .filter(|u| {
                r.groups
                    .iter()
                    .any(|g| self.group(g).is_some_and(|grp| grp.members.contains(&u.id)))
            })
            .count()
    }

    pub fn role_json(&self, r: &AppRole) -> Value {
        let count = self.role_users(r);
        let mut o = Map::new();
        o.insert("key".into(), json!(r.key));
        o.insert("name".into(), json!(r.name));
        o.insert("groups".into(), json!(r.groups));
        o.insert("defaultGroups".into(), json!(r.default_groups));
        o.insert("selectedByDefault".into(), json!(r.selected_by_default));
        o.insert("defined".into(), json!(true));
        o.insert("userCount".into(), json!(count));
        o.insert(
            "userCountDescription".into(),
            json!(format!("{count} users")),
        );
        o.insert("hasUnlimitedSeats".into(), json!(r.seats.is_none()));
        o.insert("platform".into(), json!(false));
        match r.seats {
            Some(s) => {
                o.insert("numberOfSeats".into(), json!(s));
                o.insert(
                    "remainingSeats".into(),
                    json!(i64::try_from(s).unwrap_or(i64::MAX) - i64::try_from(count).unwrap_or(0)),
                );
            }
            None => {
                o.insert("numberOfSeats".into(), json!(-1));
                o.insert("remainingSeats".into(), json!(-1));
            }
        }
        Value::Object(o)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fields(name: &str) -> UserFields {
        UserFields {
            name: Some(name.into()),
            email: Some(format!("{name}@example.com")),
            display_name: Some(name.into()),
            active: None,
        }
    }

    #[test]
    fn keys_names_case_and_versions() {
        let mut d = Directory::new(Version(9, 12, 2), vec![AppRole::software(Some(5))], "admin");
        let id = d.create_user(fields("Ann"), false).unwrap();
        assert_eq!(d.user(id).unwrap().key, format!("JIRAUSER{id}"));
        assert_eq!(d.by_name("ANN"), Some(id));
        assert_eq!(d.create_user(fields("ann"), false).unwrap_err().status, 400);
        d.update_user(
            id,
            UserFields {
                name: Some("anna".into()),
                ..UserFields::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(d.by_name("ann"), None);
        assert_eq!(d.by_key(&format!("JIRAUSER{id}")), Some(id));
        assert_eq!(d.groups_of(id), vec!["jira-software-users".to_string()]);
        let old = Version(8, 2, 0);
        let mut o = Directory::new(old, vec![AppRole::software(None)], "admin");
        let b = o.create_user(fields("Bob"), true).unwrap();
        assert_eq!(o.user(b).unwrap().key, "bob");
        o.update_user(
            b,
            UserFields {
                active: Some(false),
                ..UserFields::default()
            },
            None,
        )
        .unwrap();
        assert!(o.user(b).unwrap().active, "8.2 ignores active");
        assert!(o.groups_of(b).is_empty());
        assert_eq!(Version::parse("8.3"), Some(Version(8, 3, 0)));
        assert_eq!(Version::parse("x"), None);
    }
}
