//! /Bulk (RFC 7644 §3.7).

use super::*;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use idsync_scim::ScimError;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Replace every `"bulkId:<id>"` string in a value by the id that bulk operation created.
/// Returns the first reference that cannot be resolved yet.
pub(super) fn resolve_bulk_ids(
    v: &mut Value,
    ids: &BTreeMap<String, String>,
) -> Result<(), String> {
    match v {
        Value::String(s) => {
            if let Some(r) = s.strip_prefix("bulkId:") {
                match ids.get(r) {
                    Some(id) => *s = id.clone(),
                    None => return Err(r.to_string()),
                }
            }
            Ok(())
        }
        Value::Array(a) => a.iter_mut().try_for_each(|x| resolve_bulk_ids(x, ids)),
        Value::Object(o) => o.values_mut().try_for_each(|x| resolve_bulk_ids(x, ids)),
        _ => Ok(()),
    }
}

/// The bulkIds a value names (`"bulkId:<id>"` strings), into `out`.
fn bulk_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(r) = s.strip_prefix("bulkId:") {
                out.push(r.to_string());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| bulk_refs(x, out)),
        Value::Object(o) => o.values().for_each(|x| bulk_refs(x, out)),
        _ => {}
    }
}

/// POST /Bulk (RFC 7644 §3.7): operations in order, `bulkId` references resolved (an operation
/// whose reference is not created yet waits for it), stopping after `failOnErrors` errors.
pub(super) async fn bulk(
    State(st): State<ScimState>,
    Path(dir): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    if st.atlassian(&dir).is_some() {
        return Err(ScimError::new(
            501,
            None,
            "Atlassian Cloud's user provisioning API has no /Bulk endpoint",
        )
        .into());
    }
    if body.len() > BULK_MAX_PAYLOAD {
        return Err(ScimError::new(
            413,
            None,
            format!("the bulk request is larger than {BULK_MAX_PAYLOAD} bytes"),
        )
        .into());
    }
    let req = off_runtime(body.len() > INLINE_BODY_MAX, move || parse_body(&body)).await?;
    let ok_schema = req
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .any(|s| s.as_str() == Some(idsync_scim::BULK_REQUEST))
        });
    if !ok_schema {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must contain {}",
            idsync_scim::BULK_REQUEST
        ))
        .into());
    }
    let ops = req
        .get("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be an array"))?;
    if ops.len() > BULK_MAX_OPERATIONS {
        return Err(ScimError::new(
            413,
            None,
            format!("more than {BULK_MAX_OPERATIONS} operations"),
        )
        .into());
    }
    let fail_on = match req.get("failOnErrors") {
        None | Some(Value::Null) => None,
        Some(n) => Some(n.as_u64().map(|n| n as usize).ok_or_else(|| {
            ScimError::invalid_value(format!(
                "failOnErrors: expected a non-negative integer, got {n}"
            ))
        })?),
    };
    // What each operation waits for, found once: an operation is looked at again only for
    // whether those are done (a chain of n references costs n rounds of n lookups, not n
    // rounds of copying and walking every operation's data).
    let refs: Vec<Vec<String>> = ops
        .iter()
        .map(|op| {
            let mut out = Vec::new();
            if let Some(p) = op.get("path").and_then(Value::as_str) {
                for seg in p.split('/') {
                    bulk_refs(&Value::String(seg.to_string()), &mut out);
                }
            }
            if let Some(d) = op.get("data") {
                bulk_refs(d, &mut out);
            }
            out
        })
        .collect();
    let base = st.base(&headers, &dir);
    let mut created: BTreeMap<String, String> = BTreeMap::new();
    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut errors = 0usize;
    let mut pending: Vec<usize> = (0..ops.len()).collect();
    'rounds: loop {
        let mut progressed = false;
        let mut waiting = Vec::new();
        for i in pending {
            if refs[i].iter().any(|r| !created.contains_key(r)) {
                waiting.push(i);
                continue;
            }
            let op = &ops[i];
            let method = op
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_uppercase();
            let bulk_id = op.get("bulkId").and_then(Value::as_str).map(str::to_string);
            let mut path = Value::String(
                op.get("path")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
            let mut data = op.get("data").cloned().unwrap_or(Value::Null);
            // Path segments and data values may name operations by bulkId; one that is not
            // done yet makes this operation wait for the next round.
            if let Value::String(p) = &path {
                let segments: Result<Vec<String>, String> = p
                    .split('/')
                    .map(|seg| {
                        let mut v = Value::String(seg.to_string());
                        resolve_bulk_ids(&mut v, &created)
                            .map(|()| v.as_str().unwrap_or_default().to_string())
                    })
                    .collect();
                match segments {
                    Ok(s) => path = Value::String(s.join("/")),
                    Err(_) => {
                        waiting.push(i);
                        continue;
                    }
                }
            }
            if resolve_bulk_ids(&mut data, &created).is_err() {
                waiting.push(i);
                continue;
            }
            let path = path.as_str().unwrap_or_default().to_string();
            progressed = true;
            let (status, response) =
                bulk_one(&st, &dir, &headers, &method, &path, data, op.get("version")).await;
            let mut entry = json!({"method": method, "status": status.as_u16().to_string()});
            if let Some(o) = entry.as_object_mut() {
                if let Some(b) = &bulk_id {
                    o.insert("bulkId".into(), Value::String(b.clone()));
                }
                if status.is_success() {
                    if let Some(id) = response.get("id").and_then(Value::as_str) {
                        let kind = if path.starts_with("/Groups") {
                            "Groups"
                        } else {
                            "Users"
                        };
                        o.insert(
                            "location".into(),
                            Value::String(format!("{base}/{kind}/{id}")),
                        );
                        if let Some(b) = &bulk_id {
                            created.insert(b.clone(), id.to_string());
                        }
                    }
                    if let Some(v) = response.get("meta").and_then(|m| m.get("version")) {
                        o.insert("version".into(), v.clone());
                    }
                } else {
                    o.insert("response".into(), response);
                }
            }
            if !status.is_success() {
                errors += 1;
            }
            results[i] = Some(entry);
            if fail_on.is_some_and(|n| n > 0 && errors >= n) {
                break 'rounds;
            }
        }
        if waiting.is_empty() {
            break;
        }
        if !progressed {
            // Circular or dangling references: each waiting operation fails.
            for i in waiting {
                let op = &ops[i];
                let mut entry = json!({
                    "method": op.get("method").cloned().unwrap_or(Value::Null),
                    "status": "409",
                    "response": ScimError::new(409, Some(idsync_scim::ScimType::InvalidValue), "a bulkId reference names no operation that succeeded").to_json(),
                });
                if let (Some(b), Some(o)) = (op.get("bulkId"), entry.as_object_mut()) {
                    o.insert("bulkId".into(), b.clone());
                }
                results[i] = Some(entry);
            }
            break;
        }
        pending = waiting;
    }
    let out: Vec<Value> = results.into_iter().flatten().collect();
    Ok(scim_json(
        StatusCode::OK,
        &json!({"schemas": [idsync_scim::BULK_RESPONSE], "Operations": out}),
        None,
        None,
    ))
}

/// One bulk operation through the same handlers as single requests.
pub(super) async fn bulk_one(
    st: &ScimState,
    dir: &str,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    data: Value,
    version: Option<&Value>,
) -> (StatusCode, Value) {
    let mut headers = headers.clone();
    if let Some(v) = version
        .and_then(Value::as_str)
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(header::IF_MATCH, v);
    }
    let body = Bytes::from(data.to_string());
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let st = State(st.clone());
    let d = dir.to_string();
    let id = |i: usize| segments.get(i).map(|s| s.to_string()).unwrap_or_default();
    let result = match (method, segments.first().copied(), segments.len()) {
        ("POST", Some("Users"), 1) => create_user(st, Path(d), headers, body).await,
        ("POST", Some("Groups"), 1) => create_group(st, Path(d), headers, body).await,
        ("PUT", Some("Users"), 2) => replace_user(st, Path((d, id(1))), headers, body).await,
        ("PUT", Some("Groups"), 2) => replace_group(st, Path((d, id(1))), headers, body).await,
        ("PATCH", Some("Users"), 2) => patch_user(st, Path((d, id(1))), headers, body).await,
        ("PATCH", Some("Groups"), 2) => patch_group(st, Path((d, id(1))), headers, body).await,
        ("DELETE", Some("Users"), 2) => delete_user(st, Path((d, id(1))), headers).await,
        ("DELETE", Some("Groups"), 2) => delete_group(st, Path((d, id(1))), headers).await,
        _ => Err(ScimFailure(ScimError::invalid_syntax(format!(
            "bulk: {method} {path} is not an operation on /Users or /Groups"
        )))),
    };
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::from_u16(e.0.status).unwrap_or(StatusCode::BAD_REQUEST),
                e.0.to_json(),
            )
        }
    };
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), BULK_MAX_PAYLOAD * 4)
        .await
        .unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
