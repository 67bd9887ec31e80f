//! `idsync plan`: what a sync would do, each operation with its reason.

use idsync_engine::{Mode, Runtime};

pub async fn plan(
    rt: &Runtime,
    flow: &str,
    json: bool,
    full: bool,
    explain: bool,
) -> anyhow::Result<u8> {
    let mode = if full { Mode::Reconcile } else { Mode::Full };
    let report = rt
        .sync(flow, mode, true, &idsync_engine::NoProgress)
        .await?;
    if explain && !json {
        for op in &report.plan.operations {
            out!("{}", op.describe());
            for line in explain_op(op) {
                out!("    {line}");
            }
        }
        for n in &report.plan.notes {
            out!("note: {n}");
        }
        for w in &report.plan.warnings {
            out!("warning: {w}");
        }
        out!("{} operation(s)", report.plan.len());
        return Ok(0);
    }
    print_plan(rt, &report, json).await?;
    Ok(0)
}

/// The details of one operation, for `plan --explain`.
fn explain_op(op: &idsync_core::Operation) -> Vec<String> {
    use idsync_core::Action;
    let show = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "(empty)".to_string(),
        Some(v) => v.to_string(),
    };
    let diff = |before: serde_json::Value, after: serde_json::Value| -> Vec<String> {
        let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
            return Vec::new();
        };
        let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
        keys.into_iter()
            .filter(|k| *k != "id" && b.get(*k) != a.get(*k))
            .map(|k| format!("{k}: {} -> {}", show(b.get(k)), show(a.get(k))))
            .collect()
    };
    let value = |r: Result<serde_json::Value, serde_json::Error>| r.unwrap_or_default();
    match &op.action {
        Action::CreateUser { user } => {
            vec![format!("sends {}", value(serde_json::to_value(user)))]
        }
        Action::CreateGroup { group, members } => {
            let mut lines = vec![format!("sends {}", value(serde_json::to_value(group)))];
            if !members.is_empty() {
                let shown: Vec<&str> = members.iter().take(20).map(|u| &**u).collect();
                let more = members.len().saturating_sub(shown.len());
                lines.push(format!(
                    "with its first members: {}{}",
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ));
            }
            lines
        }
        Action::UpdateUser { before, after, .. } | Action::DisableUser { before, after } => diff(
            value(serde_json::to_value(before)),
            value(serde_json::to_value(after)),
        ),
        Action::UpdateGroup { before, after, .. } => diff(
            value(serde_json::to_value(before)),
            value(serde_json::to_value(after)),
        ),
        Action::AddMembers { users, .. } | Action::RemoveMembers { users, .. } => {
            let shown: Vec<&str> = users.iter().take(20).map(|u| &**u).collect();
            let more = users.len().saturating_sub(shown.len());
            vec![format!(
                "users: {}{}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )]
        }
        Action::AddChildGroups { groups, .. } | Action::RemoveChildGroups { groups, .. } => {
            vec![format!("groups: {}", groups.join(", "))]
        }
        Action::DeleteUser { .. } | Action::DeleteGroup { .. } => Vec::new(),
    }
}

/// The plan in words (or JSON), and the deprovisions a hold keeps out of it: how many, and how
/// to answer.
pub async fn print_plan(
    rt: &Runtime,
    report: &idsync_engine::RunReport,
    json: bool,
) -> anyhow::Result<()> {
    let plan = &report.plan;
    if json {
        out!("{}", serde_json::to_string_pretty(plan)?);
        return Ok(());
    }
    for op in &plan.operations {
        out!("{}", op.describe());
    }
    for n in &plan.notes {
        out!("note: {n}");
    }
    for w in &plan.warnings {
        out!("warning: {w}");
    }
    let held = report.count("held");
    if held > 0 {
        let answer = match rt.store.pending_hold(&report.flow).await? {
            Some(p) => format!(
                "run {} waits for an answer: `idsync approve {}` deprovisions them, `idsync reject {}` keeps them",
                p.id, p.id, p.id
            ),
            None => "a sync will hold them and wait for `idsync approve RUN` or `idsync reject RUN` (RUN as that sync prints it)".to_string(),
        };
        out!("{held} deprovision(s) held by the flow's deletion threshold, not in this plan: {answer}");
    }
    if plan.is_empty() {
        if held > 0 {
            out!("nothing else to do: the target is up to date apart from the held deprovisions");
        } else {
            out!("nothing to do: the target is up to date");
        }
        return Ok(());
    }
    let counts: Vec<String> = plan
        .counts()
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    out!("{} operation(s): {}", plan.len(), counts.join(", "));
    Ok(())
}
