//! Licence seats (decision 0039): a plan that creates users into a target that counts them
//! against a licence says how many seats are left, and holds the creations over them (with
//! their memberships) until an admin approves or rejects them, as the deletion threshold holds
//! deprovisions.

use crate::run::Failure;
use idsync_core::{Operation, Plan, Target};
use std::collections::BTreeSet;

/// Hold the creations the target has no seats for; `approved` are creations an admin let
/// through (they still take seats). Notes the seats left; warns of what it held.
pub(crate) async fn hold_over_seats(
    target: &dyn Target,
    plan: &mut Plan,
    approved: &BTreeSet<String>,
) -> Result<Vec<Operation>, Failure> {
    let takers = plan.seat_takers(&BTreeSet::new());
    if takers == 0 {
        return Ok(Vec::new());
    }
    let Some(seats) = target.seats().await.map_err(Failure::Target)? else {
        return Ok(Vec::new());
    };
    let unapproved = plan.seat_takers(approved);
    let let_through = takers - unapproved;
    let remaining = usize::try_from(seats.remaining).unwrap_or(usize::MAX);
    let room = remaining.saturating_sub(let_through);
    plan.notes.push(format!(
        "{}: {} of {} licence seats left; this plan creates {takers} active users, who take one each{}",
        seats.application,
        seats.remaining,
        seats.total,
        if let_through > 0 {
            format!(" ({let_through} of them approved over the limit)")
        } else {
            String::new()
        }
    ));
    if unapproved <= room {
        return Ok(Vec::new());
    }
    let held = plan.hold_creations(room, approved);
    let over = unapproved - room;
    tracing::warn!(
        application = %seats.application,
        remaining = seats.remaining,
        total = seats.total,
        held = over,
        "creations over the licence seats held"
    );
    plan.warnings.push(format!(
        "{unapproved} users to create but {} has {} of {} licence seats left: the {over} over the limit (and their memberships) are held until `idsync approve` or `idsync reject`",
        seats.application, seats.remaining, seats.total
    ));
    Ok(held)
}
