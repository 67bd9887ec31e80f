//! The indexes a PATCH keeps of the multi-valued attributes it adds to and removes from by
//! value, so that its work is linear in its operations.

use super::*;
use crate::error::ScimError;
use crate::filter::{get_ci, AttrPath, Filter};
use crate::schema::{Attr, ResourceSchema};
use serde_json::{Map, Value};

/// What the operations of one PATCH share: the work done, and indexes of the multi-valued
/// attributes that `add` without a filter and `remove` by `value eq` touched, kept from one
/// operation to the next so that each costs what its own values cost, not the attribute's
/// size (a PATCH of n adds is linear in n, not quadratic).
#[derive(Default)]
pub(super) struct Cx {
    pub(super) work: Work,
    pub(super) lists: std::collections::HashMap<(Option<&'static str>, &'static str), ListIndex>,
}

/// An element's identity for de-duplication on add: its value and type, or the whole element
/// when it has no value.
#[derive(Hash, PartialEq, Eq)]
pub(super) enum ElementKey {
    Keyed(String, Option<String>),
    Whole(String),
}

pub(super) fn element_key(e: &Value) -> ElementKey {
    match get_ci(e, "value") {
        Some(v) => ElementKey::Keyed(v.to_string(), get_ci(e, "type").map(Value::to_string)),
        None => ElementKey::Whole(e.to_string()),
    }
}

/// The index of one multi-valued attribute while a PATCH runs. Removed elements are left as
/// `null` (positions stay valid) until the attribute is released.
pub(super) struct ListIndex {
    /// Whether `value` compares case-sensitively.
    pub(super) case_exact: bool,
    pub(super) keys: std::collections::HashSet<ElementKey>,
    /// Positions by value (folded when not case-exact): the only candidates of `value eq`.
    pub(super) by_value: std::collections::HashMap<String, Vec<usize>>,
    pub(super) removed: bool,
}

impl ListIndex {
    pub(super) fn value_key(&self, v: &Value) -> String {
        match v {
            Value::String(s) if !self.case_exact => s.to_lowercase(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    pub(super) fn note(&mut self, at: usize, e: &Value) {
        self.keys.insert(element_key(e));
        if let Some(v) = get_ci(e, "value") {
            let k = self.value_key(v);
            self.by_value.entry(k).or_default().push(at);
        }
    }
}

impl Cx {
    /// The index of an attribute, built from its elements when first asked for.
    pub(super) fn index(
        &mut self,
        holder: &Map<String, Value>,
        id: (Option<&'static str>, &'static str),
        case_exact: bool,
    ) -> &mut ListIndex {
        let work = &mut self.work;
        self.lists.entry(id).or_insert_with(|| {
            let mut ix = ListIndex {
                case_exact,
                keys: Default::default(),
                by_value: Default::default(),
                removed: false,
            };
            if let Some(Value::Array(items)) = holder.get(id.1) {
                work.element_steps += items.len() as u64;
                for (n, e) in items.iter().enumerate() {
                    ix.note(n, e);
                }
            }
            ix
        })
    }

    /// Drop an attribute's index, taking out the elements removed meanwhile: before any
    /// operation the index does not cover, and at the end.
    pub(super) fn release(
        &mut self,
        holder: &mut Map<String, Value>,
        id: (Option<&'static str>, &'static str),
    ) {
        if let Some(ix) = self.lists.remove(&id) {
            if ix.removed {
                compact(holder, id.1);
            }
        }
    }

    pub(super) fn release_all(&mut self, res: &mut Map<String, Value>) {
        for ((urn, name), ix) in self.lists.drain() {
            if !ix.removed {
                continue;
            }
            let holder = match urn {
                None => Some(res as &mut Map<String, Value>),
                Some(u) => res.get_mut(u).and_then(Value::as_object_mut),
            };
            if let Some(h) = holder {
                compact(h, name);
            }
        }
    }
}

/// Take the removed (`null`) elements out of a multi-valued attribute; an empty one goes.
pub(super) fn compact(holder: &mut Map<String, Value>, key: &str) {
    if let Some(Value::Array(items)) = holder.get_mut(key) {
        items.retain(|i| !i.is_null());
        if items.is_empty() {
            holder.remove(key);
        }
    }
}

/// `value eq "..."`: the filter an index answers.
pub(super) fn value_eq(filter: &Filter) -> Option<&str> {
    filter.eq_value().and_then(|(p, v)| {
        (p.urn.is_none() && p.sub.is_none() && p.name.eq_ignore_ascii_case("value")).then_some(v)
    })
}

/// Whether an attribute's `value` sub-attribute compares case-sensitively.
pub(super) fn value_case_exact(attr: &Attr) -> bool {
    attr.sub
        .iter()
        .find(|s| s.name == "value")
        .is_some_and(|s| s.case_exact)
}

/// `add` of values to a multi-valued attribute, through its index: each new value is looked
/// up, not compared with every element.
pub(super) fn indexed_add(
    cx: &mut Cx,
    holder: &mut Map<String, Value>,
    id: (Option<&'static str>, &'static str),
    attr: &Attr,
    value: Option<&Value>,
    _schema: &ResourceSchema,
) -> Result<(), ScimError> {
    let new: Vec<Value> = match coerce(attr, value.cloned().unwrap_or(Value::Null))? {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let ix = cx.index(holder, id, value_case_exact(attr));
    let mut steps = 0u64;
    let mut primary = false;
    let items = match holder
        .entry(id.1.to_string())
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        Value::Array(items) => items,
        other => {
            *other = Value::Array(Vec::new());
            match other {
                Value::Array(items) => items,
                _ => return Err(ScimError::internal("not an array")),
            }
        }
    };
    for n in new {
        steps += 1;
        if ix.keys.contains(&element_key(&n)) {
            continue;
        }
        primary |= get_ci(&n, "primary") == Some(&Value::Bool(true));
        ix.note(items.len(), &n);
        items.push(n);
    }
    if primary {
        // At most one primary: the last one set wins.
        steps += items.len() as u64;
        let taken = std::mem::take(items);
        *items = one_primary(taken);
    }
    if items.is_empty() {
        holder.remove(id.1);
    }
    cx.work.element_steps += steps;
    Ok(())
}

/// `remove` of the elements `attr[value eq "..."]` designates, through the index: only the
/// elements with that value are tested against the whole filter.
pub(super) fn indexed_remove(
    cx: &mut Cx,
    holder: &mut Map<String, Value>,
    id: (Option<&'static str>, &'static str),
    path: &PatchPath,
    filter: &Filter,
    schema: &ResourceSchema,
) -> Result<(), ScimError> {
    let Some(r) = schema.resolve(&path.attr) else {
        return Err(ScimError::invalid_path(format!(
            "no attribute {}",
            path.attr
        )));
    };
    let ix = cx.index(holder, id, value_case_exact(r.attr));
    let Some(want) = value_eq(filter) else {
        return Ok(());
    };
    let Some(candidates) = ix
        .by_value
        .get(&ix.value_key(&Value::String(want.to_string())))
    else {
        return Ok(());
    };
    let Some(Value::Array(items)) = holder.get_mut(id.1) else {
        return Ok(());
    };
    let parent = path.attr.clone();
    let case_exact = |p: &AttrPath| schema.case_exact(&rebase(&parent, p));
    let mut steps = 0u64;
    let mut gone = Vec::new();
    for &at in candidates {
        steps += 1;
        if let Some(item) = items.get_mut(at) {
            if !item.is_null() && filter.matches(item, &case_exact) {
                gone.push(element_key(item));
                *item = Value::Null;
            }
        }
    }
    if !gone.is_empty() {
        ix.removed = true;
        for k in gone {
            ix.keys.remove(&k);
        }
    }
    cx.work.element_steps += steps;
    Ok(())
}
