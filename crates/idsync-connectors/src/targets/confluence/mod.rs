//! Confluence Data Center's internal directory as a target, through its REST API (`/rest/api`)
//! and, where the REST API lacks a call, the JSON-RPC remote API of versions before 9.0
//! (decision 0036).
//!
//! - Users are known by their **user key** (it survives renames); requests that need the
//!   username (memberships, the admin user API) look it up by key once and remember it.
//!   Usernames are case-insensitive and kept in lower case.
//! - Creating: 8.4 and later `POST /rest/api/admin/user`; before, JSON-RPC `addUser`. Both
//!   demand a password: a random one nobody knows (SSO signs the user in).
//! - Display name and email: JSON-RPC `editUser` before 9.0; from 9.0 the admin user API's
//!   *Update user* where the version has it (found by trying it once a run), else such a change
//!   is refused with that reason (`profile.rs`). The email address is read with JSON-RPC
//!   `getUser` (before 9.0), or from the list of active users where it shows them; a user's
//!   email Confluence cannot show is not compared.
//! - Renaming a user: no call in any version; refused with that reason.
//! - Groups are known by their (lower-case) name; Confluence cannot rename them.
//! - Disabling: 8.4 and later `PUT /rest/api/admin/user/{username}/disable` (read back);
//!   before 8.4, or with `deactivation = "groups"`, the user leaves the access groups, which are
//!   recorded first and given back on return (`access.rs`).
//! - Reading every user: `GET /rest/api/user/list` (8.4 and later); before, the CQL user
//!   search (`listing.rs`).
//! - Matching: `GET /rest/api/user?username=` (verified); Confluence's REST API cannot look a
//!   user up by email, so a match by email is not made (the plan creates, and a duplicate
//!   username is refused by Confluence itself).

mod access;
mod listing;
mod profile;
pub mod users;

use super::atlassian_dc::client::enc;
use super::atlassian_dc::{
    group_update, next_link, no_nested_groups, ClientConfig, ClientError, DcClient, Failure,
};
use access::enc_path;
use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use idsync_core::{
    Group, Match, Outcome, RemoteGroup, RemoteUser, Target, TargetError, TargetOp, TargetSnapshot,
    User,
};
use profile::{EmailView, UpdateCall};
use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::OnceCell;

/// How a user is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deactivation {
    /// The admin user API's `disable` where the version has it (8.4 and later), else `Groups`.
    #[default]
    Auto,
    /// Always the admin user API (refused where the version lacks it).
    Disable,
    /// Remove the access groups and record them.
    Groups,
}

#[derive(Debug, Clone)]
pub struct ConfluenceTargetConfig {
    pub client: ClientConfig,
    /// Groups every user idsync creates joins (Confluence adds its own default group too).
    pub default_groups: Vec<String>,
    pub deactivation: Deactivation,
    /// The groups that grant "Can use", removed to disable without the admin user API.
    pub access_groups: Vec<String>,
    /// The prefix of the groups that record removed access groups.
    pub record_prefix: String,
}

impl ConfluenceTargetConfig {
    pub const DEFAULT_ACCESS_GROUP: &'static str = "confluence-users";
    pub const DEFAULT_RECORD_PREFIX: &'static str = "idsync-access-removed-";
}

/// What the instance is, read once.
#[derive(Debug, Clone)]
struct Instance {
    version: (u32, u32, u32),
    version_text: String,
}

impl Instance {
    fn has_admin_users(&self) -> bool {
        self.version >= (8, 4, 0)
    }
    fn has_json_rpc(&self) -> bool {
        self.version < (9, 0, 0)
    }
}

const RPC: &str = "/rpc/json-rpc/confluenceservice-v2";

pub struct ConfluenceTarget {
    cfg: ConfluenceTargetConfig,
    client: DcClient,
    instance: OnceCell<Instance>,
    /// Usernames by user key, as last seen.
    names: Mutex<HashMap<String, String>>,
    /// Whether the version has the admin update of display name and email, once found this
    /// run; `probing` lets one request find out while the others wait.
    update_call: Mutex<Option<UpdateCall>>,
    probing: tokio::sync::Mutex<()>,
    /// Which users' emails the last read showed.
    emails: Mutex<EmailView>,
}

fn failure(reason: String) -> Failure {
    Failure {
        status: None,
        reason,
        messages: Vec::new(),
        retry_after: None,
    }
}

fn parse_version(text: &str) -> (u32, u32, u32) {
    let mut it = text
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

impl ConfluenceTarget {
    pub fn new(cfg: ConfluenceTargetConfig) -> Result<Self, ClientError> {
        Ok(ConfluenceTarget {
            client: DcClient::new(cfg.client.clone())?,
            cfg,
            instance: OnceCell::new(),
            names: Mutex::new(HashMap::new()),
            update_call: Mutex::new(None),
            probing: tokio::sync::Mutex::new(()),
            emails: Mutex::new(EmailView::NotRead),
        })
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.client.requests()
    }

    /// The version: `/rest/api/server-information` (9.1 and later), else the applinks
    /// manifest every version serves.
    async fn instance(&self) -> Result<&Instance, Failure> {
        self.instance
            .get_or_try_init(|| async {
                let v = match self
                    .client
                    .call(Method::GET, "/rest/api/server-information", None)
                    .await
                {
                    Ok(v) => v,
                    Err(f) if f.status == Some(404) => {
                        self.client
                            .call(Method::GET, "/rest/applinks/1.0/manifest", None)
                            .await?
                    }
                    Err(f) => return Err(f),
                };
                let text = v
                    .get("version")
                    .and_then(Value::as_str)
                    .ok_or_else(|| failure("Confluence did not say its version".into()))?
                    .to_string();
                Ok(Instance {
                    version: parse_version(&text),
                    version_text: text,
                })
            })
            .await
    }

    /// Whether disabling uses the admin user API (else the access groups).
    async fn uses_disable(&self) -> Result<bool, Failure> {
        let i = self.instance().await?;
        Ok(match self.cfg.deactivation {
            Deactivation::Disable => true,
            Deactivation::Groups => false,
            Deactivation::Auto => i.has_admin_users(),
        })
    }

    fn remember(&self, key: &str, name: &str) {
        if let Ok(mut m) = self.names.lock() {
            m.insert(key.to_string(), name.to_string());
        }
    }

    /// One JSON-RPC call; an `error` member (answered with HTTP 200) is a failure.
    async fn rpc(&self, method: &str, params: Value) -> Result<Value, Failure> {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let v = self.client.call(Method::POST, RPC, Some(&body)).await?;
        if let Some(e) = v.get("error") {
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message")
                .to_string();
            let lower = message.to_lowercase();
            let status = if lower.contains("no user") || lower.contains("not found") {
                404
            } else {
                400
            };
            return Err(Failure {
                status: Some(status),
                reason: format!("JSON-RPC {method}: {message}"),
                messages: vec![message],
                retry_after: None,
            });
        }
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    }

    /// The user's JSON by key, with its status.
    async fn get_user(&self, key: &str) -> Result<Value, Failure> {
        let path = format!("/rest/api/user?key={}&expand=status", enc(key));
        let v = self.client.call(Method::GET, &path, None).await?;
        if let Some(n) = v.get("username").and_then(Value::as_str) {
            self.remember(key, n);
        }
        Ok(v)
    }

    async fn username(&self, key: &str) -> Result<String, Failure> {
        if let Some(n) = self.names.lock().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(n);
        }
        let v = self.get_user(key).await?;
        v.get("username")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                failure(format!(
                    "GET /rest/api/user: the answer for key {key} has no username"
                ))
            })
    }

    async fn add_to_group(&self, group: &str, username: &str) -> Result<(), Failure> {
        let path = format!(
            "/rest/api/user/{}/group/{}",
            enc_path(username),
            enc_path(group)
        );
        self.client.call(Method::PUT, &path, None).await.map(|_| ())
    }

    async fn remove_from_group(&self, group: &str, username: &str) -> Result<(), Failure> {
        let path = format!(
            "/rest/api/user/{}/group/{}",
            enc_path(username),
            enc_path(group)
        );
        self.client
            .call(Method::DELETE, &path, None)
            .await
            .map(|_| ())
    }

    /// A password nobody knows, for the APIs that demand one.
    fn unusable_password() -> String {
        let tail: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        format!("Aa1!{tail}")
    }

    async fn create_user(&self, user: &User) -> Result<String, Failure> {
        let u = users::project(user.clone(), true);
        let display = u.display_name.clone().unwrap_or_default();
        let email = u.primary_email().unwrap_or_default().to_string();
        let instance = self.instance().await?;
        let key = if instance.has_admin_users() {
            let body = json!({
                "userName": u.user_name,
                "fullName": display,
                "email": email,
                "password": Self::unusable_password(),
                "notifyViaEmail": false,
            });
            let v = self
                .client
                .call(Method::POST, "/rest/api/admin/user", Some(&body))
                .await?;
            v.get("userKey").and_then(Value::as_str).map(str::to_string)
        } else {
            let remote = json!({"name": u.user_name, "fullname": display, "email": email});
            self.rpc("addUser", json!([remote, Self::unusable_password()]))
                .await?;
            let path = format!("/rest/api/user?username={}", enc(&u.user_name));
            let v = self.client.call(Method::GET, &path, None).await?;
            v.get("userKey").and_then(Value::as_str).map(str::to_string)
        };
        let key =
            key.ok_or_else(|| failure("Confluence did not give the new user's key".into()))?;
        self.remember(&key, &u.user_name);
        for g in &self.cfg.default_groups {
            self.add_to_group(g, &u.user_name).await?;
        }
        if !u.active {
            self.set_active(&u.user_name, false).await?;
        }
        Ok(key)
    }

    /// Disable or enable: the admin user API (read back), or the access groups.
    async fn set_active(&self, username: &str, active: bool) -> Result<(), Failure> {
        if !self.uses_disable().await? {
            return self.set_access(username, active).await;
        }
        let version = self.instance().await?.version_text.clone();
        let path = format!(
            "/rest/api/admin/user/{}/{}",
            enc_path(username),
            if active { "enable" } else { "disable" }
        );
        self.client
            .call(Method::PUT, &path, None)
            .await
            .map_err(|f| {
                if f.status == Some(404) && !f.says("user") {
                    Failure {
                        reason: format!("{} (Confluence {version} has no admin user API before 8.4; set deactivation = \"groups\")", f.reason),
                        ..f
                    }
                } else {
                    f
                }
            })?;
        let path = format!("/rest/api/user?username={}&expand=status", enc(username));
        let back = self.client.call(Method::GET, &path, None).await?;
        let want = if active { "Active" } else { "Deactivated" };
        if back.get("status").and_then(Value::as_str) != Some(want) {
            return Err(Failure {
                status: Some(400),
                reason: format!("PUT /rest/api/admin/user/{{username}}: Confluence {version} answered but {username} is not {want}"),
                messages: Vec::new(),
                retry_after: None,
            });
        }
        Ok(())
    }

    async fn delete_user(&self, key: &str) -> Result<(), Failure> {
        let name = self.username(key).await?;
        if !self.instance().await?.has_admin_users() {
            self.rpc("removeUser", json!([name])).await?;
            return Ok(());
        }
        let path = format!("/rest/api/admin/user/{}", enc_path(&name));
        let task = self.client.call(Method::DELETE, &path, None).await?;
        // The deletion is a long task: wait until Confluence says it finished.
        let Some(status) = task
            .get("links")
            .and_then(|l| l.get("status"))
            .and_then(Value::as_str)
        else {
            return Ok(());
        };
        let status = status.to_string();
        for attempt in 0..120u32 {
            let t = self.client.call(Method::GET, &status, None).await?;
            if t.get("finished").and_then(Value::as_bool) == Some(true) {
                if t.get("successful").and_then(Value::as_bool) == Some(false) {
                    return Err(Failure {
                        status: Some(500),
                        reason: format!(
                            "Confluence's long task removing {name} failed: {}",
                            t.get("messages").cloned().unwrap_or(Value::Null)
                        ),
                        messages: Vec::new(),
                        retry_after: None,
                    });
                }
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10) + 1))).await;
        }
        Err(failure(format!(
            "Confluence's long task removing {name} did not finish (see {status})"
        )))
    }
}

#[async_trait]
impl Target for ConfluenceTarget {
    fn describe(&self) -> String {
        format!("Confluence Data Center at {}", self.client.base_url())
    }

    async fn health(&self) -> Result<(), TargetError> {
        self.instance().await.map_err(|f| f.target_error())?;
        self.client
            .call(Method::GET, "/rest/api/user/current", None)
            .await
            .map_err(|f| f.target_error())?;
        Ok(())
    }

    async fn find_user(&self, user: &User) -> Result<Option<String>, TargetError> {
        Ok(self.find_user_match(user).await?.map(|m| m.target_id))
    }

    async fn find_user_match(&self, user: &User) -> Result<Option<Match>, TargetError> {
        if user.user_name.is_empty() {
            return Ok(None);
        }
        let path = format!("/rest/api/user?username={}", enc(&user.user_name));
        let v = match self.client.call(Method::GET, &path, None).await {
            Ok(v) => v,
            Err(f) if f.status == Some(404) => return Ok(None),
            Err(f) => return Err(f.target_error()),
        };
        // Verified: the answer is the user asked for (decision 0025).
        let name = v.get("username").and_then(Value::as_str);
        let key = v.get("userKey").and_then(Value::as_str);
        match (name, key) {
            (Some(n), Some(k)) if n.eq_ignore_ascii_case(&user.user_name) => {
                self.remember(k, n);
                Ok(Some(Match {
                    target_id: k.to_string(),
                    by: Some(format!("userName {}", json!(user.user_name))),
                }))
            }
            _ => Ok(None),
        }
    }

    async fn find_group(&self, group: &Group) -> Result<Option<String>, TargetError> {
        let path = format!("/rest/api/group/{}", enc_path(&group.display_name));
        match self.client.call(Method::GET, &path, None).await {
            Ok(v) => Ok(v.get("name").and_then(Value::as_str).map(str::to_string)),
            Err(f) if f.status == Some(404) => Ok(None),
            Err(f) => Err(f.target_error()),
        }
    }

    async fn apply(&self, op: &TargetOp) -> Outcome {
        let done = |r: Result<(), Failure>| match r {
            Ok(()) => Outcome::Applied { target_id: None },
            Err(f) => f.outcome(),
        };
        match op {
            TargetOp::CreateUser { user } => match self.create_user(user).await {
                Ok(key) => Outcome::Applied {
                    target_id: Some(key),
                },
                Err(f) => f.outcome(),
            },
            TargetOp::UpdateUser {
                target_id,
                before,
                after,
            } => match self.update_user(target_id, before, after).await {
                Ok(o) => o,
                Err(f) => f.outcome(),
            },
            TargetOp::DeleteUser { target_id } => done(self.delete_user(target_id).await),
            TargetOp::CreateGroup { group, members } => {
                let body = json!({"name": group.display_name, "type": "group"});
                let name = match self
                    .client
                    .call(Method::POST, "/rest/api/admin/group", Some(&body))
                    .await
                {
                    Ok(v) => v
                        .get("name")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| group.display_name.to_lowercase()),
                    Err(f) => return f.outcome(),
                };
                // Confluence creates a group empty: its first members are added right after.
                for key in members {
                    let r = match self.username(key).await {
                        Ok(user) => self.add_to_group(&name, &user).await,
                        Err(f) => Err(f),
                    };
                    if let Err(f) = r {
                        return f.outcome();
                    }
                }
                Outcome::Applied {
                    target_id: Some(name),
                }
            }
            TargetOp::UpdateGroup {
                target_id, after, ..
            } => group_update("Confluence", target_id, &after.display_name),
            TargetOp::DeleteGroup { target_id } => {
                let path = format!("/rest/api/admin/group/{}", enc_path(target_id));
                done(
                    self.client
                        .call(Method::DELETE, &path, None)
                        .await
                        .map(|_| ()),
                )
            }
            TargetOp::AddChildGroups { .. } | TargetOp::RemoveChildGroups { .. } => {
                no_nested_groups("Confluence")
            }
            TargetOp::AddMembers { group_id, user_ids } => {
                for key in user_ids {
                    let r = match self.username(key).await {
                        Ok(name) => self.add_to_group(group_id, &name).await,
                        Err(f) => Err(f),
                    };
                    if let Err(f) = r {
                        return f.outcome();
                    }
                }
                Outcome::Applied { target_id: None }
            }
            TargetOp::RemoveMembers { group_id, user_ids } => {
                for key in user_ids {
                    let r = match self.username(key).await {
                        Ok(name) => self.remove_from_group(group_id, &name).await,
                        // A user gone from Confluence is in no group.
                        Err(f) if f.status == Some(404) => Ok(()),
                        Err(f) => Err(f),
                    };
                    if let Err(f) = r {
                        return f.outcome();
                    }
                }
                Outcome::Applied { target_id: None }
            }
        }
    }

    async fn read_state(&self) -> Result<TargetSnapshot, TargetError> {
        let instance = self.instance().await.map_err(|f| f.target_error())?.clone();
        let groups: Vec<String> = next_link::read_all(&self.client, "/rest/api/group", 200)
            .await
            .map_err(|f| f.target_error())?
            .iter()
            .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let listed: Vec<Result<(String, Vec<Value>), Failure>> = stream::iter(groups)
            .map(|g| async move {
                let m = self.members(&g).await?;
                Ok((g, m))
            })
            .buffered(8)
            .collect()
            .await;
        let mut people: BTreeMap<String, Value> = BTreeMap::new();
        let mut recorded: BTreeSet<String> = BTreeSet::new();
        let mut snapshot = TargetSnapshot::default();
        for r in listed {
            let (g, members) = r.map_err(|f| f.target_error())?;
            let keys: Vec<String> = members
                .iter()
                .filter_map(|m| m.get("userKey").and_then(Value::as_str).map(str::to_string))
                .collect();
            for m in members {
                if let Some(k) = m.get("userKey").and_then(Value::as_str) {
                    people.entry(k.to_string()).or_insert(m.clone());
                }
            }
            if self.recorded_access(&g).is_some() {
                recorded.extend(keys);
                continue;
            }
            snapshot.groups.push(RemoteGroup {
                target_id: g.clone(),
                group: Group::new("", g),
                members: keys,
            });
        }
        if instance.has_admin_users() {
            // Every user, those in no group too (8.4 and later).
            for v in next_link::read_all(&self.client, "/rest/api/user/list?expand=status", 200)
                .await
                .map_err(|f| f.target_error())?
            {
                if let Some(k) = v.get("userKey").and_then(Value::as_str) {
                    people.insert(k.to_string(), v.clone());
                }
            }
        } else {
            // Before 8.4, the CQL user search finds those in no group.
            self.add_searched_users(&mut people)
                .await
                .map_err(|f| f.target_error())?;
        }
        let listed = if instance.has_json_rpc() {
            self.set_email_view(EmailView::All);
            HashMap::new()
        } else {
            self.listed_emails().await.map_err(|f| f.target_error())?
        };
        let listed = &listed;
        let with_email: Vec<Result<(String, Value, Option<String>), Failure>> =
            stream::iter(people)
                .map(|(k, v)| async move {
                    let name = v
                        .get("username")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let email = self.email_read(name, listed).await?;
                    Ok((k, v, email))
                })
                .buffered(8)
                .collect()
                .await;
        for r in with_email {
            let (key, v, email) = r.map_err(|f| f.target_error())?;
            if let Some(user) =
                users::from_confluence(&v, email.as_deref(), recorded.contains(&key))
            {
                self.remember(&key, &user.user_name);
                snapshot.users.push(RemoteUser {
                    target_id: key,
                    user,
                });
            }
        }
        Ok(snapshot)
    }

    async fn disable_note(&self) -> Result<Option<String>, TargetError> {
        let i = self.instance().await.map_err(|f| f.target_error())?;
        let version = i.version_text.clone();
        if self.uses_disable().await.map_err(|f| f.target_error())? {
            return Ok(Some(format!(
                "Confluence {version}: users are disabled with the admin user API (PUT /rest/api/admin/user/{{username}}/disable), read back after each"
            )));
        }
        let why = if self.cfg.deactivation == Deactivation::Groups {
            "deactivation = \"groups\""
        } else {
            "it has no deactivation call before 8.4"
        };
        Ok(Some(format!(
            "Confluence {version} ({why}): disabling removes the user's access groups ({}), recorded in the groups {}<group> so that a returning user gets them back; the account itself stays active",
            self.cfg.access_groups.join(", "),
            self.cfg.record_prefix
        )))
    }

    fn project_user(&self, user: User) -> User {
        // The email is compared but where the last read could not show it (`profile.rs`).
        let email = self.email_shown(&user.user_name);
        users::project(user, email)
    }

    fn project_observed_user(&self, user: User) -> User {
        self.project_user(user)
    }

    fn project_group(&self, group: Group) -> Group {
        Group {
            description: None,
            external_id: None,
            display_name: group.display_name.to_lowercase(),
            ..group
        }
    }

    fn can_rename_groups(&self) -> bool {
        false
    }

    fn end_run(&self) {
        self.forget_run();
    }

    async fn known_keeps(&self) -> idsync_core::keeps::Known {
        // Confluence keeps every user's email, in every version: where a read cannot show it,
        // that user's email is left out of the comparison on both sides (`profile.rs`), not
        // taken for an attribute Confluence drops.
        let mut known = idsync_core::keeps::Known::default();
        for path in ["emails.value", "emails.primary"] {
            known.users.answers.insert(path.to_string(), true);
        }
        known
    }
}
