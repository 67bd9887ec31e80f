//! Bitbucket Data Center's internal directory as a target, through its REST API
//! (`/rest/api/1.0/admin/...`).
//!
//! - Users are known by their **username** (`name`), which every admin resource takes: no
//!   request is spent looking a user up (`users.rs`). A rename (`POST admin/users/rename`)
//!   changes the id, and the update answers the new one for the ledger. Ledgers of the
//!   version that kept Bitbucket's numeric ids are translated once (`translate_user_ids`).
//! - Users are created with query parameters (`POST admin/users?name=...&notify=false`) and a
//!   random password nobody knows (Bitbucket demands one without `notify`; SSO signs users
//!   in): one request, answered 204 with no body. Display name and email are updated in
//!   place (`PUT admin/users`).
//! - Groups are known by name; Bitbucket cannot rename them. New members go in one batch per
//!   group (`admin/groups/add-users`); a user's default groups in one call
//!   (`admin/users/add-groups`); removal is one call per member (`admin/groups/remove-user`,
//!   Bitbucket has no batch for it).
//! - Bitbucket has **no deactivation call**: disabling removes the groups that grant the
//!   licensed-user permission and records them as memberships of idsync's record groups
//!   (`access.rs`), so that a returning user gets them back.
//! - Matching: one listing of the users (`start`/`limit` pages) per run, each candidate
//!   verified by username, then by email (decision 0025).

mod access;
mod users;

use super::atlassian_dc::client::enc;
use super::atlassian_dc::{
    group_update, no_nested_groups, paging, ClientConfig, ClientError, DcClient, Failure,
};
use super::jira::users::display_name_of;
use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use idsync_core::{
    Email, Group, Match, Outcome, RemoteGroup, RemoteUser, Target, TargetError, TargetOp,
    TargetSnapshot, User,
};
use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use tokio::sync::OnceCell;

const API: &str = "/rest/api/1.0";
/// Users and groups per page of a listing (Bitbucket caps pages at its `page.max.*` settings;
/// the paging reads on with `nextPageStart`).
const PAGE: usize = 1000;
/// Usernames per `add-users` request.
const BATCH: usize = 500;
/// The form of the user ids this version keeps in the ledger: the username.
const USER_ID_FORM: &str = "bitbucket-username";

#[derive(Debug, Clone)]
pub struct BitbucketTargetConfig {
    pub client: ClientConfig,
    /// Let Bitbucket add each new user to its configured default group (`addToDefaultGroup`).
    pub add_to_default_group: bool,
    /// Groups every user idsync creates joins (one `add-groups` call).
    pub default_groups: Vec<String>,
    /// The groups that grant access (removed by `disable`); empty: the groups holding
    /// `LICENSED_USER` or more in the global permissions.
    pub access_groups: Vec<String>,
    /// Prefix of the groups that record what a disable removed (`<prefix><access group>`).
    pub record_prefix: String,
}

impl BitbucketTargetConfig {
    pub const DEFAULT_RECORD_PREFIX: &'static str = "idsync-access-removed-";
}

pub struct BitbucketTarget {
    cfg: BitbucketTargetConfig,
    client: DcClient,
    access: OnceCell<(Vec<String>, &'static str)>,
    index: Mutex<users::Index>,
    /// Group names by lower-cased name, listed once per run (`None`: not listed yet).
    groups: Mutex<Option<HashMap<String, String>>>,
    /// Held while listing, so that requests in flight together list once.
    listing: tokio::sync::Mutex<()>,
}

/// A password nobody knows: Bitbucket demands one when it sends no invitation.
fn unusable_password() -> String {
    let mut rng = rand::thread_rng();
    (0..40)
        .map(|_| {
            let n = rng.gen_range(0..62u8);
            char::from(match n {
                0..=9 => b'0' + n,
                10..=35 => b'a' + n - 10,
                _ => b'A' + n - 36,
            })
        })
        .collect()
}

/// A Bitbucket user (`DetailedUser` JSON) as idsync's model.
pub fn from_bitbucket(v: &Value, disabled: bool) -> Option<User> {
    let name = v.get("name").and_then(Value::as_str)?;
    let mut u = User::new("", name);
    u.display_name = v
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_string);
    u.emails = v
        .get("emailAddress")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .map(|e| Email {
            value: e.to_string(),
            kind: None,
            primary: true,
            display: None,
        })
        .into_iter()
        .collect();
    u.active = v.get("active").and_then(Value::as_bool).unwrap_or(true) && !disabled;
    Some(u)
}

/// The user as Bitbucket can hold it: username, display name (required), one email, active.
pub fn project(u: User) -> User {
    let email = u.primary_email().map(|e| Email {
        value: e.to_string(),
        kind: None,
        primary: true,
        display: None,
    });
    User {
        id: u.id.clone(),
        source_id: u.source_id.clone(),
        user_name: u.user_name.clone(),
        display_name: Some(display_name_of(&u)),
        emails: email.into_iter().collect(),
        active: u.active,
        ..User::new("", "")
    }
}

impl BitbucketTarget {
    pub fn new(cfg: BitbucketTargetConfig) -> Result<Self, ClientError> {
        Ok(BitbucketTarget {
            client: DcClient::new(cfg.client.clone())?,
            cfg,
            access: OnceCell::new(),
            index: Mutex::new(users::Index::default()),
            groups: Mutex::new(None),
            listing: tokio::sync::Mutex::new(()),
        })
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.client.requests()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        self.client
            .call(method, &format!("{API}/{path}"), body)
            .await
    }

    async fn list(&self, path: &str) -> Result<Vec<Value>, Failure> {
        paging::start_limit(&self.client, &format!("{API}/{path}"), PAGE).await
    }

    async fn add_groups(&self, name: &str, groups: &[String]) -> Result<(), Failure> {
        if groups.is_empty() {
            return Ok(());
        }
        self.call(
            Method::POST,
            "admin/users/add-groups",
            Some(&json!({"user": name, "groups": groups})),
        )
        .await
        .map(|_| ())
    }

    async fn remove_group(&self, name: &str, group: &str) -> Result<(), Failure> {
        self.call(
            Method::POST,
            "admin/groups/remove-user",
            Some(&json!({"context": group, "itemName": name})),
        )
        .await
        .map(|_| ())
    }

    /// Group names by lower-cased name (listed once per run).
    async fn group_names(&self) -> Result<HashMap<String, String>, Failure> {
        let known = |s: &Self| s.groups.lock().ok().and_then(|g| g.clone());
        if let Some(g) = known(self) {
            return Ok(g);
        }
        let _listing = self.listing.lock().await;
        if let Some(g) = known(self) {
            return Ok(g);
        }
        let all: HashMap<String, String> = self
            .list("admin/groups")
            .await?
            .iter()
            .filter_map(|g| g.get("name").and_then(Value::as_str))
            .map(|n| (n.to_lowercase(), n.to_string()))
            .collect();
        if let Ok(mut g) = self.groups.lock() {
            *g = Some(all.clone());
        }
        Ok(all)
    }

    fn note_group(&self, name: &str, present: bool) {
        if let Ok(mut g) = self.groups.lock() {
            if let Some(m) = g.as_mut() {
                if present {
                    m.insert(name.to_lowercase(), name.to_string());
                } else {
                    m.remove(&name.to_lowercase());
                }
            }
        }
    }

    async fn add_members(&self, group: &str, names: &[String]) -> Result<(), Failure> {
        for chunk in names.chunks(BATCH) {
            self.call(
                Method::POST,
                "admin/groups/add-users",
                Some(&json!({"group": group, "users": chunk})),
            )
            .await?;
        }
        Ok(())
    }

    async fn remove_members(&self, group: &str, names: &[String]) -> Result<(), Failure> {
        for name in names {
            match self.remove_group(name, group).await {
                // A user gone from Bitbucket (or a group gone) holds no such membership.
                Err(f) if f.status == Some(404) => {}
                other => other?,
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Target for BitbucketTarget {
    fn describe(&self) -> String {
        format!("Bitbucket Data Center at {}", self.client.base_url())
    }

    async fn health(&self) -> Result<(), TargetError> {
        self.call(Method::GET, "admin/users?limit=1", None)
            .await
            .map(|_| ())
            .map_err(|f| f.target_error())
    }

    async fn find_user(&self, user: &User) -> Result<Option<String>, TargetError> {
        Ok(self.find_user_match(user).await?.map(|m| m.target_id))
    }

    async fn find_user_match(&self, user: &User) -> Result<Option<Match>, TargetError> {
        self.find_match(user).await
    }

    async fn find_group(&self, group: &Group) -> Result<Option<String>, TargetError> {
        let names = self.group_names().await.map_err(|f| f.target_error())?;
        Ok(names.get(&group.display_name.to_lowercase()).cloned())
    }

    async fn apply(&self, op: &TargetOp) -> Outcome {
        let done = |r: Result<(), Failure>| match r {
            Ok(()) => Outcome::Applied { target_id: None },
            Err(f) => f.outcome(),
        };
        match op {
            TargetOp::CreateUser { user } => match self.create_user(&project(user.clone())).await {
                Ok(id) => Outcome::Applied {
                    target_id: Some(id),
                },
                Err(f) => f.outcome(),
            },
            TargetOp::UpdateUser {
                target_id,
                before,
                after,
            } => match self.update_user(target_id, before, after).await {
                // A rename moves the user to its new username (the ledger keeps it).
                Ok(id) => Outcome::Applied { target_id: id },
                Err(f) => f.outcome(),
            },
            TargetOp::DeleteUser { target_id } => done(self.delete_user(target_id).await),
            TargetOp::CreateGroup { group, members } => {
                let path = format!("admin/groups?name={}", enc(&group.display_name));
                let name = match self.call(Method::POST, &path, None).await {
                    Ok(v) => v
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or(&group.display_name)
                        .to_string(),
                    Err(f) => return f.outcome(),
                };
                self.note_group(&name, true);
                // First members (the engine sends none: `members_in_create` is false and they
                // come as an `AddMembers` batch): one add-users request after the create. When
                // it fails the create is reported failed; the next run finds the group by name.
                if let Err(f) = self.add_members(&name, members).await {
                    return Outcome::Rejected {
                        reason: format!(
                            "group {name:?} was created but its first members were not added: {}",
                            f.reason
                        ),
                    };
                }
                Outcome::Applied {
                    target_id: Some(name),
                }
            }
            TargetOp::UpdateGroup {
                target_id, after, ..
            } => group_update("Bitbucket", target_id, &after.display_name),
            TargetOp::DeleteGroup { target_id } => {
                let path = format!("admin/groups?name={}", enc(target_id));
                let r = self.call(Method::DELETE, &path, None).await.map(|_| ());
                if r.is_ok() {
                    self.note_group(target_id, false);
                }
                done(r)
            }
            TargetOp::AddChildGroups { .. } | TargetOp::RemoveChildGroups { .. } => {
                no_nested_groups("Bitbucket")
            }
            TargetOp::AddMembers { group_id, user_ids } => {
                done(self.add_members(group_id, user_ids).await)
            }
            TargetOp::RemoveMembers { group_id, user_ids } => {
                done(self.remove_members(group_id, user_ids).await)
            }
        }
    }

    async fn read_state(&self) -> Result<TargetSnapshot, TargetError> {
        let users = {
            let _listing = self.listing.lock().await;
            self.read_all_users().await.map_err(|f| f.target_error())?
        };
        let names: Vec<String> = self
            .list("admin/groups")
            .await
            .map_err(|f| f.target_error())?
            .iter()
            .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let groups: Vec<Result<(String, Vec<Value>), Failure>> = stream::iter(names)
            .map(|name| async move {
                let members = self
                    .list(&format!("admin/groups/more-members?context={}", enc(&name)))
                    .await?;
                Ok((name, members))
            })
            .buffered(8)
            .collect()
            .await;
        let mut snapshot = TargetSnapshot::default();
        // Members of a record group (lower-cased usernames): disabled by idsync.
        let mut recorded: HashSet<String> = HashSet::new();
        for g in groups {
            let (name, members) = g.map_err(|f| f.target_error())?;
            let members: Vec<String> = members
                .iter()
                .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_string))
                .collect();
            if self.recorded_access(&name).is_some() {
                // idsync's own record, not a group of the source's.
                recorded.extend(members.iter().map(|m| m.to_lowercase()));
                continue;
            }
            snapshot.groups.push(RemoteGroup {
                target_id: name.clone(),
                group: Group::new("", name),
                members,
            });
        }
        for v in &users {
            let Some(name) = v.get("name").and_then(Value::as_str) else {
                continue;
            };
            if let Some(user) = from_bitbucket(v, recorded.contains(&name.to_lowercase())) {
                snapshot.users.push(RemoteUser {
                    target_id: name.to_string(),
                    user,
                });
            }
        }
        Ok(snapshot)
    }

    async fn disable_note(&self) -> Result<Option<String>, TargetError> {
        let (groups, from) = access::groups(self).await.map_err(|f| f.target_error())?;
        Ok(Some(format!(
            "Bitbucket has no deactivation call: disabling removes the user's access groups ({}; {from}), recorded as memberships of idsync's groups \"{}<group>\" so that a returning user gets them back; the account itself stays active",
            if groups.is_empty() { "none found".to_string() } else { groups.join(", ") },
            self.cfg.record_prefix
        )))
    }

    fn user_id_form(&self) -> Option<&'static str> {
        Some(USER_ID_FORM)
    }

    async fn translate_user_ids(
        &self,
        from: Option<&str>,
        ids: &[String],
    ) -> Result<HashMap<String, String>, TargetError> {
        match from {
            // Before forms were recorded: the numeric user ids of the earlier version.
            None => self
                .usernames_of_ids(ids)
                .await
                .map_err(|f| f.target_error()),
            Some(USER_ID_FORM) => Ok(HashMap::new()),
            Some(other) => Err(TargetError::Protocol(format!(
                "the ledger's Bitbucket user ids are in a form this version does not know ({other:?})"
            ))),
        }
    }

    fn project_user(&self, user: User) -> User {
        project(user)
    }

    fn project_observed_user(&self, user: User) -> User {
        project(user)
    }

    fn project_group(&self, group: Group) -> Group {
        Group {
            description: None,
            external_id: None,
            ..group
        }
    }

    fn can_rename_groups(&self) -> bool {
        false
    }

    fn end_run(&self) {
        if let Ok(mut i) = self.index.lock() {
            i.listed = false;
        }
        if let Ok(mut g) = self.groups.lock() {
            *g = None;
        }
    }
}
