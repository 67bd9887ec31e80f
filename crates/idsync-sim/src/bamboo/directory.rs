//! The Bamboo internal directory the simulator holds: users (username, full name, email,
//! password), groups and memberships, with Bamboo's rules as its admin REST API
//! (`/rest/api/latest/admin/users`, `/admin/groups`) shows them: a user is known by its
//! username only (no user key in the REST API), usernames and group names are matched
//! without regard to case and kept as first written, a user is created with a password
//! (`password` and `passwordConfirm`, both required), the API has no call that changes a
//! user's full name or email and none that deactivates a user, and a rename
//! (`PUT /admin/users/rename`) keeps the user's groups.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// An error as Bamboo's REST API answers it: validation errors as
/// `{"errors": [...], "fieldErrors": {"field": [...]}}`, the rest as
/// `{"message": "...", "status-code": N}`.
#[derive(Debug, Clone, PartialEq)]
pub struct BambooError {
    pub status: u16,
    pub message: Option<String>,
    pub field_errors: BTreeMap<String, Vec<String>>,
}

impl BambooError {
    pub fn message(status: u16, m: impl Into<String>) -> Self {
        BambooError {
            status,
            message: Some(m.into()),
            field_errors: BTreeMap::new(),
        }
    }
    pub fn field(field: &str, m: impl Into<String>) -> Self {
        let mut field_errors = BTreeMap::new();
        field_errors.insert(field.to_string(), vec![m.into()]);
        BambooError {
            status: 400,
            message: None,
            field_errors,
        }
    }
    pub fn body(&self) -> Value {
        match &self.message {
            Some(m) => json!({"message": m, "status-code": self.status}),
            None => json!({"errors": [], "fieldErrors": self.field_errors}),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BambooUser {
    pub name: String,
    pub full_name: String,
    pub email: String,
    pub password: String,
}

impl BambooUser {
    /// `RestUserDetails` as the admin API lists it.
    pub fn json(&self) -> Value {
        json!({"name": self.name, "fullName": self.full_name, "email": self.email})
    }
}

#[derive(Debug, Clone)]
pub struct BambooGroup {
    pub name: String,
    /// Lower-cased usernames.
    pub members: BTreeSet<String>,
}

/// The directory. Maps are keyed by lower-cased names (Bamboo's names ignore case).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub users: BTreeMap<String, BambooUser>,
    pub groups: BTreeMap<String, BambooGroup>,
}

fn lc(s: &str) -> String {
    s.to_lowercase()
}

/// Whether `filter` (case-insensitive) is in the username, full name or email.
fn user_matches(u: &BambooUser, filter: &str) -> bool {
    let f = lc(filter);
    f.is_empty()
        || [&u.name, &u.full_name, &u.email]
            .iter()
            .any(|v| lc(v).contains(&f))
}

impl Directory {
    /// A directory with its administrator (in `bamboo-admin`).
    pub fn new(admin: &str, password: &str) -> Directory {
        let mut d = Directory::default();
        d.users.insert(
            lc(admin),
            BambooUser {
                name: admin.to_string(),
                full_name: "Administrator".into(),
                email: format!("{admin}@example.com"),
                password: password.to_string(),
            },
        );
        d.groups.insert(
            "bamboo-admin".into(),
            BambooGroup {
                name: "bamboo-admin".into(),
                members: [lc(admin)].into_iter().collect(),
            },
        );
        d
    }

    pub fn user(&self, name: &str) -> Option<&BambooUser> {
        self.users.get(&lc(name))
    }

    /// Users whose username, full name or email contains `filter`, by username.
    pub fn find_users(&self, filter: &str) -> Vec<Value> {
        self.users
            .values()
            .filter(|u| user_matches(u, filter))
            .map(BambooUser::json)
            .collect()
    }

    pub fn create_user(&mut self, body: &Value) -> Result<Value, BambooError> {
        let s = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (name, full_name, email) = (s("name"), s("fullName"), s("email"));
        let (password, confirm) = (s("password"), s("passwordConfirm"));
        if name.trim().is_empty() {
            return Err(BambooError::field("name", "Please specify a username."));
        }
        if name
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '\\')
        {
            return Err(BambooError::field(
                "name",
                "Username contains characters that are not allowed.",
            ));
        }
        if self.users.contains_key(&lc(&name)) {
            return Err(BambooError::field(
                "name",
                "User with this username already exists.",
            ));
        }
        if full_name.trim().is_empty() {
            return Err(BambooError::field(
                "fullName",
                "Please specify a full name.",
            ));
        }
        if !email.contains('@') {
            return Err(BambooError::field(
                "email",
                "Please specify a valid email address.",
            ));
        }
        if password.is_empty() {
            return Err(BambooError::field("password", "Please specify a password."));
        }
        if password != confirm {
            return Err(BambooError::field(
                "passwordConfirm",
                "Password and confirmation do not match.",
            ));
        }
        let u = BambooUser {
            name: name.clone(),
            full_name,
            email,
            password,
        };
        let out = u.json();
        self.users.insert(lc(&name), u);
        Ok(out)
    }

    pub fn rename_user(&mut self, old: &str, new: &str) -> Result<(), BambooError> {
        if new.trim().is_empty() {
            return Err(BambooError::field("name", "Please specify a username."));
        }
        let Some(mut u) = self.users.remove(&lc(old)) else {
            return Err(BambooError::message(404, format!("User {old} not found.")));
        };
        if lc(old) != lc(new) && self.users.contains_key(&lc(new)) {
            self.users.insert(lc(old), u);
            return Err(BambooError::field(
                "name",
                "User with this username already exists.",
            ));
        }
        u.name = new.to_string();
        self.users.insert(lc(new), u);
        for g in self.groups.values_mut() {
            if g.members.remove(&lc(old)) {
                g.members.insert(lc(new));
            }
        }
        Ok(())
    }

    pub fn delete_user(&mut self, name: &str) -> Result<(), BambooError> {
        if self.users.remove(&lc(name)).is_none() {
            return Err(BambooError::message(404, format!("User {name} not found.")));
        }
        for g in self.groups.values_mut() {
            g.members.remove(&lc(name));
        }
        Ok(())
    }

    pub fn groups(&self, filter: &str) -> Vec<Value> {
        let f = lc(filter);
        self.groups
            .values()
            .filter(|g| lc(&g.name).contains(&f))
            .map(|g| json!({"name": g.name, "editable": true}))
            .collect()
    }

    pub fn create_group(&mut self, body: &Value) -> Result<Value, BambooError> {
        let name = body.get("name").and_then(Value::as_str).unwrap_or("");
        if name.trim().is_empty() {
            return Err(BambooError::field("name", "Please specify a group name."));
        }
        if self.groups.contains_key(&lc(name)) {
            return Err(BambooError::field(
                "name",
                "Group with this name already exists.",
            ));
        }
        self.groups.insert(
            lc(name),
            BambooGroup {
                name: name.to_string(),
                members: BTreeSet::new(),
            },
        );
        Ok(json!({"name": name, "editable": true}))
    }

    pub fn delete_group(&mut self, name: &str) -> Result<(), BambooError> {
        self.groups
            .remove(&lc(name))
            .map(|_| ())
            .ok_or_else(|| BambooError::message(404, format!("Group {name} not found.")))
    }

    fn group_mut(&mut self, name: &str) -> Result<&mut BambooGroup, BambooError> {
        self.groups
            .get_mut(&lc(name))
            .ok_or_else(|| BambooError::message(404, format!("Group {name} not found.")))
    }

    /// Members of a group (`more-members`, `in == true`) or the users outside it
    /// (`more-non-members`), filtered.
    pub fn members(
        &self,
        group: &str,
        filter: &str,
        inside: bool,
    ) -> Result<Vec<Value>, BambooError> {
        let g = self
            .groups
            .get(&lc(group))
            .ok_or_else(|| BambooError::message(404, format!("Group {group} not found.")))?;
        Ok(self
            .users
            .iter()
            .filter(|(k, u)| g.members.contains(*k) == inside && user_matches(u, filter))
            .map(|(_, u)| u.json())
            .collect())
    }

    /// Add (or remove) users to a group as one batch: every user must exist, else nothing
    /// changes. Adding a member again or removing a non-member changes nothing.
    pub fn change_members(
        &mut self,
        group: &str,
        users: &[String],
        add: bool,
    ) -> Result<(), BambooError> {
        let missing: Vec<&String> = users
            .iter()
            .filter(|u| !self.users.contains_key(&lc(u)))
            .collect();
        if let Some(m) = missing.first() {
            return Err(BambooError::message(404, format!("User {m} not found.")));
        }
        let g = self.group_mut(group)?;
        for u in users {
            if add {
                g.members.insert(lc(u));
            } else {
                g.members.remove(&lc(u));
            }
        }
        Ok(())
    }

    /// The groups a user is in (`assigned-groups`), filtered.
    pub fn assigned_groups(&self, user: &str, filter: &str) -> Result<Vec<Value>, BambooError> {
        if !self.users.contains_key(&lc(user)) {
            return Err(BambooError::message(404, format!("User {user} not found.")));
        }
        let f = lc(filter);
        Ok(self
            .groups
            .values()
            .filter(|g| g.members.contains(&lc(user)) && lc(&g.name).contains(&f))
            .map(|g| json!({"name": g.name, "editable": true}))
            .collect())
    }

    /// Add (or remove) one user to several groups (`POST`/`DELETE /admin/users/{name}/groups`):
    /// every group must exist, else nothing changes.
    pub fn change_groups(
        &mut self,
        user: &str,
        groups: &[String],
        add: bool,
    ) -> Result<(), BambooError> {
        if !self.users.contains_key(&lc(user)) {
            return Err(BambooError::message(404, format!("User {user} not found.")));
        }
        if let Some(g) = groups.iter().find(|g| !self.groups.contains_key(&lc(g))) {
            return Err(BambooError::message(404, format!("Group {g} not found.")));
        }
        for g in groups {
            self.change_members(g, &[user.to_string()], add)?;
        }
        Ok(())
    }
}
