//! A flow's `inactive_after` in a run: users without a login for longer are taken out of the
//! desired state, so the plan deprovisions them by the flow's policy with the reason in words
//! (decision 0043).

use crate::run::{Failure, RunContext};
use idsync_core::inactivity::apply_inactivity;
use idsync_core::DesiredState;
use std::collections::BTreeMap;

/// Take the flow's inactive users out of `desired`; returns them with why. Users idsync has
/// not counted yet are counted from now (a dry run counts nobody, and treats them the same).
pub(crate) async fn inactive_users(
    ctx: &RunContext<'_>,
    desired: &mut DesiredState,
    dry_run: bool,
) -> Result<BTreeMap<String, String>, Failure> {
    let Some(rules) = &ctx.flow.inactivity else {
        return Ok(BTreeMap::new());
    };
    let now = ctx.clock.now_ms();
    let activity = ctx.store.activity(&ctx.flow.directory).await?;
    if !dry_run {
        let uncounted: Vec<&str> = desired
            .users
            .keys()
            .filter(|k| !activity.contains_key(*k))
            .map(String::as_str)
            .collect();
        ctx.store
            .count_users(&ctx.flow.directory, &uncounted, now)
            .await?;
    }
    let out = apply_inactivity(desired, &activity, rules, now);
    if !out.is_empty() {
        tracing::info!(
            users = out.len(),
            after_days = rules.after_days,
            "users without a recent login are deprovisioned"
        );
    }
    Ok(out)
}
