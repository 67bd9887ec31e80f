//! PATCH (RFC 7644 §3.5.2) applied to a resource in its JSON form.
//!
//! Besides the RFC, this accepts what Microsoft Entra's provisioning service sends: operation
//! names in any letter case, booleans as the strings `"True"`/`"False"`, `add`/`replace` without
//! a path whose value object has attribute paths as keys (`"name.givenName"`,
//! `"emails[type eq \"work\"].value"`, enterprise-extension URN paths), member removal by a
//! value array, and `replace` of a filtered path that matches nothing (the element is created).

use crate::error::ScimError;
use crate::filter::{get_ci, AttrPath, CompareOp, Filter};
use crate::schema::{Attr, AttrType, Resolved, ResourceSchema};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Add,
    Remove,
    Replace,
}

/// `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`, optionally URN-qualified.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

impl PatchPath {
    pub fn parse(s: &str) -> Result<Self, ScimError> {
        let s = s.trim();
        let Some(open) = s.find('[') else {
            return Ok(Self {
                attr: AttrPath::parse(s)?,
                filter: None,
                sub: None,
            });
        };
        let close = s
            .rfind(']')
            .filter(|c| *c > open)
            .ok_or_else(|| ScimError::invalid_path(format!("{s:?}: unclosed [")))?;
        let attr = AttrPath::parse(&s[..open])?;
        if attr.sub.is_some() {
            return Err(ScimError::invalid_path(format!(
                "{s:?}: a filter follows an attribute, not a sub-attribute"
            )));
        }
        let filter = Filter::parse(&s[open + 1..close])
            .map_err(|e| ScimError::invalid_path(format!("{s:?}: {}", e.detail)))?;
        let rest = &s[close + 1..];
        let sub = match rest.strip_prefix('.') {
            Some(sub)
                if !sub.is_empty()
                    && sub
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '$' || c == '_') =>
            {
                Some(sub.to_string())
            }
            None if rest.is_empty() => None,
            _ => {
                return Err(ScimError::invalid_path(format!(
                    "{s:?}: unexpected {rest:?} after ]"
                )))
            }
        };
        Ok(Self {
            attr,
            filter: Some(filter),
            sub,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub kind: PatchKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// Most operations in one PATCH request. More are answered 413 with a SCIM error, as a bulk
/// request over `maxOperations` is (RFC 7644 §3.7.4): identity providers send a few
/// operations per request (member changes travel as value lists inside one operation).
pub const MAX_PATCH_OPERATIONS: usize = 1000;

/// Parse a PATCH request body.
pub fn parse_request(body: &Value) -> Result<Vec<PatchOp>, ScimError> {
    let schemas_ok = get_ci(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(crate::PATCH_OP))
            })
        });
    if !schemas_ok {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must contain {}",
            crate::PATCH_OP
        )));
    }
    let ops = get_ci(body, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be an array"))?;
    if ops.len() > MAX_PATCH_OPERATIONS {
        return Err(ScimError::new(
            413,
            None,
            format!(
                "the PATCH request has {} operations; at most {MAX_PATCH_OPERATIONS} are taken in one request",
                ops.len()
            ),
        ));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            let kind = match get_ci(op, "op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("add") => PatchKind::Add,
                Some("remove") => PatchKind::Remove,
                Some("replace") => PatchKind::Replace,
                other => {
                    return Err(ScimError::invalid_syntax(format!(
                        "Operations[{i}].op: {other:?} is not add, remove or replace"
                    )))
                }
            };
            let path = match get_ci(op, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if p.trim().is_empty() => None,
                Some(Value::String(p)) => Some(PatchPath::parse(p)?),
                Some(_) => {
                    return Err(ScimError::invalid_path(format!(
                        "Operations[{i}].path must be a string"
                    )))
                }
            };
            let value = get_ci(op, "value").cloned();
            if kind != PatchKind::Remove && value.is_none() {
                return Err(ScimError::invalid_syntax(format!(
                    "Operations[{i}]: {kind:?} needs a value"
                )));
            }
            if kind == PatchKind::Remove && path.is_none() {
                return Err(ScimError::no_target(format!(
                    "Operations[{i}]: remove needs a path"
                )));
            }
            Ok(PatchOp { kind, path, value })
        })
        .collect()
}

/// Apply operations to a resource (already in canonical form). All or nothing: on error the
/// resource is left as it was.
pub fn apply(
    resource: &mut Value,
    ops: &[PatchOp],
    schema: &ResourceSchema,
) -> Result<(), ScimError> {
    apply_counted(resource, ops, schema).map(|_| ())
}

/// What applying a PATCH cost: how many times an element of a multi-valued attribute was
/// compared with another, looked up or indexed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    pub element_steps: u64,
}

/// [`apply`], saying how much work it took.
pub fn apply_counted(
    resource: &mut Value,
    ops: &[PatchOp],
    schema: &ResourceSchema,
) -> Result<Work, ScimError> {
    let mut work = resource.clone();
    let obj = work
        .as_object_mut()
        .ok_or_else(|| ScimError::internal("resource is not an object"))?;
    let mut cx = Cx::default();
    for op in ops {
        apply_one(
            &mut cx,
            obj,
            op.kind,
            op.path.as_ref(),
            op.value.as_ref(),
            schema,
        )?;
    }
    cx.release_all(obj);
    *resource = work;
    Ok(cx.work)
}

/// What the operations of one PATCH share: the work done, and indexes of the multi-valued
/// attributes that `add` without a filter and `remove` by `value eq` touched, kept from one
/// operation to the next so that each costs what its own values cost, not the attribute's
/// size (a PATCH of n adds is linear in n, not quadratic).
#[derive(Default)]
struct Cx {
    work: Work,
    lists: std::collections::HashMap<(Option<&'static str>, &'static str), ListIndex>,
}

/// An element's identity for de-duplication on add: its value and type, or the whole element
/// when it has no value.
#[derive(Hash, PartialEq, Eq)]
enum ElementKey {
    Keyed(String, Option<String>),
    Whole(String),
}

fn element_key(e: &Value) -> ElementKey {
    match get_ci(e, "value") {
        Some(v) => ElementKey::Keyed(v.to_string(), get_ci(e, "type").map(Value::to_string)),
        None => ElementKey::Whole(e.to_string()),
    }
}

/// The index of one multi-valued attribute while a PATCH runs. Removed elements are left as
/// `null` (positions stay valid) until the attribute is released.
struct ListIndex {
    /// Whether `value` compares case-sensitively.
    case_exact: bool,
    keys: std::collections::HashSet<ElementKey>,
    /// Positions by value (folded when not case-exact): the only candidates of `value eq`.
    by_value: std::collections::HashMap<String, Vec<usize>>,
    removed: bool,
}

impl ListIndex {
    fn value_key(&self, v: &Value) -> String {
        match v {
            Value::String(s) if !self.case_exact => s.to_lowercase(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    fn note(&mut self, at: usize, e: &Value) {
        self.keys.insert(element_key(e));
        if let Some(v) = get_ci(e, "value") {
            let k = self.value_key(v);
            self.by_value.entry(k).or_default().push(at);
        }
    }
}

impl Cx {
    /// The index of an attribute, built from its elements when first asked for.
    fn index(
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
    fn release(
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

    fn release_all(&mut self, res: &mut Map<String, Value>) {
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
fn compact(holder: &mut Map<String, Value>, key: &str) {
    if let Some(Value::Array(items)) = holder.get_mut(key) {
        items.retain(|i| !i.is_null());
        if items.is_empty() {
            holder.remove(key);
        }
    }
}

/// `value eq "..."`: the filter an index answers.
fn value_eq(filter: &Filter) -> Option<&str> {
    filter.eq_value().and_then(|(p, v)| {
        (p.urn.is_none() && p.sub.is_none() && p.name.eq_ignore_ascii_case("value")).then_some(v)
    })
}

fn apply_one(
    cx: &mut Cx,
    res: &mut Map<String, Value>,
    kind: PatchKind,
    path: Option<&PatchPath>,
    value: Option<&Value>,
    schema: &ResourceSchema,
) -> Result<(), ScimError> {
    // A path that names a whole extension schema.
    if let Some(ext) = path
        .filter(|p| p.filter.is_none())
        .and_then(|p| extension_named(schema, p))
    {
        cx.release_all(res);
        return match kind {
            PatchKind::Remove => {
                res.remove(ext);
                Ok(())
            }
            PatchKind::Add | PatchKind::Replace => {
                let mut wrapped = Map::new();
                wrapped.insert(ext.to_string(), value.cloned().unwrap_or(Value::Null));
                if kind == PatchKind::Replace {
                    res.remove(ext);
                }
                apply_one(cx, res, kind, None, Some(&Value::Object(wrapped)), schema)
            }
        };
    }
    let Some(path) = path else {
        // No path: the value is an object of attribute paths (or extension URNs) to values.
        let Some(Value::Object(map)) = value else {
            return Err(ScimError::invalid_value(
                "without a path, the value must be an object",
            ));
        };
        for (k, v) in map {
            if schema
                .extensions
                .iter()
                .any(|e| e.id.eq_ignore_ascii_case(k))
            {
                let Value::Object(inner) = v else {
                    return Err(ScimError::invalid_value(format!("{k} must be an object")));
                };
                for (k2, v2) in inner {
                    if k2.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    let p = PatchPath {
                        attr: AttrPath {
                            urn: Some(k.clone()),
                            ..AttrPath::parse(k2)?
                        },
                        filter: None,
                        sub: None,
                    };
                    apply_one(cx, res, kind, Some(&p), Some(v2), schema)?;
                }
            } else if k.eq_ignore_ascii_case("schemas") {
                continue;
            } else {
                let p = PatchPath::parse(k)?;
                apply_one(cx, res, kind, Some(&p), Some(v), schema)?;
            }
        }
        return Ok(());
    };
    let r = schema
        .resolve(&path.attr)
        .ok_or_else(|| ScimError::invalid_path(format!("no attribute {}", path.attr)))?;
    if r.attr.mutability == "readOnly" || r.sub.is_some_and(|s| s.mutability == "readOnly") {
        return Err(ScimError::mutability(format!("{} is read-only", path.attr)));
    }
    if kind == PatchKind::Remove && r.attr.required && r.sub.is_none() && path.filter.is_none() {
        return Err(ScimError::invalid_value(format!(
            "{} is required and cannot be removed",
            r.attr.name
        )));
    }
    let holder = holder(res, &r)?;
    let key = r.attr.name.to_string();
    let id = (r.extension, r.attr.name);
    if r.attr.multi && r.sub.is_none() && path.sub.is_none() {
        match (kind, &path.filter) {
            (PatchKind::Add, None) => return indexed_add(cx, holder, id, r.attr, value, schema),
            (PatchKind::Remove, Some(f)) if value_eq(f).is_some() => {
                return indexed_remove(cx, holder, id, path, f, schema);
            }
            _ => {}
        }
    }
    cx.release(holder, id);
    match (&path.filter, r.sub) {
        (None, None) => whole(cx, holder, &key, r.attr, kind, value),
        (None, Some(sub)) => {
            // `name.givenName`, or a sub-attribute of every element of a multi-valued one.
            match holder.get_mut(&key) {
                Some(Value::Array(items)) if r.attr.multi => {
                    for item in items.iter_mut() {
                        if let Value::Object(o) = item {
                            set_sub(o, sub, kind, value)?;
                        }
                    }
                    Ok(())
                }
                _ => {
                    if kind == PatchKind::Remove && !holder.contains_key(&key) {
                        return Ok(());
                    }
                    let entry = holder
                        .entry(key.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !entry.is_object() {
                        *entry = Value::Object(Map::new());
                    }
                    if let Value::Object(o) = entry {
                        set_sub(o, sub, kind, value)?;
                        if o.is_empty() {
                            holder.remove(&key);
                        }
                    }
                    Ok(())
                }
            }
        }
        (Some(filter), _) => filtered(cx, holder, &key, r.attr, path, filter, kind, value, schema),
    }
}

/// The extension a path names as a whole (`urn:...:enterprise:2.0:User`), if any.
fn extension_named(schema: &ResourceSchema, p: &PatchPath) -> Option<&'static str> {
    let full = match (&p.attr.urn, &p.attr.sub) {
        (Some(urn), None) => format!("{urn}:{}", p.attr.name),
        _ => return None,
    };
    schema
        .extensions
        .iter()
        .find(|e| e.id.eq_ignore_ascii_case(&full))
        .map(|e| e.id)
}

fn holder<'a>(
    res: &'a mut Map<String, Value>,
    r: &Resolved,
) -> Result<&'a mut Map<String, Value>, ScimError> {
    let Some(urn) = r.extension else {
        return Ok(res);
    };
    if !res.get(urn).is_some_and(Value::is_object) {
        res.insert(urn.to_string(), Value::Object(Map::new()));
    }
    res.get_mut(urn)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ScimError::internal(format!("{urn} is not an object")))
}

fn set_sub(
    o: &mut Map<String, Value>,
    sub: &Attr,
    kind: PatchKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    match kind {
        PatchKind::Remove => {
            o.remove(sub.name);
        }
        PatchKind::Add | PatchKind::Replace => {
            let v = coerce(sub, value.cloned().unwrap_or(Value::Null))?;
            if v.is_null() {
                o.remove(sub.name);
            } else {
                o.insert(sub.name.to_string(), v);
            }
        }
    }
    Ok(())
}

/// Whether an attribute's `value` sub-attribute compares case-sensitively.
fn value_case_exact(attr: &Attr) -> bool {
    attr.sub
        .iter()
        .find(|s| s.name == "value")
        .is_some_and(|s| s.case_exact)
}

/// `add` of values to a multi-valued attribute, through its index: each new value is looked
/// up, not compared with every element.
fn indexed_add(
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
fn indexed_remove(
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

fn whole(
    cx: &mut Cx,
    holder: &mut Map<String, Value>,
    key: &str,
    attr: &Attr,
    kind: PatchKind,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    match kind {
        PatchKind::Remove => {
            match (value, holder.get_mut(key)) {
                // Entra: {"op":"remove","path":"members","value":[{"value":"id"}]}
                (Some(Value::Array(gone)), Some(Value::Array(items))) if attr.multi => {
                    items.retain(|i| {
                        !gone.iter().any(|g| {
                            get_ci(g, "value").is_some_and(|gv| get_ci(i, "value") == Some(gv))
                        })
                    });
                    if items.is_empty() {
                        holder.remove(key);
                    }
                }
                _ => {
                    holder.remove(key);
                }
            }
            Ok(())
        }
        PatchKind::Add | PatchKind::Replace => {
            let v = coerce(attr, value.cloned().unwrap_or(Value::Null))?;
            if attr.multi {
                let new: Vec<Value> = match v {
                    Value::Array(a) => a,
                    Value::Null => Vec::new(),
                    other => vec![other],
                };
                let items = match (kind, holder.remove(key)) {
                    // (An add reaches here only if `indexed_add` did not take it.)
                    (PatchKind::Add, Some(Value::Array(mut old))) => {
                        cx.work.element_steps += (old.len() + new.len()) as u64;
                        let mut seen: std::collections::HashSet<ElementKey> =
                            old.iter().map(element_key).collect();
                        for n in new {
                            if seen.insert(element_key(&n)) {
                                old.push(n);
                            }
                        }
                        old
                    }
                    _ => new,
                };
                let items = one_primary(items);
                if !items.is_empty() {
                    holder.insert(key.to_string(), Value::Array(items));
                }
            } else if attr.ty == AttrType::Complex {
                match (holder.get_mut(key), v) {
                    (Some(Value::Object(old)), Value::Object(new)) => {
                        for (k, v) in new {
                            old.insert(k, v);
                        }
                    }
                    (_, Value::Null) => {
                        holder.remove(key);
                    }
                    (_, v) => {
                        holder.insert(key.to_string(), v);
                    }
                }
            } else if v.is_null() {
                holder.remove(key);
            } else {
                holder.insert(key.to_string(), v);
            }
            Ok(())
        }
    }
}

/// At most one element of a multi-valued attribute may be primary: the last one set wins.
fn one_primary(mut items: Vec<Value>) -> Vec<Value> {
    if let Some(last) = items
        .iter()
        .rposition(|i| get_ci(i, "primary") == Some(&Value::Bool(true)))
    {
        for (n, i) in items.iter_mut().enumerate() {
            if n != last {
                if let Some(o) = i.as_object_mut() {
                    if o.get("primary") == Some(&Value::Bool(true)) {
                        o.insert("primary".into(), Value::Bool(false));
                    }
                }
            }
        }
    }
    items
}

#[allow(clippy::too_many_arguments)]
fn filtered(
    cx: &mut Cx,
    holder: &mut Map<String, Value>,
    key: &str,
    attr: &Attr,
    path: &PatchPath,
    filter: &Filter,
    kind: PatchKind,
    value: Option<&Value>,
    schema: &ResourceSchema,
) -> Result<(), ScimError> {
    if !attr.multi {
        return Err(ScimError::invalid_path(format!(
            "{} is not multi-valued",
            attr.name
        )));
    }
    let sub = match &path.sub {
        Some(s) => Some(
            attr.sub
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(s))
                .ok_or_else(|| {
                    ScimError::invalid_path(format!("no sub-attribute {s} in {}", attr.name))
                })?,
        ),
        None => None,
    };
    let parent = path.attr.clone();
    let case_exact = |p: &AttrPath| schema.case_exact(p);
    let mut items = match holder.remove(key) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    cx.work.element_steps += items.len() as u64;
    let hits: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| filter.matches(i, &|p| case_exact(&rebase(&parent, p))))
        .map(|(n, _)| n)
        .collect();
    match (kind, sub) {
        (PatchKind::Remove, None) => {
            let mut gone = vec![false; items.len()];
            for &h in &hits {
                gone[h] = true;
            }
            let mut n = 0;
            items.retain(|_| {
                let keep = !gone[n];
                n += 1;
                keep
            });
        }
        (PatchKind::Remove, Some(sub)) => {
            for &h in &hits {
                if let Some(o) = items[h].as_object_mut() {
                    o.remove(sub.name);
                }
            }
        }
        (_, Some(sub)) => {
            if hits.is_empty() {
                // Create the element the filter describes (`emails[type eq "work"].value`).
                let mut o = seed_from_filter(filter, attr);
                set_sub(&mut o, sub, kind, value)?;
                items.push(Value::Object(o));
            } else {
                for &h in &hits {
                    if let Some(o) = items[h].as_object_mut() {
                        set_sub(o, sub, kind, value)?;
                    }
                }
            }
        }
        (_, None) => {
            let v = coerce_element(attr, value.cloned().unwrap_or(Value::Null))?;
            if hits.is_empty() {
                let mut o = seed_from_filter(filter, attr);
                if let Value::Object(new) = v {
                    o.extend(new);
                }
                items.push(Value::Object(o));
            } else {
                for &h in &hits {
                    if let (Some(o), Value::Object(new)) = (items[h].as_object_mut(), &v) {
                        for (k, val) in new {
                            o.insert(k.clone(), val.clone());
                        }
                    }
                }
            }
        }
    }
    let items = one_primary(items);
    if !items.is_empty() {
        holder.insert(key.to_string(), Value::Array(items));
    }
    Ok(())
}

fn rebase(parent: &AttrPath, p: &AttrPath) -> AttrPath {
    AttrPath {
        urn: parent.urn.clone(),
        name: parent.name.clone(),
        sub: Some(p.name.clone()),
    }
}

/// `type eq "work" and primary eq true` -> {"type": "work", "primary": true}
fn seed_from_filter(filter: &Filter, attr: &Attr) -> Map<String, Value> {
    let mut o = Map::new();
    let mut stack = vec![filter];
    while let Some(f) = stack.pop() {
        match f {
            Filter::And(a, b) => {
                stack.push(a);
                stack.push(b);
            }
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value,
            } if path.sub.is_none() => {
                if let Some(sub) = attr
                    .sub
                    .iter()
                    .find(|s| s.name.eq_ignore_ascii_case(&path.name))
                {
                    if let Ok(v) = coerce(sub, value.clone()) {
                        o.insert(sub.name.to_string(), v);
                    }
                }
            }
            _ => {}
        }
    }
    o
}

fn coerce_element(attr: &Attr, v: Value) -> Result<Value, ScimError> {
    coerce_one(attr, v, true)
}

/// Bring a value to the attribute's shape: canonical sub-attribute names, booleans from
/// `"True"`/`"False"` (what Entra sends), numbers from numeric strings; anything else of the
/// wrong type is `invalidValue` (a number is not a string, a string is not a list).
pub fn coerce(attr: &Attr, v: Value) -> Result<Value, ScimError> {
    if v.is_null() {
        return Ok(v);
    }
    if attr.multi {
        return match v {
            Value::Array(items) => items
                .into_iter()
                .map(|i| coerce_element(attr, i))
                .filter(|r| !matches!(r, Ok(Value::Null)))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            // One element given as itself (`"value": {"value": "a@b.c"}` in a PATCH add).
            Value::Object(_) => Ok(Value::Array(vec![coerce_element(attr, v)?])),
            other => Err(wrong_type(attr, "an array", &other)),
        };
    }
    coerce_one(attr, v, false)
}

/// The error for a value of the wrong type. A write-only attribute's value is not repeated
/// (a password stays out of responses and logs).
fn wrong_type(attr: &Attr, what: &str, v: &Value) -> ScimError {
    if attr.returned == "never" {
        ScimError::invalid_value(format!("{}: expected {what}", attr.name))
    } else {
        ScimError::invalid_value(format!("{}: expected {what}, got {v}", attr.name))
    }
}

/// A single value (an element, when `element`) to the attribute's type.
fn coerce_one(attr: &Attr, v: Value, element: bool) -> Result<Value, ScimError> {
    if v.is_null() {
        return Ok(v);
    }
    let bad = |what: &str, v: &Value| wrong_type(attr, what, v);
    match attr.ty {
        AttrType::Complex => {
            // A bare value for a single-valued complex attribute with a `value` sub-attribute
            // (Entra sends the manager's id this way) means {"value": ...}. An element of a
            // multi-valued attribute is an object (`"emails": ["a@b.c"]` is refused).
            let v = match v {
                Value::String(_) if !element && attr.sub.iter().any(|s| s.name == "value") => {
                    let mut o = Map::new();
                    o.insert("value".into(), v);
                    Value::Object(o)
                }
                v => v,
            };
            let Value::Object(o) = v else {
                return Err(bad("an object", &v));
            };
            let mut out = Map::new();
            for (k, val) in o {
                let Some(sub) = attr.sub.iter().find(|s| s.name.eq_ignore_ascii_case(&k)) else {
                    return Err(ScimError::invalid_path(format!(
                        "no sub-attribute {k} in {}",
                        attr.name
                    )));
                };
                let val = coerce(sub, val)?;
                if !val.is_null() {
                    out.insert(sub.name.to_string(), val);
                }
            }
            Ok(Value::Object(out))
        }
        AttrType::Boolean => match &v {
            Value::Bool(_) => Ok(v),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(bad("a boolean", &v)),
        },
        AttrType::Integer => match &v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| bad("an integer", &v)),
            _ => Err(bad("an integer", &v)),
        },
        AttrType::Decimal => match &v {
            Value::Number(_) => Ok(v),
            Value::String(s) => serde_json::from_str::<serde_json::Number>(s.trim())
                .map(Value::Number)
                .map_err(|_| bad("a number", &v)),
            _ => Err(bad("a number", &v)),
        },
        AttrType::String | AttrType::Reference | AttrType::DateTime | AttrType::Binary => match v {
            Value::String(_) => Ok(v),
            other => Err(bad("a string", &other)),
        },
    }
}

/// Canonicalize a whole resource body (POST, PUT): attribute names as the schema spells them,
/// values coerced, read-only attributes dropped (RFC 7643 §2.2: the server ignores them),
/// unknown attributes refused.
pub fn normalize(body: &Value, schema: &ResourceSchema) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(body) = body else {
        return Err(ScimError::invalid_syntax("the body must be a JSON object"));
    };
    let mut out = Map::new();
    for (k, v) in body {
        if k.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if let Some(ext) = schema
            .extensions
            .iter()
            .find(|e| e.id.eq_ignore_ascii_case(k))
        {
            let Value::Object(inner) = v else {
                return Err(ScimError::invalid_value(format!("{k} must be an object")));
            };
            let mut ext_out = Map::new();
            for (k2, v2) in inner {
                if k2.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                let a = ext
                    .attrs
                    .iter()
                    .find(|a| a.name.eq_ignore_ascii_case(k2))
                    .ok_or_else(|| ScimError::invalid_path(format!("no attribute {k2} in {k}")))?;
                if a.mutability == "readOnly" {
                    continue;
                }
                let v2 = coerce(a, v2.clone())?;
                if !v2.is_null() {
                    ext_out.insert(a.name.to_string(), v2);
                }
            }
            if !ext_out.is_empty() {
                out.insert(ext.id.to_string(), Value::Object(ext_out));
            }
            continue;
        }
        let path =
            AttrPath::parse(k).map_err(|_| ScimError::invalid_path(format!("no attribute {k}")))?;
        let r = schema
            .resolve(&path)
            .ok_or_else(|| ScimError::invalid_path(format!("no attribute {k}")))?;
        if r.attr.mutability == "readOnly" || r.extension.is_some() {
            continue;
        }
        let v = coerce(r.attr, v.clone())?;
        let v = if r.attr.multi {
            one_primary_value(v)
        } else {
            v
        };
        if !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()) {
            out.insert(r.attr.name.to_string(), v);
        }
    }
    Ok(out)
}

fn one_primary_value(v: Value) -> Value {
    match v {
        Value::Array(a) => Value::Array(one_primary(a)),
        other => other,
    }
}

/// The members a PATCH adds and removes, when that is all it does: `add` with path `members`
/// and a list of `{"value": id}`, `remove` with path `members[value eq "id"]`, or `remove` with
/// path `members` and a list of `{"value": id}` (how identity providers keep groups in sync).
/// `None` for any other PATCH, which is then applied to the whole resource. In order:
/// (true, id) adds, (false, id) removes.
pub fn member_changes(ops: &[PatchOp]) -> Option<Vec<(bool, String)>> {
    let ids = |v: &Value| -> Option<Vec<String>> {
        let list = match v {
            Value::Array(a) => a.iter().collect::<Vec<_>>(),
            Value::Object(_) => vec![v],
            _ => return None,
        };
        list.into_iter()
            .map(|m| {
                get_ci(m, "value")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect()
    };
    let mut out = Vec::new();
    for op in ops {
        let path = op.path.as_ref()?;
        if path.attr.urn.is_some()
            || !path.attr.name.eq_ignore_ascii_case("members")
            || path.attr.sub.is_some()
            || path.sub.is_some()
        {
            return None;
        }
        match (op.kind, &path.filter, &op.value) {
            (PatchKind::Add, None, Some(v)) => out.extend(ids(v)?.into_iter().map(|i| (true, i))),
            (PatchKind::Remove, None, Some(v)) => {
                out.extend(ids(v)?.into_iter().map(|i| (false, i)));
            }
            (PatchKind::Remove, Some(f), None) => match f.eq_value() {
                Some((p, v))
                    if p.urn.is_none()
                        && p.sub.is_none()
                        && p.name.eq_ignore_ascii_case("value") =>
                {
                    out.push((false, v.to_string()));
                }
                _ => return None,
            },
            _ => return None,
        }
    }
    Some(out)
}
