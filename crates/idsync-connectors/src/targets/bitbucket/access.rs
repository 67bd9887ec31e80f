//! Disabling in Bitbucket, which has no deactivation call: the user leaves the groups that
//! grant access (configured, or the groups holding `LICENSED_USER` or more in the global
//! permissions), which are first recorded in the user's settings (`users/{slug}/settings`)
//! so that a returning user gets them back (and a run that stops half-way loses nothing).

use super::{BitbucketTarget, API};
use crate::targets::atlassian_dc::client::enc;
use crate::targets::atlassian_dc::Failure;
use reqwest::Method;
use serde_json::{json, Value};

/// Global permissions that hold a licence seat (`LICENSED_USER` and above).
const GRANTING: &[&str] = &["LICENSED_USER", "PROJECT_CREATE", "ADMIN", "SYS_ADMIN"];

/// The groups that grant access, and where they come from (for the plan's note).
pub(super) async fn groups(t: &BitbucketTarget) -> Result<&(Vec<String>, &'static str), Failure> {
    t.access
        .get_or_try_init(|| async {
            if !t.cfg.access_groups.is_empty() {
                return Ok((t.cfg.access_groups.clone(), "as configured"));
            }
            let granted = t.list("admin/permissions/groups").await?;
            let mut out: Vec<String> = granted
                .iter()
                .filter(|p| {
                    p.get("permission")
                        .and_then(Value::as_str)
                        .is_some_and(|p| GRANTING.contains(&p))
                })
                .filter_map(|p| p.get("group")?.get("name")?.as_str().map(str::to_string))
                .collect();
            out.sort();
            out.dedup();
            Ok((out, "the groups granted LICENSED_USER or more"))
        })
        .await
}

/// A user's slug: as Bitbucket gave it in a listing, else as it makes one for an
/// internal-directory user (the lower-cased username, characters a URL path cannot hold
/// replaced).
fn slug(t: &BitbucketTarget, name: &str) -> String {
    if let Some(s) = t
        .index
        .lock()
        .ok()
        .and_then(|i| i.slug_of.get(&name.to_lowercase()).cloned())
    {
        return s;
    }
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

fn settings_path(t: &BitbucketTarget, name: &str) -> String {
    format!("{API}/users/{}/settings", enc(&slug(t, name)))
}

/// The groups recorded as removed from this user (`None`: not disabled by idsync).
pub(super) async fn recorded(
    t: &BitbucketTarget,
    name: &str,
) -> Result<Option<Vec<String>>, Failure> {
    let v = match t
        .client
        .call(Method::GET, &settings_path(t, name), None)
        .await
    {
        Ok(v) => v,
        Err(f) if f.status == Some(404) => return Ok(None),
        Err(f) => return Err(f),
    };
    let Some(text) = v.get(&t.cfg.record_key).and_then(Value::as_str) else {
        return Ok(None);
    };
    // A value changed by hand into something else: the user is disabled, with nothing to give
    // back.
    Ok(Some(
        serde_json::from_str::<Vec<String>>(text).unwrap_or_default(),
    ))
}

async fn write_record(
    t: &BitbucketTarget,
    name: &str,
    groups: Option<&[String]>,
) -> Result<(), Failure> {
    let value = match groups {
        Some(g) => json!(json!(g).to_string()),
        None => Value::Null,
    };
    let mut body = serde_json::Map::new();
    body.insert(t.cfg.record_key.clone(), value);
    t.client
        .call(
            Method::POST,
            &settings_path(t, name),
            Some(&Value::Object(body)),
        )
        .await
        .map(|_| ())
}

/// Disable (`active == false`): record and remove the access groups the user is in. Enable:
/// add the recorded groups back (one `add-groups` call) and clear the record.
pub(super) async fn set(t: &BitbucketTarget, name: &str, active: bool) -> Result<(), Failure> {
    let recorded = recorded(t, name).await?;
    if active {
        let Some(back) = recorded else {
            return Ok(());
        };
        let existing = t.group_names().await?;
        let back: Vec<String> = back
            .into_iter()
            // A group deleted meanwhile grants nothing any more.
            .filter(|g| existing.contains_key(&g.to_lowercase()))
            .collect();
        t.add_groups(name, &back).await?;
        return write_record(t, name, None).await;
    }
    let (access, _) = groups(t).await?;
    let held: Vec<String> = t
        .list(&format!("admin/users/more-members?context={}", enc(name)))
        .await?
        .iter()
        .filter_map(|g| g.get("name").and_then(Value::as_str))
        .filter(|n| access.iter().any(|a| a.eq_ignore_ascii_case(n)))
        .map(str::to_string)
        .collect();
    let mut record = recorded.unwrap_or_default();
    for g in &held {
        if !record.iter().any(|r| r.eq_ignore_ascii_case(g)) {
            record.push(g.clone());
        }
    }
    write_record(t, name, Some(&record)).await?;
    for g in &held {
        t.remove_group(name, g).await?;
    }
    Ok(())
}
