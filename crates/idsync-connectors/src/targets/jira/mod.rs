//! Jira Data Center's internal directory as a target, through its REST API (`/rest/api/2`).
//!
//! - Users are known by their **user key** (it survives renames); requests that need the
//!   username (group membership) look it up by key once and remember it.
//! - Users are created without a password (Jira makes a random one; SSO signs them in).
//!   Display name and email are updated in place; a changed username is a rename
//!   (`PUT /user` with `name`).
//! - Attributes Jira has no field for go to a user property under `property_key` (`users.rs`).
//! - Groups are known by name; Jira cannot rename them.
//! - Disabling: Jira 8.3 and later take `"active": false` (read back to check it took);
//!   before 8.3, or with `deactivation = "groups"`, the user's application-access groups are
//!   removed and recorded in the property, and a returning user gets them back (`access.rs`).
//! - Deleting or deactivating a project or component lead: with `lead_fallback`, what it
//!   leads is handed over; without, Jira's refusal names what it leads (`leads.rs`).
//! - Matching: `user/search` by username, then by email; every candidate is verified against
//!   the attribute; two verified matches are a conflict (decision 0025). A run that creates
//!   many lists the users (and groups) once instead and matches against that (`listing.rs`,
//!   decision 0040).

mod access;
mod apply;
mod leads;
mod listing;
pub mod users;

use super::atlassian_dc::client::enc;
use super::atlassian_dc::{paging, ClientConfig, ClientError, DcClient, Failure};
use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use idsync_core::{
    Group, Match, Outcome, RemoteGroup, RemoteUser, Target, TargetError, TargetOp, TargetSnapshot,
    User,
};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::OnceCell;

/// How a user is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deactivation {
    /// `"active": false` where the version takes it (8.3 and later), else `Groups`.
    #[default]
    Auto,
    /// Always `"active": false` (refused when the version ignores it).
    Active,
    /// Remove the application-access groups and record them.
    Groups,
}

#[derive(Debug, Clone)]
pub struct JiraTargetConfig {
    pub client: ClientConfig,
    /// Groups every user idsync creates joins (and whose application roles' seats a new
    /// user takes).
    pub default_groups: Vec<String>,
    /// Whether a create adds the user to `default_groups` itself (false where the flow plans
    /// those memberships for every user: `default_groups_for = "all"`).
    pub default_groups_on_create: bool,
    /// Keep the attributes Jira has no field for in a user property.
    pub properties: bool,
    /// The user property's key.
    pub property_key: String,
    pub deactivation: Deactivation,
    /// The groups that grant application access (for `Groups` deactivation); empty: the
    /// groups of Jira's application roles.
    pub access_groups: Vec<String>,
    /// The user who takes over the projects and components a deleted user leads (`None`:
    /// a deletion Jira refuses for that reason fails, naming the projects).
    pub lead_fallback: Option<String>,
}

/// What the instance is, read once.
#[derive(Debug, Clone)]
struct Instance {
    version: (u32, u32, u32),
    version_text: String,
}

pub struct JiraTarget {
    cfg: JiraTargetConfig,
    client: DcClient,
    instance: OnceCell<Instance>,
    access: OnceCell<Vec<String>>,
    /// Usernames by user key, as last seen.
    names: Mutex<HashMap<String, String>>,
    /// What this run matches its creates against (`listing.rs`).
    run: listing::RunListing,
}

impl JiraTarget {
    pub fn new(cfg: JiraTargetConfig) -> Result<Self, ClientError> {
        Ok(JiraTarget {
            client: DcClient::new(cfg.client.clone())?,
            cfg,
            instance: OnceCell::new(),
            access: OnceCell::new(),
            names: Mutex::new(HashMap::new()),
            run: listing::RunListing::default(),
        })
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.client.requests()
    }

    async fn instance(&self) -> Result<&Instance, Failure> {
        self.instance
            .get_or_try_init(|| async {
                let v = self
                    .client
                    .call(Method::GET, "/rest/api/2/serverInfo", None)
                    .await?;
                let nums: Vec<u32> = v
                    .get("versionNumbers")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_u64)
                            .map(|n| u32::try_from(n).unwrap_or(0))
                            .collect()
                    })
                    .unwrap_or_default();
                let at = |i: usize| nums.get(i).copied().unwrap_or(0);
                Ok(Instance {
                    version: (at(0), at(1), at(2)),
                    version_text: v
                        .get("version")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown")
                        .to_string(),
                })
            })
            .await
    }

    /// Whether disabling sets `"active": false` (else it removes application access).
    async fn uses_active(&self) -> Result<bool, Failure> {
        Ok(match self.cfg.deactivation {
            Deactivation::Active => true,
            Deactivation::Groups => false,
            Deactivation::Auto => self.instance().await?.version >= (8, 3, 0),
        })
    }

    fn remember(&self, key: &str, name: &str) {
        if let Ok(mut m) = self.names.lock() {
            m.insert(key.to_string(), name.to_string());
        }
    }

    /// The user's JSON, by key.
    async fn get_user(&self, key: &str, expand: bool) -> Result<Value, Failure> {
        let path = format!(
            "/rest/api/2/user?key={}{}",
            enc(key),
            if expand { "&expand=groups" } else { "" }
        );
        let v = self.client.call(Method::GET, &path, None).await?;
        if let Some(n) = v.get("name").and_then(Value::as_str) {
            self.remember(key, n);
        }
        Ok(v)
    }

    /// The username of the user with this key.
    async fn username(&self, key: &str) -> Result<String, Failure> {
        if let Some(n) = self.names.lock().ok().and_then(|m| m.get(key).cloned()) {
            return Ok(n);
        }
        let v = self.get_user(key, false).await?;
        v.get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Failure {
                status: None,
                reason: format!("GET /rest/api/2/user: the answer for key {key} has no name"),
                messages: Vec::new(),
                retry_after: None,
            })
    }

    fn property_path(&self, key: &str) -> String {
        format!(
            "/rest/api/2/user/properties/{}?userKey={}",
            enc(&self.cfg.property_key),
            enc(key)
        )
    }

    /// The user's property value (`None` when it has none).
    async fn read_property(&self, key: &str) -> Result<Option<Value>, Failure> {
        match self
            .client
            .call(Method::GET, &self.property_path(key), None)
            .await
        {
            Ok(v) => Ok(v.get("value").cloned()),
            Err(f) if f.status == Some(404) => Ok(None),
            Err(f) => Err(f),
        }
    }

    /// Write (or remove, when `None`) the user's property.
    async fn write_property(&self, key: &str, value: Option<Value>) -> Result<(), Failure> {
        let path = self.property_path(key);
        match value {
            Some(v) => self
                .client
                .call(Method::PUT, &path, Some(&v))
                .await
                .map(|_| ()),
            None => match self.client.call(Method::DELETE, &path, None).await {
                Err(f) if f.status == Some(404) => Ok(()),
                other => other.map(|_| ()),
            },
        }
    }

    /// Add users (by key) to a group, one call each (Jira has no batch call for members).
    async fn add_members(&self, group: &str, user_keys: &[String]) -> Result<(), Failure> {
        for key in user_keys {
            let name = self.username(key).await?;
            self.add_to_group(group, &name).await?;
        }
        Ok(())
    }

    async fn add_to_group(&self, group: &str, username: &str) -> Result<(), Failure> {
        let path = format!("/rest/api/2/group/user?groupname={}", enc(group));
        match self
            .client
            .call(Method::POST, &path, Some(&json!({"name": username})))
            .await
        {
            // Already a member: what was asked holds.
            Err(f) if f.status == Some(400) && f.says("already a member") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn remove_from_group(&self, group: &str, username: &str) -> Result<(), Failure> {
        let path = format!(
            "/rest/api/2/group/user?groupname={}&username={}",
            enc(group),
            enc(username)
        );
        match self.client.call(Method::DELETE, &path, None).await {
            // Not a member (the group exists): what was asked holds.
            Err(f) if f.status == Some(404) && f.says("not a member") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Users whose username or email starts with `query`, inactive ones too.
    async fn search(&self, query: &str) -> Result<Vec<Value>, TargetError> {
        paging::array(
            &self.client,
            &format!(
                "/rest/api/2/user/search?username={}&includeActive=true&includeInactive=true",
                enc(query)
            ),
            1000,
        )
        .await
        .map_err(|f| f.target_error())
    }

    /// The users a match by `field` (`name` or `emailAddress`) may be among, in as few
    /// requests as Jira allows: a username is looked up directly (`GET /user`, any case); an
    /// email is searched (one page of up to 1,000 answers a whole email address, read on
    /// only when it comes back full).
    async fn candidates(&self, field: &str, value: &str) -> Result<Vec<Value>, TargetError> {
        if field == "name" {
            let path = format!("/rest/api/2/user?username={}", enc(value));
            return match self.client.call(Method::GET, &path, None).await {
                Ok(v) => Ok(vec![v]),
                Err(f) if f.status == Some(404) => Ok(Vec::new()),
                Err(f) => Err(f.target_error()),
            };
        }
        let path = format!(
            "/rest/api/2/user/search?username={}&includeActive=true&includeInactive=true&startAt=0&maxResults=1000",
            enc(value)
        );
        match self.client.call(Method::GET, &path, None).await {
            Ok(Value::Array(page)) if page.len() < 1000 => Ok(page),
            Ok(_) => self.search(value).await,
            Err(f) => Err(f.target_error()),
        }
    }

    async fn create_user(&self, user: &User) -> Result<String, Failure> {
        let u = users::project(user.clone(), self.cfg.properties);
        let body = json!({
            "name": u.user_name,
            "emailAddress": u.primary_email().unwrap_or_default(),
            "displayName": users::display_name_of(&u),
            "notification": false,
        });
        let v = self
            .client
            .call(Method::POST, "/rest/api/2/user", Some(&body))
            .await?;
        let key = v
            .get("key")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Failure {
                status: None,
                reason: "POST /rest/api/2/user: the answer has no key".into(),
                messages: Vec::new(),
                retry_after: None,
            })?;
        self.remember(&key, &u.user_name);
        let attrs = users::attributes(&u);
        if let Some(p) = users::property_value(&attrs, &[]) {
            self.write_property(&key, Some(p)).await?;
        }
        if self.cfg.default_groups_on_create {
            for g in &self.cfg.default_groups {
                self.add_to_group(g, &u.user_name).await?;
            }
        }
        if !u.active {
            self.set_active(&key, &u, false).await?;
        }
        Ok(key)
    }

    async fn update_user(&self, key: &str, before: &User, after: &User) -> Result<(), Failure> {
        let b = users::project(before.clone(), self.cfg.properties);
        let a = users::project(after.clone(), self.cfg.properties);
        let mut body = Map::new();
        if !a.user_name.eq(&b.user_name) {
            body.insert("name".into(), json!(a.user_name));
        }
        if a.primary_email() != b.primary_email() {
            body.insert(
                "emailAddress".into(),
                json!(a.primary_email().unwrap_or_default()),
            );
        }
        if users::display_name_of(&a) != users::display_name_of(&b) {
            body.insert("displayName".into(), json!(users::display_name_of(&a)));
        }
        let wrote = !body.is_empty();
        if wrote {
            let path = format!("/rest/api/2/user?key={}", enc(key));
            let v = self
                .client
                .call(Method::PUT, &path, Some(&Value::Object(body)))
                .await?;
            if let Some(n) = v.get("name").and_then(Value::as_str) {
                self.remember(key, n);
            }
        }
        let (attrs_a, attrs_b) = (users::attributes(&a), users::attributes(&b));
        if attrs_a != attrs_b {
            // Keep the record of removed access groups that the property may carry.
            let (_, removed) = users::read_property(self.read_property(key).await?.as_ref());
            self.write_property(key, users::property_value(&attrs_a, &removed))
                .await?;
        }
        if a.active != b.active {
            self.set_active(key, &a, a.active).await?;
        }
        if !wrote && attrs_a == attrs_b && a.active == b.active {
            // Nothing Jira holds changed: the user must still be there all the same.
            self.get_user(key, false).await?;
        }
        Ok(())
    }

    /// Disable or enable: `"active"` read back, or the application-access groups.
    async fn set_active(&self, key: &str, u: &User, active: bool) -> Result<(), Failure> {
        if self.uses_active().await? {
            let path = format!("/rest/api/2/user?key={}", enc(key));
            if active {
                self.client
                    .call(Method::PUT, &path, Some(&json!({"active": true})))
                    .await?;
            } else {
                leads::deactivate(self, key).await?;
            }
            let back = self.get_user(key, false).await?;
            if back.get("active").and_then(Value::as_bool) != Some(active) {
                let version = self
                    .instance()
                    .await
                    .map(|i| i.version_text.clone())
                    .unwrap_or_default();
                return Err(Failure {
                    status: Some(400),
                    reason: format!(
                        "PUT /rest/api/2/user: Jira {version} answered but the user is still {} (it ignores \"active\" before 8.3; set deactivation = \"groups\")",
                        if active { "inactive" } else { "active" }
                    ),
                    messages: Vec::new(),
                    retry_after: None,
                });
            }
            return Ok(());
        }
        access::set(self, key, u, active).await
    }
}

#[async_trait]
impl Target for JiraTarget {
    fn describe(&self) -> String {
        format!("Jira Data Center at {}", self.client.base_url())
    }

    async fn health(&self) -> Result<(), TargetError> {
        self.instance().await.map_err(|f| f.target_error())?;
        self.client
            .call(Method::GET, "/rest/api/2/myself", None)
            .await
            .map_err(|f| f.target_error())?;
        Ok(())
    }

    async fn find_user(&self, user: &User) -> Result<Option<String>, TargetError> {
        Ok(self.find_user_match(user).await?.map(|m| m.target_id))
    }

    async fn find_user_match(&self, user: &User) -> Result<Option<Match>, TargetError> {
        let verified = |found: Vec<Value>, field: &str, value: &str| -> Vec<(String, String)> {
            found
                .into_iter()
                .filter(|v| {
                    v.get(field)
                        .and_then(Value::as_str)
                        .is_some_and(|x| x.to_lowercase() == value.to_lowercase())
                })
                .filter_map(|v| {
                    Some((
                        v.get("key")?.as_str()?.to_string(),
                        v.get("name")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        };
        let listed = self.run.users_listed(self, user).await?;
        let mut attempts = vec![("name", "userName", user.user_name.clone())];
        if let Some(e) = user.primary_email() {
            attempts.push(("emailAddress", "email", e.to_string()));
        }
        for (field, label, value) in attempts {
            if value.is_empty() {
                continue;
            }
            let candidates = if listed {
                self.run.user_candidates(field, &value)
            } else {
                self.candidates(field, &value).await?
            };
            let found = verified(candidates, field, &value);
            match found.as_slice() {
                [] => continue,
                [(key, name)] => {
                    self.remember(key, name);
                    return Ok(Some(Match {
                        target_id: key.clone(),
                        by: Some(format!("{label} {}", serde_json::json!(value))),
                    }));
                }
                many => {
                    return Err(TargetError::Ambiguous {
                        object: format!("user {}", user.user_name),
                        candidates: many.iter().map(|(k, n)| format!("{n} ({k})")).collect(),
                    })
                }
            }
        }
        Ok(None)
    }

    async fn find_group(&self, group: &Group) -> Result<Option<String>, TargetError> {
        if let Some(found) = self.run.group(self, &group.display_name).await? {
            return Ok(found);
        }
        let path = format!(
            "/rest/api/2/groups/picker?query={}&maxResults=1000",
            enc(&group.display_name)
        );
        let v = self
            .client
            .call(Method::GET, &path, None)
            .await
            .map_err(|f| f.target_error())?;
        let shown: Vec<&str> = v
            .get("groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| g.get("name").and_then(Value::as_str))
            .collect();
        let wanted = group.display_name.to_lowercase();
        if let Some(n) = shown.iter().find(|n| n.to_lowercase() == wanted) {
            return Ok(Some((*n).to_string()));
        }
        let total = v.get("total").and_then(Value::as_u64).unwrap_or(0);
        if total > shown.len() as u64 {
            // The picker showed only some of the groups whose names contain this one.
            return Err(TargetError::CannotMatch(format!(
                "group {:?}: Jira's group picker showed {} of {total} groups whose names contain it",
                group.display_name,
                shown.len()
            )));
        }
        Ok(None)
    }

    async fn apply(&self, op: &TargetOp) -> Outcome {
        let outcome = self.apply_op(op).await;
        self.run.follow(self, op, &outcome);
        outcome
    }

    async fn read_state(&self) -> Result<TargetSnapshot, TargetError> {
        let listed = self.search(".").await?;
        let props: Vec<Result<(Value, Option<Value>), Failure>> = stream::iter(listed)
            .map(|v| async move {
                let key = v.get("key").and_then(Value::as_str).unwrap_or_default();
                let p = self.read_property(key).await?;
                Ok((v, p))
            })
            .buffered(8)
            .collect()
            .await;
        let mut snapshot = TargetSnapshot::default();
        for r in props {
            let (v, p) = r.map_err(|f| f.target_error())?;
            let Some(key) = v.get("key").and_then(Value::as_str) else {
                continue;
            };
            let (attrs, removed) = users::read_property(p.as_ref());
            if let Some(user) = users::from_jira(&v, &attrs, !removed.is_empty()) {
                self.remember(key, &user.user_name);
                snapshot.users.push(RemoteUser {
                    target_id: key.to_string(),
                    user,
                });
            }
        }
        let v = self
            .client
            .call(
                Method::GET,
                "/rest/api/2/groups/picker?query=&maxResults=1000000",
                None,
            )
            .await
            .map_err(|f| f.target_error())?;
        let names: Vec<String> = v
            .get("groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let total = v.get("total").and_then(Value::as_u64).unwrap_or(0);
        if total > names.len() as u64 {
            return Err(TargetError::Protocol(format!(
                "GET /rest/api/2/groups/picker: Jira showed {} of {total} groups; a reconcile needs them all",
                names.len()
            )));
        }
        let groups: Vec<Result<RemoteGroup, Failure>> = stream::iter(names)
            .map(|name| async move {
                let members = paging::start_at(
                    &self.client,
                    &format!(
                        "/rest/api/2/group/member?groupname={}&includeInactiveUsers=true",
                        enc(&name)
                    ),
                    50,
                )
                .await?;
                Ok(RemoteGroup {
                    target_id: name.clone(),
                    group: Group::new("", name),
                    members: members
                        .iter()
                        .filter_map(|m| m.get("key").and_then(Value::as_str).map(str::to_string))
                        .collect(),
                })
            })
            .buffered(8)
            .collect()
            .await;
        for g in groups {
            snapshot.groups.push(g.map_err(|f| f.target_error())?);
        }
        Ok(snapshot)
    }

    async fn disable_note(&self) -> Result<Option<String>, TargetError> {
        let version = self
            .instance()
            .await
            .map_err(|f| f.target_error())?
            .version_text
            .clone();
        if self.uses_active().await.map_err(|f| f.target_error())? {
            return Ok(Some(format!(
                "Jira {version}: users are disabled with \"active\": false, read back after each"
            )));
        }
        let groups = access::groups(self).await.map_err(|f| f.target_error())?;
        let why = if self.cfg.deactivation == Deactivation::Groups {
            "deactivation = \"groups\""
        } else {
            "it has no deactivation before 8.3"
        };
        Ok(Some(format!(
            "Jira {version} ({why}): disabling removes the user's application access (groups {}), recorded in the user property {:?} so that a returning user gets it back; the account itself stays active",
            groups.join(", "),
            self.cfg.property_key
        )))
    }

    async fn seat_roles(&self) -> Result<Vec<idsync_core::SeatRole>, TargetError> {
        access::seat_roles(self).await.map_err(|f| f.target_error())
    }

    async fn seat_holders(
        &self,
        target_ids: &[String],
    ) -> Result<HashMap<String, idsync_core::SeatHolder>, TargetError> {
        access::seat_holders(self, target_ids)
            .await
            .map_err(|f| f.target_error())
    }

    fn project_user(&self, user: User) -> User {
        users::project(user, self.cfg.properties)
    }

    fn project_observed_user(&self, user: User) -> User {
        users::project(user, self.cfg.properties)
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

    fn expect_creates(&self, users: usize, groups: usize) {
        self.run.expect(users, groups);
    }

    fn end_run(&self) {
        self.run.end_run();
    }
}
