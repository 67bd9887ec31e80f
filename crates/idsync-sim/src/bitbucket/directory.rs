//! Bitbucket Data Center's internal directory as the simulator holds it: users (numeric id,
//! username, slug, display name, email), groups, memberships, global permissions of groups,
//! and each user's settings map. Usernames and group names are case-insensitive, as in
//! Bitbucket; they keep the case they were created with.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// An error as Bitbucket answers it: `{"errors": [{"context", "message", "exceptionName"}]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct BitbucketError {
    pub status: u16,
    pub context: Option<String>,
    pub message: String,
    pub exception: &'static str,
}

impl BitbucketError {
    pub fn new(status: u16, exception: &'static str, message: impl Into<String>) -> Self {
        BitbucketError {
            status,
            context: None,
            message: message.into(),
            exception,
        }
    }
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        BitbucketError {
            status: 400,
            context: Some(field.to_string()),
            message: message.into(),
            exception: "com.atlassian.bitbucket.validation.ArgumentValidationException",
        }
    }
    pub fn no_user(name: &str) -> Self {
        Self::new(
            404,
            "com.atlassian.bitbucket.user.NoSuchUserException",
            format!("User {name} does not exist."),
        )
    }
    pub fn no_group(name: &str) -> Self {
        Self::new(
            404,
            "com.atlassian.bitbucket.user.NoSuchGroupException",
            format!("Group {name} does not exist."),
        )
    }
    pub fn body(&self) -> Value {
        json!({"errors": [{
            "context": self.context,
            "message": self.message,
            "exceptionName": self.exception,
        }]})
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BbUser {
    pub id: u64,
    pub name: String,
    pub display_name: String,
    pub email: String,
    pub active: bool,
    pub settings: BTreeMap<String, Value>,
}

impl BbUser {
    pub fn slug(&self) -> String {
        slug(&self.name)
    }
    /// `DetailedUser`, as the admin resources answer it.
    pub fn json(&self, root: &str) -> Value {
        json!({
            "name": self.name,
            "emailAddress": self.email,
            "id": self.id,
            "displayName": self.display_name,
            "active": self.active,
            "slug": self.slug(),
            "type": "NORMAL",
            "directoryName": "Bitbucket Internal Directory",
            "deletable": true,
            "mutableDetails": true,
            "mutableGroups": true,
            "links": {"self": [{"href": format!("{root}/users/{}", self.slug())}]},
        })
    }
}

/// The slug Bitbucket gives an internal user: the lower-cased name, characters a path cannot
/// hold replaced.
pub fn slug(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct BbGroup {
    pub name: String,
    pub members: BTreeSet<u64>,
}

#[derive(Debug, Clone)]
pub struct Directory {
    next_id: u64,
    pub users: BTreeMap<u64, BbUser>,
    /// Ids by lower-cased username (the order listings follow).
    names: BTreeMap<String, u64>,
    /// Each user's username, display name and email, lower-cased, for `filter`.
    search: BTreeMap<u64, String>,
    /// By lower-cased name.
    pub groups: BTreeMap<String, BbGroup>,
    /// Global permissions of groups, by lower-cased group name.
    pub group_permissions: BTreeMap<String, String>,
    /// The group `addToDefaultGroup` adds new users to.
    pub default_group: Option<String>,
}

impl Directory {
    /// A directory with its administrator and the default group `stash-users`, which holds
    /// `LICENSED_USER`.
    pub fn new(admin: &str) -> Self {
        let mut d = Directory {
            next_id: 1,
            users: BTreeMap::new(),
            names: BTreeMap::new(),
            search: BTreeMap::new(),
            groups: BTreeMap::new(),
            group_permissions: BTreeMap::new(),
            default_group: Some("stash-users".into()),
        };
        let _ = d.create_group("stash-users");
        d.group_permissions
            .insert("stash-users".into(), "LICENSED_USER".into());
        let _ = d.create_user(
            admin,
            "Administrator",
            &format!("{admin}@example.com"),
            false,
        );
        d
    }

    pub fn by_name(&self, name: &str) -> Option<u64> {
        self.names.get(&name.to_lowercase()).copied()
    }

    /// Every user, by username (any case).
    pub fn sorted_users(&self) -> impl Iterator<Item = &BbUser> {
        self.names.values().filter_map(|id| self.users.get(id))
    }

    /// The users whose username, display name or email contains `filter` (any case), by
    /// username.
    pub fn filtered_users(&self, filter: Option<&str>) -> Vec<&BbUser> {
        let f = filter.filter(|f| !f.is_empty()).map(str::to_lowercase);
        self.names
            .values()
            .filter(|id| match &f {
                None => true,
                Some(f) => self.search.get(id).is_some_and(|s| s.contains(f.as_str())),
            })
            .filter_map(|id| self.users.get(id))
            .collect()
    }

    fn index(&mut self, id: u64) {
        if let Some(u) = self.users.get(&id) {
            let s = format!("{}\n{}\n{}", u.name, u.display_name, u.email).to_lowercase();
            self.search.insert(id, s);
        }
    }

    pub fn by_slug(&self, s: &str) -> Option<u64> {
        let s = s.to_lowercase();
        self.users.values().find(|u| u.slug() == s).map(|u| u.id)
    }

    pub fn user_named(&self, name: &str) -> Result<&BbUser, BitbucketError> {
        self.by_name(name)
            .and_then(|id| self.users.get(&id))
            .ok_or_else(|| BitbucketError::no_user(name))
    }

    pub fn create_user(
        &mut self,
        name: &str,
        display_name: &str,
        email: &str,
        add_to_default: bool,
    ) -> Result<u64, BitbucketError> {
        if name.trim().is_empty() {
            return Err(BitbucketError::field("name", "Username is required."));
        }
        if display_name.trim().is_empty() {
            return Err(BitbucketError::field(
                "displayName",
                "Display name is required.",
            ));
        }
        if email.trim().is_empty() || !email.contains('@') {
            return Err(BitbucketError::field(
                "emailAddress",
                "A valid email address is required.",
            ));
        }
        if self.by_name(name).is_some() {
            return Err(BitbucketError::new(
                409,
                "com.atlassian.bitbucket.user.DuplicateUserException",
                format!("A user with the name {name} already exists."),
            ));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.names.insert(name.to_lowercase(), id);
        self.users.insert(
            id,
            BbUser {
                id,
                name: name.to_string(),
                display_name: display_name.to_string(),
                email: email.to_string(),
                active: true,
                settings: BTreeMap::new(),
            },
        );
        self.index(id);
        if add_to_default {
            if let Some(g) = self
                .default_group
                .as_ref()
                .and_then(|g| self.groups.get_mut(&g.to_lowercase()))
            {
                g.members.insert(id);
            }
        }
        Ok(id)
    }

    pub fn update_user(
        &mut self,
        name: &str,
        display_name: Option<&str>,
        email: Option<&str>,
    ) -> Result<u64, BitbucketError> {
        let id = self.user_named(name)?.id;
        if let Some(e) = email {
            if !e.contains('@') {
                return Err(BitbucketError::field(
                    "email",
                    "A valid email address is required.",
                ));
            }
        }
        if let Some(u) = self.users.get_mut(&id) {
            if let Some(d) = display_name.filter(|d| !d.trim().is_empty()) {
                u.display_name = d.to_string();
            }
            if let Some(e) = email {
                u.email = e.to_string();
            }
        }
        self.index(id);
        Ok(id)
    }

    pub fn rename_user(&mut self, name: &str, new_name: &str) -> Result<u64, BitbucketError> {
        let id = self.user_named(name)?.id;
        if new_name.trim().is_empty() {
            return Err(BitbucketError::field(
                "newName",
                "The new name is required.",
            ));
        }
        if self.by_name(new_name).is_some_and(|other| other != id) {
            return Err(BitbucketError::new(
                409,
                "com.atlassian.bitbucket.user.DuplicateUserException",
                format!("A user with the name {new_name} already exists."),
            ));
        }
        if let Some(u) = self.users.get_mut(&id) {
            self.names.remove(&u.name.to_lowercase());
            self.names.insert(new_name.to_lowercase(), id);
            u.name = new_name.to_string();
        }
        self.index(id);
        Ok(id)
    }

    pub fn delete_user(&mut self, name: &str) -> Result<BbUser, BitbucketError> {
        let id = self.user_named(name)?.id;
        for g in self.groups.values_mut() {
            g.members.remove(&id);
        }
        self.names.remove(&name.to_lowercase());
        self.search.remove(&id);
        self.users
            .remove(&id)
            .ok_or_else(|| BitbucketError::no_user(name))
    }

    pub fn group(&self, name: &str) -> Result<&BbGroup, BitbucketError> {
        self.groups
            .get(&name.to_lowercase())
            .ok_or_else(|| BitbucketError::no_group(name))
    }

    pub fn create_group(&mut self, name: &str) -> Result<(), BitbucketError> {
        if name.trim().is_empty() {
            return Err(BitbucketError::field("name", "Group name is required."));
        }
        let key = name.to_lowercase();
        if self.groups.contains_key(&key) {
            return Err(BitbucketError::new(
                409,
                "com.atlassian.bitbucket.user.DuplicateGroupException",
                format!("A group named {name} already exists."),
            ));
        }
        self.groups.insert(
            key,
            BbGroup {
                name: name.to_string(),
                members: BTreeSet::new(),
            },
        );
        Ok(())
    }

    pub fn delete_group(&mut self, name: &str) -> Result<BbGroup, BitbucketError> {
        let key = name.to_lowercase();
        self.group_permissions.remove(&key);
        self.groups
            .remove(&key)
            .ok_or_else(|| BitbucketError::no_group(name))
    }

    /// Add users to a group, all or none (an unknown user or group changes nothing).
    pub fn add_members(&mut self, group: &str, users: &[&str]) -> Result<(), BitbucketError> {
        let ids = users
            .iter()
            .map(|n| self.user_named(n).map(|u| u.id))
            .collect::<Result<Vec<u64>, _>>()?;
        let g = self
            .groups
            .get_mut(&group.to_lowercase())
            .ok_or_else(|| BitbucketError::no_group(group))?;
        g.members.extend(ids);
        Ok(())
    }

    pub fn remove_member(&mut self, group: &str, user: &str) -> Result<(), BitbucketError> {
        let id = self.user_named(user)?.id;
        let g = self
            .groups
            .get_mut(&group.to_lowercase())
            .ok_or_else(|| BitbucketError::no_group(group))?;
        g.members.remove(&id);
        Ok(())
    }

    /// The names of the groups the user is in.
    pub fn groups_of(&self, id: u64) -> Vec<String> {
        self.groups
            .values()
            .filter(|g| g.members.contains(&id))
            .map(|g| g.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_renames_keep_the_id() {
        let mut d = Directory::new("admin");
        let id = d
            .create_user("Ann", "Ann Lee", "ann@example.com", true)
            .unwrap();
        assert_eq!(d.by_name("ANN"), Some(id));
        assert_eq!(
            d.create_user("ann", "x", "x@example.com", false)
                .unwrap_err()
                .status,
            409
        );
        assert_eq!(d.groups_of(id), vec!["stash-users".to_string()]);
        assert_eq!(d.rename_user("ann", "ann.lee").unwrap(), id);
        assert_eq!(d.by_slug("ann.lee"), Some(id));
        d.create_group("devs").unwrap();
        assert!(d.add_members("devs", &["ann.lee", "ghost"]).is_err());
        assert!(!d.group("devs").unwrap().members.contains(&id));
    }
}
