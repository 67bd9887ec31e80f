//! PATCH (RFC 7644 §3.5.2) applied to a resource in its JSON form.
//!
//! Besides the RFC, this accepts what Microsoft Entra's provisioning service sends: operation
//! names in any letter case, booleans as the strings `"True"`/`"False"`, `add`/`replace` without
//! a path whose value object has attribute paths as keys (`"name.givenName"`,
//! `"emails[type eq \"work\"].value"`, enterprise-extension URN paths), member removal by a
//! value array, and `replace` of a filtered path that matches nothing (the element is created).

mod coerce;
mod index;

use crate::error::ScimError;
use crate::filter::{get_ci, AttrPath, CompareOp, Filter};
use crate::schema::{Attr, AttrType, Resolved, ResourceSchema};
use coerce::*;
pub use coerce::{coerce, normalize};
use index::*;
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
