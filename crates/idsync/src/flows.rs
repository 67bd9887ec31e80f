//! Commands that run flows: `sync`, `approve`, `reject`, `provision`. A SIGTERM or Ctrl-C
//! during a run stops it after the operations in flight (see `signals`).

use crate::signals::until_stopped;
use crate::{EXIT_HELD, EXIT_OPS_FAILED};
use idsync_engine::{Mode, Runtime};
use idsync_store::RunStatus;

/// The exit code of a finished run.
fn exit_code(status: RunStatus) -> u8 {
    match status {
        RunStatus::Succeeded => 0,
        RunStatus::Held => EXIT_HELD,
        _ => EXIT_OPS_FAILED,
    }
}

/// Say what a held run holds and how to answer.
fn report_held(report: &idsync_engine::RunReport) -> anyhow::Result<()> {
    if report.status != RunStatus::Held {
        return Ok(());
    }
    for w in &report.plan.warnings {
        out!("warning: {w}");
    }
    let deprovisions = report.count("disable_user.held") + report.count("delete_user.held");
    let creations = report.count("create_user.held");
    // Returning users and existing users' memberships held for the licence seats.
    let grants = report.count("held") - deprovisions - creations;
    let id = &report.run_id;
    if deprovisions > 0 {
        out!(
            "{deprovisions} users were not deprovisioned: see them with `idsync log {id}`, then `idsync approve {id}` or `idsync reject {id}`"
        );
    }
    if creations > 0 {
        out!(
            "{creations} users were not created (no licence seats left for them): see them with `idsync log {id}`, then `idsync approve {id}` or `idsync reject {id}`"
        );
    }
    if grants > 0 {
        out!(
            "{grants} users were not given application access (no licence seats left for them): see them with `idsync log {id}`, then `idsync approve {id}` or `idsync reject {id}`"
        );
    }
    Ok(())
}

pub async fn sync(rt: &Runtime, flow: &str, dry_run: bool, full: bool) -> anyhow::Result<u8> {
    let mode = if full { Mode::Reconcile } else { Mode::Full };
    let bar = crate::progress::Bar::new(!dry_run);
    let report = until_stopped(rt, rt.sync(flow, mode, dry_run, &bar)).await;
    bar.clear();
    let report = report?;
    if dry_run {
        crate::plan::print_plan(rt, &report, false).await?;
        return Ok(0);
    }
    out!(
        "run {}: {} ({} planned, {} applied, {} failed) in {:.1}s",
        report.run_id,
        report.status.as_str(),
        report.count("planned"),
        report.count("applied"),
        report.count("failed"),
        (report.ended_ms - report.started_ms) as f64 / 1000.0
    );
    report_held(&report)?;
    if report.count("failed") > 0 {
        out!("see the failures with: idsync log {}", report.run_id);
    }
    Ok(exit_code(report.status))
}

pub async fn approve(rt: &Runtime, run: &str) -> anyhow::Result<u8> {
    let bar = crate::progress::Bar::new(true);
    let report = until_stopped(rt, rt.approve(run, &bar)).await;
    bar.clear();
    let report = report?;
    out!(
        "run {} approved: run {} deprovisioned {} users ({} planned, {} applied, {} failed): {}",
        run,
        report.run_id,
        report.count("disable_user.applied") + report.count("delete_user.applied"),
        report.count("planned"),
        report.count("applied"),
        report.count("failed"),
        report.status.as_str()
    );
    let created = report.count("create_user.applied");
    if created > 0 {
        out!("run {}: created {created} users", report.run_id);
    }
    report_held(&report)?;
    Ok(exit_code(report.status))
}

pub async fn reject(rt: &Runtime, run: &str) -> anyhow::Result<u8> {
    let r = rt.reject(run).await?;
    out!(
        "run {} rejected: flow {} deprovisions or creates none of the {} users it held; later runs judge their deprovisions against the threshold (and their creations against the licence seats) again",
        r.id,
        r.flow,
        r.counts.0.get("held").copied().unwrap_or(0)
    );
    Ok(0)
}

pub async fn provision(rt: &Runtime, flow: &str, user: &str) -> anyhow::Result<u8> {
    let p = until_stopped(rt, rt.provision(flow, user, &idsync_engine::NoProgress)).await?;
    out!(
        "user:      {} (source id {}, {})",
        p.user.user_name,
        p.user.source_id,
        if p.user.active { "enabled" } else { "disabled" }
    );
    out!(
        "scope:     {}: {}",
        if p.verdict.in_scope {
            "in scope"
        } else {
            "OUT OF SCOPE"
        },
        p.verdict.reason
    );
    match &p.mapped {
        Ok(values) if values.is_empty() => {
            out!("mapping:   none: the user goes as the directory holds it")
        }
        Ok(values) => {
            for (i, (attr, v)) in values.iter().enumerate() {
                let label = if i == 0 { "mapping:" } else { "" };
                out!("{label:<10} {attr} = {v}");
            }
        }
        Err(e) => out!("mapping:   FAILED: {e}"),
    }
    match &p.target_id {
        Some(id) => out!("target:    known as {id}"),
        None => out!(
            "target:    not provisioned yet (a create first looks for an existing object by the target's matching attributes)"
        ),
    }
    if p.ops.is_empty() {
        out!("operations: none: the target is up to date for this user");
    }
    for op in &p.ops {
        out!(
            "operation: {} {}: {} -> {}{}",
            op.action,
            op.object,
            op.reason,
            op.outcome,
            op.error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    for w in &p.report.plan.warnings {
        out!("warning:   {w}");
    }
    out!("run {}: {}", p.report.run_id, p.report.status.as_str());
    Ok(exit_code(p.report.status))
}
