//! Bitbucket users: known by their **username** (`name`), which is what every admin resource
//! takes; the run's listing (matching, translation of an earlier version's numeric ids);
//! create, update (a rename answers the new id) and delete.
//!
//! A user's slug (`users/{userSlug}`) is a URL-friendly variant of the name that Bitbucket
//! makes and keeps unique ("Retrieves the 'slug' for this user, which is a URL-friendly
//! variant of its name. Each user's slug is guaranteed to be unique within the system",
//! `ApplicationUser.getSlug`): it cannot be derived from the name, so idsync never addresses a
//! user by it and never takes it for the name (`Jane.Doe@Example.com` keeps its capitals and
//! its `@`; its slug is something else).

use super::{display_name_of, project, unusable_password, BitbucketTarget};
use crate::targets::atlassian_dc::client::enc;
use crate::targets::atlassian_dc::Failure;
use idsync_core::{Match, TargetError, User};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;

/// What one run knows of the users: usernames as Bitbucket spells them, by lower-cased
/// username and by lower-cased email.
#[derive(Default)]
pub(super) struct Index {
    pub(super) listed: bool,
    names: HashMap<String, String>,
    email_of: HashMap<String, String>,
    by_email: HashMap<String, Vec<String>>,
}

impl Index {
    pub(super) fn insert(&mut self, v: &Value) {
        let Some(name) = v.get("name").and_then(Value::as_str) else {
            return;
        };
        self.remove(name);
        let key = name.to_lowercase();
        self.names.insert(key.clone(), name.to_string());
        if let Some(e) = v
            .get("emailAddress")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
        {
            let e = e.to_lowercase();
            self.by_email
                .entry(e.clone())
                .or_default()
                .push(name.to_string());
            self.email_of.insert(key, e);
        }
    }
    pub(super) fn remove(&mut self, name: &str) {
        let key = name.to_lowercase();
        self.names.remove(&key);
        if let Some(e) = self.email_of.remove(&key) {
            if let Some(names) = self.by_email.get_mut(&e) {
                names.retain(|n| !n.eq_ignore_ascii_case(name));
                if names.is_empty() {
                    self.by_email.remove(&e);
                }
            }
        }
    }
}

impl BitbucketTarget {
    fn note_user(&self, v: &Value) {
        if let Ok(mut i) = self.index.lock() {
            i.insert(v);
        }
    }

    /// Every user, read into the run's index (once per run).
    pub(super) async fn list_users(&self) -> Result<(), Failure> {
        let listed = |s: &Self| s.index.lock().map(|i| i.listed).unwrap_or(false);
        if listed(self) {
            return Ok(());
        }
        let _listing = self.listing.lock().await;
        if listed(self) {
            return Ok(());
        }
        self.read_all_users().await.map(|_| ())
    }

    /// The listing itself, which also refreshes the index.
    pub(super) async fn read_all_users(&self) -> Result<Vec<Value>, Failure> {
        let all = self.list("admin/users").await?;
        if let Ok(mut i) = self.index.lock() {
            *i = Index::default();
            i.listed = true;
            for v in &all {
                i.insert(v);
            }
        }
        Ok(all)
    }

    pub(super) async fn find_match(&self, user: &User) -> Result<Option<Match>, TargetError> {
        self.list_users().await.map_err(|f| f.target_error())?;
        let Ok(i) = self.index.lock() else {
            return Ok(None);
        };
        if let Some(name) = i.names.get(&user.user_name.to_lowercase()) {
            return Ok(Some(Match {
                target_id: name.clone(),
                by: Some(format!("userName {}", json!(user.user_name))),
            }));
        }
        let Some(email) = user.primary_email().filter(|e| !e.is_empty()) else {
            return Ok(None);
        };
        match i.by_email.get(&email.to_lowercase()).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([name]) => Ok(Some(Match {
                target_id: name.clone(),
                by: Some(format!("email {}", json!(email))),
            })),
            Some(many) => Err(TargetError::Ambiguous {
                object: format!("user {}", user.user_name),
                candidates: many.to_vec(),
            }),
        }
    }

    /// Create: one request (Bitbucket answers 204 with no body; the username is the id), then
    /// the default groups (one request, when set) and, for a user created disabled, the access
    /// groups' record.
    pub(super) async fn create_user(&self, u: &User) -> Result<String, Failure> {
        let path = format!(
            "admin/users?name={}&displayName={}&emailAddress={}&password={}&addToDefaultGroup={}&notify=false",
            enc(&u.user_name),
            enc(&display_name_of(u)),
            enc(u.primary_email().unwrap_or_default()),
            enc(&unusable_password()),
            self.cfg.add_to_default_group
        );
        self.call(Method::POST, &path, None).await?;
        self.note_user(&json!({
            "name": u.user_name,
            "emailAddress": u.primary_email().unwrap_or_default(),
        }));
        self.add_groups(&u.user_name, &self.cfg.default_groups)
            .await?;
        if !u.active {
            self.set_access(&u.user_name, false).await?;
        }
        Ok(u.user_name.clone())
    }

    /// Update display name and email in place, the access groups for `active`, and last the
    /// username (`admin/users/rename`): a rename changes the id, answered for the ledger, and
    /// coming last it is never followed by a step that could fail and leave the ledger with
    /// the old name.
    pub(super) async fn update_user(
        &self,
        name: &str,
        before: &User,
        after: &User,
    ) -> Result<Option<String>, Failure> {
        let b = project(before.clone());
        let a = project(after.clone());
        if a.display_name != b.display_name || a.primary_email() != b.primary_email() {
            let v = self
                .call(
                    Method::PUT,
                    "admin/users",
                    Some(&json!({
                        "name": name,
                        "displayName": display_name_of(&a),
                        "email": a.primary_email().unwrap_or_default(),
                    })),
                )
                .await?;
            self.note_user(&v);
        }
        if a.active != b.active {
            self.set_access(name, a.active).await?;
        }
        if a.user_name == name {
            return Ok(None);
        }
        let v = self
            .call(
                Method::POST,
                "admin/users/rename",
                Some(&json!({"name": name, "newName": a.user_name})),
            )
            .await?;
        if let Ok(mut i) = self.index.lock() {
            i.remove(name);
            i.insert(&v);
        }
        let new = v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(&a.user_name)
            .to_string();
        Ok(Some(new))
    }

    pub(super) async fn delete_user(&self, name: &str) -> Result<(), Failure> {
        self.call(
            Method::DELETE,
            &format!("admin/users?name={}", enc(name)),
            None,
        )
        .await?;
        if let Ok(mut i) = self.index.lock() {
            i.remove(name);
        }
        Ok(())
    }

    /// The earlier version's target ids (Bitbucket's numeric user ids) as usernames, read from
    /// one listing. An id Bitbucket no longer has is left out (its user is gone).
    pub(super) async fn usernames_of_ids(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, String>, Failure> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let all = {
            let _listing = self.listing.lock().await;
            self.read_all_users().await?
        };
        let by_id: HashMap<u64, &str> = all
            .iter()
            .filter_map(|v| {
                Some((
                    v.get("id").and_then(Value::as_u64)?,
                    v.get("name").and_then(Value::as_str)?,
                ))
            })
            .collect();
        Ok(ids
            .iter()
            .filter_map(|id| {
                let name = by_id.get(&id.parse::<u64>().ok()?)?;
                Some((id.clone(), (*name).to_string()))
            })
            .collect())
    }
}
