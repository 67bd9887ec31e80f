//! What the Atlassian Data Center simulators (Jira, Confluence, Bitbucket, Bamboo) share: the
//! products' rate limiter (a token bucket with its `X-RateLimit-*` headers), injected faults and
//! query decoding, and serving on a loopback port (HTTP or HTTPS) until stopped.

use crate::graph::SimError;
use axum::Router;
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;

/// Jira Data Center's rate limiter: a token bucket per user (`X-RateLimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Tokens the bucket holds (`X-RateLimit-Limit`, the admin's "Max requests").
    pub max: u32,
    /// Tokens added every interval (`X-RateLimit-FillRate`, "Requests allowed").
    pub fill: u32,
    /// `X-RateLimit-Interval-Seconds`.
    pub interval_secs: u32,
}

/// Faults to inject, settable at start and at run time (`POST /_sim/faults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DcFaults {
    /// Share of requests answered 429 with `Retry-After` (0..1).
    pub throttle_rate: f64,
    /// Share of requests answered with `error_status` (default 503) (0..1).
    pub error_rate: f64,
    pub error_status: u16,
    /// Seconds in `Retry-After` of injected 429s and 503s.
    pub retry_after_secs: u64,
    pub latency_ms: u64,
    /// Fail the next N requests whose method, path and query contain `fail_match`
    /// (`"PUT /rest/api/2/user"`), with `error_status`.
    pub fail_next: u32,
    pub fail_match: String,
}

/// A rate limiter's bucket: its tokens, and when it was last filled.
pub(crate) struct Bucket {
    pub(crate) tokens: f64,
    pub(crate) at_ms: i64,
}

/// Take a token from the bucket: the headers to send, or the 429 to answer.
pub(crate) fn take_token(
    rate_limit: Option<RateLimit>,
    bucket: &Mutex<Bucket>,
    now: i64,
) -> (Vec<(&'static str, String)>, bool) {
    let Some(rl) = rate_limit else {
        return (Vec::new(), true);
    };
    let Ok(mut b) = bucket.lock() else {
        return (Vec::new(), true);
    };
    let interval_ms = i64::from(rl.interval_secs.max(1)) * 1000;
    let intervals = (now - b.at_ms) / interval_ms;
    if intervals > 0 {
        b.tokens = (b.tokens + intervals as f64 * f64::from(rl.fill)).min(f64::from(rl.max));
        b.at_ms += intervals * interval_ms;
    }
    let allowed = b.tokens >= 1.0;
    if allowed {
        b.tokens -= 1.0;
    }
    let retry_after = if b.tokens >= 1.0 {
        0
    } else {
        ((b.at_ms + interval_ms - now).max(0) + 999) / 1000
    };
    (
        vec![
            ("x-ratelimit-limit", rl.max.to_string()),
            (
                "x-ratelimit-remaining",
                (b.tokens.floor() as i64).to_string(),
            ),
            ("x-ratelimit-interval-seconds", rl.interval_secs.to_string()),
            ("x-ratelimit-fillrate", rl.fill.to_string()),
            ("retry-after", retry_after.to_string()),
        ],
        allowed,
    )
}

/// An injected fault for this request, if any: (status, Retry-After).
pub(crate) fn fault(
    faults: &Mutex<DcFaults>,
    rng: &Mutex<StdRng>,
    target: &str,
) -> (Option<(u16, u64)>, u64) {
    let Ok(mut f) = faults.lock() else {
        return (None, 0);
    };
    let latency = f.latency_ms;
    let status = if f.error_status == 0 {
        503
    } else {
        f.error_status
    };
    if f.fail_next > 0 && target.contains(&f.fail_match) {
        f.fail_next -= 1;
        return (Some((status, f.retry_after_secs)), latency);
    }
    let Ok(mut rng) = rng.lock() else {
        return (None, latency);
    };
    if f.throttle_rate > 0.0 && rng.gen::<f64>() < f.throttle_rate {
        return (Some((429, f.retry_after_secs)), latency);
    }
    if f.error_rate > 0.0 && rng.gen::<f64>() < f.error_rate {
        return (Some((status, f.retry_after_secs)), latency);
    }
    (None, latency)
}

pub(crate) fn decode_query(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// A simulator's serving task: it serves until stopped or dropped.
pub(crate) struct Serving {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Serving {
    /// Stop serving and wait for the task to end.
    pub(crate) async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Bind `listen` and serve `app` on it, over HTTPS with a generated certificate when `tls`
/// (its CA written to `cert_dir`, else the temporary directory): the root URL, the CA's path,
/// and the serving task.
pub(crate) async fn serve(
    listen: SocketAddr,
    tls: bool,
    cert_dir: Option<PathBuf>,
    app: Router,
) -> Result<(String, Option<PathBuf>, Serving), SimError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| SimError::Listen {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Listen {
        addr: listen,
        source,
    })?;
    let tls = if tls {
        let dir = cert_dir.unwrap_or_else(std::env::temp_dir);
        Some(crate::graph::tls::make(&dir)?)
    } else {
        None
    };
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
        Some(t) => tokio::spawn(crate::graph::tls::serve(listener, t.acceptor, app, stop_rx)),
    };
    Ok((
        format!("{scheme}://{addr}"),
        ca_pem,
        Serving {
            stop: Some(stop_tx),
            task: Some(task),
        },
    ))
}

/// An answer of a Data Center simulator: status and JSON body (or none).
pub(crate) struct Answer {
    pub status: u16,
    pub body: Option<serde_json::Value>,
}

impl Answer {
    pub fn json(status: u16, body: serde_json::Value) -> Answer {
        Answer {
            status,
            body: Some(body),
        }
    }
    pub fn empty(status: u16) -> Answer {
        Answer { status, body: None }
    }
}

/// The HTTP response for an answer, JSON as the products send it, with extra headers (the rate
/// limiter's); a header value that is not valid is left out.
pub(crate) fn respond(a: Answer, extra: &[(&'static str, String)]) -> axum::response::Response {
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = match a.body {
        Some(b) => (
            status,
            [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
            b.to_string(),
        )
            .into_response(),
        None => status.into_response(),
    };
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().insert(*k, v);
        }
    }
    r
}
