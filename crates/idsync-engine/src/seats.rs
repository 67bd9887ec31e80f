//! Licence seats (decision 0039): a plan that gives users application access in a target
//! that counts them against a licence says how many seats are left, and holds the grants over
//! them (creations with their memberships, returning users' enabling, existing users'
//! memberships in the groups that grant access) until an admin approves or rejects them, as
//! the deletion threshold holds deprovisions.

use crate::run::Failure;
use idsync_core::{
    Action, LedgerState, Operation, Plan, SeatGrant, SeatHolder, SeatRole, SeatTaker, Target,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Whether a plan has anything that may take a seat (so that a plan without any asks the
/// target nothing).
fn may_take_seats(plan: &Plan) -> bool {
    plan.operations.iter().any(|o| match &o.action {
        Action::CreateUser { user } => user.active,
        Action::UpdateUser { before, after, .. } => !before.active && after.active,
        Action::AddMembers { users, .. } => !users.is_empty(),
        Action::CreateGroup { members, .. } => !members.is_empty(),
        _ => false,
    })
}

/// How many of each kind, in words: "creates 6 active users, adds 2 existing users to groups
/// that grant it and enables 1 returning user".
fn describe(kinds: &BTreeMap<SeatGrant, usize>, plan_words: bool) -> String {
    let mut parts = Vec::new();
    for (grant, n) in kinds {
        let s = if *n == 1 { "" } else { "s" };
        parts.push(match (grant, plan_words) {
            (SeatGrant::Created, true) => format!("creates {n} active user{s}"),
            (SeatGrant::Added, true) => {
                format!("adds {n} existing user{s} to groups that grant it")
            }
            (SeatGrant::Returning, true) => format!("enables {n} returning user{s}"),
            (SeatGrant::Created, false) => format!("{n} user{s} to create"),
            (SeatGrant::Added, false) => {
                format!("{n} existing user{s} to add to groups that grant it")
            }
            (SeatGrant::Returning, false) => format!("{n} returning user{s} to enable"),
        });
    }
    match parts.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Hold the grants of application access the target has no seats for; `approved` are users
/// an admin let through (they still take seats). Notes the seats left per role; warns of
/// what it held.
pub(crate) async fn hold_over_seats(
    target: &dyn Target,
    plan: &mut Plan,
    ledger: &LedgerState,
    approved: &BTreeSet<String>,
) -> Result<Vec<Operation>, Failure> {
    if !may_take_seats(plan) {
        return Ok(Vec::new());
    }
    let roles = target.seat_roles().await.map_err(Failure::Target)?;
    if roles.is_empty() {
        return Ok(Vec::new());
    }
    let granting: BTreeSet<String> = roles.iter().flat_map(|r| r.groups.clone()).collect();
    let takers = plan.seat_takers(&granting);
    if takers.is_empty() {
        return Ok(Vec::new());
    }
    // What the existing users hold now (one read each, of those the plan gives access).
    let existing: Vec<String> = takers
        .iter()
        .filter(|t| t.grant != SeatGrant::Created)
        .filter_map(|t| ledger.user_target_id(&t.key).map(str::to_string))
        .collect();
    let holders: HashMap<String, SeatHolder> = if existing.is_empty() {
        HashMap::new()
    } else {
        target
            .seat_holders(&existing)
            .await
            .map_err(Failure::Target)?
    };
    let taken: Vec<(&SeatTaker, Vec<&SeatRole>)> = takers
        .iter()
        .map(|t| {
            let holder = ledger.user_target_id(&t.key).and_then(|id| holders.get(id));
            (t, t.roles(&roles, holder))
        })
        .filter(|(_, r)| !r.is_empty())
        .collect();
    // Seats left per role once the approved users have theirs.
    let mut room: BTreeMap<&str, u64> = roles
        .iter()
        .map(|r| (r.application.as_str(), r.remaining))
        .collect();
    for (_, rs) in taken.iter().filter(|(t, _)| approved.contains(&t.key)) {
        for r in rs {
            if let Some(n) = room.get_mut(r.application.as_str()) {
                *n = n.saturating_sub(1);
            }
        }
    }
    // The others in plan order, while every role they take has a seat.
    let mut held_users = BTreeSet::new();
    let mut wanting: BTreeMap<&str, BTreeMap<SeatGrant, usize>> = BTreeMap::new();
    let mut judged: BTreeMap<&str, BTreeMap<SeatGrant, usize>> = BTreeMap::new();
    let mut let_through: BTreeMap<&str, usize> = BTreeMap::new();
    let mut over: BTreeMap<&str, usize> = BTreeMap::new();
    for (t, rs) in &taken {
        for r in rs {
            *wanting
                .entry(r.application.as_str())
                .or_default()
                .entry(t.grant)
                .or_default() += 1;
        }
        if approved.contains(&t.key) {
            for r in rs {
                *let_through.entry(r.application.as_str()).or_default() += 1;
            }
            continue;
        }
        for r in rs {
            *judged
                .entry(r.application.as_str())
                .or_default()
                .entry(t.grant)
                .or_default() += 1;
        }
        let fits = rs
            .iter()
            .all(|r| room.get(r.application.as_str()).copied().unwrap_or(0) > 0);
        if fits {
            for r in rs {
                if let Some(n) = room.get_mut(r.application.as_str()) {
                    *n -= 1;
                }
            }
        } else {
            held_users.insert(t.key.clone());
            for r in rs {
                *over.entry(r.application.as_str()).or_default() += 1;
            }
        }
    }
    for r in &roles {
        let Some(kinds) = wanting.get(r.application.as_str()) else {
            continue;
        };
        let approved_n = let_through
            .get(r.application.as_str())
            .copied()
            .unwrap_or(0);
        plan.notes.push(format!(
            "{}: {} of {} licence seats left; this plan {}, who take one each{}",
            r.application,
            r.remaining,
            r.total,
            describe(kinds, true),
            if approved_n > 0 {
                format!(" ({approved_n} of them approved over the limit)")
            } else {
                String::new()
            }
        ));
        let Some(n) = over.get(r.application.as_str()).copied() else {
            continue;
        };
        tracing::warn!(
            application = %r.application,
            remaining = r.remaining,
            total = r.total,
            held = n,
            "grants of application access over the licence seats held"
        );
        let what = judged
            .get(r.application.as_str())
            .map(|k| describe(k, false))
            .unwrap_or_default();
        plan.warnings.push(format!(
            "{what} but {} has {} of {} licence seats left: the {n} over the limit (and their memberships) are held until `idsync approve` or `idsync reject`",
            r.application, r.remaining, r.total
        ));
    }
    Ok(plan.hold_grants(&held_users, &granting))
}

/// The users a held run's grants of application access name, for its approval: the held
/// creations and enablings, and the users of held memberships.
pub(crate) fn approved_grants(ops: &[idsync_store::OpLog]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for op in ops.iter().filter(|o| o.outcome == "held") {
        match op.action.as_str() {
            "create_user" | "update_user" => {
                keys.insert(op.key.clone());
            }
            "add_members" => {
                let users = op
                    .after
                    .as_ref()
                    .and_then(|a| a.get("users"))
                    .and_then(serde_json::Value::as_array);
                for u in users.into_iter().flatten().filter_map(|u| u.as_str()) {
                    keys.insert(u.to_string());
                }
            }
            _ => {}
        }
    }
    keys
}
