//! Matching a run's creates against one listing of Jira's users and groups (decision 0040).
//!
//! Before each create the target finds what is already there (invariant 4: a create repeated
//! after a crash finds the first one). Searching costs two requests per user (a username
//! lookup and an email search) and one per group (the group picker). A run that creates many
//! lists Jira's users once instead (`user/search?username=.`, inactive ones too, 1,000 a page)
//! and its groups once (the group picker without a query), and matches every create against
//! that, with the same rules (any case; two users with the email are a conflict). The lists
//! follow what the run creates, renames and deletes, and are let go when the run ends.
//!
//! Which is cheaper is decided by numbers when the first create needs a match: the engine
//! says how many users and groups the run creates (`Target::expect_creates`). Reading N users
//! costs ⌈N/1000⌉ + 1 pages (read until an empty page), searching for c users 2c requests;
//! one request at `startAt = (2c - 1) × 1000` tells whether Jira holds more users than make
//! listing worth it (an empty answer: it does not). Groups are listed in one request when
//! the run creates two or more, unless the picker shows only part of them.
//!
//! A create whose attempt was not applied may still have been (an answer lost): its retry
//! searches Jira itself, as a create in a run without a listing does.

use super::JiraTarget;
use crate::targets::listed::Listed;
use idsync_core::{Outcome, TargetError, TargetOp, User};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Users a page of `user/search` holds at most.
const PAGE: usize = 1000;

/// What a run matches its creates of one kind against.
#[derive(Default)]
enum Decision<T> {
    /// No create of the run has needed a match yet.
    #[default]
    Undecided,
    /// Each create searches Jira (few creates, or many users in Jira).
    Search,
    /// The list, read once for the run.
    Listed(T),
}

#[derive(Default)]
pub(super) struct RunListing {
    expected_users: AtomicUsize,
    expected_groups: AtomicUsize,
    users: Mutex<Decision<Listed>>,
    /// Group names by lower-cased name.
    groups: Mutex<Decision<HashMap<String, String>>>,
    /// Held while the first match of the run decides (and lists).
    deciding: tokio::sync::Mutex<()>,
    /// `u:` + username and `g:` + group name (lower-cased) of creates that were sent and
    /// not applied: the next match for them searches Jira.
    uncertain: Mutex<HashSet<String>>,
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// A user as the listing keeps it (`id` is the user key).
fn entry(key: &str, name: &str, email: Option<&str>) -> Value {
    json!({"id": key, "key": key, "name": name, "emailAddress": email.unwrap_or_default()})
}

impl RunListing {
    /// The run is about to create these many users and groups.
    pub(super) fn expect(&self, users: usize, groups: usize) {
        self.expected_users.store(users, Ordering::Relaxed);
        self.expected_groups.store(groups, Ordering::Relaxed);
    }

    fn uncertain(&self, tag: &str) -> bool {
        self.uncertain.lock().is_ok_and(|u| u.contains(tag))
    }

    /// Whether `user` is matched against the run's listing (listing Jira's users first when
    /// this is the run's first match and listing is the cheaper); false: search Jira.
    pub(super) async fn users_listed(
        &self,
        t: &JiraTarget,
        user: &User,
    ) -> Result<bool, TargetError> {
        if self.uncertain(&format!("u:{}", lower(&user.user_name))) {
            return Ok(false);
        }
        if let Some(listed) = self.users_decided() {
            return Ok(listed);
        }
        let _deciding = self.deciding.lock().await;
        if let Some(listed) = self.users_decided() {
            return Ok(listed);
        }
        let decision = match self.list_users(t).await? {
            Some(l) => Decision::Listed(l),
            None => Decision::Search,
        };
        let listed = matches!(decision, Decision::Listed(_));
        if let Ok(mut d) = self.users.lock() {
            *d = decision;
        }
        Ok(listed)
    }

    fn users_decided(&self) -> Option<bool> {
        match &*self.users.lock().ok()? {
            Decision::Undecided => None,
            Decision::Search => Some(false),
            Decision::Listed(_) => Some(true),
        }
    }

    /// Jira's users, when listing them costs no more than searching for each create.
    async fn list_users(&self, t: &JiraTarget) -> Result<Option<Listed>, TargetError> {
        let creates = self.expected_users.load(Ordering::Relaxed);
        if creates < 2 {
            return Ok(None);
        }
        // Listing N users costs ⌈N/1000⌉ + 1 pages, searching 2 per create: list when Jira
        // holds no user past (2c - 1) × 1000.
        let past = (2 * creates - 1).saturating_mul(PAGE);
        let probe = format!(
            "/rest/api/2/user/search?username=.&includeActive=true&includeInactive=true&startAt={past}&maxResults=1"
        );
        let more = t
            .client
            .call(Method::GET, &probe, None)
            .await
            .map_err(|f| f.target_error())?;
        if more.as_array().is_none_or(|a| !a.is_empty()) {
            tracing::info!(
                creates,
                "Jira holds too many users to list them for matching: each create searches"
            );
            return Ok(None);
        }
        let all = t.search(".").await?;
        let mut entries = Vec::with_capacity(all.len());
        for v in &all {
            let (Some(key), Some(name)) = (
                v.get("key").and_then(Value::as_str),
                v.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            t.remember(key, name);
            entries.push(entry(
                key,
                name,
                v.get("emailAddress").and_then(Value::as_str),
            ));
        }
        tracing::info!(
            creates,
            users = entries.len(),
            "Jira's users listed once: this run's creates are matched against the list"
        );
        Ok(Some(Listed::new(entries)))
    }

    /// The listed users whose `field` (`name`, `emailAddress`) is `value` in any case.
    pub(super) fn user_candidates(&self, field: &str, value: &str) -> Vec<Value> {
        match self.users.lock().as_deref_mut() {
            Ok(Decision::Listed(l)) => l.candidates(field, value).into_iter().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// The group named so in the run's listing of groups: `None` when the run searches.
    pub(super) async fn group(
        &self,
        t: &JiraTarget,
        name: &str,
    ) -> Result<Option<Option<String>>, TargetError> {
        if self.uncertain(&format!("g:{}", lower(name))) {
            return Ok(None);
        }
        if let Some(found) = self.group_decided(name) {
            return Ok(found);
        }
        let _deciding = self.deciding.lock().await;
        if let Some(found) = self.group_decided(name) {
            return Ok(found);
        }
        let decision = match self.list_groups(t).await? {
            Some(g) => Decision::Listed(g),
            None => Decision::Search,
        };
        if let Ok(mut d) = self.groups.lock() {
            *d = decision;
        }
        Ok(self.group_decided(name).flatten())
    }

    fn group_decided(&self, name: &str) -> Option<Option<Option<String>>> {
        match &*self.groups.lock().ok()? {
            Decision::Undecided => None,
            Decision::Search => Some(None),
            Decision::Listed(g) => Some(Some(g.get(&lower(name)).cloned())),
        }
    }

    /// Every group, in one request of the group picker, when the run creates two or more and
    /// the picker shows them all.
    async fn list_groups(
        &self,
        t: &JiraTarget,
    ) -> Result<Option<HashMap<String, String>>, TargetError> {
        if self.expected_groups.load(Ordering::Relaxed) < 2 {
            return Ok(None);
        }
        let v = t
            .client
            .call(
                Method::GET,
                "/rest/api/2/groups/picker?query=&maxResults=1000000",
                None,
            )
            .await
            .map_err(|f| f.target_error())?;
        let names: HashMap<String, String> = v
            .get("groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| g.get("name").and_then(Value::as_str))
            .map(|n| (lower(n), n.to_string()))
            .collect();
        let total = v.get("total").and_then(Value::as_u64).unwrap_or(0);
        if total > names.len() as u64 {
            return Ok(None);
        }
        Ok(Some(names))
    }

    /// Keep the run's lists up to date with an operation and its outcome.
    pub(super) fn follow(&self, t: &JiraTarget, op: &TargetOp, outcome: &Outcome) {
        let applied = matches!(outcome, Outcome::Applied { .. });
        let gone = applied || matches!(outcome, Outcome::NotFound { .. });
        match op {
            TargetOp::CreateUser { user } => match outcome {
                Outcome::Applied {
                    target_id: Some(key),
                } => self.put_user(key, user, t),
                _ => self.mark(format!("u:{}", lower(&user.user_name))),
            },
            TargetOp::UpdateUser {
                target_id, after, ..
            } if applied => self.put_user(target_id, after, t),
            TargetOp::DeleteUser { target_id } if gone => {
                if let Ok(Decision::Listed(l)) = self.users.lock().as_deref_mut() {
                    l.remove(target_id);
                }
            }
            TargetOp::CreateGroup { group, .. } => match outcome {
                Outcome::Applied {
                    target_id: Some(name),
                } => {
                    if let Ok(Decision::Listed(g)) = self.groups.lock().as_deref_mut() {
                        g.insert(lower(name), name.clone());
                    }
                }
                _ => self.mark(format!("g:{}", lower(&group.display_name))),
            },
            TargetOp::DeleteGroup { target_id } if gone => {
                if let Ok(Decision::Listed(g)) = self.groups.lock().as_deref_mut() {
                    g.remove(&lower(target_id));
                }
            }
            _ => {}
        }
    }

    fn put_user(&self, key: &str, user: &User, t: &JiraTarget) {
        if let Ok(Decision::Listed(l)) = self.users.lock().as_deref_mut() {
            let u = super::users::project(user.clone(), t.cfg.properties);
            l.put(entry(key, &u.user_name, u.primary_email()));
        }
    }

    fn mark(&self, tag: String) {
        if let Ok(mut u) = self.uncertain.lock() {
            u.insert(tag);
        }
    }

    /// The run is over: its lists are let go; the next run decides again.
    pub(super) fn end_run(&self) {
        self.expect(0, 0);
        if let Ok(mut d) = self.users.lock() {
            *d = Decision::Undecided;
        }
        if let Ok(mut d) = self.groups.lock() {
            *d = Decision::Undecided;
        }
        if let Ok(mut u) = self.uncertain.lock() {
            u.clear();
        }
    }
}
