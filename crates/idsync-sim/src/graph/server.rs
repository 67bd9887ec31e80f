//! The simulator over HTTP or HTTPS: Entra's token endpoint and OpenID configuration, Graph
//! v1.0 (through [`super::api`]), `$batch`, fault injection, the resource-unit budget, and a
//! small admin API under `/_sim` for tests.

use super::api::{Api, Body, GraphRequest, GraphResponse};
use super::assertion::RegisteredCert;
use super::faults::Faults;
use super::login;
use super::signin::{self, SignIn, SignInOptions};
use super::tenant::{Tenant, TenantSpec};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use idsync_core::Clock;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// An app registration the token endpoint knows.
#[derive(Debug, Clone)]
pub struct App {
    pub client_id: String,
    pub client_secret: String,
    /// Certificates registered on the app: client assertions signed with their keys sign in.
    pub certificates: Vec<RegisteredCert>,
    /// Application permissions granted with admin consent.
    pub roles: Vec<String>,
}

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct GraphSimOptions {
    pub spec: TenantSpec,
    /// Address to listen on (loopback; port 0 picks a free one).
    pub listen: SocketAddr,
    /// Serve HTTPS with a generated certificate (its CA is written to `cert_dir/ca.pem`).
    pub tls: bool,
    pub cert_dir: Option<PathBuf>,
    /// The app idsync reads with, and an admin app that may write.
    pub reader: App,
    pub admin: App,
    /// Page size when the client asks for none.
    pub page_size: usize,
    /// The largest page served, whatever the client asks for (Graph: 999).
    pub max_page: usize,
    pub faults: Faults,
    /// Resource units per 10 s per app (default by tenant size: 3,500 / 5,000 / 8,000).
    pub budget: Option<u32>,
    /// Users' sign-in (the authorize endpoint and its login page).
    pub sign_in: SignInOptions,
}

impl Default for GraphSimOptions {
    fn default() -> Self {
        GraphSimOptions {
            spec: TenantSpec::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            cert_dir: None,
            reader: App {
                client_id: "11111111-2222-3333-4444-555555555555".into(),
                client_secret: "sim-secret".into(),
                certificates: Vec::new(),
                roles: READ_ROLES.iter().map(|s| (*s).to_string()).collect(),
            },
            admin: App {
                client_id: "99999999-8888-7777-6666-555555555555".into(),
                client_secret: "sim-admin-secret".into(),
                certificates: Vec::new(),
                roles: vec![
                    "Directory.ReadWrite.All".into(),
                    "User.ReadWrite.All".into(),
                    "Group.ReadWrite.All".into(),
                ],
            },
            page_size: 100,
            max_page: 999,
            faults: Faults::default(),
            budget: None,
            sign_in: SignInOptions::default(),
        }
    }
}

/// The permissions idsync's Graph source asks for.
pub const READ_ROLES: &[&str] = &[
    "User.Read.All",
    "Group.Read.All",
    "GroupMember.Read.All",
    "Application.Read.All",
    "Directory.Read.All",
];

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) roles: Vec<String>,
    pub(super) client_id: String,
    pub(super) expires_ms: i64,
}

/// Counters a test or benchmark reads.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct Stats {
    pub requests: u64,
    pub throttled: u64,
    pub injected_errors: u64,
    pub resource_units: u64,
    pub tokens_issued: u64,
    /// Answers cut off mid-body (`reset_next`).
    pub resets: u64,
    /// Initial delta rounds begun from a synchronization reset's `Location`.
    pub resyncs: u64,
}

struct Budget {
    window_start_ms: i64,
    used: HashMap<String, u32>,
}

pub struct SimState {
    pub tenant: RwLock<Tenant>,
    pub(super) opts: GraphSimOptions,
    pub(super) faults: Mutex<Faults>,
    pub(super) tokens: Mutex<HashMap<String, Token>>,
    /// jti of client assertions already used, with their expiry (Unix seconds).
    pub(super) assertions: Mutex<HashMap<String, i64>>,
    pub(super) rng: Mutex<StdRng>,
    budget: Mutex<Budget>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) epoch: String,
    pub(super) requests: AtomicU64,
    pub(super) throttled: AtomicU64,
    pub(super) injected: AtomicU64,
    pub(super) units: AtomicU64,
    pub(super) issued: AtomicU64,
    /// Users' sign-in: its key, redirect URIs and codes.
    pub(super) sign_in: SignIn,
    pub(super) resets: AtomicU64,
    pub(super) resyncs: AtomicU64,
}

impl SimState {
    pub fn stats(&self) -> Stats {
        Stats {
            requests: self.requests.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            injected_errors: self.injected.load(Ordering::Relaxed),
            resource_units: self.units.load(Ordering::Relaxed),
            tokens_issued: self.issued.load(Ordering::Relaxed),
            resets: self.resets.load(Ordering::Relaxed),
            resyncs: self.resyncs.load(Ordering::Relaxed),
        }
    }

    pub fn set_faults(&self, f: Faults) {
        if let Ok(mut g) = self.faults.lock() {
            *g = f;
        }
    }

    /// Register a redirect URI on the tenant's apps (where sign-ins may send their codes).
    pub fn register_redirect_uri(&self, uri: &str) {
        self.sign_in.register(uri);
    }

    /// Expire every delta link issued so far (the next delta answers 410 syncStateNotFound).
    pub fn expire_delta_links(&self) {
        if let Ok(mut t) = self.tenant.write() {
            t.expire_delta_links();
        }
    }

    fn budget_limit(&self) -> u32 {
        self.opts.budget.unwrap_or_else(|| {
            let users = self.tenant.read().map(|t| t.user_count()).unwrap_or(0);
            match users {
                0..=49 => 3_500,
                50..=500 => 5_000,
                _ => 8_000,
            }
        })
    }
}

/// A running simulator.
pub struct RunningGraphSim {
    /// `http(s)://127.0.0.1:port`: the authority (login) root and the Graph host.
    pub root: String,
    pub tenant_id: String,
    pub ca_pem: Option<PathBuf>,
    pub state: Arc<SimState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningGraphSim {
    /// `root/v1.0`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.root)
    }
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for RunningGraphSim {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot make the TLS certificate: {0}")]
    Tls(String),
    #[error("{0}")]
    Key(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Start the simulator; it serves until stopped or dropped.
pub async fn start(
    opts: GraphSimOptions,
    clock: Arc<dyn Clock>,
) -> Result<RunningGraphSim, SimError> {
    let tenant = Tenant::generate(&opts.spec);
    let tenant_id = tenant.id.clone();
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| SimError::Listen {
            addr: opts.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Listen {
        addr: opts.listen,
        source,
    })?;
    let tls = if opts.tls {
        let dir = opts.cert_dir.clone().unwrap_or_else(std::env::temp_dir);
        Some(super::tls::make(&dir)?)
    } else {
        None
    };
    let seed = opts.spec.seed;
    let uris = opts.sign_in.redirect_uris.clone();
    let sign_in = tokio::task::spawn_blocking(move || SignIn::generate(uris))
        .await
        .map_err(|e| SimError::Key(e.to_string()))?
        .map_err(SimError::Key)?;
    let state = Arc::new(SimState {
        tenant: RwLock::new(tenant),
        faults: Mutex::new(opts.faults.clone()),
        opts,
        tokens: Mutex::new(HashMap::new()),
        assertions: Mutex::new(HashMap::new()),
        rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x5eed)),
        budget: Mutex::new(Budget {
            window_start_ms: 0,
            used: HashMap::new(),
        }),
        clock,
        epoch: uuid::Uuid::new_v4().simple().to_string(),
        requests: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
        injected: AtomicU64::new(0),
        units: AtomicU64::new(0),
        issued: AtomicU64::new(0),
        resets: AtomicU64::new(0),
        resyncs: AtomicU64::new(0),
        sign_in,
    });
    let app = router(state.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
    let task = match tls {
        None => tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
        }),
        Some(t) => tokio::spawn(super::tls::serve(listener, t.acceptor, app, stop_rx)),
    };
    Ok(RunningGraphSim {
        root: format!("{scheme}://{addr}"),
        tenant_id,
        ca_pem,
        state,
        stop: Some(stop_tx),
        task: Some(task),
    })
}

fn router(state: Arc<SimState>) -> Router {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(login::openid_configuration),
        )
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(login::openid_configuration),
        )
        .route("/{tenant}/oauth2/v2.0/token", post(login::token))
        .route("/{tenant}/discovery/v2.0/keys", get(signin::keys))
        .route("/{tenant}/oauth2/v2.0/authorize", get(signin::authorize))
        .route("/{tenant}/login", post(signin::login))
        .route("/v1.0/$batch", post(batch))
        .route("/v1.0/{*rest}", axum::routing::any(graph))
        .route("/_sim/faults", post(set_faults).get(get_faults))
        .route("/_sim/expire-delta", post(expire_delta))
        .route("/_sim/stats", get(stats))
        .with_state(state)
}

/// `scheme://host:port` as the client addressed us: the URI's authority (HTTP/2's
/// `:authority`), else the Host header (HTTP/1.1).
pub(super) fn root_of(uri: &Uri, headers: &HeaderMap, st: &SimState) -> String {
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "127.0.0.1".into());
    let scheme = if st.opts.tls { "https" } else { "http" };
    format!("{scheme}://{host}")
}

fn decode_query(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn prefer_page(headers: &HeaderMap) -> Option<usize> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| {
            p.trim()
                .strip_prefix("odata.maxpagesize=")?
                .trim()
                .parse()
                .ok()
        })
}

fn to_response(r: GraphResponse, extra: &[(&'static str, String)]) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = match r.body {
        Body::Json(v) => (
            status,
            [(header::CONTENT_TYPE, "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")],
            v.to_string(),
        )
            .into_response(),
        Body::Text(t) => (status, [(header::CONTENT_TYPE, "text/plain")], t).into_response(),
        Body::Empty => status.into_response(),
    };
    let h = resp.headers_mut();
    h.insert(
        "request-id",
        HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
            .unwrap_or(HeaderValue::from_static("0")),
    );
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    resp
}

/// Authenticate, inject faults, charge the budget, then dispatch. Returns the answer and the
/// headers to add to it.
fn handle(
    st: &SimState,
    auth: Option<&str>,
    r: &GraphRequest,
) -> (GraphResponse, Vec<(&'static str, String)>) {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let now = st.clock.now_ms();
    let token = auth
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .and_then(|t| st.tokens.lock().ok()?.get(t.trim()).cloned());
    let Some(token) = token else {
        return (
            GraphResponse::error(401, "InvalidAuthenticationToken", "Access token is empty or invalid."),
            vec![("www-authenticate", "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\"".into())],
        );
    };
    if token.expires_ms <= now {
        return (
            GraphResponse::error(
                401,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            ),
            Vec::new(),
        );
    }
    let needed = super::api::required_roles(&r.method, &r.path);
    if !needed.is_empty() && !needed.iter().any(|n| token.roles.iter().any(|r| r == n)) {
        return (
            GraphResponse::error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ),
            Vec::new(),
        );
    }
    // Faults.
    let faults = st.faults.lock().map(|f| f.clone()).unwrap_or_default();
    let target = super::faults::target_of(r);
    let forced = st
        .faults
        .lock()
        .map(|mut f| {
            let pattern = f.fail_match.clone();
            super::faults::take(&mut f.fail_next, &pattern, &target)
        })
        .unwrap_or(false);
    let (roll_throttle, roll_error) = st
        .rng
        .lock()
        .map(|mut g| (g.gen::<f64>(), g.gen::<f64>()))
        .unwrap_or((1.0, 1.0));
    let retry = faults.retry_after_secs.to_string();
    if roll_throttle < faults.throttle_rate {
        st.throttled.fetch_add(1, Ordering::Relaxed);
        return (
            GraphResponse::error(
                429,
                "TooManyRequests",
                "Too many requests. Retry after the interval in the Retry-After header.",
            ),
            vec![
                ("retry-after", retry),
                (
                    "x-ms-throttle-scope",
                    "Tenant_Application/ReadWrite/sim".into(),
                ),
            ],
        );
    }
    if forced && faults.error_status == 410 {
        // A synchronization reset where Graph would not otherwise give one (mid-round).
        st.injected.fetch_add(1, Ordering::Relaxed);
        let mut headers = Vec::new();
        if faults.delta_reset_location {
            if let Some(location) = super::delta::reset_location(r) {
                headers.push(("location", location));
            }
        }
        return (
            GraphResponse::error(
                410,
                "syncStateNotFound",
                "The sync state generation is not found (injected fault). Restart the sync.",
            ),
            headers,
        );
    }
    if forced || roll_error < faults.error_rate {
        st.injected.fetch_add(1, Ordering::Relaxed);
        let status = if faults.error_status >= 500 {
            faults.error_status
        } else {
            503
        };
        return (
            GraphResponse::error(
                status,
                "serviceNotAvailable",
                "The service is temporarily unavailable (injected fault).",
            ),
            if status == 503 {
                vec![("retry-after", retry)]
            } else {
                Vec::new()
            },
        );
    }
    // Resource units, per app, in windows of 10 s.
    let cost = super::api::resource_units(r);
    let limit = st.budget_limit();
    let over = st.budget.lock().map(|mut b| {
        if now - b.window_start_ms >= 10_000 {
            b.window_start_ms = now;
            b.used.clear();
        }
        let used = b.used.entry(token.client_id.clone()).or_insert(0);
        if *used + cost > limit {
            Err((10_000 - (now - b.window_start_ms)).max(1000))
        } else {
            *used += cost;
            Ok(f64::from(*used) / f64::from(limit.max(1)))
        }
    });
    // Like Graph, say so once the app has used 80 % of its limit.
    let near_limit = match over {
        Ok(Ok(share)) if share >= 0.8 => Some(format!("{share:.1}")),
        _ => None,
    };
    if let Ok(Err(wait_ms)) = over {
        st.throttled.fetch_add(1, Ordering::Relaxed);
        return (
            GraphResponse::error(429, "TooManyRequests", "Too many requests: the application exceeded its resource unit budget for this tenant."),
            vec![
                ("retry-after", ((wait_ms + 999) / 1000).to_string()),
                ("x-ms-throttle-scope", "Tenant_Application/Read/sim".into()),
                ("x-ms-throttle-information", "ResourceUnitLimitExceeded".into()),
            ],
        );
    }
    st.units.fetch_add(u64::from(cost), Ordering::Relaxed);
    if faults.no_count && r.path.ends_with("/$count") {
        return (
            GraphResponse::error(
                400,
                "Request_UnsupportedQuery",
                "Unsupported query: $count is not served here (injected fault).",
            ),
            Vec::new(),
        );
    }
    if super::delta::starts_resync(r) {
        st.resyncs.fetch_add(1, Ordering::Relaxed);
    }
    let api = Api {
        epoch: &st.epoch,
        now_ms: now,
        default_page: st.opts.page_size,
        max_page: st.opts.max_page,
        sparse_delta: faults.sparse_delta,
        delta_replay: faults.delta_replay,
    };
    let resp = if r.method == "GET" || super::member_objects::is_call(r) {
        match st.tenant.read() {
            Ok(t) => api.read(&t, r),
            Err(_) => GraphResponse::error(500, "generalException", "tenant lock poisoned"),
        }
    } else {
        match st.tenant.write() {
            Ok(mut t) => api.write(&mut t, r),
            Err(_) => GraphResponse::error(500, "generalException", "tenant lock poisoned"),
        }
    };
    let mut headers = vec![("x-ms-resource-unit", cost.to_string())];
    if resp.status == 410 && faults.delta_reset_location {
        if let Some(location) = super::delta::reset_location(r) {
            headers.push(("location", location));
        }
    }
    if let Some(share) = near_limit {
        headers.push(("x-ms-throttle-limit-percentage", share));
        headers.push(("x-ms-throttle-scope", "Tenant_Application/Read/sim".into()));
    }
    (resp, headers)
}

async fn graph(
    State(st): State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = st.faults.lock().map(|f| f.latency_ms).unwrap_or(0);
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let path = uri.path().strip_prefix("/v1.0").unwrap_or(uri.path());
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .to_string();
    let body = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                return to_response(
                    GraphResponse::error(
                        400,
                        "BadRequest",
                        &format!("Unable to read JSON request payload: {e}"),
                    ),
                    &[],
                )
            }
        }
    };
    let r = GraphRequest {
        method: method.as_str().to_string(),
        path,
        query: decode_query(uri.query()),
        consistency_eventual: headers
            .get("consistencylevel")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("eventual")),
        max_page_size: prefer_page(&headers),
        body,
        base: format!("{}/v1.0", root_of(&uri, &headers, &st)),
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let target = super::faults::target_of(&r);
    let cut = st
        .faults
        .lock()
        .map(|mut f| {
            let pattern = f.reset_match.clone();
            super::faults::take(&mut f.reset_next, &pattern, &target)
        })
        .unwrap_or(false);
    let (resp, extra) = handle(&st, auth, &r);
    if cut {
        st.resets.fetch_add(1, Ordering::Relaxed);
        return super::faults::broken(&resp);
    }
    to_response(resp, &extra)
}

/// JSON batching: up to 20 requests, answered in one response (each may fail on its own).
async fn batch(
    State(st): State<Arc<SimState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let Some(requests) = parsed
        .ok()
        .and_then(|v| v.get("requests").and_then(Value::as_array).cloned())
    else {
        return to_response(
            GraphResponse::error(
                400,
                "BadRequest",
                "Invalid batch payload: a JSON object with a requests array is required.",
            ),
            &[],
        );
    };
    if requests.len() > 20 {
        return to_response(
            GraphResponse::error(
                400,
                "BadRequest",
                "Invalid batch payload: the number of batch requests exceeds the limit of 20.",
            ),
            &[],
        );
    }
    let root = root_of(&uri, &headers, &st);
    let mut responses = Vec::new();
    for req in requests {
        let id = req.get("id").cloned().unwrap_or(Value::Null);
        let url = req.get("url").and_then(Value::as_str).unwrap_or("");
        let url = if url.starts_with('/') {
            url.to_string()
        } else {
            format!("/{url}")
        };
        let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        let sub_headers = req.get("headers").and_then(Value::as_object);
        let header = |name: &str| {
            sub_headers.and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .and_then(|(_, v)| v.as_str())
            })
        };
        let r = GraphRequest {
            method: req
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or("GET")
                .to_ascii_uppercase(),
            path: percent_encoding::percent_decode_str(path)
                .decode_utf8_lossy()
                .to_string(),
            query: decode_query(Some(query)),
            consistency_eventual: header("ConsistencyLevel")
                .is_some_and(|v| v.eq_ignore_ascii_case("eventual")),
            max_page_size: header("Prefer").and_then(|p| {
                p.split(',')
                    .find_map(|x| x.trim().strip_prefix("odata.maxpagesize=")?.parse().ok())
            }),
            body: req.get("body").cloned(),
            base: format!("{root}/v1.0"),
        };
        let throttled = st.faults.lock().map(|f| f.batch_throttle).unwrap_or(false);
        let (resp, extra) = if throttled {
            st.requests.fetch_add(1, Ordering::Relaxed);
            st.throttled.fetch_add(1, Ordering::Relaxed);
            (
                GraphResponse::error(
                    429,
                    "TooManyRequests",
                    "Too many requests. Retry after the interval in the Retry-After header.",
                ),
                vec![(
                    "retry-after",
                    st.faults
                        .lock()
                        .map(|f| f.retry_after_secs)
                        .unwrap_or(0)
                        .to_string(),
                )],
            )
        } else {
            handle(&st, auth, &r)
        };
        let mut h = serde_json::Map::new();
        for (k, v) in extra {
            h.insert(k.to_string(), json!(v));
        }
        let body = match resp.body {
            Body::Json(v) => {
                h.insert("Content-Type".into(), json!("application/json"));
                Some(v)
            }
            Body::Text(t) => Some(Value::String(t)),
            Body::Empty => None,
        };
        let mut o = json!({"id": id, "status": resp.status, "headers": h});
        if let (Some(b), Some(obj)) = (body, o.as_object_mut()) {
            obj.insert("body".into(), b);
        }
        responses.push(o);
    }
    to_response(
        GraphResponse::json(200, json!({"responses": responses})),
        &[],
    )
}

async fn set_faults(State(st): State<Arc<SimState>>, Json(f): Json<Faults>) -> impl IntoResponse {
    st.set_faults(f);
    StatusCode::NO_CONTENT
}

async fn get_faults(State(st): State<Arc<SimState>>) -> Response {
    Json(st.faults.lock().map(|f| f.clone()).unwrap_or_default()).into_response()
}

async fn expire_delta(State(st): State<Arc<SimState>>) -> impl IntoResponse {
    st.expire_delta_links();
    StatusCode::NO_CONTENT
}

async fn stats(State(st): State<Arc<SimState>>) -> Response {
    Json(st.stats()).into_response()
}
