//! Scoping filters: which users of the directory a flow provisions, as Microsoft Entra's
//! provisioning service scopes them. Clauses within a group must all hold (AND); a user in any
//! group is in scope (OR). A flow without groups takes every user. A user who leaves the scope
//! is deprovisioned by the flow's policy, like a user deleted in the source.

use crate::mapping::{self, Value};
use crate::model::User;
use crate::state::DesiredState;

/// A clause's test.
#[derive(Debug, Clone)]
pub enum Operator {
    Equals(String),
    NotEquals(String),
    IsTrue,
    IsFalse,
    IsNull,
    IsNotNull,
    RegexMatch(regex::Regex),
    NotRegexMatch(regex::Regex),
    EndsWith(String),
    StartsWith(String),
    GreaterThan(String),
    LessThan(String),
    In(Vec<String>),
    NotIn(Vec<String>),
}

/// One test of one source attribute.
#[derive(Debug, Clone)]
pub struct Clause {
    pub attribute: String,
    pub operator: Operator,
}

/// Why a clause cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("{0:?} is not an operator (equals, not_equals, is_true, is_false, is_null, is_not_null, regex_match, not_regex_match, starts_with, ends_with, greater_than, less_than, in, not_in)")]
    UnknownOperator(String),
    #[error("{0} needs a value")]
    MissingValue(String),
    #[error("{0} needs values = [...]")]
    MissingValues(String),
    #[error("{0:?} is not a regular expression: {1}")]
    BadRegex(String, String),
}

impl Clause {
    /// Build a clause from its configuration: the operator's name, and its value or values.
    pub fn new(
        attribute: &str,
        operator: &str,
        value: Option<&str>,
        values: Option<&[String]>,
    ) -> Result<Clause, ScopeError> {
        let need = || {
            value
                .map(str::to_string)
                .ok_or_else(|| ScopeError::MissingValue(operator.to_string()))
        };
        let list = || {
            values
                .map(<[String]>::to_vec)
                .ok_or_else(|| ScopeError::MissingValues(operator.to_string()))
        };
        let regex = |v: String| {
            regex::Regex::new(&v).map_err(|e| ScopeError::BadRegex(v.clone(), e.to_string()))
        };
        let op = match operator {
            "equals" => Operator::Equals(need()?),
            "not_equals" => Operator::NotEquals(need()?),
            "is_true" => Operator::IsTrue,
            "is_false" => Operator::IsFalse,
            "is_null" => Operator::IsNull,
            "is_not_null" => Operator::IsNotNull,
            "regex_match" => Operator::RegexMatch(regex(need()?)?),
            "not_regex_match" => Operator::NotRegexMatch(regex(need()?)?),
            "starts_with" => Operator::StartsWith(need()?),
            "ends_with" => Operator::EndsWith(need()?),
            "greater_than" => Operator::GreaterThan(need()?),
            "less_than" => Operator::LessThan(need()?),
            "in" => Operator::In(list()?),
            "not_in" => Operator::NotIn(list()?),
            other => return Err(ScopeError::UnknownOperator(other.to_string())),
        };
        Ok(Clause {
            attribute: attribute.to_string(),
            operator: op,
        })
    }

    /// Whether the user passes this clause, and the value seen.
    pub fn test(&self, u: &User) -> (bool, Value) {
        let v = mapping::get(u, &self.attribute);
        let text = v.text();
        let eq = |a: &str, b: &str| a.to_lowercase() == b.to_lowercase();
        let ok = match &self.operator {
            Operator::Equals(x) => text.as_deref().is_some_and(|t| eq(t, x)),
            Operator::NotEquals(x) => !text.as_deref().is_some_and(|t| eq(t, x)),
            Operator::IsTrue => v.truth() == Some(true),
            Operator::IsFalse => v.truth() == Some(false),
            Operator::IsNull => v.is_empty(),
            Operator::IsNotNull => !v.is_empty(),
            Operator::RegexMatch(re) => text.as_deref().is_some_and(|t| re.is_match(t)),
            Operator::NotRegexMatch(re) => !text.as_deref().is_some_and(|t| re.is_match(t)),
            Operator::StartsWith(x) => text
                .as_deref()
                .is_some_and(|t| t.to_lowercase().starts_with(&x.to_lowercase())),
            Operator::EndsWith(x) => text
                .as_deref()
                .is_some_and(|t| t.to_lowercase().ends_with(&x.to_lowercase())),
            Operator::GreaterThan(x) => text.as_deref().is_some_and(|t| compare(t, x).is_gt()),
            Operator::LessThan(x) => text.as_deref().is_some_and(|t| compare(t, x).is_lt()),
            Operator::In(list) => text
                .as_deref()
                .is_some_and(|t| list.iter().any(|x| eq(t, x))),
            Operator::NotIn(list) => !text
                .as_deref()
                .is_some_and(|t| list.iter().any(|x| eq(t, x))),
        };
        (ok, v)
    }

    /// The clause in words, as plans and provision-on-demand print it.
    pub fn describe(&self) -> String {
        let a = &self.attribute;
        match &self.operator {
            Operator::Equals(x) => format!("{a} equals {x:?}"),
            Operator::NotEquals(x) => format!("{a} does not equal {x:?}"),
            Operator::IsTrue => format!("{a} is true"),
            Operator::IsFalse => format!("{a} is false"),
            Operator::IsNull => format!("{a} is empty"),
            Operator::IsNotNull => format!("{a} is not empty"),
            Operator::RegexMatch(re) => format!("{a} matches /{}/", re.as_str()),
            Operator::NotRegexMatch(re) => format!("{a} does not match /{}/", re.as_str()),
            Operator::StartsWith(x) => format!("{a} starts with {x:?}"),
            Operator::EndsWith(x) => format!("{a} ends with {x:?}"),
            Operator::GreaterThan(x) => format!("{a} is greater than {x:?}"),
            Operator::LessThan(x) => format!("{a} is less than {x:?}"),
            Operator::In(l) => format!("{a} is one of {l:?}"),
            Operator::NotIn(l) => format!("{a} is none of {l:?}"),
        }
    }
}

/// Numbers compare as numbers, anything else as text (so dates in ISO form compare right).
fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => a.cmp(b),
    }
}

/// A flow's scoping filter.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub groups: Vec<Vec<Clause>>,
}

/// Whether a user is in scope, and the reason in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub in_scope: bool,
    pub reason: String,
}

impl Scope {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub fn verdict(&self, u: &User) -> Verdict {
        if self.groups.is_empty() {
            return Verdict {
                in_scope: true,
                reason: "the flow has no scoping filter".into(),
            };
        }
        let mut failures = Vec::new();
        for (i, group) in self.groups.iter().enumerate() {
            let failed = group.iter().find_map(|c| {
                let (ok, v) = c.test(u);
                (!ok).then(|| (c.describe(), v))
            });
            match failed {
                None => {
                    let all: Vec<String> = group.iter().map(Clause::describe).collect();
                    return Verdict {
                        in_scope: true,
                        reason: format!("scoping group {} holds: {}", i + 1, all.join(" and ")),
                    };
                }
                Some((clause, v)) => failures.push(format!(
                    "group {}: not {clause} (it is {})",
                    i + 1,
                    match v.text() {
                        Some(t) => format!("{t:?}"),
                        None => "empty".into(),
                    }
                )),
            }
        }
        Verdict {
            in_scope: false,
            reason: format!("out of scope: {}", failures.join("; ")),
        }
    }
}

/// Take the users out of scope out of the desired state (and out of its groups). Returns them
/// with the reason, by key.
pub fn apply_scope(
    desired: &mut DesiredState,
    scope: &Scope,
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    if scope.is_empty() {
        return out;
    }
    for (k, u) in &desired.users {
        let v = scope.verdict(u);
        if !v.in_scope {
            out.insert(k.clone(), v.reason);
        }
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

/// Give the deprovisions of users who are still in the source but out of scope that reason.
pub fn explain_out_of_scope(
    plan: &mut crate::plan::Plan,
    out: &std::collections::BTreeMap<String, String>,
) {
    for op in &mut plan.operations {
        if op.action.is_deprovision() {
            if let Some(why) = out.get(&op.key) {
                op.reason = crate::plan::Reason::LeftScope(why.clone());
            }
        }
    }
}

/// What happens to the group memberships of a user being deprovisioned (deleted in the source
/// or out of scope) while the user stays in the target (disabled, or left as it is).
#[derive(Debug, Clone, Default)]
pub struct MembershipPolicy {
    /// Keep every membership the target has (a user re-enabled later has its access back).
    pub keep: bool,
    /// Keep the memberships in these groups even when the others are removed: exact display
    /// names, or `regex:<pattern>`.
    pub keep_in: Vec<GroupPattern>,
}

/// A group name, or a regular expression over group names.
#[derive(Debug, Clone)]
pub enum GroupPattern {
    Name(String),
    Regex(regex::Regex),
}

impl GroupPattern {
    pub fn parse(s: &str) -> Result<GroupPattern, ScopeError> {
        match s.strip_prefix("regex:") {
            Some(re) => regex::Regex::new(re)
                .map(GroupPattern::Regex)
                .map_err(|e| ScopeError::BadRegex(re.to_string(), e.to_string())),
            None => Ok(GroupPattern::Name(s.to_string())),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            GroupPattern::Name(n) => n.eq_ignore_ascii_case(name),
            GroupPattern::Regex(re) => re.is_match(name),
        }
    }
}

/// Put back into the desired state the target memberships of users that are being (or were)
/// deprovisioned, where the policy keeps them, so the plan does not remove them.
pub fn keep_memberships(
    desired: &mut DesiredState,
    ledger: &crate::state::LedgerState,
    policy: &MembershipPolicy,
) {
    if !policy.keep && policy.keep_in.is_empty() {
        return;
    }
    for (group, members) in &ledger.members {
        let Some(g) = desired.groups.get(group) else {
            continue;
        };
        let kept = policy.keep || policy.keep_in.iter().any(|p| p.matches(&g.display_name));
        if !kept {
            continue;
        }
        for m in members {
            if !desired.users.contains_key(&**m) && ledger.users.contains_key(&**m) {
                desired
                    .members
                    .entry(group.clone())
                    .or_default()
                    .insert(m.clone());
            }
        }
    }
}
