//! The Bamboo simulator over HTTP or HTTPS: `/rest/api/latest` as Bamboo Data Center answers
//! its admin user and group calls (Basic and personal access tokens, `start`/`limit` pages
//! with `isLastPage`, its error bodies), fault injection (429 with `Retry-After`, 5xx), and a
//! small admin API under `/_sim` for tests.

use super::api;
use super::directory::{BambooError, Directory};
use crate::dc::respond;
use crate::graph::SimError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::Engine;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Faults to inject, settable at start and at run time (`POST /_sim/faults`).
pub type BambooFaults = crate::dc::DcFaults;

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct BambooSimOptions {
    pub listen: SocketAddr,
    /// Serve HTTPS with a generated certificate (its CA is written to `cert_dir/ca.pem`).
    pub tls: bool,
    pub cert_dir: Option<PathBuf>,
    /// The version `/info` reports.
    pub version: String,
    /// The administrator (Basic) and its personal access token (Bearer).
    pub admin: String,
    pub password: String,
    pub token: String,
    /// The largest page the server gives, whatever `limit` asks (Bamboo caps pages).
    pub max_page: usize,
    pub faults: BambooFaults,
    pub seed: u64,
}

impl Default for BambooSimOptions {
    fn default() -> Self {
        BambooSimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            cert_dir: None,
            version: "9.6.5".into(),
            admin: "admin".into(),
            password: "admin".into(),
            token: "sim-bamboo-pat".into(),
            max_page: 100,
            faults: BambooFaults::default(),
            seed: 1,
        }
    }
}

/// Counters a test or benchmark reads.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct BambooStats {
    pub requests: u64,
    pub writes: u64,
    pub throttled: u64,
    pub injected_errors: u64,
}

pub struct BambooSimState {
    pub directory: RwLock<Directory>,
    pub(super) opts: BambooSimOptions,
    faults: Mutex<BambooFaults>,
    rng: Mutex<StdRng>,
    requests: AtomicU64,
    writes: AtomicU64,
    throttled: AtomicU64,
    injected: AtomicU64,
}

impl BambooSimState {
    pub fn stats(&self) -> BambooStats {
        BambooStats {
            requests: self.requests.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            injected_errors: self.injected.load(Ordering::Relaxed),
        }
    }
    pub fn set_faults(&self, f: BambooFaults) {
        if let Ok(mut g) = self.faults.lock() {
            *g = f;
        }
    }
}

/// A running simulator.
pub struct RunningBambooSim {
    /// `http(s)://127.0.0.1:port`: Bamboo's base URL.
    pub root: String,
    pub ca_pem: Option<PathBuf>,
    pub state: Arc<BambooSimState>,
    serving: crate::dc::Serving,
}

impl RunningBambooSim {
    pub async fn stop(mut self) {
        self.serving.stop().await;
    }
}

/// Start the simulator; it serves until stopped or dropped.
pub async fn start(opts: BambooSimOptions) -> Result<RunningBambooSim, SimError> {
    let state = Arc::new(BambooSimState {
        directory: RwLock::new(Directory::new(&opts.admin, &opts.password)),
        faults: Mutex::new(opts.faults.clone()),
        rng: Mutex::new(StdRng::seed_from_u64(opts.seed ^ 0xba3b)),
        opts,
        requests: AtomicU64::new(0),
        writes: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
        injected: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/rest/api/latest/{*rest}", any(rest))
        .route("/_sim/faults", post(set_faults).get(get_faults))
        .route("/_sim/stats", get(stats))
        .with_state(state.clone());
    let o = &state.opts;
    let (root, ca_pem, serving) =
        crate::dc::serve(o.listen, o.tls, o.cert_dir.clone(), app).await?;
    Ok(RunningBambooSim {
        root,
        ca_pem,
        state,
        serving,
    })
}

async fn set_faults(
    State(st): State<Arc<BambooSimState>>,
    Json(f): Json<BambooFaults>,
) -> StatusCode {
    st.set_faults(f);
    StatusCode::NO_CONTENT
}

async fn get_faults(State(st): State<Arc<BambooSimState>>) -> Json<BambooFaults> {
    Json(st.faults.lock().map(|f| f.clone()).unwrap_or_default())
}

async fn stats(State(st): State<Arc<BambooSimState>>) -> Json<BambooStats> {
    Json(st.stats())
}

pub(super) use crate::dc::Answer;

impl From<BambooError> for Answer {
    fn from(e: BambooError) -> Answer {
        Answer::json(e.status, e.body())
    }
}

/// Whether the caller is the administrator, by Basic or by personal access token.
fn authenticated(st: &BambooSimState, headers: &HeaderMap) -> bool {
    let Some(h) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    if let Some(t) = h.strip_prefix("Bearer ") {
        return t.trim() == st.opts.token;
    }
    if let Some(b) = h.strip_prefix("Basic ") {
        return base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .is_some_and(|s| s == format!("{}:{}", st.opts.admin, st.opts.password));
    }
    false
}

/// An injected fault for this request, if any: (status, Retry-After).
fn fault(st: &BambooSimState, target: &str) -> (Option<(u16, u64)>, u64) {
    crate::dc::fault(&st.faults, &st.rng, target)
}

/// Every `/rest/api/latest/...` request: faults, authentication, then the API.
async fn rest(
    State(st): State<Arc<BambooSimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let target = format!("{method} {}?{}", uri.path(), uri.query().unwrap_or(""));
    let (injected, latency) = fault(&st, &target);
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    if let Some((status, retry)) = injected {
        if status == 429 {
            st.throttled.fetch_add(1, Ordering::Relaxed);
        } else {
            st.injected.fetch_add(1, Ordering::Relaxed);
        }
        let msg = if status == 429 {
            "Too many requests."
        } else {
            "Service unavailable (injected fault)."
        };
        return respond(
            BambooError::message(status, msg).into(),
            &[("retry-after", retry.to_string())],
        );
    }
    // `/info` answers anonymous callers; everything else needs the administrator.
    let path = uri
        .path()
        .trim_start_matches("/rest/api/latest/")
        .trim_end_matches('/')
        .to_string();
    if path != "info" && !authenticated(&st, &headers) {
        return respond(
            BambooError::message(401, "Client must be authenticated to access this resource.")
                .into(),
            &[],
        );
    }
    if method != Method::GET {
        st.writes.fetch_add(1, Ordering::Relaxed);
    }
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let req = api::Request {
        method: &method,
        path: &path,
        query: &query,
        body: &body,
    };
    respond(api::handle(&st, &req), &[])
}
