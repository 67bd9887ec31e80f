//! Users without a login for too long: a flow's `inactive_after` takes them out of its desired
//! state (so the plan deprovisions them by the flow's policy), except members of exempt groups.
//! Decision 0043.

use crate::scope::GroupPattern;
use crate::state::DesiredState;
use std::collections::{BTreeMap, HashMap};

const DAY_MS: i64 = 86_400_000;

/// `inactive_after` and `inactive_exempt` of a flow.
#[derive(Debug, Clone)]
pub struct Inactivity {
    /// Days without a login after which a user is deprovisioned.
    pub after_days: u32,
    /// Members (direct or nested) of these source groups are never deprovisioned for it:
    /// display names (any case), or `regex:<pattern>`.
    pub exempt: Vec<GroupPattern>,
}

/// What idsync knows of a user's logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// When idsync first counted the user (the first run with `inactive_after` that saw it, or
    /// its first login).
    pub first_seen_ms: i64,
    /// The last login, if any.
    pub last_login_ms: Option<i64>,
}

/// A date as `YYYY-MM-DD` (UTC).
pub fn date(ms: i64) -> String {
    // Civil from days (Howard Hinnant's algorithm): no time crate in the core.
    let z = ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Take the users inactive for longer than `rules.after_days` out of the desired state (and
/// out of their groups there). Users `activity` does not know count from `now_ms` (they are
/// first seen now). Returns the users taken out, each with the reason in words ("no login for
/// 97 days; last login 2026-08-30").
pub fn apply_inactivity(
    desired: &mut DesiredState,
    activity: &HashMap<String, Activity>,
    rules: &Inactivity,
    now_ms: i64,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let limit = i64::from(rules.after_days) * DAY_MS;
    // Users of exempt groups: the desired state's members are effective (nested included).
    let mut exempt = std::collections::HashSet::new();
    if !rules.exempt.is_empty() {
        for (key, g) in &desired.groups {
            if rules
                .exempt
                .iter()
                .any(|p| p.matches(&g.display_name) || p.matches(key))
            {
                if let Some(m) = desired.members.get(key) {
                    exempt.extend(m.iter().map(|k| k.to_string()));
                }
            }
        }
    }
    for key in desired.users.keys() {
        let Some(a) = activity.get(key) else {
            continue;
        };
        let since = a.last_login_ms.unwrap_or(a.first_seen_ms);
        if now_ms - since <= limit || exempt.contains(key) {
            continue;
        }
        let days = (now_ms - since) / DAY_MS;
        let why = match a.last_login_ms {
            Some(at) => format!("no login for {days} days; last login {}", date(at)),
            None => format!(
                "no login for {days} days; never logged in since idsync first counted the user on {}",
                date(a.first_seen_ms)
            ),
        };
        out.insert(key.clone(), why);
    }
    for k in out.keys() {
        desired.users.remove(k);
    }
    if !out.is_empty() {
        for members in desired.members.values_mut() {
            members.retain(|m| !out.contains_key(&**m));
        }
    }
    out
}

/// Give the deprovisions of inactive users that reason.
pub fn explain_inactive(plan: &mut crate::plan::Plan, out: &BTreeMap<String, String>) {
    for op in &mut plan.operations {
        if op.action.is_deprovision() {
            if let Some(why) = out.get(&op.key) {
                op.reason = crate::plan::Reason::Inactive(why.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(1_788_048_000_000), "2026-08-30");
        assert_eq!(date(951_782_400_000), "2000-02-29");
    }
}
