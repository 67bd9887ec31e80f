//! Disabling where Jira has no call for it (before 8.3, or `deactivation = "groups"`): the
//! user leaves the groups that grant application access (configured, or the groups of
//! Jira's application roles), which are recorded first in the user's property so that a
//! returning user gets them back (and a run that stops half-way loses nothing). And the
//! licence seats of Jira's application roles, with the groups that grant them and what
//! users hold (decision 0039).

use super::users;
use super::JiraTarget;
use crate::targets::atlassian_dc::Failure;
use futures_util::stream::{self, StreamExt};
use idsync_core::{SeatHolder, SeatRole, User};
use reqwest::Method;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// The groups that grant application access.
pub(super) async fn groups(t: &JiraTarget) -> Result<&Vec<String>, Failure> {
    t.access
        .get_or_try_init(|| async {
            if !t.cfg.access_groups.is_empty() {
                return Ok(t.cfg.access_groups.clone());
            }
            let roles = t
                .client
                .call(Method::GET, "/rest/api/2/applicationrole", None)
                .await?;
            let mut out: Vec<String> = roles
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| {
                    r.get("groups")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect();
            out.sort();
            out.dedup();
            Ok(out)
        })
        .await
}

/// Disable (`active == false`): record and remove the access groups the user is in. Enable:
/// add the recorded groups back and clear the record.
pub(super) async fn set(t: &JiraTarget, key: &str, u: &User, active: bool) -> Result<(), Failure> {
    let attrs = users::attributes(u);
    let (_, recorded) = users::read_property(t.read_property(key).await?.as_ref());
    let name = t.username(key).await?;
    if active {
        for g in recorded.iter().filter(|g| !g.is_empty()) {
            match t.add_to_group(g, &name).await {
                // A group deleted meanwhile grants nothing any more.
                Err(f) if f.status == Some(404) && f.says("group does not exist") => {}
                other => other?,
            }
        }
        return t
            .write_property(key, users::property_value(&attrs, &[]))
            .await;
    }
    let access = groups(t).await?;
    let v = t.get_user(key, true).await?;
    let held: Vec<String> = v
        .get("groups")
        .and_then(|g| g.get("items"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.get("name").and_then(Value::as_str))
        .filter(|n| access.iter().any(|a| a.eq_ignore_ascii_case(n)))
        .map(str::to_string)
        .collect();
    let mut record = recorded;
    for g in &held {
        if !record.iter().any(|r| r.eq_ignore_ascii_case(g)) {
            record.push(g.clone());
        }
    }
    if record.is_empty() {
        // Nothing grants this user access: record that it was disabled all the same.
        record.push(String::new());
    }
    t.write_property(key, users::property_value(&attrs, &record))
        .await?;
    for g in &held {
        t.remove_from_group(g, &name).await?;
    }
    Ok(())
}

/// The application roles with a seat limit: the seats left, the groups that grant each
/// (lower-cased), and whether a new user joins it (selected by default, or one of the
/// target's `default_groups` grants it).
pub(super) async fn seat_roles(t: &JiraTarget) -> Result<Vec<SeatRole>, Failure> {
    let roles = t
        .client
        .call(Method::GET, "/rest/api/2/applicationrole", None)
        .await?;
    let mut out = Vec::new();
    for r in roles.as_array().into_iter().flatten() {
        let groups: BTreeSet<String> = r
            .get("groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(str::to_lowercase))
            .collect();
        let new_users = r.get("selectedByDefault").and_then(Value::as_bool) == Some(true)
            || t.cfg
                .default_groups
                .iter()
                .any(|d| groups.contains(&d.to_lowercase()));
        let unlimited = r.get("hasUnlimitedSeats").and_then(Value::as_bool) == Some(true);
        let total = r.get("numberOfSeats").and_then(Value::as_i64).unwrap_or(-1);
        if unlimited || total < 0 {
            continue;
        }
        let remaining = r
            .get("remainingSeats")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .max(0);
        out.push(SeatRole {
            application: r
                .get("name")
                .or_else(|| r.get("key"))
                .and_then(Value::as_str)
                .unwrap_or("an application role")
                .to_string(),
            total: u64::try_from(total).unwrap_or(0),
            remaining: u64::try_from(remaining).unwrap_or(0),
            groups,
            new_users,
        });
    }
    Ok(out)
}

/// What these users (by key) hold of the roles with a seat limit: an active user holds a
/// role when one of its groups grants it; a user gets back, when enabled, the roles of the
/// groups it is in (deactivated with `"active"`) or of those recorded when its access was
/// removed (read from its property only for an active user who holds none). One read per
/// user; a user Jira does not know is left out.
pub(super) async fn seat_holders(
    t: &JiraTarget,
    keys: &[String],
) -> Result<HashMap<String, SeatHolder>, Failure> {
    let roles = seat_roles(t).await?;
    let uses_active = t.uses_active().await?;
    let roles = &roles;
    let read: Vec<Result<Option<(String, SeatHolder)>, Failure>> = stream::iter(keys.to_vec())
        .map(|key: String| async move {
            let v = match t.get_user(&key, true).await {
                Ok(v) => v,
                Err(f) if f.status == Some(404) => return Ok(None),
                Err(f) => return Err(f),
            };
            let active = v.get("active").and_then(Value::as_bool).unwrap_or(true);
            let groups: BTreeSet<String> = v
                .get("groups")
                .and_then(|g| g.get("items"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|g| g.get("name").and_then(Value::as_str))
                .map(str::to_lowercase)
                .collect();
            let holds: BTreeSet<String> = roles
                .iter()
                .filter(|r| active && r.groups.iter().any(|g| groups.contains(g)))
                .map(|r| r.application.clone())
                .collect();
            let returns_with = if !active {
                groups
            } else if !uses_active && holds.is_empty() {
                let (_, removed) = users::read_property(t.read_property(&key).await?.as_ref());
                removed.iter().map(|g| g.to_lowercase()).collect()
            } else {
                BTreeSet::new()
            };
            Ok(Some((
                key,
                SeatHolder {
                    active,
                    holds,
                    returns_with,
                },
            )))
        })
        .buffered(8)
        .collect()
        .await;
    let mut out = HashMap::new();
    for r in read {
        if let Some((k, h)) = r? {
            out.insert(k, h);
        }
    }
    Ok(out)
}
