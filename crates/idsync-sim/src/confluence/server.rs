//! The Confluence simulator over HTTP or HTTPS: `/rest/api`, the JSON-RPC remote API of
//! versions before 9.0 and the applinks manifest, as Confluence Data Center answers them (Basic
//! and personal access tokens, its paging and error bodies, the rate limiter's headers),
//! fault injection, and a small admin API under `/_sim` for tests.

use super::api;
use super::directory::{ConfError, Directory};
use crate::dc::respond;
use crate::graph::SimError;
use crate::jira::{RateLimit, Version};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::Engine;
use idsync_core::Clock;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::dc::Bucket;
/// Faults to inject, settable at start and at run time (`POST /_sim/faults`).
pub type ConfluenceFaults = crate::dc::DcFaults;

#[derive(Debug, Clone)]
pub struct ConfluenceSimOptions {
    pub listen: SocketAddr,
    /// Serve HTTPS with a generated certificate (its CA is written to `cert_dir/ca.pem`).
    pub tls: bool,
    pub cert_dir: Option<PathBuf>,
    /// The version the simulator reports and the APIs that go with it.
    pub version: Version,
    /// The administrator (Basic) and its personal access token (Bearer).
    pub admin: String,
    pub password: String,
    pub token: String,
    pub rate_limit: Option<RateLimit>,
    pub faults: ConfluenceFaults,
    pub seed: u64,
}

impl Default for ConfluenceSimOptions {
    fn default() -> Self {
        ConfluenceSimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            cert_dir: None,
            version: Version(9, 2, 3),
            admin: "admin".into(),
            password: "admin".into(),
            token: "sim-confluence-pat".into(),
            rate_limit: None,
            faults: ConfluenceFaults::default(),
            seed: 1,
        }
    }
}

/// Counters a test or benchmark reads.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct ConfluenceStats {
    pub requests: u64,
    pub writes: u64,
    pub throttled: u64,
    pub injected_errors: u64,
}

pub struct ConfluenceSimState {
    pub directory: RwLock<Directory>,
    pub(super) opts: ConfluenceSimOptions,
    faults: Mutex<ConfluenceFaults>,
    rng: Mutex<StdRng>,
    bucket: Mutex<Bucket>,
    clock: Arc<dyn Clock>,
    requests: AtomicU64,
    writes: AtomicU64,
    throttled: AtomicU64,
    injected: AtomicU64,
}

impl ConfluenceSimState {
    pub fn stats(&self) -> ConfluenceStats {
        ConfluenceStats {
            requests: self.requests.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            injected_errors: self.injected.load(Ordering::Relaxed),
        }
    }
    pub fn set_faults(&self, f: ConfluenceFaults) {
        if let Ok(mut g) = self.faults.lock() {
            *g = f;
        }
    }
}

/// A running simulator.
pub struct RunningConfluenceSim {
    /// `http(s)://127.0.0.1:port`: Confluence's base URL.
    pub root: String,
    pub ca_pem: Option<PathBuf>,
    pub state: Arc<ConfluenceSimState>,
    serving: crate::dc::Serving,
}

impl RunningConfluenceSim {
    pub async fn stop(mut self) {
        self.serving.stop().await;
    }
}

/// Start the simulator; it serves until stopped or dropped.
pub async fn start(
    opts: ConfluenceSimOptions,
    clock: Arc<dyn Clock>,
) -> Result<RunningConfluenceSim, SimError> {
    let now = clock.now_ms();
    let state = Arc::new(ConfluenceSimState {
        directory: RwLock::new(Directory::new(&opts.admin)),
        faults: Mutex::new(opts.faults.clone()),
        rng: Mutex::new(StdRng::seed_from_u64(opts.seed ^ 0xc0f)),
        bucket: Mutex::new(Bucket {
            tokens: opts.rate_limit.map_or(0.0, |r| f64::from(r.max)),
            at_ms: now,
        }),
        opts,
        clock,
        requests: AtomicU64::new(0),
        writes: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
        injected: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/rest/{*rest}", any(rest))
        .route("/rpc/json-rpc/{*rest}", any(rest))
        .route("/_sim/faults", post(set_faults).get(get_faults))
        .route("/_sim/stats", get(stats))
        .with_state(state.clone());
    let o = &state.opts;
    let (root, ca_pem, serving) =
        crate::dc::serve(o.listen, o.tls, o.cert_dir.clone(), app).await?;
    Ok(RunningConfluenceSim {
        root,
        ca_pem,
        state,
        serving,
    })
}

async fn set_faults(
    State(st): State<Arc<ConfluenceSimState>>,
    Json(f): Json<ConfluenceFaults>,
) -> StatusCode {
    st.set_faults(f);
    StatusCode::NO_CONTENT
}

async fn get_faults(State(st): State<Arc<ConfluenceSimState>>) -> Json<ConfluenceFaults> {
    Json(st.faults.lock().map(|f| f.clone()).unwrap_or_default())
}

async fn stats(State(st): State<Arc<ConfluenceSimState>>) -> Json<ConfluenceStats> {
    Json(st.stats())
}

pub(super) use crate::dc::Answer;

impl From<ConfError> for Answer {
    fn from(e: ConfError) -> Answer {
        Answer::json(e.status, e.body())
    }
}

/// Whether the caller signed in as the administrator (`None`: anonymous).
fn authenticate(st: &ConfluenceSimState, headers: &HeaderMap) -> Result<bool, Answer> {
    let Some(h) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return Ok(false);
    };
    let ok = if let Some(t) = h.strip_prefix("Bearer ") {
        t.trim() == st.opts.token
    } else if let Some(b) = h.strip_prefix("Basic ") {
        base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .is_some_and(|s| s == format!("{}:{}", st.opts.admin, st.opts.password))
    } else {
        false
    };
    if ok {
        Ok(true)
    } else {
        Err(ConfError::new(
            401,
            "Authentication failed: the user name, password or token is wrong",
        )
        .into())
    }
}

/// Take a token from the bucket: the headers to send, or the 429 to answer.
fn take_token(st: &ConfluenceSimState) -> (Vec<(&'static str, String)>, bool) {
    crate::dc::take_token(st.opts.rate_limit, &st.bucket, st.clock.now_ms())
}

/// An injected fault for this request, if any: (status, Retry-After).
fn fault(st: &ConfluenceSimState, target: &str) -> (Option<(u16, u64)>, u64) {
    crate::dc::fault(&st.faults, &st.rng, target)
}

/// Every request: faults, authentication, the rate limiter, then the API.
async fn rest(
    State(st): State<Arc<ConfluenceSimState>>,
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
        let msg = if status == 429 {
            st.throttled.fetch_add(1, Ordering::Relaxed);
            "Rate limit exceeded"
        } else {
            st.injected.fetch_add(1, Ordering::Relaxed);
            "Service unavailable (injected fault)"
        };
        return respond(
            ConfError::new(status, msg).into(),
            &[("retry-after", retry.to_string())],
        );
    }
    let admin = match authenticate(&st, &headers) {
        Ok(a) => a,
        Err(a) => return respond(a, &[]),
    };
    let path = uri.path().trim_end_matches('/');
    // The manifest and the server information answer anonymous callers.
    let public = path == "/rest/applinks/1.0/manifest" || path == "/rest/api/server-information";
    if !admin && !public {
        return respond(
            ConfError::new(401, "This request requires authentication").into(),
            &[],
        );
    }
    let (limit_headers, allowed) = if admin {
        take_token(&st)
    } else {
        (Vec::new(), true)
    };
    if !allowed {
        st.throttled.fetch_add(1, Ordering::Relaxed);
        return respond(
            ConfError::new(429, "Rate limit exceeded").into(),
            &limit_headers,
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
        path,
        query: &query,
        body: &body,
        root: &root_of(&uri, &headers, st.opts.tls),
    };
    respond(api::handle(&st, &req), &limit_headers)
}

fn root_of(uri: &Uri, headers: &HeaderMap, tls: bool) -> String {
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
    format!("{}://{host}", if tls { "https" } else { "http" })
}
