//! A Microsoft Graph client for reading a directory, usable on its own.
//!
//! - OAuth 2.0 client credentials, with a client secret or a certificate ([`ClientCertificate`]
//!   signs PS256 client assertions), against Entra's token endpoint, for any cloud (the authority
//!   and Graph host are parameters; [`Cloud`] holds the national clouds). Tokens are cached
//!   and renewed five minutes before they expire (time comes from a [`Clock`]). The scope is
//!   `<graph>/.default` unless [`GraphConfig::scope`] names another.
//! - Requests with bounded concurrency, a client-side resource-unit budget per 10 s window,
//!   and retries of 429 / 503 / 504 (GETs also of 500 / 502, timeouts and connections broken
//!   mid-answer) honouring `Retry-After` (otherwise exponential backoff with jitter); an answer
//!   with `x-ms-throttle-limit-percentage` (80 % of the limit or more) pauses spending until the
//!   next window. Every request, retry, throttle and resource unit is counted ([`GraphStats`]).
//! - `@odata.nextLink` paging, delta rounds (`@odata.deltaLink`), JSON `$batch` in chunks of 20
//!   (a request still throttled inside the batch after the retries is fetched on its own).
//! - Errors say what to do: a 403 names the permissions the token lacks ("grant admin consent
//!   for Directory.Read.All"); a synchronization reset (410, `syncStateNotFound`,
//!   `resyncRequired`) is [`GraphError::DeltaExpired`], with the `Location` to restart from when
//!   Graph gives one. Nothing else means a delta link is spent.

mod batch;
mod certificate;
mod error;
mod logins;
mod paging;
mod token;
pub use certificate::{CertificateError, ClientCertificate};
pub use error::GraphError;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use idsync_core::Clock;
use rand::Rng;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a tenant lives: the login authority and the Graph host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Global,
    UsGovernment,
    UsGovernmentDod,
    China,
}

impl Cloud {
    pub fn parse(s: &str) -> Option<Cloud> {
        match s.to_ascii_lowercase().as_str() {
            "global" | "public" | "azurepublic" => Some(Cloud::Global),
            "usgov" | "us-government" | "usgovernment" | "gcc-high" => Some(Cloud::UsGovernment),
            "usgov-dod" | "dod" => Some(Cloud::UsGovernmentDod),
            "china" | "21vianet" => Some(Cloud::China),
            _ => None,
        }
    }
    pub fn authority(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGovernment | Cloud::UsGovernmentDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }
    pub fn graph(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGovernment => "https://graph.microsoft.us",
            Cloud::UsGovernmentDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

/// How the app proves who it is.
#[derive(Clone)]
pub enum Credential {
    /// A client secret (its value, not its id).
    Secret(String),
    /// A certificate registered on the app, with its private key: each token request carries a
    /// freshly signed client assertion.
    Certificate(Arc<ClientCertificate>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Secret(_) => f.write_str("Secret(***)"),
            Credential::Certificate(c) => write!(f, "{c:?}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Tenant id or a verified domain.
    pub tenant: String,
    pub client_id: String,
    pub credential: Credential,
    /// e.g. `https://login.microsoftonline.com`.
    pub authority: String,
    /// e.g. `https://graph.microsoft.com` (without `/v1.0`).
    pub graph: String,
    /// Extra CA certificate (PEM) to trust, for a simulator or a TLS-inspecting proxy.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Resource units per 10 s this client allows itself (Graph's limit per app and tenant is
    /// 3,500 to 8,000 by tenant size).
    pub budget: u32,
    /// Retries of a throttled or unavailable request before giving up.
    pub max_retries: u32,
    /// Upper bound of one backoff wait when the service gives no Retry-After.
    pub max_backoff: Duration,
    /// The scope asked for in token requests; `None`: `<graph>/.default`, right for every
    /// cloud. Set it when a proxy or gateway stands in front of Graph under another name.
    pub scope: Option<String>,
}

impl GraphConfig {
    pub fn new(tenant: &str, client_id: &str, credential: Credential, cloud: Cloud) -> Self {
        GraphConfig {
            tenant: tenant.into(),
            client_id: client_id.into(),
            credential,
            authority: cloud.authority().into(),
            graph: cloud.graph().into(),
            ca_file: None,
            timeout: Duration::from_secs(60),
            concurrency: 8,
            budget: 3_000,
            max_retries: 8,
            max_backoff: Duration::from_secs(60),
            scope: None,
        }
    }
}

/// What a client has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GraphStats {
    pub requests: u64,
    pub retries: u64,
    pub throttled: u64,
    pub resource_units: u64,
    pub tokens: u64,
    /// Answers that said the app had used 80 % or more of its limit
    /// (`x-ms-throttle-limit-percentage`); each one paused requests until the next window.
    pub near_limit: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    units: AtomicU64,
    tokens: AtomicU64,
    near_limit: AtomicU64,
}

#[derive(Debug, Clone)]
struct CachedToken {
    value: String,
    expires_ms: i64,
    roles: Vec<String>,
}

struct Window {
    start: Instant,
    used: u32,
}

/// A delta round: every item up to the delta link.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaRound {
    pub items: Vec<Value>,
    pub delta_link: String,
}

/// The Graph client.
pub struct GraphClient {
    cfg: GraphConfig,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    permits: tokio::sync::Semaphore,
    window: std::sync::Mutex<Window>,
    counters: Counters,
}

/// Resource units a Graph request costs, as the identity and access limits count them (a get
/// 1, a list 2, members 3, transitive members 5, delta 5; `$select` saves one, `$expand` adds
/// one; never below 1).
pub fn estimated_units(method: &str, url: &str) -> u32 {
    if method != "GET" {
        return 1;
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let path = path.split("/v1.0/").nth(1).unwrap_or(path);
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut cost: i32 =
        if segs.iter().any(|s| s.contains("delta")) || segs.contains(&"transitiveMembers") {
            5
        } else if segs.contains(&"members") {
            3
        } else if segs.len() == 1 {
            2
        } else {
            1
        };
    let query = query.to_ascii_lowercase();
    if query.contains("%24select") || query.contains("$select") {
        cost -= 1;
    }
    if query.contains("%24expand") || query.contains("$expand") {
        cost += 1;
    }
    cost.max(1) as u32
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// The roles (application permissions) an access token carries. The token is not verified:
/// this is for telling people what is missing, not for trusting it.
pub fn token_roles(token: &str) -> Vec<String> {
    token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| {
            v.get("roles").and_then(Value::as_array).map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Which permissions a Graph path needs for reading; any one of each inner list will do.
pub fn permissions_for(path: &str) -> &'static [&'static str] {
    let path = path.split("/v1.0/").nth(1).unwrap_or(path);
    let first = path
        .trim_start_matches('/')
        .split(['/', '?', '('])
        .next()
        .unwrap_or("");
    match first {
        "users" => &["User.Read.All", "Directory.Read.All"],
        "groups" => &[
            "GroupMember.Read.All",
            "Group.Read.All",
            "Directory.Read.All",
        ],
        "servicePrincipals" => &["Application.Read.All", "Directory.Read.All"],
        "organization" => &["Organization.Read.All", "Directory.Read.All"],
        _ => &[],
    }
}

impl GraphClient {
    pub fn new(cfg: GraphConfig, clock: Arc<dyn Clock>) -> Result<Self, GraphError> {
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .pool_max_idle_per_host(cfg.concurrency.max(1));
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| GraphError::Setup(format!("cannot read {}: {e}", ca.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                GraphError::Setup(format!("{} is not a PEM certificate: {e}", ca.display()))
            })?;
            b = b.add_root_certificate(cert);
        }
        let http = b.build().map_err(|e| GraphError::Setup(e.to_string()))?;
        Ok(GraphClient {
            permits: tokio::sync::Semaphore::new(cfg.concurrency.max(1)),
            cfg,
            http,
            clock,
            token: tokio::sync::Mutex::new(None),
            window: std::sync::Mutex::new(Window {
                start: Instant::now(),
                used: 0,
            }),
            counters: Counters::default(),
        })
    }

    pub fn config(&self) -> &GraphConfig {
        &self.cfg
    }

    pub fn stats(&self) -> GraphStats {
        GraphStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            throttled: self.counters.throttled.load(Ordering::Relaxed),
            resource_units: self.counters.units.load(Ordering::Relaxed),
            tokens: self.counters.tokens.load(Ordering::Relaxed),
            near_limit: self.counters.near_limit.load(Ordering::Relaxed),
        }
    }

    /// `graph/v1.0/<path>`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}/v1.0/{}",
            self.cfg.graph.trim_end_matches('/'),
            path_and_query.trim_start_matches('/')
        )
    }

    /// The scope token requests ask for: the configured one, else `<graph>/.default`.
    pub fn token_scope(&self) -> String {
        match &self.cfg.scope {
            Some(s) => s.clone(),
            None => format!("{}/.default", self.cfg.graph.trim_end_matches('/')),
        }
    }

    fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.cfg.authority.trim_end_matches('/'),
            self.cfg.tenant
        )
    }

    /// The current access token, fetched or renewed when it is within five minutes of expiry.
    pub async fn access_token(&self) -> Result<String, GraphError> {
        Ok(self.cached_token(false).await?.value)
    }

    /// The application permissions the current token carries.
    pub async fn granted_roles(&self) -> Result<Vec<String>, GraphError> {
        Ok(self.cached_token(false).await?.roles)
    }

    /// Wait until the request's resource units fit in this 10 s window.
    async fn charge(&self, units: u32) {
        loop {
            let wait = match self.window.lock() {
                Ok(mut w) => {
                    if w.start.elapsed() >= Duration::from_secs(10) {
                        w.start = Instant::now();
                        w.used = 0;
                    }
                    if w.used + units <= self.cfg.budget.max(units) {
                        w.used += units;
                        None
                    } else {
                        Some(Duration::from_secs(10).saturating_sub(w.start.elapsed()))
                    }
                }
                Err(_) => None,
            };
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d.max(Duration::from_millis(10))).await,
            }
        }
    }

    /// Graph sends `x-ms-throttle-limit-percentage` (0.8 to 1.8) once an app has used 80 % of
    /// its limit: spend nothing more in this window, rather than run into 429s.
    fn near_limit(&self, share: f64) {
        if share < 0.8 {
            return;
        }
        self.counters.near_limit.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut w) = self.window.lock() {
            if w.used < self.cfg.budget {
                tracing::debug!(
                    share,
                    used = w.used,
                    "Graph reports the app near its throttling limit: pausing until the next window"
                );
                w.used = self.cfg.budget;
            }
        }
    }

    /// How long the next request would wait for the resource-unit budget (zero when it can go).
    pub fn budget_wait(&self) -> Duration {
        match self.window.lock() {
            Ok(w) if w.used >= self.cfg.budget => {
                Duration::from_secs(10).saturating_sub(w.start.elapsed())
            }
            _ => Duration::ZERO,
        }
    }

    fn check_host(&self, url: &str) -> Result<(), GraphError> {
        let base = self.cfg.graph.trim_end_matches('/');
        if url.starts_with(&format!("{base}/")) {
            Ok(())
        } else {
            Err(GraphError::ForeignLink(url.to_string()))
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = Duration::from_millis(500).saturating_mul(1u32 << attempt.min(10));
        let capped = base.min(self.cfg.max_backoff);
        let jitter = rand::thread_rng().gen_range(0.5..1.0);
        capped.mul_f64(jitter)
    }

    /// Send one request with retries; returns the JSON body (Null for 204). GETs are retried
    /// on any transport failure (a reset mid-answer included) and on 500, 502, 503, 504 and
    /// 429; other methods on 429, 503, 504 and failures to connect.
    pub async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, GraphError> {
        let idempotent = method == reqwest::Method::GET;
        self.send_retrying(method, url, body, headers, idempotent)
            .await
    }

    /// [`Self::send`], saying whether the request may be sent again after a failure whose
    /// effect is unknown (a `$batch` of GETs may).
    pub(crate) async fn send_retrying(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        idempotent: bool,
    ) -> Result<Value, GraphError> {
        self.check_host(url)?;
        let units = estimated_units(method.as_str(), url);
        let mut attempt = 0u32;
        let mut renewed = false;
        loop {
            self.charge(units).await;
            let token = self.cached_token(false).await?;
            let resp = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|e| GraphError::Setup(e.to_string()))?;
                self.counters.requests.fetch_add(1, Ordering::Relaxed);
                let mut rb = self
                    .http
                    .request(method.clone(), url)
                    .bearer_auth(&token.value);
                for (k, v) in headers {
                    rb = rb.header(*k, *v);
                }
                if let Some(b) = body {
                    rb = rb
                        .header("Content-Type", "application/json")
                        .body(b.to_string());
                }
                rb.send().await
            };
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    if attempt < self.cfg.max_retries
                        && (e.is_timeout() || e.is_connect() || (idempotent && !e.is_builder()))
                    {
                        attempt += 1;
                        self.counters.retries.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(url, error = %e, attempt, "graph: retrying after a transport failure");
                        tokio::time::sleep(self.backoff(attempt)).await;
                        continue;
                    }
                    return Err(GraphError::Transport {
                        url: url.to_string(),
                        message: idsync_core::error_chain(&e.without_url()),
                    });
                }
            };
            if let Some(u) = resp
                .headers()
                .get("x-ms-resource-unit")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
            {
                self.counters.units.fetch_add(u, Ordering::Relaxed);
            }
            if let Some(p) = resp
                .headers()
                .get("x-ms-throttle-limit-percentage")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
            {
                self.near_limit(p);
            }
            let status = resp.status().as_u16();
            if matches!(status, 429 | 503 | 504) || (idempotent && matches!(status, 500 | 502)) {
                if status == 429 {
                    self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                }
                if attempt >= self.cfg.max_retries {
                    return Err(if status == 429 {
                        GraphError::Throttled {
                            url: url.to_string(),
                            attempts: attempt + 1,
                        }
                    } else {
                        self.error_of(status, resp, url).await
                    });
                }
                attempt += 1;
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
                let wait = retry_after(resp.headers()).unwrap_or_else(|| self.backoff(attempt));
                tracing::debug!(
                    url,
                    status,
                    wait_ms = wait.as_millis() as u64,
                    attempt,
                    "graph: retrying"
                );
                tokio::time::sleep(wait.min(Duration::from_secs(300))).await;
                continue;
            }
            if status == 401 && !renewed {
                renewed = true;
                self.cached_token(true).await?;
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(self.error_of(status, resp, url).await);
            }
            if status == 204 {
                return Ok(Value::Null);
            }
            let text = match resp.text().await {
                Ok(t) => t,
                // The connection broke in the middle of the answer: ask again.
                Err(e) if idempotent && attempt < self.cfg.max_retries => {
                    attempt += 1;
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(url, error = %e, attempt, "graph: the answer broke off, retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    continue;
                }
                Err(e) => {
                    return Err(GraphError::Transport {
                        url: url.to_string(),
                        message: idsync_core::error_chain(&e.without_url()),
                    })
                }
            };
            return serde_json::from_str(&text).map_err(|e| GraphError::Invalid {
                url: url.to_string(),
                message: format!("not JSON ({e})"),
            });
        }
    }

    async fn error_of(&self, status: u16, resp: reqwest::Response, url: &str) -> GraphError {
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        let code = v
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let message = v
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match self.classify(status, code, message, url).await {
            GraphError::DeltaExpired { reason, .. } => GraphError::DeltaExpired {
                reason,
                location: location
                    .map(|l| match l.starts_with('/') {
                        true => format!("{}{l}", self.cfg.graph.trim_end_matches('/')),
                        false => l,
                    })
                    .filter(|l| self.check_host(l).is_ok()),
            },
            other => other,
        }
    }

    async fn classify(&self, status: u16, code: String, message: String, url: &str) -> GraphError {
        // Only a synchronization reset means the link is spent; anything temporary is not.
        if status == 410 || code == "syncStateNotFound" || code == "resyncRequired" {
            return GraphError::DeltaExpired {
                reason: if code.is_empty() {
                    status.to_string()
                } else {
                    code
                },
                location: None,
            };
        }
        if status == 404 {
            return GraphError::NotFound(url.to_string());
        }
        if status == 403 {
            let granted = self.granted_roles().await.unwrap_or_default();
            let needed = permissions_for(url);
            let has_one = needed.iter().any(|n| granted.iter().any(|g| g == n));
            let missing = if has_one || needed.is_empty() {
                vec!["(a permission this request needs)".to_string()]
            } else {
                vec![needed[0].to_string()]
            };
            return GraphError::Consent {
                message: format!("Graph refused {url}: {message}"),
                missing,
            };
        }
        GraphError::Http {
            status,
            code,
            message,
            url: url.to_string(),
        }
    }

    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Value, GraphError> {
        self.send(reqwest::Method::GET, url, None, headers).await
    }
}
