//! The HTTP front-end of idsync: `/healthz`, `/metrics` (Prometheus text format), the admin
//! REST API under `/api/v1` and the SCIM endpoint under `/scim`. Thin: every handler calls the
//! engine or the store, and every error becomes an HTTP response in one place ([`ApiError`];
//! under `/scim`, a SCIM error). What a client may hold and ask is bounded: see [`serve`].

mod audit;
mod auth;
mod conn;
pub mod crowd;
mod error;
mod limits;
mod listen;
mod scim;
pub mod sso;

pub use error::ApiError;
pub use limits::{RateLimit, MAX_BODY_BYTES, MAX_HEADERS, MAX_HEADER_BYTES, MAX_URI_BYTES};
pub use listen::{serve_app, ConnLimits};

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use idsync_config::ServerConfig;
use idsync_engine::{escape_label, Mode, Service, Trigger};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt::Write;
use std::future::Future;
use std::sync::Arc;

#[derive(Clone)]
struct AppState {
    svc: Arc<Service>,
    admin_token: Option<Arc<str>>,
    /// What `/metrics` takes: `metrics_token`, else the admin token.
    metrics_token: Option<Arc<str>>,
}

/// How the routes guard and limit what they serve.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// `/api/v1` requires `Authorization: Bearer <token>` when set.
    pub admin_token: Option<String>,
    /// `/metrics` requires this bearer token when set, else the admin token when that is set.
    pub metrics_token: Option<String>,
    /// Requests each SCIM token may make (no limit when `None`).
    pub scim_rate: Option<RateLimit>,
    /// The single sign-on broker (`[sso]`), when configured.
    pub sso: Option<Arc<sso::Sso>>,
}

impl From<&ServerConfig> for HttpOptions {
    fn from(c: &ServerConfig) -> Self {
        HttpOptions {
            admin_token: c.admin_token.as_ref().map(|s| s.expose().to_string()),
            metrics_token: c.metrics_token.as_ref().map(|s| s.expose().to_string()),
            scim_rate: (c.scim_rate > 0.0).then_some(RateLimit {
                per_second: c.scim_rate,
                burst: c.scim_burst,
            }),
            sso: None,
        }
    }
}

/// `idsync serve`: the routes of [`app`] on `listener`, within `[server]`'s connection limits
/// ([`ConnLimits`]), until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    svc: Arc<Service>,
    server: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_with_sso(listener, svc, server, None, shutdown).await
}

/// [`serve`], with the single sign-on broker's routes when `sso` is given.
pub async fn serve_with_sso(
    listener: tokio::net::TcpListener,
    svc: Arc<Service>,
    server: &ServerConfig,
    sso: Option<Arc<sso::Sso>>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut opts = HttpOptions::from(server);
    opts.sso = sso;
    let app = app(svc, &opts);
    serve_app(listener, app, ConnLimits::from(server), shutdown).await
}

/// The router of the whole server with an admin token (which `/metrics` takes too) and no
/// rate limit.
pub fn router(svc: Arc<Service>, admin_token: Option<String>) -> Router {
    app(
        svc,
        &HttpOptions {
            admin_token,
            ..HttpOptions::default()
        },
    )
}

/// The router of the whole server. `/healthz` stays open.
pub fn app(svc: Arc<Service>, opts: &HttpOptions) -> Router {
    let admin_token: Option<Arc<str>> = opts.admin_token.as_deref().map(Arc::from);
    let state = AppState {
        metrics_token: opts
            .metrics_token
            .as_deref()
            .map(Arc::from)
            .or_else(|| admin_token.clone()),
        admin_token,
        svc,
    };
    let api = Router::new()
        .route("/sources", get(list_sources))
        .route("/sources/{name}/read", post(read_source))
        .route("/flows", get(list_flows))
        .route("/flows/{name}", get(get_flow))
        .route("/flows/{name}/sync", post(sync_flow))
        .route("/runs", get(list_runs))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/log", get(run_log))
        .route("/runs/{id}/approve", post(approve_run))
        .route("/runs/{id}/reject", post(reject_run))
        .route("/flows/{name}/quarantine/reset", post(reset_quarantine))
        .route("/notifications", get(list_notifications))
        .route("/audit", get(audit::list))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        // Inside the token check: only authenticated actions are recorded.
        .route_layer(middleware::from_fn_with_state(state.clone(), audit::record))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let mut scim = scim::router(Arc::clone(&state.svc), None);
    let clock = Arc::clone(&state.svc.runtime.clock);
    if let Some(limiter) = opts
        .scim_rate
        .and_then(|r| limits::RateLimiter::new(r, clock))
    {
        scim = scim.layer(middleware::from_fn_with_state(
            Arc::new(limiter),
            limits::scim_rate,
        ));
    }
    let sso = match &opts.sso {
        Some(sso) => sso::router(Arc::clone(sso)),
        None => Router::new(),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/metrics",
            get(metrics).route_layer(middleware::from_fn_with_state(
                state.clone(),
                require_metrics_token,
            )),
        )
        .nest("/api/v1", api)
        .with_state(state.clone())
        .merge(scim)
        .merge(crowd::router(Arc::clone(&state.svc), opts.scim_rate))
        .merge(sso)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limits::head_limits))
        .layer(middleware::from_fn(limits::scim_errors))
}

async fn require_token(
    State(st): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &st.admin_token {
        if !auth::bearer_is(req.headers(), token) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(req).await)
}

async fn require_metrics_token(
    State(st): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &st.metrics_token {
        if !auth::bearer_is(req.headers(), token) {
            return Err(ApiError::Unauthorized);
        }
    }
    Ok(next.run(req).await)
}

async fn healthz(State(st): State<AppState>) -> Response {
    match st.svc.runtime.store.list_directories().await {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn metrics(State(st): State<AppState>) -> Result<Response, ApiError> {
    let rt = &st.svc.runtime;
    let mut out = String::new();
    st.svc.metrics.render(&mut out);
    let _ = writeln!(
        out,
        "# HELP idsync_directory_objects Objects stored in a directory."
    );
    let _ = writeln!(out, "# TYPE idsync_directory_objects gauge");
    let mut lag = String::new();
    for dir in rt.store.list_directories().await? {
        let c = rt.store.directory_counts(&dir).await?;
        let d = escape_label(&dir);
        for (kind, n) in [
            ("user", c.users),
            ("group", c.groups),
            ("membership", c.memberships),
        ] {
            let _ = writeln!(
                out,
                "idsync_directory_objects{{directory=\"{d}\",kind=\"{kind}\"}} {n}"
            );
        }
    }
    for (name, flow) in &rt.flows {
        let last = rt.store.last_seq(&flow.spec.directory).await?;
        let cursor = rt.store.flow_cursor(name).await?;
        let _ = writeln!(
            lag,
            "idsync_flow_lag_changes{{flow=\"{}\"}} {}",
            escape_label(name),
            (last - cursor).max(0)
        );
    }
    let _ = writeln!(
        out,
        "# HELP idsync_flow_lag_changes Change-log entries a flow has not yet provisioned."
    );
    let _ = writeln!(out, "# TYPE idsync_flow_lag_changes gauge");
    out.push_str(&lag);
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response())
}

#[derive(Serialize)]
struct SourceView {
    name: String,
    directory: String,
    interval_seconds: Option<u64>,
    users: i64,
    groups: i64,
    memberships: i64,
    last_seq: i64,
}

async fn list_sources(State(st): State<AppState>) -> Result<Json<Vec<SourceView>>, ApiError> {
    let rt = &st.svc.runtime;
    let mut out = Vec::new();
    for s in rt.sources.values() {
        let c = rt.store.directory_counts(&s.directory).await?;
        out.push(SourceView {
            name: s.name.clone(),
            directory: s.directory.clone(),
            interval_seconds: s.interval.map(|d| d.as_secs()),
            users: c.users,
            groups: c.groups,
            memberships: c.memberships,
            last_seq: c.last_seq,
        });
    }
    Ok(Json(out))
}

async fn read_source(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let report = st.svc.runtime.ingest(&name).await?;
    if report.changes > 0 {
        st.svc.notify(&report.directory, Trigger::Manual);
    }
    Ok(Json(json!(report)))
}

#[derive(Serialize)]
struct FlowView {
    name: String,
    source: Option<String>,
    directory: String,
    target: String,
    enabled: bool,
    cursor: i64,
    last_seq: i64,
    lag: i64,
    last_run: Option<idsync_store::Run>,
    /// `ok`, `failing` (bad runs in a row, below quarantine), `quarantined`, or `held` (a run
    /// waits for approval of its deprovisions).
    status: &'static str,
    health: idsync_store::FlowHealth,
    /// The held run waiting for `approve` / `reject`.
    waiting_run: Option<String>,
}

async fn flow_view(st: &AppState, name: &str) -> Result<FlowView, ApiError> {
    let rt = &st.svc.runtime;
    let f = rt.flow(name)?;
    let cursor = rt.store.flow_cursor(name).await?;
    let last_seq = rt.store.last_seq(&f.spec.directory).await?;
    let last_run = rt.store.list_runs(Some(name), 1).await?.into_iter().next();
    let health = rt.store.flow_health(name).await?;
    let waiting_run = rt.store.pending_hold(name).await?.map(|r| r.id);
    let status = if health.quarantined_ms.is_some() {
        "quarantined"
    } else if waiting_run.is_some() {
        "held"
    } else if health.failures > 0 {
        "failing"
    } else {
        "ok"
    };
    Ok(FlowView {
        name: name.to_string(),
        source: f.source.clone(),
        directory: f.spec.directory.clone(),
        target: f.spec.target.clone(),
        enabled: f.enabled,
        cursor,
        last_seq,
        lag: (last_seq - cursor).max(0),
        last_run,
        status,
        health,
        waiting_run,
    })
}

async fn list_flows(State(st): State<AppState>) -> Result<Json<Vec<FlowView>>, ApiError> {
    let mut out = Vec::new();
    for name in st.svc.runtime.flows.keys() {
        out.push(flow_view(&st, name).await?);
    }
    Ok(Json(out))
}

async fn get_flow(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<FlowView>, ApiError> {
    Ok(Json(flow_view(&st, &name).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SyncRequest {
    #[serde(default)]
    mode: Option<String>,
}

async fn sync_flow(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Option<Json<SyncRequest>>,
) -> Result<Json<Value>, ApiError> {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let mode = match req.mode.as_deref() {
        None | Some("full") => Mode::Full,
        Some("reconcile") => Mode::Reconcile,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "mode must be \"full\" or \"reconcile\", not {other:?}"
            )))
        }
    };
    st.svc.runtime.flow(&name)?;
    let report = st.svc.trigger(&name, mode, Trigger::Manual, true).await?;
    Ok(Json(report_json(&report)))
}

/// What the API says of a run it started.
fn report_json(report: &idsync_engine::RunReport) -> Value {
    json!({
        "run_id": report.run_id,
        "flow": report.flow,
        "status": report.status,
        "counts": report.counts,
        "started_ms": report.started_ms,
        "ended_ms": report.ended_ms,
    })
}

/// Deprovision what a held run held (its flow runs now).
async fn approve_run(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let report = st.svc.approve(&id).await?;
    let mut v = report_json(&report);
    v["approved"] = Value::String(id);
    Ok(Json(v))
}

/// End a flow's quarantine by hand.
async fn reset_quarantine(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<FlowView>, ApiError> {
    st.svc.runtime.flow(&name)?;
    st.svc.runtime.store.record_flow_success(&name).await?;
    Ok(Json(flow_view(&st, &name).await?))
}

/// Notifications sent (or tried), newest first.
async fn list_notifications(
    State(st): State<AppState>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Vec<idsync_store::NotificationRecord>>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    Ok(Json(st.svc.runtime.store.list_notifications(limit).await?))
}

/// Deprovision nothing of what a held run held.
async fn reject_run(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<idsync_store::Run>, ApiError> {
    Ok(Json(st.svc.runtime.reject(&id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    flow: Option<String>,
    limit: Option<i64>,
}

async fn list_runs(
    State(st): State<AppState>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Vec<idsync_store::Run>>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    Ok(Json(
        st.svc
            .runtime
            .store
            .list_runs(q.flow.as_deref(), limit)
            .await?,
    ))
}

async fn get_run(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<idsync_store::Run>, ApiError> {
    st.svc
        .runtime
        .store
        .get_run(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no run with id {id:?}")))
}

async fn run_log(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<idsync_store::OpLog>>, ApiError> {
    let store = &st.svc.runtime.store;
    if store.get_run(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no run with id {id:?}")));
    }
    Ok(Json(store.run_ops(&id).await?))
}
