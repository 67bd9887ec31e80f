//! Confluence Data Center's internal directory as the simulator holds it: users (known by a
//! user key that survives renames, and by a username that is case-insensitive and stored in
//! lower case), groups (names in lower case, as Confluence keeps them), memberships, and the
//! version rules of the APIs that change them.

use crate::jira::Version;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The group every new user joins, as in a fresh Confluence (it grants "Can use").
pub const DEFAULT_GROUP: &str = "confluence-users";

/// What a version of Confluence offers to manage users.
pub trait Capabilities {
    /// `GET /rest/api/server-information` (9.1 and later).
    fn has_server_information(self) -> bool;
    /// The admin user API: `POST /rest/api/admin/user`, `PUT .../disable|enable`,
    /// `DELETE /rest/api/admin/user/{username}` and `GET /rest/api/user/list` (8.4 and later,
    /// as idsync takes it: decision 0036).
    fn has_admin_users(self) -> bool;
    /// The JSON-RPC remote API (`/rpc/json-rpc/confluenceservice-v2`: `addUser`, `editUser`,
    /// `getUser`...), removed in 9.0.
    fn has_json_rpc(self) -> bool;
    /// `PUT /rest/api/admin/user/{username}` (*Update user*: full name and email): first in the
    /// 9.4 reference (v940; the v922 reference has no such call; 9.3 unverified, taken as
    /// without it). Before, the path answers 405 where `DELETE` is served on it (8.4 and later).
    fn has_admin_user_update(self) -> bool;
    /// `GET /rest/api/admin/users/list/active` (the *Admin Users* group; 9.3 and later,
    /// CONFSERVER-37100).
    fn has_active_users_list(self) -> bool;
    /// Whether that list's users carry their `email` (documented from the 10.2 reference; 10.0
    /// and 10.1 taken as without it).
    fn active_users_show_email(self) -> bool;
}

impl Capabilities for Version {
    fn has_server_information(self) -> bool {
        self >= Version(9, 1, 0)
    }
    fn has_admin_users(self) -> bool {
        self >= Version(8, 4, 0)
    }
    fn has_json_rpc(self) -> bool {
        self < Version(9, 0, 0)
    }
    fn has_admin_user_update(self) -> bool {
        self >= Version(9, 4, 0)
    }
    fn has_active_users_list(self) -> bool {
        self >= Version(9, 3, 0)
    }
    fn active_users_show_email(self) -> bool {
        self >= Version(10, 2, 0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfUser {
    pub key: String,
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub active: bool,
}

/// An error as Confluence answers it: `{"statusCode", "data": {...}, "message"}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ConfError {
    pub status: u16,
    pub message: String,
}

impl ConfError {
    pub fn new(status: u16, message: impl Into<String>) -> ConfError {
        ConfError {
            status,
            message: message.into(),
        }
    }
    pub fn body(&self) -> Value {
        json!({
            "statusCode": self.status,
            "data": {
                "authorized": self.status != 401 && self.status != 403,
                "valid": self.status != 400,
                "allowedInReadOnlyMode": true,
                "errors": [],
                "successful": false
            },
            "message": self.message,
            "reason": reason(self.status),
        })
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        429 => "Too Many Requests",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[derive(Debug, Default)]
pub struct Directory {
    users: BTreeMap<String, ConfUser>,
    /// Lower-case username → key.
    names: BTreeMap<String, String>,
    /// Lower-case group name → member keys.
    groups: BTreeMap<String, BTreeSet<String>>,
    next: u64,
    /// Long tasks started (user deletions): id → name.
    tasks: BTreeMap<String, String>,
}

impl Directory {
    /// A directory with the administrator and the default groups.
    pub fn new(admin: &str) -> Directory {
        let mut d = Directory::default();
        for g in [DEFAULT_GROUP, "confluence-administrators"] {
            d.groups.insert(g.into(), BTreeSet::new());
        }
        let key = d.insert(admin, "Administrator", "admin@example.com");
        if let Some(m) = d.groups.get_mut("confluence-administrators") {
            m.insert(key);
        }
        d
    }

    fn insert(&mut self, username: &str, display: &str, email: &str) -> String {
        self.next += 1;
        let key = format!("8a7f808a{:024x}", self.next);
        let name = username.to_lowercase();
        self.names.insert(name.clone(), key.clone());
        self.users.insert(
            key.clone(),
            ConfUser {
                key: key.clone(),
                username: name,
                display_name: display.into(),
                email: email.into(),
                active: true,
            },
        );
        if let Some(m) = self.groups.get_mut(DEFAULT_GROUP) {
            m.insert(key.clone());
        }
        key
    }

    pub fn by_key(&self, key: &str) -> Option<&ConfUser> {
        self.users.get(key)
    }

    pub fn by_name(&self, username: &str) -> Option<&ConfUser> {
        self.names
            .get(&username.to_lowercase())
            .and_then(|k| self.users.get(k))
    }

    fn key_of(&self, username: &str) -> Result<String, ConfError> {
        self.names
            .get(&username.to_lowercase())
            .cloned()
            .ok_or_else(|| ConfError::new(404, format!("No user found with username: {username}")))
    }

    /// Every user, by key order.
    pub fn users(&self) -> impl Iterator<Item = &ConfUser> {
        self.users.values()
    }

    pub fn create_user(
        &mut self,
        username: &str,
        display: &str,
        email: &str,
    ) -> Result<ConfUser, ConfError> {
        if username.trim().is_empty() {
            return Err(ConfError::new(400, "Username cannot be empty"));
        }
        if username
            .chars()
            .any(|c| c.is_whitespace() || c == '\\' || c == '/')
        {
            return Err(ConfError::new(
                400,
                format!("Username {username:?} contains characters Confluence does not allow"),
            ));
        }
        if display.trim().is_empty() {
            return Err(ConfError::new(400, "Full name cannot be empty"));
        }
        if self.names.contains_key(&username.to_lowercase()) {
            return Err(ConfError::new(
                400,
                format!(
                    "A user with username '{}' already exists",
                    username.to_lowercase()
                ),
            ));
        }
        let key = self.insert(username, display, email);
        self.users
            .get(&key)
            .cloned()
            .ok_or_else(|| ConfError::new(500, "user vanished"))
    }

    pub fn edit_user(
        &mut self,
        username: &str,
        display: &str,
        email: &str,
    ) -> Result<(), ConfError> {
        let key = self.key_of(username)?;
        if display.trim().is_empty() {
            return Err(ConfError::new(400, "Full name cannot be empty"));
        }
        if let Some(u) = self.users.get_mut(&key) {
            u.display_name = display.into();
            u.email = email.into();
        }
        Ok(())
    }

    /// The admin user API's *Update user*: the full name and the email, each where given. The
    /// full name must not be blank nor hold `<` or `>`; the email must not be blank and must
    /// be an address.
    pub fn update_user(
        &mut self,
        username: &str,
        display: Option<&str>,
        email: Option<&str>,
    ) -> Result<(), ConfError> {
        let key = self.key_of(username)?;
        if let Some(d) = display {
            if d.trim().is_empty() || d.contains(['<', '>']) || d.eq_ignore_ascii_case("anonymous")
            {
                return Err(ConfError::new(400, format!("Invalid full name: {d:?}")));
            }
        }
        if let Some(e) = email {
            let at = e.find('@');
            if e.trim().is_empty() || !at.is_some_and(|i| i > 0 && i + 1 < e.len()) {
                return Err(ConfError::new(400, format!("Invalid email address: {e:?}")));
            }
        }
        if let Some(u) = self.users.get_mut(&key) {
            if let Some(d) = display {
                u.display_name = d.into();
            }
            if let Some(e) = email {
                u.email = e.into();
            }
        }
        Ok(())
    }

    /// Whether the user holds a licence (Confluence's "Can use": here, membership of the
    /// default group or the administrators').
    pub fn licensed(&self, key: &str) -> bool {
        [DEFAULT_GROUP, "confluence-administrators"]
            .iter()
            .any(|g| self.groups.get(*g).is_some_and(|m| m.contains(key)))
    }

    pub fn set_active(&mut self, username: &str, active: bool) -> Result<(), ConfError> {
        let key = self.key_of(username)?;
        if let Some(u) = self.users.get_mut(&key) {
            u.active = active;
        }
        Ok(())
    }

    pub fn delete_user(&mut self, username: &str) -> Result<(), ConfError> {
        let key = self.key_of(username)?;
        self.users.remove(&key);
        self.names.remove(&username.to_lowercase());
        for m in self.groups.values_mut() {
            m.remove(&key);
        }
        Ok(())
    }

    /// Group names, sorted.
    pub fn group_names(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    pub fn has_group(&self, name: &str) -> bool {
        self.groups.contains_key(&name.to_lowercase())
    }

    pub fn create_group(&mut self, name: &str) -> Result<String, ConfError> {
        let n = name.trim().to_lowercase();
        if n.is_empty() {
            return Err(ConfError::new(400, "Group name cannot be empty"));
        }
        if self.groups.contains_key(&n) {
            return Err(ConfError::new(
                409,
                format!("Group with name '{n}' already exists"),
            ));
        }
        self.groups.insert(n.clone(), BTreeSet::new());
        Ok(n)
    }

    pub fn delete_group(&mut self, name: &str) -> Result<(), ConfError> {
        self.groups
            .remove(&name.to_lowercase())
            .map(|_| ())
            .ok_or_else(|| ConfError::new(404, format!("Group with name '{name}' does not exist")))
    }

    fn group_mut(&mut self, name: &str) -> Result<&mut BTreeSet<String>, ConfError> {
        self.groups
            .get_mut(&name.to_lowercase())
            .ok_or_else(|| ConfError::new(404, format!("Group with name '{name}' does not exist")))
    }

    /// Members of a group, by username order.
    pub fn members(&self, name: &str) -> Result<Vec<&ConfUser>, ConfError> {
        let keys = self.groups.get(&name.to_lowercase()).ok_or_else(|| {
            ConfError::new(404, format!("Group with name '{name}' does not exist"))
        })?;
        let mut out: Vec<&ConfUser> = keys.iter().filter_map(|k| self.users.get(k)).collect();
        out.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(out)
    }

    /// Idempotent, as Confluence's `PUT /rest/api/user/{username}/group/{groupName}`.
    pub fn add_member(&mut self, username: &str, group: &str) -> Result<(), ConfError> {
        let key = self.key_of(username)?;
        self.group_mut(group)?.insert(key);
        Ok(())
    }

    pub fn remove_member(&mut self, username: &str, group: &str) -> Result<(), ConfError> {
        let key = self.key_of(username)?;
        self.group_mut(group)?.remove(&key);
        Ok(())
    }

    /// Record a long task (finished at once) and give its id.
    pub fn add_task(&mut self, name: &str) -> String {
        let id = format!(
            "{:08x}-0000-4000-8000-{:012x}",
            self.tasks.len() + 1,
            self.next
        );
        self.tasks.insert(id.clone(), name.to_string());
        id
    }

    pub fn task(&self, id: &str) -> Option<&str> {
        self.tasks.get(id).map(String::as_str)
    }

    /// The groups of a user, sorted.
    pub fn groups_of(&self, key: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, m)| m.contains(key))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn usernames_and_groups_are_case_insensitive_and_lower_cased() {
        let mut d = Directory::new("admin");
        let u = d.create_user("Ann", "Ann Lee", "ann@example.com").unwrap();
        assert_eq!(u.username, "ann");
        assert_eq!(d.create_user("ANN", "x", "").unwrap_err().status, 400);
        assert_eq!(d.create_group("Staff").unwrap(), "staff");
        assert_eq!(d.create_group("STAFF").unwrap_err().status, 409);
        d.add_member("ANN", "Staff").unwrap();
        d.add_member("ann", "staff").unwrap();
        assert_eq!(d.groups_of(&u.key), vec!["confluence-users", "staff"]);
        d.delete_user("Ann").unwrap();
        assert!(d.members("staff").unwrap().is_empty());
        assert_eq!(d.add_member("ann", "staff").unwrap_err().status, 404);
        assert!(Version(8, 4, 0).has_admin_users() && !Version(8, 3, 9).has_admin_users());
        assert!(Version(8, 9, 0).has_json_rpc() && !Version(9, 0, 0).has_json_rpc());
    }

    #[test]
    fn the_admin_update_changes_the_full_name_and_email_and_checks_them() {
        let mut d = Directory::new("admin");
        d.create_user("ann", "Ann Lee", "ann@example.com").unwrap();
        d.update_user("ANN", Some("Ann Other"), None).unwrap();
        assert_eq!(d.by_name("ann").unwrap().display_name, "Ann Other");
        assert_eq!(d.by_name("ann").unwrap().email, "ann@example.com");
        d.update_user("ann", None, Some("a@example.org")).unwrap();
        assert_eq!(d.by_name("ann").unwrap().email, "a@example.org");
        assert_eq!(
            d.update_user("ann", Some(" "), None).unwrap_err().status,
            400
        );
        assert_eq!(
            d.update_user("ann", Some("<b>"), None).unwrap_err().status,
            400
        );
        assert_eq!(
            d.update_user("ann", None, Some("nope")).unwrap_err().status,
            400
        );
        assert_eq!(
            d.update_user("bob", Some("Bob"), None).unwrap_err().status,
            404
        );
        assert!(
            Version(9, 4, 0).has_admin_user_update() && !Version(9, 3, 1).has_admin_user_update()
        );
        assert!(
            Version(9, 3, 0).has_active_users_list() && !Version(9, 2, 3).has_active_users_list()
        );
        assert!(
            Version(10, 2, 0).active_users_show_email()
                && !Version(10, 1, 0).active_users_show_email()
        );
    }
}
