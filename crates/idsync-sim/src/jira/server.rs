//! The Jira simulator over HTTP or HTTPS: `/rest/api/2` as Jira Data Center answers it (Basic
//! and personal access tokens, Jira's paging, its error bodies, the rate limiter's token
//! bucket and headers), fault injection, and a small admin API under `/_sim` for tests.

use super::api;
use super::directory::{AppRole, Directory, JiraError, Version};
use crate::dc::respond;
use crate::graph::SimError;
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
pub use crate::dc::RateLimit;
/// Faults to inject, settable at start and at run time (`POST /_sim/faults`).
pub type JiraFaults = crate::dc::DcFaults;

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct JiraSimOptions {
    pub listen: SocketAddr,
    /// Serve HTTPS with a generated certificate (its CA is written to `cert_dir/ca.pem`).
    pub tls: bool,
    pub cert_dir: Option<PathBuf>,
    /// The version `serverInfo` reports and the rules that go with it.
    pub version: Version,
    /// The administrator (Basic) and its personal access token (Bearer).
    pub admin: String,
    pub password: String,
    pub token: String,
    pub roles: Vec<AppRole>,
    pub rate_limit: Option<RateLimit>,
    pub faults: JiraFaults,
    pub seed: u64,
}

impl Default for JiraSimOptions {
    fn default() -> Self {
        JiraSimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            cert_dir: None,
            version: Version(9, 12, 2),
            admin: "admin".into(),
            password: "admin".into(),
            token: "sim-jira-pat".into(),
            roles: vec![AppRole::software(None)],
            rate_limit: None,
            faults: JiraFaults::default(),
            seed: 1,
        }
    }
}

/// Counters a test or benchmark reads.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct JiraStats {
    pub requests: u64,
    pub writes: u64,
    pub throttled: u64,
    pub injected_errors: u64,
}

pub struct JiraSimState {
    pub directory: RwLock<Directory>,
    pub(super) opts: JiraSimOptions,
    faults: Mutex<JiraFaults>,
    rng: Mutex<StdRng>,
    bucket: Mutex<Bucket>,
    clock: Arc<dyn Clock>,
    requests: AtomicU64,
    writes: AtomicU64,
    throttled: AtomicU64,
    injected: AtomicU64,
}

impl JiraSimState {
    pub fn stats(&self) -> JiraStats {
        JiraStats {
            requests: self.requests.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            injected_errors: self.injected.load(Ordering::Relaxed),
        }
    }
    pub fn set_faults(&self, f: JiraFaults) {
        if let Ok(mut g) = self.faults.lock() {
            *g = f;
        }
    }
}

/// A running simulator.
pub struct RunningJiraSim {
    /// `http(s)://127.0.0.1:port`: Jira's base URL.
    pub root: String,
    pub ca_pem: Option<PathBuf>,
    pub state: Arc<JiraSimState>,
    serving: crate::dc::Serving,
}

impl RunningJiraSim {
    pub async fn stop(mut self) {
        self.serving.stop().await;
    }
}

/// Start the simulator; it serves until stopped or dropped.
pub async fn start(
    opts: JiraSimOptions,
    clock: Arc<dyn Clock>,
) -> Result<RunningJiraSim, SimError> {
    let directory = Directory::new(opts.version, opts.roles.clone(), &opts.admin);
    let now = clock.now_ms();
    let state = Arc::new(JiraSimState {
        directory: RwLock::new(directory),
        faults: Mutex::new(opts.faults.clone()),
        rng: Mutex::new(StdRng::seed_from_u64(opts.seed ^ 0x11a)),
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
        .route("/rest/api/2/{*rest}", any(rest))
        .route("/_sim/faults", post(set_faults).get(get_faults))
        .route("/_sim/stats", get(stats))
        .with_state(state.clone());
    let o = &state.opts;
    let (root, ca_pem, serving) =
        crate::dc::serve(o.listen, o.tls, o.cert_dir.clone(), app).await?;
    Ok(RunningJiraSim {
        root,
        ca_pem,
        state,
        serving,
    })
}

async fn set_faults(State(st): State<Arc<JiraSimState>>, Json(f): Json<JiraFaults>) -> StatusCode {
    st.set_faults(f);
    StatusCode::NO_CONTENT
}

async fn get_faults(State(st): State<Arc<JiraSimState>>) -> Json<JiraFaults> {
    Json(st.faults.lock().map(|f| f.clone()).unwrap_or_default())
}

async fn stats(State(st): State<Arc<JiraSimState>>) -> Json<JiraStats> {
    Json(st.stats())
}

pub(super) use crate::dc::Answer;

impl From<JiraError> for Answer {
    fn from(e: JiraError) -> Answer {
        Answer::json(e.status, e.body())
    }
}

/// Who is calling: the administrator's id, by Basic or by personal access token.
fn authenticate(st: &JiraSimState, headers: &HeaderMap) -> Result<Option<u64>, Answer> {
    let Some(h) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return Ok(None);
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
    if !ok {
        return Err(Answer::json(
            401,
            JiraError::message(
                401,
                "You are not authenticated. Authentication required to perform this operation.",
            )
            .body(),
        ));
    }
    Ok(st
        .directory
        .read()
        .ok()
        .and_then(|d| d.by_name(&st.opts.admin)))
}

/// Take a token from the bucket: the headers to send, or the 429 to answer.
fn take_token(st: &JiraSimState) -> (Vec<(&'static str, String)>, bool) {
    crate::dc::take_token(st.opts.rate_limit, &st.bucket, st.clock.now_ms())
}

/// An injected fault for this request, if any: (status, Retry-After).
fn fault(st: &JiraSimState, target: &str) -> (Option<(u16, u64)>, u64) {
    crate::dc::fault(&st.faults, &st.rng, target)
}

use crate::dc::decode_query;

/// Every `/rest/api/2/...` request: faults, authentication, the rate limiter, then the API.
async fn rest(
    State(st): State<Arc<JiraSimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let path = uri
        .path()
        .trim_start_matches("/rest/api/2/")
        .trim_end_matches('/');
    let query = decode_query(uri.query());
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
            "Rate limit exceeded."
        } else {
            "Service unavailable (injected fault)."
        };
        return respond(
            Answer::json(status, JiraError::message(status, msg).body()),
            &[("retry-after", retry.to_string())],
        );
    }
    let caller = match authenticate(&st, &headers) {
        Ok(c) => c,
        Err(a) => {
            return respond(
                a,
                &[("x-seraph-loginreason", "AUTHENTICATED_FAILED".to_string())],
            )
        }
    };
    // serverInfo answers anonymous callers; everything else needs an administrator.
    if caller.is_none() && path != "serverInfo" {
        return respond(
            Answer::json(
                401,
                JiraError::message(
                    401,
                    "You are not authenticated. Authentication required to perform this operation.",
                )
                .body(),
            ),
            &[],
        );
    }
    let (limit_headers, allowed) = if caller.is_some() {
        take_token(&st)
    } else {
        (Vec::new(), true)
    };
    if !allowed {
        st.throttled.fetch_add(1, Ordering::Relaxed);
        return respond(
            Answer::json(429, JiraError::message(429, "Rate limit exceeded.").body()),
            &limit_headers,
        );
    }
    if method != Method::GET {
        st.writes.fetch_add(1, Ordering::Relaxed);
    }
    let root = root_of(&uri, &headers, st.opts.tls);
    let req = api::Request {
        method: &method,
        path,
        query: &query,
        body: &body,
        root: &root,
        caller,
    };
    let answer = api::handle(&st, &req);
    respond(answer, &limit_headers)
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
