//! JSON as Crowd writes and reads it: the POSTed search restrictions.

use crate::codec::xml::boolean;
use crate::error::CrowdError;
use crate::restriction::{bad, MatchMode, PropertyType, Restriction, MAX_DEPTH};
use serde_json::Value;

/// A POSTed search restriction in JSON, as Crowd's Jackson mapping reads it:
/// `{"restriction-type": "property-search-restriction", "property": {"name": "email",
/// "type": "STRING"}, "match-mode": "CONTAINS", "value": "x"}`,
/// `{"restriction-type": "boolean-search-restriction", "boolean-logic": "and",
/// "restrictions": [...]}`, `{"restriction-type": "null-search-restriction"}`. Without a
/// `restriction-type` the kind follows from the keys.
pub fn parse_restriction(body: &[u8]) -> Result<Restriction, CrowdError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the JSON body is not valid: {e}")))?;
    restriction(&value, 0)
}

fn restriction(v: &Value, depth: usize) -> Result<Restriction, CrowdError> {
    if depth > MAX_DEPTH {
        return Err(bad(format!(
            "the search restriction nests deeper than {MAX_DEPTH}"
        )));
    }
    let obj = v
        .as_object()
        .ok_or_else(|| bad("a search restriction must be a JSON object"))?;
    let kind = match obj.get("restriction-type").and_then(Value::as_str) {
        Some(k) => k,
        None if obj.contains_key("boolean-logic") => "boolean-search-restriction",
        None if obj.contains_key("property") => "property-search-restriction",
        None if obj.is_empty() => "null-search-restriction",
        None => return Err(bad("the search restriction names no restriction-type")),
    };
    match kind {
        "null-search-restriction" => Ok(Restriction::All),
        "property-search-restriction" => {
            let property = obj
                .get("property")
                .and_then(Value::as_object)
                .ok_or_else(|| bad("a property-search-restriction has no property"))?;
            let name = property.get("name").and_then(Value::as_str).unwrap_or("");
            let kind = match property.get("type").and_then(Value::as_str) {
                Some(t) => PropertyType::parse(t)
                    .ok_or_else(|| bad(format!("{t:?} is an unsupported type")))?,
                None => PropertyType::String,
            };
            let mode_text = obj.get("match-mode").and_then(Value::as_str).unwrap_or("");
            let mode = MatchMode::parse(mode_text)
                .ok_or_else(|| bad(format!("{mode_text:?} is not a match mode")))?;
            let value = match obj.get("value") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Bool(b)) => Some(b.to_string()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(_) => return Err(bad("a restriction's value must be a string")),
            };
            Restriction::property(name, kind, mode, value.as_deref())
        }
        "boolean-search-restriction" => {
            let logic = obj
                .get("boolean-logic")
                .and_then(Value::as_str)
                .unwrap_or("");
            let parts = match obj.get("restrictions") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(list)) => list
                    .iter()
                    .map(|r| restriction(r, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?,
                Some(_) => return Err(bad("restrictions must be a JSON array")),
            };
            boolean(logic, parts)
        }
        other => Err(bad(format!("{other:?} is not a search restriction type"))),
    }
}
