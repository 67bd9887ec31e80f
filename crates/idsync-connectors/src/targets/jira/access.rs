//! Disabling where Jira has no call for it (before 8.3, or `deactivation = "groups"`): the
//! user leaves the groups that grant application access (configured, or the groups of
//! Jira's application roles), which are recorded first in the user's property so that a
//! returning user gets them back (and a run that stops half-way loses nothing).

use super::users;
use super::JiraTarget;
use crate::targets::atlassian_dc::Failure;
use idsync_core::User;
use reqwest::Method;
use serde_json::Value;

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

/// The licence seats a new user takes: of the application roles it joins (those selected by
/// default, and those whose groups the target's `default_groups` name), the one with a seat
/// limit and the fewest seats left. `None` when every such role is unlimited.
pub(super) async fn seats(t: &JiraTarget) -> Result<Option<idsync_core::Seats>, Failure> {
    let roles = t
        .client
        .call(Method::GET, "/rest/api/2/applicationrole", None)
        .await?;
    let names = |r: &Value, field: &str| -> Vec<String> {
        r.get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(str::to_lowercase))
            .collect()
    };
    let mut best: Option<idsync_core::Seats> = None;
    for r in roles.as_array().into_iter().flatten() {
        let joins = r.get("selectedByDefault").and_then(Value::as_bool) == Some(true)
            || names(r, "groups")
                .iter()
                .any(|g| t.cfg.default_groups.iter().any(|d| d.to_lowercase() == *g));
        let unlimited = r.get("hasUnlimitedSeats").and_then(Value::as_bool) == Some(true);
        let total = r.get("numberOfSeats").and_then(Value::as_i64).unwrap_or(-1);
        if !joins || unlimited || total < 0 {
            continue;
        }
        let remaining = r
            .get("remainingSeats")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .max(0);
        let seats = idsync_core::Seats {
            application: r
                .get("name")
                .or_else(|| r.get("key"))
                .and_then(Value::as_str)
                .unwrap_or("an application role")
                .to_string(),
            total: u64::try_from(total).unwrap_or(0),
            remaining: u64::try_from(remaining).unwrap_or(0),
        };
        if best.as_ref().is_none_or(|b| seats.remaining < b.remaining) {
            best = Some(seats);
        }
    }
    Ok(best)
}
