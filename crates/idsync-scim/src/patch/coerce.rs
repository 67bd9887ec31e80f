//! Values brought to their attribute's type (strictly, but for what Entra sends), and whole
//! bodies to canonical form.

use super::*;
use crate::error::ScimError;
use crate::filter::AttrPath;
use crate::schema::{Attr, AttrType, ResourceSchema};
use serde_json::{Map, Value};

pub(super) fn coerce_element(attr: &Attr, v: Value) -> Result<Value, ScimError> {
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
pub(super) fn wrong_type(attr: &Attr, what: &str, v: &Value) -> ScimError {
    if attr.returned == "never" {
        ScimError::invalid_value(format!("{}: expected {what}", attr.name))
    } else {
        ScimError::invalid_value(format!("{}: expected {what}, got {v}", attr.name))
    }
}

/// A single value (an element, when `element`) to the attribute's type.
pub(super) fn coerce_one(attr: &Attr, v: Value, element: bool) -> Result<Value, ScimError> {
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
    // `schemas`, when given, is a list of URNs naming this resource's schema (a Group body
    // sent to /Users is not a user). Without it the body is taken as the endpoint's resource.
    if let Some((_, schemas)) = body.iter().find(|(k, _)| k.eq_ignore_ascii_case("schemas")) {
        let urns: Option<Vec<&str>> = schemas
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect());
        match urns {
            None => {
                return Err(ScimError::invalid_value(format!(
                    "schemas: expected a list of schema URNs, got {schemas}"
                )))
            }
            Some(urns) if !urns.iter().any(|u| u.eq_ignore_ascii_case(schema.core.id)) => {
                return Err(ScimError::invalid_value(format!(
                    "schemas must name {} for a {}",
                    schema.core.id, schema.name
                )))
            }
            Some(_) => {}
        }
    }
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

pub(super) fn one_primary_value(v: Value) -> Value {
    match v {
        Value::Array(a) => Value::Array(one_primary(a)),
        other => other,
    }
}
