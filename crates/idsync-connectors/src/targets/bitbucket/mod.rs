//! Bitbucket Data Center's internal directory as a target, through its REST API
//! (`/rest/api/1.0/admin/...`).
//!
//! - Users are known by their numeric **id** (it survives renames); the admin calls take the
//!   username, looked up by id from a listing and remembered.
//! - Users are created with query parameters (`POST admin/users?name=...&notify=false`) and a
//!   random password nobody knows (Bitbucket demands one without `notify`; SSO signs users
//!   in). Display name and email are updated in place (`PUT admin/users`); a changed username
//!   is a rename (`POST admin/users/rename`).
//! - Groups are known by name; Bitbucket cannot rename them. New members go in one batch per
//!   group (`admin/groups/add-users`); a user's default groups in one call
//!   (`admin/users/add-groups`); removal is one call per member (`admin/groups/remove-user`,
//!   Bitbucket has no batch for it).
//! - Bitbucket has **no deactivation call**: disabling removes the groups that grant the
//!   licensed-user permission (`access.rs`) and records them in the user's settings, so that
//!   a returning user gets them back.
//! - Matching: one listing of the users (`start`/`limit` pages) per run, each candidate
//!   verified by username, then by email (decision 0025).

mod access;

use super::atlassian_dc::client::enc;
use super::atlassian_dc::{paging, ClientConfig, ClientError, DcClient, Failure};
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
    /// The user setting that records the groups a disable removed.
    pub record_key: String,
}

/// What one run knows of the users: usernames by id and ids by lower-cased username and email.
#[derive(Default)]
struct Index {
    listed: bool,
    name_of: HashMap<u64, String>,
    by_name: HashMap<String, u64>,
    by_email: HashMap<String, Vec<u64>>,
    /// Slugs (as Bitbucket made them) by lower-cased username.
    slug_of: HashMap<String, String>,
}

impl Index {
    fn insert(&mut self, v: &Value) {
        let (Some(id), Some(name)) = (
            v.get("id").and_then(Value::as_u64),
            v.get("name").and_then(Value::as_str),
        ) else {
            return;
        };
        self.remove(id);
        self.name_of.insert(id, name.to_string());
        self.by_name.insert(name.to_lowercase(), id);
        if let Some(slug) = v.get("slug").and_then(Value::as_str) {
            self.slug_of.insert(name.to_lowercase(), slug.to_string());
        }
        if let Some(e) = v
            .get("emailAddress")
            .and_then(Value::as_str)
            .filter(|e| !e.is_empty())
        {
            self.by_email.entry(e.to_lowercase()).or_default().push(id);
        }
    }
    fn remove(&mut self, id: u64) {
        if let Some(old) = self.name_of.remove(&id) {
            self.by_name.remove(&old.to_lowercase());
            self.slug_of.remove(&old.to_lowercase());
        }
        for ids in self.by_email.values_mut() {
            ids.retain(|i| *i != id);
        }
    }
}

pub struct BitbucketTarget {
    cfg: BitbucketTargetConfig,
    client: DcClient,
    access: OnceCell<(Vec<String>, &'static str)>,
    index: Mutex<Index>,
    /// Group names by lower-cased name, listed once per run (`None`: not listed yet).
    groups: Mutex<Option<HashMap<String, String>>>,
    /// Held while listing, so that requests in flight together list once.
    listing: tokio::sync::Mutex<()>,
}

fn bad(reason: String) -> Failure {
    Failure {
        status: None,
        reason,
        messages: Vec::new(),
        retry_after: None,
    }
}

fn id_of(target_id: &str) -> Result<u64, Failure> {
    target_id.parse().map_err(|_| Failure {
        status: Some(404),
        reason: format!("{target_id:?} is not a Bitbucket user id"),
        messages: Vec::new(),
        retry_after: None,
    })
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
            index: Mutex::new(Index::default()),
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

    /// Every user, read into the run's index (once per run, or again when `force`).
    async fn list_users(&self, force: bool) -> Result<Vec<Value>, Failure> {
        let listed = |s: &Self| s.index.lock().map(|i| i.listed).unwrap_or(false);
        if !force && listed(self) {
            return Ok(Vec::new());
        }
        let _listing = self.listing.lock().await;
        if !force && listed(self) {
            return Ok(Vec::new());
        }
        self.read_all_users().await
    }

    /// The listing itself (the caller holds `listing`).
    async fn read_all_users(&self) -> Result<Vec<Value>, Failure> {
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

    /// The username of the user with this id (listing the users when it is not known; requests
    /// in flight together list once).
    async fn username(&self, target_id: &str) -> Result<String, Failure> {
        let id = id_of(target_id)?;
        let known = |s: &Self| {
            s.index
                .lock()
                .ok()
                .and_then(|i| i.name_of.get(&id).cloned())
        };
        if let Some(n) = known(self) {
            return Ok(n);
        }
        let _listing = self.listing.lock().await;
        if let Some(n) = known(self) {
            return Ok(n);
        }
        self.read_all_users().await?;
        known(self).ok_or_else(|| Failure {
            status: Some(404),
            reason: format!("Bitbucket has no user with id {id}"),
            messages: Vec::new(),
            retry_after: None,
        })
    }

    /// The user named `name`, read from Bitbucket (into the index).
    async fn read_user(&self, name: &str) -> Result<Option<Value>, Failure> {
        let found = self
            .list(&format!("admin/users?filter={}", enc(name)))
            .await?;
        let v = found.into_iter().find(|v| {
            v.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        });
        if let (Some(v), Ok(mut i)) = (&v, self.index.lock()) {
            i.insert(v);
        }
        Ok(v)
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

    async fn create_user(&self, user: &User) -> Result<String, Failure> {
        let u = project(user.clone());
        let path = format!(
            "admin/users?name={}&displayName={}&emailAddress={}&password={}&addToDefaultGroup={}&notify=false",
            enc(&u.user_name),
            enc(&display_name_of(&u)),
            enc(u.primary_email().unwrap_or_default()),
            enc(&unusable_password()),
            self.cfg.add_to_default_group
        );
        self.call(Method::POST, &path, None).await?;
        // Bitbucket answers a create with 204 and no body: the id is read back.
        let v = self.read_user(&u.user_name).await?.ok_or_else(|| {
            bad(format!(
                "POST {API}/admin/users: user {:?} is not there after its create",
                u.user_name
            ))
        })?;
        let id = v.get("id").and_then(Value::as_u64).ok_or_else(|| {
            bad(format!(
                "GET {API}/admin/users: {:?} has no id",
                u.user_name
            ))
        })?;
        self.add_groups(&u.user_name, &self.cfg.default_groups)
            .await?;
        if !u.active {
            access::set(self, &u.user_name, false).await?;
        }
        Ok(id.to_string())
    }

    async fn update_user(
        &self,
        target_id: &str,
        before: &User,
        after: &User,
    ) -> Result<(), Failure> {
        let b = project(before.clone());
        let a = project(after.clone());
        let mut name = self.username(target_id).await?;
        if a.user_name != name {
            let v = self
                .call(
                    Method::POST,
                    "admin/users/rename",
                    Some(&json!({"name": name, "newName": a.user_name})),
                )
                .await?;
            if let Ok(mut i) = self.index.lock() {
                i.insert(&v);
            }
            name = a.user_name.clone();
        }
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
            if let Ok(mut i) = self.index.lock() {
                i.insert(&v);
            }
        }
        if a.active != b.active {
            access::set(self, &name, a.active).await?;
        }
        Ok(())
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

    async fn add_members(&self, group: &str, user_ids: &[String]) -> Result<(), Failure> {
        let mut names = Vec::with_capacity(user_ids.len());
        for id in user_ids {
            names.push(self.username(id).await?);
        }
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

    async fn remove_members(&self, group: &str, user_ids: &[String]) -> Result<(), Failure> {
        for id in user_ids {
            let name = match self.username(id).await {
                Ok(n) => n,
                // A user gone from Bitbucket is in no group.
                Err(f) if f.status == Some(404) => continue,
                Err(f) => return Err(f),
            };
            self.remove_group(&name, group).await?;
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
        self.list_users(false).await.map_err(|f| f.target_error())?;
        let Ok(i) = self.index.lock() else {
            return Ok(None);
        };
        if let Some(id) = i.by_name.get(&user.user_name.to_lowercase()) {
            return Ok(Some(Match {
                target_id: id.to_string(),
                by: Some(format!("userName {}", json!(user.user_name))),
            }));
        }
        let Some(email) = user.primary_email().filter(|e| !e.is_empty()) else {
            return Ok(None);
        };
        match i.by_email.get(&email.to_lowercase()).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([id]) => Ok(Some(Match {
                target_id: id.to_string(),
                by: Some(format!("email {}", json!(email))),
            })),
            Some(many) => Err(TargetError::Ambiguous {
                object: format!("user {}", user.user_name),
                candidates: many
                    .iter()
                    .map(|id| {
                        format!(
                            "{} ({id})",
                            i.name_of.get(id).map(String::as_str).unwrap_or("?")
                        )
                    })
                    .collect(),
            }),
        }
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
            TargetOp::CreateUser { user } => match self.create_user(user).await {
                Ok(id) => Outcome::Applied {
                    target_id: Some(id),
                },
                Err(f) => f.outcome(),
            },
            TargetOp::UpdateUser {
                target_id,
                before,
                after,
            } => done(self.update_user(target_id, before, after).await),
            TargetOp::DeleteUser { target_id } => {
                let r = match self.username(target_id).await {
                    Ok(name) => self
                        .call(
                            Method::DELETE,
                            &format!("admin/users?name={}", enc(&name)),
                            None,
                        )
                        .await
                        .map(|_| ()),
                    Err(f) => Err(f),
                };
                if r.is_ok() {
                    if let (Ok(id), Ok(mut i)) = (target_id.parse::<u64>(), self.index.lock()) {
                        i.remove(id);
                    }
                }
                done(r)
            }
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
            } => {
                if after.display_name.eq_ignore_ascii_case(target_id) {
                    Outcome::Applied { target_id: None }
                } else {
                    Outcome::Rejected {
                        reason: format!(
                            "Bitbucket cannot rename groups: {target_id:?} stays as it is ({:?} asked)",
                            after.display_name
                        ),
                    }
                }
            }
            TargetOp::DeleteGroup { target_id } => {
                let path = format!("admin/groups?name={}", enc(target_id));
                let r = self.call(Method::DELETE, &path, None).await.map(|_| ());
                if r.is_ok() {
                    self.note_group(target_id, false);
                }
                done(r)
            }
            // Bitbucket's internal directory gets nested groups flattened, as every pushed
            // target.
            TargetOp::AddChildGroups { .. } | TargetOp::RemoveChildGroups { .. } => {
                Outcome::Rejected {
                    reason: "a Bitbucket target takes no nested groups (memberships are flattened)"
                        .into(),
                }
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
        let users = self.list_users(true).await.map_err(|f| f.target_error())?;
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
        let mut with_access: HashSet<u64> = HashSet::new();
        let access = access::groups(self)
            .await
            .map_err(|f| f.target_error())?
            .0
            .clone();
        for g in groups {
            let (name, members) = g.map_err(|f| f.target_error())?;
            let ids: Vec<u64> = members
                .iter()
                .filter_map(|m| m.get("id").and_then(Value::as_u64))
                .collect();
            if access.iter().any(|a| a.eq_ignore_ascii_case(&name)) {
                with_access.extend(ids.iter().copied());
            }
            snapshot.groups.push(RemoteGroup {
                target_id: name.clone(),
                group: Group::new("", name),
                members: ids.iter().map(u64::to_string).collect(),
            });
        }
        // Only a user without access can have been disabled by idsync: only those have their
        // record read.
        let with_access = &with_access;
        let records: Vec<Result<(Value, bool), Failure>> = stream::iter(users)
            .map(|v| async move {
                let id = v.get("id").and_then(Value::as_u64).unwrap_or_default();
                if with_access.contains(&id) {
                    return Ok((v, false));
                }
                let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
                let disabled = access::recorded(self, name).await?.is_some();
                Ok((v, disabled))
            })
            .buffered(8)
            .collect()
            .await;
        for r in records {
            let (v, disabled) = r.map_err(|f| f.target_error())?;
            let Some(id) = v.get("id").and_then(Value::as_u64) else {
                continue;
            };
            if let Some(user) = from_bitbucket(&v, disabled) {
                snapshot.users.push(RemoteUser {
                    target_id: id.to_string(),
                    user,
                });
            }
        }
        Ok(snapshot)
    }

    async fn disable_note(&self) -> Result<Option<String>, TargetError> {
        let (groups, from) = access::groups(self).await.map_err(|f| f.target_error())?;
        Ok(Some(format!(
            "Bitbucket has no deactivation call: disabling removes the user's access groups ({}; {from}), recorded in the user's setting {:?} so that a returning user gets them back; the account itself stays active",
            if groups.is_empty() { "none found".to_string() } else { groups.join(", ") },
            self.cfg.record_key
        )))
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
