//! The audit log on the admin API: every action (`POST`, `PUT`, `PATCH`, `DELETE` under
//! `/api/v1`) is recorded with who (the admin token, or `anonymous` when none is configured),
//! when (the runtime's clock) and what (action, object, outcome), by a layer inside the token
//! check, so only authenticated requests reach it; and `GET /api/v1/audit?limit=` lists it.

use crate::{ApiError, AppState};
use axum::body::{Body, HttpBody as _};
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use idsync_store::{AuditEntry, AuditOutcome, NewAuditEntry};
use serde::Deserialize;
use serde_json::Value;

/// Responses up to this size are read for the detail of their entry (a run's id and status,
/// an error); larger ones are passed on untouched.
const DETAIL_BODY_MAX: u64 = 64 * 1024;

/// The action of a route: its name and the path parameter that names its object.
fn action_of(method: &Method, route: &str) -> (String, Option<&'static str>) {
    let known = match route {
        "/sources/{name}/read" => Some(("source.read", "name")),
        "/flows/{name}/sync" => Some(("flow.sync", "name")),
        "/runs/{id}/approve" => Some(("run.approve", "id")),
        "/runs/{id}/reject" => Some(("run.reject", "id")),
        "/flows/{name}/quarantine/reset" => Some(("flow.quarantine_reset", "name")),
        _ => None,
    };
    match known {
        Some((action, param)) => (action.to_string(), Some(param)),
        // Any other action is recorded too, under its method and route.
        None => (format!("{method} {route}"), None),
    }
}

/// Record the admin action a request does, before and after it.
pub(crate) async fn record(
    State(st): State<AppState>,
    route: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(next.run(req).await);
    }
    let route = route.map_or_else(|| req.uri().path().to_string(), |r| r.as_str().to_string());
    let route = route.strip_prefix("/api/v1").unwrap_or(&route).to_string();
    let (action, param) = action_of(req.method(), &route);
    let object = param
        .and_then(|p| object_of(&route, req.uri().path(), p))
        .unwrap_or_else(|| req.uri().path().to_string());
    let rt = &st.svc.runtime;
    let actor = if st.admin_token.is_some() {
        "admin-token"
    } else {
        "anonymous"
    };
    let id = rt
        .store
        .audit_begin(&NewAuditEntry {
            at_ms: rt.clock.now_ms(),
            actor: actor.into(),
            via: "api".into(),
            action: action.clone(),
            object,
        })
        .await?;
    let resp = next.run(req).await;
    let status = resp.status();
    let (resp, body) = read_small_body(resp).await;
    let outcome = if status.is_success() {
        AuditOutcome::Ok
    } else if status.is_client_error() {
        AuditOutcome::Refused
    } else {
        AuditOutcome::Failed
    };
    let detail = body.map(|b| detail_of(status.as_u16(), &b));
    if let Err(e) = rt
        .store
        .audit_end(id, outcome, detail.as_deref(), rt.clock.now_ms())
        .await
    {
        tracing::warn!(error = %e, action, "cannot record how an action ended in the audit log");
    }
    Ok(resp)
}

/// The value of path parameter `param` in `path`, matched against `route`.
fn object_of(route: &str, path: &str, param: &str) -> Option<String> {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let wanted = format!("{{{param}}}");
    route
        .split('/')
        .zip(path.split('/'))
        .find(|(r, _)| *r == wanted)
        .map(|(_, p)| percent_decode(p))
}

/// `%XX` escapes of a path segment decoded (as the router does for parameters).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push(((hex(h).unwrap_or(0) << 4) | hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The body of a small response, read and put back; `None` for a large or streamed one.
async fn read_small_body(resp: Response) -> (Response, Option<Vec<u8>>) {
    let small = resp
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n <= DETAIL_BODY_MAX);
    if !small {
        return (resp, None);
    }
    let (parts, body) = resp.into_parts();
    match axum::body::to_bytes(body, DETAIL_BODY_MAX as usize).await {
        Ok(bytes) => {
            let kept = bytes.to_vec();
            (Response::from_parts(parts, Body::from(bytes)), Some(kept))
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a response for the audit log");
            (Response::from_parts(parts, Body::empty()), None)
        }
    }
}

/// What an answer says about the action: the run it started and its status, or the error.
fn detail_of(status: u16, body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return format!("HTTP {status}");
    };
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    if let Some(e) = s("error") {
        return format!("HTTP {status}: {e}");
    }
    if let (Some(run), Some(res)) = (s("id"), s("resolution")) {
        return format!("run {run}: {res}");
    }
    match (s("run_id").or(s("id")), s("status")) {
        (Some(run), Some(st)) => format!("run {run}: {st}"),
        _ => match v.get("changes").and_then(Value::as_i64) {
            Some(n) => format!("{n} change(s) read"),
            None => match s("status") {
                Some(st) => format!("status {st}"),
                None => format!("HTTP {status}"),
            },
        },
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/audit?limit=`: the audit log, newest first (50 by default, at most 1,000).
pub(crate) async fn list(
    State(st): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    Ok(Json(st.svc.runtime.store.list_audit(limit).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_come_from_the_route_parameters() {
        assert_eq!(
            object_of("/runs/{id}/approve", "/api/v1/runs/r%201/approve", "id").as_deref(),
            Some("r 1")
        );
        assert_eq!(
            action_of(&Method::POST, "/flows/{name}/sync"),
            ("flow.sync".to_string(), Some("name"))
        );
        assert_eq!(
            action_of(&Method::DELETE, "/things/{id}").0,
            "DELETE /things/{id}"
        );
        assert_eq!(
            detail_of(409, br#"{"error":"run r is not waiting","status":409}"#),
            "HTTP 409: run r is not waiting"
        );
        assert_eq!(
            detail_of(200, br#"{"run_id":"r2","status":"succeeded"}"#),
            "run r2: succeeded"
        );
    }
}
