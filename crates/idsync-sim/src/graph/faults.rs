//! Fault injection: what `POST /_sim/faults` and `idsync sim graph`'s flags set, and the
//! broken answers they call for.

use super::api::{Body, GraphRequest, GraphResponse};
use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Faults to inject, settable at start and at run time (`POST /_sim/faults`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Faults {
    /// Share of Graph requests answered 429 with Retry-After (0..1).
    pub throttle_rate: f64,
    /// Seconds in Retry-After on injected 429s (and 503s).
    pub retry_after_secs: u64,
    /// Share of Graph requests answered with `error_status` (0..1).
    pub error_rate: f64,
    /// Status of injected errors: 500 and up, or 410 for a synchronization reset on the
    /// `fail_next` requests (with a `Location` under `delta_reset_location`); default 503.
    pub error_status: u16,
    /// Extra latency on every Graph request.
    pub latency_ms: u64,
    /// Fail the next N Graph requests whose path and query contain `fail_match`.
    pub fail_next: u32,
    pub fail_match: String,
    /// Answer delta updates (not the first round) with only `id` and `displayName`, as Graph
    /// may ("at least the properties that changed").
    pub sparse_delta: bool,
    /// Each page of an initial delta round after the first carries again the last N objects
    /// of the page before, as Graph may ("the same object may be returned more than once").
    pub delta_replay: usize,
    /// An expired delta link answers 410 Gone with a `Location` header naming a new initial
    /// round (Graph's synchronization reset) instead of a bare 410 `syncStateNotFound`.
    pub delta_reset_location: bool,
    /// Every request inside a `$batch` is answered 429 (the batch itself 200).
    pub batch_throttle: bool,
    /// `users/$count` and `groups/$count` are refused, as by a tenant or a gateway that does
    /// not answer them.
    pub no_count: bool,
    /// Cut the connection in the middle of the answer of the next N requests (Graph's, or the
    /// token endpoint's) whose path and query contain `reset_match`.
    pub reset_next: u32,
    pub reset_match: String,
}

/// What the `fail_match` and `reset_match` patterns are matched against: the path below
/// `/v1.0` and the decoded query.
pub(super) fn target_of(r: &GraphRequest) -> String {
    format!(
        "{}?{}",
        r.path,
        r.query
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    )
}

/// Take one of `left` when the target matches: whether the fault applies to this request.
pub(super) fn take(left: &mut u32, pattern: &str, target: &str) -> bool {
    if *left > 0 && target.contains(pattern) {
        *left -= 1;
        true
    } else {
        false
    }
}

/// The answer's status and headers, then half its body, then the connection drops (the
/// body's stream fails, so the server aborts the connection mid-message).
pub(super) fn broken(r: &GraphResponse) -> Response {
    let text = match &r.body {
        Body::Json(v) => v.to_string(),
        Body::Text(t) => t.clone(),
        Body::Empty => String::new(),
    };
    let half = Bytes::from(text.into_bytes()).slice(..);
    let cut = half.slice(..half.len() / 2);
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(cut),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset (injected fault)",
        )),
    ];
    let body = axum::body::Body::from_stream(futures_util::stream::iter(chunks));
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
