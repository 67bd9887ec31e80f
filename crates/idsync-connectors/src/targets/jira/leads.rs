//! Deleting or deactivating a user who leads projects or components (seed 002). Jira refuses
//! to delete a project lead (the lead is the project's default assignee) and leaves a
//! component without its lead; it refuses to deactivate either (its user service's
//! `validateUpdateUser`, which `PUT /user` with `"active": false` goes through from 8.3,
//! decision 0039). With `lead_fallback`, the target hands every project and component the
//! user leads to that user (`PUT /project/{key}` with `lead`, `PUT /component/{id}` with
//! `leadUserName`): before a deletion, and after a refused deactivation, which is then sent
//! again; without it, a refusal says what the user leads and which setting lets idsync go on.

use super::JiraTarget;
use crate::targets::atlassian_dc::client::enc;
use crate::targets::atlassian_dc::Failure;
use reqwest::Method;
use serde_json::{json, Value};

/// Whether a project or component JSON's `lead` is the user with this key.
fn led_by(v: &Value, key: &str) -> bool {
    v.get("lead")
        .and_then(|l| l.get("key"))
        .and_then(Value::as_str)
        .is_some_and(|k| k == key)
}

fn project_key(p: &Value) -> Option<&str> {
    p.get("key").and_then(Value::as_str)
}

/// Every project, with its lead.
async fn projects(t: &JiraTarget) -> Result<Vec<Value>, Failure> {
    let v = t
        .client
        .call(Method::GET, "/rest/api/2/project?expand=lead", None)
        .await?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// The keys of the projects the user with this key leads.
pub(super) async fn led_projects(t: &JiraTarget, key: &str) -> Result<Vec<String>, Failure> {
    Ok(projects(t)
        .await?
        .iter()
        .filter(|p| led_by(p, key))
        .filter_map(project_key)
        .map(str::to_string)
        .collect())
}

/// Hand the projects and components the user leads to `fallback`.
async fn hand_over(t: &JiraTarget, key: &str, fallback: &str) -> Result<(), Failure> {
    for p in projects(t).await? {
        let Some(pkey) = project_key(&p) else {
            continue;
        };
        if led_by(&p, key) {
            let path = format!("/rest/api/2/project/{}", enc(pkey));
            t.client
                .call(Method::PUT, &path, Some(&json!({"lead": fallback})))
                .await
                .map_err(|f| lead_refused(f, "project", pkey, fallback))?;
        }
        let path = format!("/rest/api/2/project/{}/components", enc(pkey));
        let components = t.client.call(Method::GET, &path, None).await?;
        for c in components.as_array().into_iter().flatten() {
            let Some(id) = c.get("id").and_then(Value::as_str) else {
                continue;
            };
            if led_by(c, key) {
                let path = format!("/rest/api/2/component/{}", enc(id));
                t.client
                    .call(Method::PUT, &path, Some(&json!({"leadUserName": fallback})))
                    .await
                    .map_err(|f| lead_refused(f, "component", id, fallback))?;
            }
        }
    }
    Ok(())
}

fn lead_refused(f: Failure, what: &str, which: &str, fallback: &str) -> Failure {
    Failure {
        reason: format!(
            "Jira refused {fallback:?} (lead_fallback) as the lead of {what} {which}: {}",
            f.reason
        ),
        ..f
    }
}

/// What the user with this key leads: the keys of its projects, and the components by
/// project (`OPS (Backend, Web)`).
async fn led(t: &JiraTarget, key: &str) -> Result<(Vec<String>, Vec<String>), Failure> {
    let mut projects_led = Vec::new();
    let mut components_led = Vec::new();
    for p in projects(t).await? {
        let Some(pkey) = project_key(&p) else {
            continue;
        };
        if led_by(&p, key) {
            projects_led.push(pkey.to_string());
        }
        let path = format!("/rest/api/2/project/{}/components", enc(pkey));
        let components = t.client.call(Method::GET, &path, None).await?;
        let names: Vec<&str> = components
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| led_by(c, key))
            .filter_map(|c| c.get("name").and_then(Value::as_str))
            .collect();
        if !names.is_empty() {
            components_led.push(format!("{pkey} ({})", names.join(", ")));
        }
    }
    Ok((projects_led, components_led))
}

/// `PUT /user` with `"active": false`. Jira refuses to deactivate a project or component
/// lead: with `lead_fallback`, what the user leads is handed over and the deactivation sent
/// again; without, the refusal names what the user leads and the setting to use.
pub(super) async fn deactivate(t: &JiraTarget, key: &str) -> Result<(), Failure> {
    let path = format!("/rest/api/2/user?key={}", enc(key));
    let body = json!({"active": false});
    let refused = match t.client.call(Method::PUT, &path, Some(&body)).await {
        Ok(_) => return Ok(()),
        Err(f) if f.status == Some(400) && f.says("lead") => f,
        Err(f) => return Err(f),
    };
    if let Some(fallback) = t.cfg.lead_fallback.as_deref() {
        hand_over(t, key, fallback).await?;
        return t
            .client
            .call(Method::PUT, &path, Some(&body))
            .await
            .map(|_| ());
    }
    let (projects_led, components_led) = led(t, key).await.unwrap_or_default();
    let mut what = Vec::new();
    if !projects_led.is_empty() {
        what.push(format!("the projects {}", projects_led.join(", ")));
    }
    if !components_led.is_empty() {
        what.push(format!(
            "components of the projects {}",
            components_led.join(", ")
        ));
    }
    if what.is_empty() {
        return Err(refused);
    }
    let name = t.username(key).await.unwrap_or_else(|_| key.to_string());
    Err(Failure {
        reason: format!(
            "Jira refuses to deactivate {name}: it leads {}; set lead_fallback on the target to the user who takes them over ({})",
            what.join(" and "),
            refused.reason
        ),
        ..refused
    })
}

/// `DELETE /user`, after handing over what the user leads (with `lead_fallback`); a refusal
/// names the projects the user leads.
pub(super) async fn delete_user(t: &JiraTarget, key: &str) -> Result<(), Failure> {
    if let Some(fallback) = t.cfg.lead_fallback.as_deref() {
        hand_over(t, key, fallback).await?;
    }
    let path = format!("/rest/api/2/user?key={}", enc(key));
    match t.client.call(Method::DELETE, &path, None).await {
        Ok(_) => Ok(()),
        Err(f) if f.status == Some(400) => {
            let led = led_projects(t, key).await.unwrap_or_default();
            if led.is_empty() {
                return Err(f);
            }
            let name = t.username(key).await.unwrap_or_else(|_| key.to_string());
            Err(Failure {
                reason: format!(
                    "Jira refuses to delete {name}: it leads the projects {}; set lead_fallback on the target to the user who takes them over ({})",
                    led.join(", "),
                    f.reason
                ),
                ..f
            })
        }
        Err(f) => Err(f),
    }
}
