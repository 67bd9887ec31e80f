//! What a target keeps, learned for a reconcile (issue 16, decision 0026).
//!
//! Services drop attributes they have no place for (`title`, `department`, `emails.type`) and
//! compute others themselves (`name.formatted`). A reconcile that compared them would "repair"
//! every object on every run. The evidence is the reconcile's own: the ledger holds what idsync
//! sent each object, the target's answer to the read what it gave back. An attribute sent to at
//! least [`MIN_EVIDENCE`] objects and given back by none is not kept; one sent to none of at
//! least [`MIN_EVIDENCE`] objects and given back by all of them is computed by the target.
//! Neither is compared: the observed object takes what was sent for it. An empty string and an
//! absent value are the same. `userName` and `active` are always compared.
//!
//! What is known before the read ([`Known`]: the service's `/Schemas` and its answers to what
//! it was sent, `known.rs`) comes first: an attribute known to be kept is compared whatever the
//! read shows (removed by hand from every object, it is drift and repaired), one known not to
//! be kept, or never returned, is not compared even where the read alone would say nothing.

use crate::state::LedgerState;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

mod known;

pub use known::{answer_shows, AnswerTally, Keep, Known, KnownOf, LearnedKeep, Resource, Witness};

/// How many objects must show the same thing before it is taken as the target's rule. One is
/// enough: the rule needs *every* object to agree, and a false repair on every reconcile is
/// worse than an attribute removed by hand from the only object that had it staying removed.
pub const MIN_EVIDENCE: usize = 1;

/// Attributes never learned away: they are what matching and deprovisioning rest on.
const ALWAYS_COMPARED: [&str; 3] = ["userName", "active", "sourceId"];

/// What the target was found not to keep, or to compute, with the number of objects showing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unkept {
    pub user_dropped: BTreeMap<String, usize>,
    pub user_computed: BTreeMap<String, usize>,
    pub group_dropped: BTreeMap<String, usize>,
    pub group_computed: BTreeMap<String, usize>,
    /// Not compared for what was known before the read (the path, what it was, and why).
    pub user_known: BTreeMap<String, (Keep, Witness)>,
    pub group_known: BTreeMap<String, (Keep, Witness)>,
}

impl Unkept {
    pub fn is_empty(&self) -> bool {
        self.user_dropped.is_empty()
            && self.user_computed.is_empty()
            && self.group_dropped.is_empty()
            && self.group_computed.is_empty()
            && self.user_known.is_empty()
            && self.group_known.is_empty()
    }

    /// One line per finding, for the plan's warnings.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, dropped, computed) in [
            ("users", &self.user_dropped, &self.user_computed),
            ("groups", &self.group_dropped, &self.group_computed),
        ] {
            for (path, n) in dropped {
                out.push(format!(
                    "the target does not keep {path} of {what} (sent to {n}, given back by none): not compared"
                ));
            }
            for (path, n) in computed {
                out.push(format!(
                    "the target computes {path} of {what} itself (given back by all {n}, never sent): not compared"
                ));
            }
        }
        for (what, known) in [("users", &self.user_known), ("groups", &self.group_known)] {
            for (path, (keep, witness)) in known {
                let why = match witness {
                    Witness::Answers => "its answers to what it was sent show it",
                    Witness::Schema => "its /Schemas says so",
                };
                let does = match keep {
                    Keep::NotReturned => "never returns",
                    _ => "does not keep",
                };
                out.push(format!(
                    "the target {does} {path} of {what} ({why}): not compared"
                ));
            }
        }
        out
    }
}

/// Paths of the non-empty leaves of an object: `title`, `name.formatted`, `emails.type`
/// (a sub-attribute of any element), `custom.<name>`.
pub(crate) fn leaves(v: &Value) -> BTreeSet<String> {
    leaf_values(v).into_keys().collect()
}

/// [`leaves`] with the values found at each (as text, lower-cased).
pub(crate) fn leaf_values(v: &Value) -> BTreeMap<String, BTreeSet<String>> {
    type Out = BTreeMap<String, BTreeSet<String>>;
    fn text(v: &Value) -> String {
        match v {
            Value::String(s) => s.to_lowercase(),
            other => other.to_string().to_lowercase(),
        }
    }
    fn walk(v: &Value, prefix: &str, depth: usize, out: &mut Out) {
        match v {
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            Value::Object(o) if depth < 2 && prefix != "custom" => {
                for (k, x) in o {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(x, &p, depth + 1, out);
                }
            }
            Value::Array(a) if a.iter().any(Value::is_object) => {
                for x in a {
                    if let Value::Object(o) = x {
                        for (k, y) in o {
                            walk(y, &format!("{prefix}.{k}"), depth + 2, out);
                        }
                    }
                }
            }
            Value::Array(a) if a.is_empty() => {}
            Value::Object(o) if o.is_empty() => {}
            Value::Object(o) if prefix == "custom" => {
                for (k, x) in o {
                    if !x.is_null() {
                        out.entry(format!("custom.{k}"))
                            .or_default()
                            .insert(text(x));
                    }
                }
            }
            other => {
                out.entry(prefix.to_string())
                    .or_default()
                    .insert(text(other));
            }
        }
    }
    let mut out = Out::new();
    walk(v, "", 0, &mut out);
    out
}

/// Set `path` of `observed` to what `sent` has there (removing it where `sent` has none).
/// Elements of a list are paired by their `value` (else by position).
fn overlay(observed: &mut Value, sent: &Value, path: &str) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let Some(obs) = observed.as_object_mut() else {
        return;
    };
    let from = sent.get(head);
    match rest {
        None => match from {
            Some(x) if !x.is_null() => {
                obs.insert(head.to_string(), x.clone());
            }
            _ => {
                obs.remove(head);
            }
        },
        Some(rest) => match obs.get_mut(head) {
            Some(Value::Array(items)) => {
                let sent_items = from.and_then(Value::as_array);
                for (i, item) in items.iter_mut().enumerate() {
                    let pair = sent_items.and_then(|s| {
                        match item.get("value") {
                            Some(v) => s.iter().find(|x| x.get("value") == Some(v)),
                            None => s.get(i),
                        }
                        .cloned()
                    });
                    overlay(item, &pair.unwrap_or(Value::Null), rest);
                }
            }
            Some(inner @ Value::Object(_)) => {
                overlay(inner, from.unwrap_or(&Value::Null), rest);
                if inner.as_object().is_some_and(Map::is_empty) {
                    obs.remove(head);
                }
            }
            _ => {
                if let Some(x) = from {
                    let mut fresh = Value::Object(Map::new());
                    overlay(&mut fresh, x, rest);
                    if fresh.as_object().is_some_and(|o| !o.is_empty()) {
                        obs.insert(head.to_string(), fresh);
                    }
                }
            }
        },
    }
}

/// Per path: (sent and given back, sent and not given back, not sent and given back, neither).
type Tally = BTreeMap<String, [usize; 4]>;

fn tally(pairs: &[(Value, Value)]) -> Tally {
    let mut t = Tally::new();
    let all: BTreeSet<String> = pairs
        .iter()
        .flat_map(|(s, o)| leaves(s).into_iter().chain(leaves(o)))
        .collect();
    for (s, o) in pairs {
        let (ls, lo) = (leaves(s), leaves(o));
        for p in &all {
            let slot = match (ls.contains(p), lo.contains(p)) {
                (true, true) => 0,
                (true, false) => 1,
                (false, true) => 2,
                (false, false) => 3,
            };
            t.entry(p.clone()).or_default()[slot] += 1;
        }
    }
    t
}

/// What the read shows (dropped, computed), and what was known before it (not compared).
struct Findings {
    dropped: BTreeMap<String, usize>,
    computed: BTreeMap<String, usize>,
    known: BTreeMap<String, (Keep, Witness)>,
}

fn findings(t: &Tally, known: &KnownOf) -> Findings {
    let (mut dropped, mut computed, mut unkept) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (p, [kept, lost, given, neither]) in t {
        if ALWAYS_COMPARED.contains(&p.as_str()) {
            continue;
        }
        let verdict = known.verdict(p);
        if let Some(v @ (Keep::Dropped | Keep::NotReturned, _)) = verdict {
            if *kept + *lost + *given > 0 {
                unkept.insert(p.clone(), v);
            }
            continue;
        }
        // Known to be kept: not given back is drift, not the target's rule.
        let known_kept = matches!(verdict, Some((Keep::Kept, _)));
        if *lost >= MIN_EVIDENCE && *kept == 0 && !known_kept {
            dropped.insert(p.clone(), *lost);
        } else if *given >= MIN_EVIDENCE && *neither == 0 && *kept + *lost == 0 {
            computed.insert(p.clone(), *given);
        }
    }
    Findings {
        dropped,
        computed,
        known: unkept,
    }
}

/// Bring `observed` (the ledger as the target holds it) in line with `sent` (the ledger as
/// idsync recorded it) for what the target does not keep or computes, and for values that are
/// empty on one side and absent on the other. `known` is what was known of the target before
/// the read. What was found is returned.
pub fn compare_only_what_is_kept(
    sent: &LedgerState,
    observed: &mut LedgerState,
    known: &Known,
) -> Unkept {
    let mut unkept = Unkept::default();
    let f = adjust(
        observed
            .users
            .iter_mut()
            .filter_map(|(k, o)| sent.users.get(k).map(|s| (&s.user, &mut o.user))),
        &known.users,
    );
    unkept.user_dropped = f.dropped;
    unkept.user_computed = f.computed;
    unkept.user_known = f.known;
    let f = adjust(
        observed
            .groups
            .iter_mut()
            .filter_map(|(k, o)| sent.groups.get(k).map(|s| (&s.group, &mut o.group))),
        &known.groups,
    );
    unkept.group_dropped = f.dropped;
    unkept.group_computed = f.computed;
    unkept.group_known = f.known;
    unkept
}

fn adjust<'a, T: Serialize + DeserializeOwned + 'a>(
    pairs: impl Iterator<Item = (&'a T, &'a mut T)>,
    known: &KnownOf,
) -> Findings {
    let mut json = Vec::new();
    let mut targets = Vec::new();
    for (s, o) in pairs {
        if let (Ok(sv), Ok(ov)) = (serde_json::to_value(s), serde_json::to_value(&*o)) {
            json.push((sv, ov));
            targets.push(o);
        }
    }
    let f = findings(&tally(&json), known);
    for ((sv, mut ov), o) in json.into_iter().zip(targets) {
        let mut paths: BTreeSet<String> = f
            .dropped
            .keys()
            .chain(f.computed.keys())
            .chain(f.known.keys())
            .cloned()
            .collect();
        // Empty on one side, absent on the other: the same.
        let (ls, lo) = (leaves(&sv), leaves(&ov));
        let all_s = all_paths(&sv);
        let all_o = all_paths(&ov);
        for p in all_s.symmetric_difference(&all_o) {
            if !ls.contains(p) && !lo.contains(p) {
                paths.insert(p.clone());
            }
        }
        if paths.is_empty() {
            continue;
        }
        for p in &paths {
            overlay(&mut ov, &sv, p);
        }
        if let Ok(back) = serde_json::from_value::<T>(ov) {
            *o = back;
        }
    }
    f
}

/// Paths of every leaf, empty strings included.
fn all_paths(v: &Value) -> BTreeSet<String> {
    fn mark(v: &Value) -> Value {
        match v {
            Value::String(s) if s.is_empty() => Value::String("\u{0}".into()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, x)| (k.clone(), mark(x))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(mark).collect()),
            x => x.clone(),
        }
    }
    leaves(&mark(v))
}
