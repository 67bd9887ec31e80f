//! Bamboo Data Center's internal directory as a target, through its admin REST API
//! (`/rest/api/latest/admin/users`, `/admin/groups`).
//!
//! What Bamboo's API allows, and so what this target does:
//! - A user is known by its **username** only (the API has no user key): the username is the
//!   target id. A changed username is a rename (`PUT /admin/users/rename`), and the update
//!   answers the new id, which the ledger keeps (decision 0038).
//! - Users are created with a random password nobody knows (the API requires one; SSO or
//!   Crowd signs them in). The API has **no call that changes a user's full name or
//!   email**: such a change is refused with the reason (after a disable or enable the update
//!   carries, and with no rename).
//! - Groups are known by name and cannot be renamed; memberships go in batches
//!   (`add-users`/`remove-users`, up to [`MEMBER_BATCH`] names a request).
//! - Bamboo has **no deactivation**: disabling removes the user from the configured access
//!   groups and records each in a group of idsync's (`disabled.rs`).
//! - Matching: `admin/users?filter=` by username, then by email, every candidate verified
//!   against the attribute (any case); two verified matches are a conflict (decision 0025).

mod disabled;

use super::atlassian_dc::client::enc;
use super::atlassian_dc::{
    group_update, no_nested_groups, paging, ClientConfig, ClientError, DcClient, Failure,
};
use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use idsync_core::{
    Email, Group, Match, Outcome, RemoteGroup, RemoteUser, Target, TargetError, TargetOp,
    TargetSnapshot, User,
};
use rand::Rng;
use reqwest::Method;
use serde_json::{json, Value};

/// Usernames sent in one `add-users`/`remove-users` request.
pub const MEMBER_BATCH: usize = 100;
/// The page size asked for (Bamboo may give less; pages are read to `isLastPage`).
const PAGE: usize = 1000;
const API: &str = "/rest/api/latest";

#[derive(Debug, Clone)]
pub struct BambooTargetConfig {
    pub client: ClientConfig,
    /// Groups every user idsync creates joins.
    pub default_groups: Vec<String>,
    /// The groups that grant access to Bamboo (its global "Access" permission); disabling
    /// removes them. Empty: disabling is refused (Bamboo has no other way).
    pub access_groups: Vec<String>,
    /// The group that marks users idsync disabled; `<record_group>:<access group>` records
    /// each access group it removed.
    pub record_group: String,
}

pub struct BambooTarget {
    cfg: BambooTargetConfig,
    client: DcClient,
}

/// A path segment, percent-encoded (a name may hold spaces, slashes, `+`).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The display name Bamboo will hold (it requires a full name).
fn full_name_of(u: &User) -> String {
    super::jira::users::display_name_of(u)
}

impl BambooTarget {
    pub fn new(cfg: BambooTargetConfig) -> Result<Self, ClientError> {
        Ok(BambooTarget {
            client: DcClient::new(cfg.client.clone())?,
            cfg,
        })
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.client.requests()
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        self.client
            .call(method, &format!("{API}{path}"), body)
            .await
    }

    async fn pages(&self, path: &str) -> Result<Vec<Value>, Failure> {
        paging::start_limit(&self.client, &format!("{API}{path}"), PAGE).await
    }

    /// Users whose username, full name or email contains `filter`.
    async fn users_like(&self, filter: &str) -> Result<Vec<Value>, Failure> {
        self.pages(&format!("/admin/users?filter={}", enc(filter)))
            .await
    }

    /// The user named `name` (any case), if there is one.
    async fn user_named(&self, name: &str) -> Result<Option<Value>, Failure> {
        Ok(self.users_like(name).await?.into_iter().find(|v| {
            v.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        }))
    }

    /// The groups the user is in.
    pub(crate) async fn groups_of(&self, name: &str) -> Result<Vec<String>, Failure> {
        Ok(self
            .pages(&format!("/admin/users/{}/assigned-groups", seg(name)))
            .await?
            .iter()
            .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_string))
            .collect())
    }

    /// Add the user to (or remove it from) several groups in one request.
    pub(crate) async fn user_groups(
        &self,
        name: &str,
        groups: &[String],
        add: bool,
    ) -> Result<(), Failure> {
        if groups.is_empty() {
            return Ok(());
        }
        let method = if add { Method::POST } else { Method::DELETE };
        self.call(
            method,
            &format!("/admin/users/{}/groups", seg(name)),
            Some(&json!(groups)),
        )
        .await
        .map(|_| ())
    }

    /// Create a group; one that is already there is fine.
    pub(crate) async fn ensure_group(&self, name: &str) -> Result<(), Failure> {
        match self
            .call(Method::POST, "/admin/groups", Some(&json!({"name": name})))
            .await
        {
            Err(f) if f.status == Some(400) && f.says("already exists") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn create_user(&self, user: &User) -> Result<String, Failure> {
        let u = project(user.clone());
        let password: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(48)
            .map(char::from)
            .collect();
        let body = json!({
            "name": u.user_name,
            "fullName": full_name_of(&u),
            "email": u.primary_email().unwrap_or_default(),
            "password": password,
            "passwordConfirm": password,
        });
        self.call(Method::POST, "/admin/users", Some(&body)).await?;
        self.user_groups(&u.user_name, &self.cfg.default_groups, true)
            .await?;
        if !u.active {
            disabled::disable(self, &u.user_name).await?;
        }
        Ok(u.user_name)
    }

    /// An update: disable or enable, and a rename (`PUT /admin/users/rename`), after which
    /// the user's id is its new username (returned, and kept in the ledger). What Bamboo
    /// cannot do (a new full name or email) is compared with what Bamboo holds now (not with
    /// `before`, which is blank when a create adopted an existing user) and refused with the
    /// reason; a refused update renames nothing.
    async fn update_user(
        &self,
        name: &str,
        before: &User,
        after: &User,
    ) -> Result<Option<String>, Failure> {
        let (b, a) = (project(before.clone()), project(after.clone()));
        let Some(now) = self.user_named(name).await? else {
            return Err(Failure {
                status: Some(404),
                reason: format!("user {name} is not in Bamboo"),
                messages: Vec::new(),
                retry_after: None,
            });
        };
        if a.active != b.active {
            if a.active {
                disabled::enable(self, name).await?;
            } else {
                disabled::disable(self, name).await?;
            }
        }
        let held = |k: &str| now.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut cannot = Vec::new();
        if full_name_of(&a) != held("fullName") {
            cannot.push(format!(
                "change the full name {:?} to {:?} (Bamboo's REST API has no call for it)",
                held("fullName"),
                full_name_of(&a)
            ));
        }
        let email = a.primary_email().unwrap_or_default();
        if !email.eq_ignore_ascii_case(&held("email")) {
            cannot.push(format!(
                "change the email {:?} to {email:?} (Bamboo's REST API has no call for it)",
                held("email")
            ));
        }
        if !cannot.is_empty() {
            return Err(Failure {
                status: Some(400),
                reason: format!(
                    "Bamboo user {name}: idsync cannot {}; change it in Bamboo's user administration, or serve Bamboo from a crowd target",
                    cannot.join("; nor ")
                ),
                messages: Vec::new(),
                retry_after: None,
            });
        }
        let current = held("name");
        // Usernames that differ only in case are one user to Bamboo: no rename for that.
        if a.user_name.eq_ignore_ascii_case(&current) {
            return Ok(None);
        }
        self.call(
            Method::PUT,
            "/admin/users/rename",
            Some(&json!({"oldName": current, "name": a.user_name})),
        )
        .await?;
        Ok(Some(a.user_name))
    }

    /// Add or remove members in batches; a removal whose batch names a user gone from Bamboo
    /// is retried one user at a time (a gone user is in no group).
    async fn members(&self, group: &str, names: &[String], add: bool) -> Result<(), Failure> {
        let (method, verb) = if add {
            (Method::POST, "add-users")
        } else {
            (Method::DELETE, "remove-users")
        };
        let path = format!("/admin/groups/{}/{verb}", seg(group));
        for batch in names.chunks(MEMBER_BATCH) {
            match self.call(method.clone(), &path, Some(&json!(batch))).await {
                Err(f) if !add && f.status == Some(404) && f.says("user") && batch.len() > 1 => {
                    for n in batch {
                        match self.call(method.clone(), &path, Some(&json!([n]))).await {
                            Err(f) if f.status == Some(404) && f.says("user") => {}
                            other => other.map(|_| ())?,
                        }
                    }
                }
                Err(f) if !add && f.status == Some(404) && f.says("user") => {}
                other => other.map(|_| ())?,
            }
        }
        Ok(())
    }

    fn record_prefix(&self) -> String {
        format!("{}:", self.cfg.record_group)
    }

    /// Whether a group is one of idsync's records (never shown as a group of the target).
    fn is_record(&self, g: &str) -> bool {
        g.eq_ignore_ascii_case(&self.cfg.record_group)
            || g.to_lowercase()
                .starts_with(&self.record_prefix().to_lowercase())
    }
}

/// The user as Bamboo holds it: username, full name, one email, active.
pub fn project(u: User) -> User {
    let mut out = User::new(u.source_id.clone(), u.user_name.clone());
    out.id = u.id.clone();
    out.display_name = Some(full_name_of(&u));
    out.emails = u
        .primary_email()
        .map(|e| Email {
            value: e.to_string(),
            kind: None,
            primary: true,
            display: None,
        })
        .into_iter()
        .collect();
    out.active = u.active;
    out
}

fn done(r: Result<(), Failure>) -> Outcome {
    match r {
        Ok(()) => Outcome::Applied { target_id: None },
        Err(f) => f.outcome(),
    }
}

#[async_trait]
impl Target for BambooTarget {
    fn describe(&self) -> String {
        format!("Bamboo Data Center at {}", self.client.base_url())
    }

    async fn health(&self) -> Result<(), TargetError> {
        self.call(Method::GET, "/currentUser", None)
            .await
            .map(|_| ())
            .map_err(|f| f.target_error())
    }

    async fn find_user(&self, user: &User) -> Result<Option<String>, TargetError> {
        Ok(self.find_user_match(user).await?.map(|m| m.target_id))
    }

    async fn find_user_match(&self, user: &User) -> Result<Option<Match>, TargetError> {
        let mut attempts = vec![("name", "userName", user.user_name.clone())];
        if let Some(e) = user.primary_email() {
            attempts.push(("email", "email", e.to_string()));
        }
        // Bamboo's filter matches usernames and emails alike: where both are the same text
        // (a UPN as username), one listing answers both attempts.
        let mut listed: Option<(String, Vec<Value>)> = None;
        for (field, label, value) in attempts {
            if value.is_empty() {
                continue;
            }
            let users = match &listed {
                Some((filter, users)) if filter.eq_ignore_ascii_case(&value) => users.clone(),
                _ => {
                    let users = self
                        .users_like(&value)
                        .await
                        .map_err(|f| f.target_error())?;
                    listed = Some((value.clone(), users.clone()));
                    users
                }
            };
            let found: Vec<String> = users
                .into_iter()
                .filter(|v| {
                    v.get(field)
                        .and_then(Value::as_str)
                        .is_some_and(|x| x.to_lowercase() == value.to_lowercase())
                })
                .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
                .collect();
            match found.as_slice() {
                [] => continue,
                [name] => {
                    return Ok(Some(Match {
                        target_id: name.clone(),
                        by: Some(format!("{label} {}", json!(value))),
                    }))
                }
                many => {
                    return Err(TargetError::Ambiguous {
                        object: format!("user {}", user.user_name),
                        candidates: many.to_vec(),
                    })
                }
            }
        }
        Ok(None)
    }

    async fn find_group(&self, group: &Group) -> Result<Option<String>, TargetError> {
        let listed = self
            .pages(&format!(
                "/admin/groups?filter={}",
                enc(&group.display_name)
            ))
            .await
            .map_err(|f| f.target_error())?;
        Ok(listed
            .iter()
            .filter_map(|g| g.get("name").and_then(Value::as_str))
            .find(|n| n.eq_ignore_ascii_case(&group.display_name))
            .map(str::to_string))
    }

    async fn apply(&self, op: &TargetOp) -> Outcome {
        match op {
            TargetOp::CreateUser { user } => match self.create_user(user).await {
                Ok(name) => Outcome::Applied {
                    target_id: Some(name),
                },
                Err(f) => f.outcome(),
            },
            TargetOp::UpdateUser {
                target_id,
                before,
                after,
            } => match self.update_user(target_id, before, after).await {
                Ok(moved) => Outcome::Applied { target_id: moved },
                Err(f) => f.outcome(),
            },
            TargetOp::DeleteUser { target_id } => done(
                self.call(
                    Method::DELETE,
                    &format!("/admin/users/{}", seg(target_id)),
                    None,
                )
                .await
                .map(|_| ()),
            ),
            TargetOp::CreateGroup { group, members } => {
                let created = self
                    .call(
                        Method::POST,
                        "/admin/groups",
                        Some(&json!({"name": group.display_name})),
                    )
                    .await;
                // Bamboo's create takes a name only: first members follow in batches.
                match created {
                    Ok(_) => match self.members(&group.display_name, members, true).await {
                        Ok(()) => Outcome::Applied {
                            target_id: Some(group.display_name.clone()),
                        },
                        Err(f) => f.outcome(),
                    },
                    Err(f) => f.outcome(),
                }
            }
            TargetOp::UpdateGroup {
                target_id, after, ..
            } => group_update("Bamboo", target_id, &after.display_name),
            TargetOp::DeleteGroup { target_id } => done(
                self.call(
                    Method::DELETE,
                    &format!("/admin/groups/{}", seg(target_id)),
                    None,
                )
                .await
                .map(|_| ()),
            ),
            TargetOp::AddChildGroups { .. } | TargetOp::RemoveChildGroups { .. } => {
                no_nested_groups("Bamboo")
            }
            TargetOp::AddMembers { group_id, user_ids } => {
                done(self.members(group_id, user_ids, true).await)
            }
            TargetOp::RemoveMembers { group_id, user_ids } => {
                done(self.members(group_id, user_ids, false).await)
            }
        }
    }

    async fn read_state(&self) -> Result<TargetSnapshot, TargetError> {
        let users = self
            .pages("/admin/users")
            .await
            .map_err(|f| f.target_error())?;
        let names: Vec<String> = self
            .pages("/admin/groups")
            .await
            .map_err(|f| f.target_error())?
            .iter()
            .filter_map(|g| g.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let groups: Vec<Result<(String, Vec<String>), Failure>> = stream::iter(names)
            .map(|name| async move {
                let members = self
                    .pages(&format!("/admin/groups/{}/more-members", seg(&name)))
                    .await?;
                Ok((
                    name,
                    members
                        .iter()
                        .filter_map(|m| m.get("name").and_then(Value::as_str).map(str::to_string))
                        .collect(),
                ))
            })
            .buffered(8)
            .collect()
            .await;
        let mut snapshot = TargetSnapshot::default();
        let mut disabled = std::collections::HashSet::new();
        for g in groups {
            let (name, members) = g.map_err(|f| f.target_error())?;
            if self.is_record(&name) {
                disabled.extend(members.iter().map(|m| m.to_lowercase()));
                continue;
            }
            snapshot.groups.push(RemoteGroup {
                target_id: name.clone(),
                group: Group::new("", name),
                members,
            });
        }
        for v in users {
            let Some(name) = v.get("name").and_then(Value::as_str) else {
                continue;
            };
            let mut u = User::new("", name);
            u.display_name = v
                .get("fullName")
                .and_then(Value::as_str)
                .map(str::to_string);
            u.emails = v
                .get("email")
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
            u.active = !disabled.contains(&name.to_lowercase());
            snapshot.users.push(RemoteUser {
                target_id: name.to_string(),
                user: u,
            });
        }
        Ok(snapshot)
    }

    async fn disable_note(&self) -> Result<Option<String>, TargetError> {
        if self.cfg.access_groups.is_empty() {
            return Ok(Some(
                "Bamboo has no call to deactivate a user and no access_groups are set: disabling will be refused (set access_groups to the groups Bamboo's global Access permission is granted to)".into(),
            ));
        }
        Ok(Some(format!(
            "Bamboo has no call to deactivate a user: disabling removes the user from the access groups {} and records each in idsync's group {:?} (and \"{}<group>\") so that a returning user gets them back; the account itself stays",
            self.cfg.access_groups.join(", "),
            self.cfg.record_group,
            self.record_prefix()
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
}
