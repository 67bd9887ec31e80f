//! The HTTP side every Atlassian Data Center product shares: a personal access token (Bearer)
//! or a user and password (Basic), a custom CA, timeouts, bounded concurrency, the products'
//! error bodies (`errorMessages`/`errors`, Bitbucket's `errors[]`), and their rate limiter
//! (429 with `Retry-After`; `X-RateLimit-Remaining: 0` makes the next request wait for the
//! next token instead of being refused).

use idsync_core::Outcome;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How idsync signs in to the product.
#[derive(Debug, Clone)]
pub enum Auth {
    /// A personal access token (`Authorization: Bearer`).
    Token(String),
    /// A user and password (`Authorization: Basic`).
    Basic { user: String, password: String },
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The product's base URL (`https://jira.example.com`, with its context path if any).
    pub base_url: String,
    pub auth: Auth,
    /// A PEM file of CA certificates to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the CA file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// A failed exchange: the status (none when nothing came back), what the product said, and
/// how long it asked to wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: Option<u16>,
    pub reason: String,
    /// The product's own messages (`errorMessages`, then `errors`' values), for callers that
    /// tell answers apart by them.
    pub messages: Vec<String>,
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// The outcome of an operation that failed so: 404 not found; 429, 408 and 5xx may pass
    /// later; anything else is refused.
    pub fn outcome(&self) -> Outcome {
        match self.status {
            Some(404) => Outcome::NotFound {
                reason: self.reason.clone(),
            },
            None | Some(408) | Some(429) => Outcome::Retryable {
                reason: self.reason.clone(),
                retry_after: self.retry_after,
            },
            Some(s) if s >= 500 && s != 501 => Outcome::Retryable {
                reason: self.reason.clone(),
                retry_after: self.retry_after,
            },
            _ => Outcome::Rejected {
                reason: self.reason.clone(),
            },
        }
    }
    /// The error of a read outside operations.
    pub fn target_error(&self) -> idsync_core::TargetError {
        use idsync_core::TargetError;
        match (self.status, self.retry_after) {
            (Some(401 | 403), _) => TargetError::Auth(self.reason.clone()),
            (Some(429 | 503), Some(retry_after)) => TargetError::Throttled {
                reason: self.reason.clone(),
                retry_after,
            },
            (None | Some(408 | 429), _) => TargetError::Unavailable(self.reason.clone()),
            (Some(s), _) if s >= 500 => TargetError::Unavailable(self.reason.clone()),
            _ => TargetError::Protocol(self.reason.clone()),
        }
    }
    /// Whether one of the product's messages contains `text` (any case).
    pub fn says(&self, text: &str) -> bool {
        let t = text.to_lowercase();
        self.messages.iter().any(|m| m.to_lowercase().contains(&t))
    }
}

/// The messages of an Atlassian error body: Jira and Confluence's `errorMessages` and
/// `errors` (an object of field → message), Bitbucket's `errors` (a list of `{message}`),
/// and a plain `message`.
pub fn error_messages(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(list) = body.get("errorMessages").and_then(Value::as_array) {
        out.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
    }
    match body.get("errors") {
        Some(Value::Object(o)) => {
            for (field, m) in o {
                if let Some(m) = m.as_str() {
                    out.push(format!("{field}: {m}"));
                }
            }
        }
        Some(Value::Array(list)) => {
            for e in list {
                match e {
                    Value::String(s) => out.push(s.clone()),
                    other => {
                        if let Some(m) = other.get("message").and_then(Value::as_str) {
                            out.push(m.to_string());
                        }
                    }
                }
            }
        }
        _ => {}
    }
    // Bamboo's validation errors: `{"errors": [], "fieldErrors": {"name": ["..."]}}`.
    if let Some(Value::Object(o)) = body.get("fieldErrors") {
        for (field, list) in o {
            for m in list
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                out.push(format!("{field}: {m}"));
            }
        }
    }
    if out.is_empty() {
        if let Some(m) = body.get("message").and_then(Value::as_str) {
            out.push(m.to_string());
        }
    }
    out
}

/// The wait an answer asks for: `Retry-After` (seconds or an HTTP date), else, on a 429,
/// the rate limiter's interval.
fn wait_of(status: StatusCode, h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(v) = header("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(when) = httpdate::parse_http_date(v) {
            return Some(
                when.duration_since(std::time::SystemTime::now())
                    .unwrap_or(Duration::ZERO),
            );
        }
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        if let Some(secs) = header("x-ratelimit-interval-seconds").and_then(|v| v.parse().ok()) {
            return Some(Duration::from_secs(secs));
        }
    }
    None
}

/// Limits applied to a wait the product asks for before the next request (a misbehaving
/// header never stalls a run for long).
const MAX_PACE_WAIT: Duration = Duration::from_secs(60);

pub struct DcClient {
    cfg: ClientConfig,
    http: reqwest::Client,
    permits: tokio::sync::Semaphore,
    /// No request before this instant: the rate limiter said its bucket was empty.
    not_before: Mutex<Option<Instant>>,
    requests: std::sync::atomic::AtomicU64,
}

impl DcClient {
    pub fn new(cfg: ClientConfig) -> Result<Self, ClientError> {
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .pool_max_idle_per_host(cfg.concurrency.max(1));
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca).map_err(|e| ClientError::CaFile {
                path: ca.display().to_string(),
                message: e.to_string(),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ClientError::CaFile {
                    path: ca.display().to_string(),
                    message: format!("not PEM certificates: {e}"),
                })?;
            if certs.is_empty() {
                return Err(ClientError::CaFile {
                    path: ca.display().to_string(),
                    message: "holds no certificate".into(),
                });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b.build().map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(DcClient {
            permits: tokio::sync::Semaphore::new(cfg.concurrency.max(1)),
            cfg,
            http,
            not_before: Mutex::new(None),
            requests: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.cfg.base_url
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn pace(&self) {
        let until = self.not_before.lock().ok().and_then(|g| *g);
        if let Some(until) = until {
            let now = Instant::now();
            if until > now {
                tokio::time::sleep((until - now).min(MAX_PACE_WAIT)).await;
            }
        }
    }

    fn note_limits(&self, h: &reqwest::header::HeaderMap) {
        let remaining = h
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        let wait = h
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let (Some(r), Some(w)) = (remaining, wait) {
            if let Ok(mut g) = self.not_before.lock() {
                *g = (r <= 0 && w > 0)
                    .then(|| Instant::now() + Duration::from_secs(w).min(MAX_PACE_WAIT));
            }
        }
    }

    /// One request to `path` (below the base URL, with its query); JSON in, JSON out (`Null`
    /// for an empty body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let _permit = self.permits.acquire().await;
        self.pace().await;
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let url = format!("{}{path}", self.cfg.base_url);
        let mut rb = self
            .http
            .request(method.clone(), &url)
            .header(reqwest::header::ACCEPT, "application/json");
        rb = match &self.cfg.auth {
            Auth::Token(t) => rb.bearer_auth(t),
            Auth::Basic { user, password } => rb.basic_auth(user, Some(password)),
        };
        if let Some(b) = body {
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                let why = if e.is_timeout() {
                    "timed out".to_string()
                } else {
                    idsync_core::error_chain(&e.without_url())
                };
                return Err(Failure {
                    status: None,
                    reason: format!("{what}: {why}"),
                    messages: Vec::new(),
                    retry_after: None,
                });
            }
        };
        let status = resp.status();
        self.note_limits(resp.headers());
        let wait = wait_of(status, resp.headers());
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                return Err(Failure {
                    status: None,
                    reason: format!("{what}: reading the answer: {e}"),
                    messages: Vec::new(),
                    retry_after: None,
                })
            }
        };
        let json = if text.trim().is_empty() {
            Ok(Value::Null)
        } else {
            serde_json::from_str::<Value>(&text)
        };
        if status.is_success() {
            return json.map_err(|e| Failure {
                status: Some(status.as_u16()),
                reason: format!(
                    "{what}: HTTP {} with a body that is not JSON ({e})",
                    status.as_u16()
                ),
                messages: Vec::new(),
                retry_after: None,
            });
        }
        let messages = json.as_ref().map(error_messages).unwrap_or_default();
        let said = if messages.is_empty() {
            shown(&text)
        } else {
            messages.join("; ")
        };
        let reason = if said.is_empty() {
            format!("{what}: HTTP {}", status.as_u16())
        } else {
            format!("{what}: HTTP {}: {said}", status.as_u16())
        };
        Err(Failure {
            status: Some(status.as_u16()),
            reason,
            messages,
            retry_after: wait,
        })
    }
}

/// The first 200 characters of a body that is not JSON, on one line.
fn shown(text: &str) -> String {
    let text = text.trim();
    let mut out: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(200).is_some() {
        out.push('…');
    }
    out
}

/// A query string value, percent-encoded.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_bodies_of_every_product() {
        let jira = json!({"errorMessages": ["Specified group does not exist."], "errors": {"username": "taken"}});
        assert_eq!(
            error_messages(&jira),
            vec!["Specified group does not exist.", "username: taken"]
        );
        let bitbucket =
            json!({"errors": [{"context": null, "message": "No such user", "exceptionName": "x"}]});
        assert_eq!(error_messages(&bitbucket), vec!["No such user"]);
        assert_eq!(
            error_messages(&json!({"message": "Rate limit"})),
            vec!["Rate limit"]
        );
        assert!(error_messages(&json!("text")).is_empty());
    }

    #[test]
    fn bamboo_field_errors() {
        let bamboo = json!({"errors": [], "fieldErrors": {"name": ["Group with this name already exists."]}});
        assert_eq!(
            error_messages(&bamboo),
            vec!["name: Group with this name already exists."]
        );
        let not_found = json!({"message": "User ghost not found.", "status-code": 404});
        assert_eq!(error_messages(&not_found), vec!["User ghost not found."]);
    }

    #[test]
    fn outcomes_by_status() {
        let f = |s: Option<u16>| Failure {
            status: s,
            reason: "r".into(),
            messages: vec![],
            retry_after: Some(Duration::from_secs(2)),
        };
        assert!(matches!(f(Some(404)).outcome(), Outcome::NotFound { .. }));
        assert!(matches!(
            f(Some(429)).outcome(),
            Outcome::Retryable { retry_after: Some(d), .. } if d == Duration::from_secs(2)
        ));
        assert!(matches!(f(Some(400)).outcome(), Outcome::Rejected { .. }));
        assert!(matches!(f(None).outcome(), Outcome::Retryable { .. }));
        assert!(matches!(
            f(Some(429)).target_error(),
            idsync_core::TargetError::Throttled { .. }
        ));
        assert!(matches!(
            f(Some(401)).target_error(),
            idsync_core::TargetError::Auth(_)
        ));
    }
}
