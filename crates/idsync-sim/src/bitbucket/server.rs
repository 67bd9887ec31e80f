//! The Bitbucket simulator over HTTP or HTTPS: `/rest/api/1.0` as Bitbucket Data Center
//! answers it (Basic and personal access tokens, its paging, its `errors[]` bodies, the Data
//! Center rate limiter's token bucket and headers), fault injection, and a small admin API
//! under `/_sim` for tests.

use super::api;
use super::directory::{BitbucketError, Directory};
use crate::dc::respond;
use crate::graph::SimError;
pub use crate::jira::{JiraFaults as BitbucketFaults, RateLimit};
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

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct BitbucketSimOptions {
    pub listen: SocketAddr,
    /// Serve HTTPS with a generated certificate (its CA is written to `cert_dir/ca.pem`).
    pub tls: bool,
    pub cert_dir: Option<PathBuf>,
    /// The version `application-properties` reports.
    pub version: String,
    /// The administrator (Basic) and its personal access token (Bearer).
    pub admin: String,
    pub password: String,
    pub token: String,
    pub rate_limit: Option<RateLimit>,
    pub faults: BitbucketFaults,
    pub seed: u64,
}

impl Default for BitbucketSimOptions {
    fn default() -> Self {
        BitbucketSimOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            cert_dir: None,
            version: "8.19.5".into(),
            admin: "admin".into(),
            password: "admin".into(),
            token: "sim-bitbucket-pat".into(),
            rate_limit: None,
            faults: BitbucketFaults::default(),
            seed: 1,
        }
    }
}

/// Counters a test or benchmark reads.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct BitbucketStats {
    pub requests: u64,
    pub writes: u64,
    pub throttled: u64,
    pub injected_errors: u64,
    /// Requests by method and resource (`POST admin/groups/add-users`), for benchmarks.
    pub by_resource: std::collections::BTreeMap<String, u64>,
}

pub struct BitbucketSimState {
    pub directory: RwLock<Directory>,
    pub(super) opts: BitbucketSimOptions,
    faults: Mutex<BitbucketFaults>,
    rng: Mutex<StdRng>,
    bucket: Mutex<Bucket>,
    clock: Arc<dyn Clock>,
    requests: AtomicU64,
    by_resource: Mutex<std::collections::BTreeMap<String, u64>>,
    writes: AtomicU64,
    throttled: AtomicU64,
    injected: AtomicU64,
}

impl BitbucketSimState {
    pub fn stats(&self) -> BitbucketStats {
        BitbucketStats {
            requests: self.requests.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            injected_errors: self.injected.load(Ordering::Relaxed),
            by_resource: self
                .by_resource
                .lock()
                .map(|m| m.clone())
                .unwrap_or_default(),
        }
    }
    pub fn set_faults(&self, f: BitbucketFaults) {
        if let Ok(mut g) = self.faults.lock() {
            *g = f;
        }
    }
}

/// A running simulator.
pub struct RunningBitbucketSim {
    /// `http(s)://127.0.0.1:port`: Bitbucket's base URL.
    pub root: String,
    pub ca_pem: Option<PathBuf>,
    pub state: Arc<BitbucketSimState>,
    serving: crate::dc::Serving,
}

impl RunningBitbucketSim {
    pub async fn stop(mut self) {
        self.serving.stop().await;
    }
}

/// Start the simulator; it serves until stopped or dropped.
pub async fn start(
    opts: BitbucketSimOptions,
    clock: Arc<dyn Clock>,
) -> Result<RunningBitbucketSim, SimError> {
    let directory = Directory::new(&opts.admin);
    let now = clock.now_ms();
    let state = Arc::new(BitbucketSimState {
        directory: RwLock::new(directory),
        faults: Mutex::new(opts.faults.clone()),
        rng: Mutex::new(StdRng::seed_from_u64(opts.seed ^ 0xb1b)),
        bucket: Mutex::new(Bucket {
            tokens: opts.rate_limit.map_or(0.0, |r| f64::from(r.max)),
            at_ms: now,
        }),
        opts,
        clock,
        requests: AtomicU64::new(0),
        by_resource: Mutex::new(std::collections::BTreeMap::new()),
        writes: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
        injected: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/rest/api/1.0/{*rest}", any(rest))
        .route("/rest/api/latest/{*rest}", any(rest))
        .route("/_sim/faults", post(set_faults).get(get_faults))
        .route("/_sim/stats", get(stats))
        .with_state(state.clone());
    let o = &state.opts;
    let (root, ca_pem, serving) =
        crate::dc::serve(o.listen, o.tls, o.cert_dir.clone(), app).await?;
    Ok(RunningBitbucketSim {
        root,
        ca_pem,
        state,
        serving,
    })
}

async fn set_faults(
    State(st): State<Arc<BitbucketSimState>>,
    Json(f): Json<BitbucketFaults>,
) -> StatusCode {
    st.set_faults(f);
    StatusCode::NO_CONTENT
}

async fn get_faults(State(st): State<Arc<BitbucketSimState>>) -> Json<BitbucketFaults> {
    Json(st.faults.lock().map(|f| f.clone()).unwrap_or_default())
}

async fn stats(State(st): State<Arc<BitbucketSimState>>) -> Json<BitbucketStats> {
    Json(st.stats())
}

pub(super) use crate::dc::Answer;

impl From<BitbucketError> for Answer {
    fn from(e: BitbucketError) -> Answer {
        Answer::json(e.status, e.body())
    }
}

fn unauthenticated() -> BitbucketError {
    BitbucketError::new(
        401,
        "com.atlassian.bitbucket.AuthorisationException",
        "Authentication failed. Please check your credentials and try again.",
    )
}

/// Whether the administrator is calling, by Basic or by personal access token.
fn authenticate(st: &BitbucketSimState, headers: &HeaderMap) -> Result<Option<()>, Answer> {
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
        return Err(Answer::from(unauthenticated()));
    }
    Ok(Some(()))
}

/// Take a token from the bucket: the headers to send, or the 429 to answer.
fn take_token(st: &BitbucketSimState) -> (Vec<(&'static str, String)>, bool) {
    crate::dc::take_token(st.opts.rate_limit, &st.bucket, st.clock.now_ms())
}

/// An injected fault for this request, if any: (status, Retry-After).
fn fault(st: &BitbucketSimState, target: &str) -> (Option<(u16, u64)>, u64) {
    crate::dc::fault(&st.faults, &st.rng, target)
}

use crate::dc::decode_query;

/// Every `/rest/api/1.0/...` request: faults, authentication, the rate limiter, then the API.
async fn rest(
    State(st): State<Arc<BitbucketSimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let path = uri
        .path()
        .trim_start_matches("/rest/api/1.0/")
        .trim_start_matches("/rest/api/latest/")
        .trim_end_matches('/');
    if let Ok(mut m) = st.by_resource.lock() {
        // The resource without what names a user (`users/{slug}/settings`).
        let resource: Vec<&str> = path
            .split('/')
            .enumerate()
            .map(|(i, p)| {
                if i == 1 && path.starts_with("users/") {
                    "{slug}"
                } else {
                    p
                }
            })
            .collect();
        *m.entry(format!("{method} {}", resource.join("/")))
            .or_default() += 1;
    }
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
            Answer::from(BitbucketError::new(
                status,
                "com.atlassian.bitbucket.ServiceException",
                msg,
            )),
            &[("retry-after", retry.to_string())],
        );
    }
    let caller = match authenticate(&st, &headers) {
        Ok(c) => c,
        Err(a) => return respond(a, &[]),
    };
    // application-properties answers anonymous callers; everything else needs the
    // administrator.
    if caller.is_none() && path != "application-properties" {
        return respond(Answer::from(unauthenticated()), &[]);
    }
    let (limit_headers, allowed) = if caller.is_some() {
        take_token(&st)
    } else {
        (Vec::new(), true)
    };
    if !allowed {
        st.throttled.fetch_add(1, Ordering::Relaxed);
        return respond(
            Answer::from(BitbucketError::new(
                429,
                "com.atlassian.ratelimiting.RateLimitedException",
                "Rate limit exceeded.",
            )),
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
