//! What one request may be and how often a SCIM token may ask: request heads within limits
//! (414, 431), a request rate per SCIM token (429 with `Retry-After`), and, under `/scim`,
//! every error answered as a SCIM error (RFC 7644 §3.12) whoever produced it (axum's
//! extractors, the method router, the fallback, the limits here).

use crate::auth;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use idsync_core::Clock;
use idsync_scim::ScimError;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, PoisonError};

/// Longest request target (path and query) served; longer is answered 414.
pub const MAX_URI_BYTES: usize = 16 * 1024;
/// Largest request header section (names, values and their separators); larger is answered 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest request body a handler reads (axum's default, made explicit); larger is answered 413.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Most header fields in a request; more is answered 431.
pub const MAX_HEADERS: usize = 100;
/// Most error body read to carry its message into a SCIM error.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// Buckets kept before idle ones (full again) are dropped.
const PRUNE_ABOVE: usize = 4096;

const SCIM_CONTENT_TYPE: &str = "application/scim+json";

pub(crate) fn is_scim(path: &str) -> bool {
    path == "/scim" || path.starts_with("/scim/")
}

/// Refuse request heads over the limits before any handler or extractor sees them.
pub(crate) async fn head_limits(req: Request, next: Next) -> Result<Response, ApiError> {
    let uri = req
        .uri()
        .path_and_query()
        .map_or(req.uri().path().len(), |p| p.as_str().len());
    if uri > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong {
            length: uri,
            max: MAX_URI_BYTES,
        });
    }
    let headers = req.headers();
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::HeadersTooLarge(format!(
            "{} header fields, at most {MAX_HEADERS}",
            headers.len()
        )));
    }
    let size: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if size > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge(format!(
            "{size} bytes of headers, at most {MAX_HEADER_BYTES}"
        )));
    }
    Ok(next.run(req).await)
}

/// Under `/scim`, turn an error answered in another form (plain text, empty, the admin API's
/// JSON) into a SCIM error of the same status, keeping its headers (`Allow`, `Retry-After`,
/// `WWW-Authenticate`).
pub(crate) async fn scim_errors(req: Request, next: Next) -> Response {
    if !is_scim(req.uri().path()) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_scim_body = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(SCIM_CONTENT_TYPE.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_scim_body {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let said = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let detail = match status {
        StatusCode::NOT_FOUND => format!("no SCIM endpoint at {path}"),
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            format!("{method} is not allowed on {path} (allowed: {allowed})")
        }
        _ => message_of(&said).unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string()
        }),
    };
    let body = ScimError::new(status.as_u16(), None, detail)
        .to_json()
        .to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SCIM_CONTENT_TYPE),
    );
    Response::from_parts(parts, Body::from(body))
}

/// The message of an error body: the admin API's `error`, or plain text.
fn message_of(body: &[u8]) -> Option<String> {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        return v.get("error").and_then(|e| e.as_str()).map(str::to_string);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(500).collect())
}

/// Requests per second and at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// A token bucket: `tokens` left at `at_ms`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

impl RateLimit {
    fn full(&self, now_ms: i64) -> Bucket {
        Bucket {
            tokens: f64::from(self.burst),
            at_ms: now_ms,
        }
    }

    fn refill(&self, b: &mut Bucket, now_ms: i64) {
        let elapsed = (now_ms - b.at_ms).max(0) as f64 / 1000.0;
        b.tokens = (b.tokens + elapsed * self.per_second).min(f64::from(self.burst));
        b.at_ms = now_ms.max(b.at_ms);
    }

    /// Take one request from the bucket; when it is empty, the milliseconds until it holds one.
    fn take(&self, b: &mut Bucket, now_ms: i64) -> Result<(), u64> {
        self.refill(b, now_ms);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - b.tokens) / self.per_second * 1000.0;
        Err(wait.ceil().max(1.0) as u64)
    }
}

/// One token bucket per SCIM bearer token, driven by the service's clock.
pub(crate) struct RateLimiter {
    pub(crate) limit: RateLimit,
    clock: Arc<dyn Clock>,
    /// Keyed by a keyed hash of the token: the secrets themselves are not kept.
    buckets: Mutex<HashMap<u64, Bucket>>,
    hasher: RandomState,
}

impl RateLimiter {
    /// `None` when the rate is 0 (no limit).
    pub(crate) fn new(limit: RateLimit, clock: Arc<dyn Clock>) -> Option<Self> {
        (limit.per_second > 0.0 && limit.burst > 0).then(|| RateLimiter {
            limit,
            clock,
            buckets: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
        })
    }

    /// Count a request of `token`; when over its rate, the seconds to wait (at least 1). With
    /// whether the token's bucket was made for this request.
    pub(crate) fn check(&self, token: &str) -> (Result<(), u64>, bool) {
        let mut made = false;
        let counted = self.with_bucket(self.hasher.hash_one(token), true, |b| {
            made = true;
            b
        });
        (counted, made)
    }

    /// Count one request of `key` (a client's address, a client id); when over the rate, the
    /// seconds to wait (at least 1).
    pub(crate) fn take<K: Hash>(&self, key: K) -> Result<(), u64> {
        self.with_bucket(self.hasher.hash_one(key), true, |b| b)
    }

    /// Whether `key` has a request left, without counting one: the seconds to wait when not.
    pub(crate) fn peek<K: Hash>(&self, key: K) -> Result<(), u64> {
        self.with_bucket(self.hasher.hash_one(key), false, |b| b)
    }

    /// The bucket of `key` (made full, through `made`, when there is none), refilled; with
    /// `take`, one request taken from it.
    fn with_bucket(
        &self,
        key: u64,
        take: bool,
        made: impl FnOnce(Bucket) -> Bucket,
    ) -> Result<(), u64> {
        let now = self.clock.now_ms();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > PRUNE_ABOVE {
            let limit = self.limit;
            buckets.retain(|_, b| {
                limit.refill(b, now);
                b.tokens < f64::from(limit.burst)
            });
        }
        let limit = self.limit;
        if !take {
            return match buckets.get_mut(&key) {
                Some(b) => {
                    limit.refill(b, now);
                    if b.tokens >= 1.0 {
                        Ok(())
                    } else {
                        let wait = (1.0 - b.tokens) / limit.per_second * 1000.0;
                        Err((wait.ceil().max(1.0) as u64).div_ceil(1000))
                    }
                }
                None => Ok(()),
            };
        }
        let bucket = buckets.entry(key).or_insert_with(|| made(limit.full(now)));
        limit.take(bucket, now).map_err(|ms| ms.div_ceil(1000))
    }

    /// Drop the bucket made for a token the endpoint then refused: buckets are kept for tokens
    /// that exist. (Only a bucket just made: a real token refused on another directory keeps
    /// its bucket, else it could empty and refill it at will.)
    fn forget(&self, token: &str) {
        let key = self.hasher.hash_one(token);
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }
}

/// Count each SCIM request against its bearer token's rate; over it, 429 with `Retry-After`.
/// Requests without a bearer token go on to be refused by the endpoint.
pub(crate) async fn scim_rate(
    State(limiter): State<Arc<RateLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = auth::bearer(req.headers()).map(str::to_string) else {
        return next.run(req).await;
    };
    let (counted, made) = limiter.check(&token);
    if let Err(retry_after) = counted {
        let l = limiter.limit;
        return ApiError::TooManyRequests {
            retry_after,
            detail: format!(
                "over this token's rate limit of {} requests per second ({} at once): retry after {retry_after} s",
                l.per_second, l.burst
            ),
        }
        .into_response();
    }
    let resp = next.run(req).await;
    if made && resp.status() == StatusCode::UNAUTHORIZED {
        limiter.forget(&token);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use idsync_core::ManualClock;

    fn limiter(per_second: f64, burst: u32) -> (RateLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let l = RateLimiter::new(RateLimit { per_second, burst }, clock.clone());
        (l.unwrap_or_else(|| unreachable!()), clock)
    }

    #[test]
    fn a_burst_then_the_rate() {
        let (l, clock) = limiter(2.0, 3);
        for _ in 0..3 {
            assert_eq!(l.check("a").0, Ok(()));
        }
        assert_eq!(
            l.check("a").0,
            Err(1),
            "empty: one request in 500 ms, said as 1 s"
        );
        clock.advance(499);
        assert!(l.check("a").0.is_err());
        clock.advance(1);
        assert_eq!(l.check("a").0, Ok(()));
        assert!(l.check("a").0.is_err());
        // A long pause refills up to the burst, not beyond.
        clock.advance(60_000);
        for _ in 0..3 {
            assert_eq!(l.check("a").0, Ok(()));
        }
        assert!(l.check("a").0.is_err());
    }

    #[test]
    fn only_a_bucket_just_made_is_forgotten() {
        let (l, _) = limiter(1.0, 1);
        assert_eq!(l.check("real"), (Ok(()), true));
        assert_eq!(
            l.check("real"),
            (Err(1), false),
            "kept: not forgotten when refused"
        );
    }

    #[test]
    fn tokens_have_their_own_buckets() {
        let (l, _) = limiter(1.0, 1);
        assert_eq!(l.check("a").0, Ok(()));
        assert!(l.check("a").0.is_err());
        assert_eq!(l.check("b").0, Ok(()));
        l.forget("a");
        assert_eq!(l.check("a").0, Ok(()), "a forgotten token starts full");
    }

    #[test]
    fn keys_are_counted_and_peeked() {
        let (l, clock) = limiter(1.0, 2);
        let ip: std::net::IpAddr = [192, 0, 2, 1].into();
        assert_eq!(l.peek(ip), Ok(()), "an unknown key has its whole burst");
        assert_eq!(l.take(ip), Ok(()));
        assert_eq!(l.peek(ip), Ok(()), "peeking takes nothing");
        assert_eq!(l.peek(ip), Ok(()));
        assert_eq!(l.take(ip), Ok(()));
        assert_eq!(l.peek(ip), Err(1));
        assert_eq!(l.take(ip), Err(1));
        assert_eq!(l.take([192, 0, 2, 2]), Ok(()), "another key");
        clock.advance(1_000);
        assert_eq!(l.peek(ip), Ok(()));
    }

    #[test]
    fn slow_rates_wait_whole_seconds() {
        let (l, clock) = limiter(0.2, 1);
        assert_eq!(l.check("a").0, Ok(()));
        assert_eq!(l.check("a").0, Err(5));
        clock.advance(4_500);
        assert_eq!(l.check("a").0, Err(1));
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
        assert!(RateLimiter::new(
            RateLimit {
                per_second: 0.0,
                burst: 5
            },
            clock
        )
        .is_none());
    }

    #[test]
    fn idle_buckets_are_pruned() {
        let (l, clock) = limiter(10.0, 2);
        for i in 0..=PRUNE_ABOVE {
            assert_eq!(l.check(&format!("t{i}")).0, Ok(()));
        }
        clock.advance(1_000);
        assert_eq!(l.check("new").0, Ok(()));
        let n = l.buckets.lock().map(|b| b.len()).unwrap_or(0);
        assert_eq!(n, 1, "every other bucket was full again");
    }
}
