//! `idsync login --source S --subject ID [--claims FILE]`: what a login through single sign-on
//! does, without the IdP: the directory updated from the claims (only those given), a disabled
//! or unscoped user refused with the reason, the user's flows run for that user, and for each
//! flow the group names the product would receive. It really does it (like `idsync
//! provision`): to check a source and its flows before SSO is live, or to bring someone in
//! ahead of their first login.

use crate::{EXIT_CONFIG, EXIT_OPS_FAILED, EXIT_REFUSED};
use anyhow::Context as _;
use idsync_engine::{FlowRun, Login, LoginDecision, Runtime};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

/// The claims file: `{"attributes": {...}, "groups": [...], "groups_overage": false}`, the
/// attributes in directory names; without `groups` the login carries no groups claim.
fn read_claims(path: &Path, login: &mut Login) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the claims file {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let Value::Object(mut o) = v else {
        anyhow::bail!(
            "{}: expected an object with attributes, groups, groups_overage",
            path.display()
        );
    };
    for k in o.keys() {
        if !["attributes", "groups", "groups_overage"].contains(&k.as_str()) {
            anyhow::bail!(
                "{}: unknown key {k:?} (expected attributes, groups, groups_overage)",
                path.display()
            );
        }
    }
    let attributes = match o.remove("attributes") {
        None => serde_json::Map::new(),
        Some(Value::Object(a)) => a,
        Some(_) => anyhow::bail!("{}: attributes must be an object", path.display()),
    };
    let groups = match o.remove("groups") {
        None => None,
        Some(Value::Array(a)) => Some(
            a.into_iter()
                .map(|g| match g {
                    Value::String(s) => Ok(s),
                    other => anyhow::bail!(
                        "{}: a group id must be a string, not {other}",
                        path.display()
                    ),
                })
                .collect::<anyhow::Result<Vec<String>>>()?,
        ),
        Some(_) => anyhow::bail!("{}: groups must be an array of ids", path.display()),
    };
    let overage = match o.remove("groups_overage") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => anyhow::bail!("{}: groups_overage must be true or false", path.display()),
    };
    login.attributes = attributes;
    login.groups = groups;
    login.groups_overage = overage;
    Ok(())
}

pub async fn login(
    rt: &Arc<Runtime>,
    source: &str,
    subject: &str,
    claims: Option<&Path>,
    as_json: bool,
) -> anyhow::Result<u8> {
    let mut request = Login {
        source: source.to_string(),
        subject: subject.to_string(),
        ..Login::default()
    };
    if let Some(p) = claims {
        if let Err(e) = read_claims(p, &mut request) {
            eprintln!("error: {e:#}");
            return Ok(EXIT_CONFIG);
        }
    }
    let outcome = match rt.login(request).await {
        Ok(o) => o,
        Err(idsync_engine::LoginError::Engine(e)) => return Err(e.into()),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_CONFIG);
        }
    };
    let mut code = 0;
    let run_text = |r: &FlowRun| match r {
        FlowRun::Finished { run_id, status } => format!("run {run_id} {}", status.as_str()),
        FlowRun::Failed { error } => format!("not run: {error}"),
        FlowRun::Running => "still running when the login went on (login_wait)".to_string(),
    };
    if as_json {
        let flows: Vec<Value> = match &outcome.decision {
            LoginDecision::Allowed { flows } => flows
                .iter()
                .map(|f| {
                    json!({"flow": f.flow, "target": f.target, "groups": f.groups, "run": match &f.run {
                        FlowRun::Finished { run_id, status } => json!({"state": "finished", "run_id": run_id, "status": status.as_str()}),
                        FlowRun::Failed { error } => json!({"state": "failed", "error": error}),
                        FlowRun::Running => json!({"state": "running"}),
                    }})
                })
                .collect(),
            LoginDecision::Refused { .. } => Vec::new(),
        };
        let refused = match &outcome.decision {
            LoginDecision::Refused { reason } => Some(reason.clone()),
            LoginDecision::Allowed { .. } => None,
        };
        out!(
            "{}",
            json!({
                "allowed": refused.is_none(),
                "refused": refused,
                "user": outcome.user.as_ref().map(|u| json!({"userName": u.user_name, "sourceId": u.source_id, "active": u.active})),
                "created": outcome.created,
                "flows": flows,
                "warnings": outcome.warnings,
            })
        );
    } else {
        if let Some(u) = &outcome.user {
            out!(
                "user:    {} (source id {}{})",
                u.user_name,
                u.source_id,
                if outcome.created {
                    ", new: created just in time"
                } else {
                    ""
                }
            );
        }
        match &outcome.decision {
            LoginDecision::Refused { reason } => out!("login:   REFUSED: {reason}"),
            LoginDecision::Allowed { flows } => {
                out!("login:   allowed");
                for f in flows {
                    let groups = if f.groups.is_empty() {
                        "(none)".to_string()
                    } else {
                        f.groups.join(", ")
                    };
                    out!(
                        "flow {} -> {}: groups {groups}; {}",
                        f.flow,
                        f.target,
                        run_text(&f.run)
                    );
                }
            }
        }
        for w in &outcome.warnings {
            out!("warning: {w}");
        }
    }
    match &outcome.decision {
        LoginDecision::Refused { .. } => code = EXIT_REFUSED,
        LoginDecision::Allowed { flows } => {
            let bad = flows.iter().any(|f| match &f.run {
                FlowRun::Finished { status, .. } => *status != idsync_store::RunStatus::Succeeded,
                FlowRun::Failed { .. } => true,
                FlowRun::Running => false,
            });
            if bad {
                code = EXIT_OPS_FAILED;
            }
        }
    }
    // Runs still going finish before the command exits.
    rt.login_runs_done().await;
    Ok(code)
}
