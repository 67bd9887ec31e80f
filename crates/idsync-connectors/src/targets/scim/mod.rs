//! The SCIM 2.0 target: provisions any SCIM service (RFC 7644), with the quirks of particular
//! services in profiles.
//!
//! It discovers what the service supports (`/ServiceProviderConfig`: PATCH, filtering, page
//! size), matches before creating (users by userName then email, groups by displayName),
//! updates with the smallest PATCH (or PUT where PATCH is unsupported, or refused at run time:
//! the form each kind of change takes is learned, `forms.rs`), manages members with
//! batched PATCH, pages through everything for a reconcile, and maps every answer to an
//! outcome: 2xx applied, 404 not found, 408/429/5xx and network errors retryable (honouring
//! Retry-After), other 4xx rejected with the service's own detail.
//!
//! The `atlassian-cloud` profile: base URL `https://api.atlassian.com/scim/directory/<id>`,
//! the API key as bearer token, pages of at most 100, no group renames (refused with a reason),
//! and users only in verified domains (others are refused with a reason, never sent).

use async_trait::async_trait;
use idsync_core::{Group, Outcome, RemoteGroup, RemoteUser, Target, TargetError, TargetOp, User};
use idsync_scim::resource::{group_from_scim, known_only, user_from_scim};
use idsync_scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::OnceCell;

mod forms;
mod groups;
mod keeps;
mod listing;
mod matching;
mod shape;

pub use shape::Shape;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Generic,
    AtlassianCloud,
}

/// How users are matched to existing ones before a create, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserMatch {
    UserName,
    Email,
}

/// Debug never shows the token (see the `Debug` impl).
#[derive(Clone)]
pub struct ScimTargetConfig {
    /// The service's SCIM base URL, without a trailing slash.
    pub base_url: String,
    pub token: String,
    pub profile: Profile,
    pub user_match: Vec<UserMatch>,
    /// Most members added or removed by one PATCH.
    pub member_batch: usize,
    /// Atlassian Cloud: users whose email (or userName) is outside these domains are skipped.
    pub verified_domains: Vec<String>,
    pub timeout: Duration,
    /// What is left out of, or filled into, what users are sent as (`shape.rs`).
    pub shape: Shape,
    /// A group's first members go in its POST (checked against the answer); false: the POST
    /// carries none and a PATCH adds them after (`groups.rs`).
    pub members_in_create: bool,
}

impl ScimTargetConfig {
    pub fn new(base_url: &str, token: &str, profile: Profile) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            profile,
            user_match: vec![UserMatch::UserName, UserMatch::Email],
            member_batch: 100,
            verified_domains: Vec::new(),
            timeout: Duration::from_secs(30),
            shape: Shape::default(),
            members_in_create: true,
        }
    }
}

impl std::fmt::Debug for ScimTargetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimTargetConfig")
            .field("base_url", &self.base_url)
            .field("token", &"***")
            .field("profile", &self.profile)
            .field("user_match", &self.user_match)
            .field("member_batch", &self.member_batch)
            .field("verified_domains", &self.verified_domains)
            .field("timeout", &self.timeout)
            .field("shape", &self.shape)
            .field("members_in_create", &self.members_in_create)
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn the_token_never_prints() {
        let cfg = ScimTargetConfig::new(
            "https://x.example/scim",
            "tok-distinctive",
            Profile::Generic,
        );
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("tok-distinctive"), "{shown}");
        assert!(shown.contains("https://x.example/scim"), "{shown}");
    }
}

/// What the service says it supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub patch: bool,
    pub filter: bool,
    pub max_results: usize,
}

pub struct ScimTarget {
    cfg: ScimTargetConfig,
    http: reqwest::Client,
    caps: OnceCell<Capabilities>,
    forms: forms::Forms,
    learned: matching::Learned,
    shape: shape::Current,
    keeps: keeps::Keeps,
}

/// One HTTP exchange's result.
enum Answer {
    Ok(Value),
    Failed(Outcome),
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn detail(body: &Value, status: StatusCode) -> String {
    if let Value::String(text) = body {
        return match shown(text) {
            t if t.is_empty() => format!("HTTP {}", status.as_u16()),
            t => format!("HTTP {}: {t}", status.as_u16()),
        };
    }
    let d = body.get("detail").and_then(Value::as_str).unwrap_or("");
    let t = body
        .get("scimType")
        .and_then(Value::as_str)
        .map(|t| format!(" ({t})"))
        .unwrap_or_default();
    if d.is_empty() {
        format!("HTTP {}{t}", status.as_u16())
    } else {
        format!("HTTP {}{t}: {d}", status.as_u16())
    }
}

/// The first 200 characters of a body that is not JSON, trimmed, control characters escaped
/// (a log line stays one line), "…" when cut.
fn shown(text: &str) -> String {
    let text = text.trim();
    let mut out: String = text
        .chars()
        .take(200)
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    if text.chars().nth(200).is_some() {
        out.push('…');
    }
    out
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

impl ScimTarget {
    pub fn new(mut cfg: ScimTargetConfig) -> Result<Self, TargetError> {
        if cfg.profile == Profile::AtlassianCloud {
            cfg.member_batch = cfg.member_batch.min(100);
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .build()
            .map_err(|e| TargetError::Protocol(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            caps: OnceCell::new(),
            forms: forms::Forms::default(),
            learned: matching::Learned::default(),
            shape: shape::Current::new(cfg.shape.clone()),
            keeps: keeps::Keeps::default(),
            cfg,
        })
    }

    /// One request; `body` is the JSON text to send.
    async fn send(&self, method: Method, path: &str, body: Option<String>) -> Answer {
        let url = format!("{}{path}", self.cfg.base_url);
        let body = body.map(|b| self.shape.body(path, b));
        let mut rb = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.cfg.token)
            .header(
                reqwest::header::ACCEPT,
                "application/scim+json, application/json",
            );
        // What was sent, to learn from the answer what the service keeps (`keeps.rs`).
        let mut sent = None;
        if let Some(b) = body {
            if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
                sent = Some(b.clone());
            }
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, "application/scim+json")
                .body(b);
        }
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                return Answer::Failed(Outcome::Retryable {
                    reason: format!(
                        "{method} {path}: {}",
                        if e.is_timeout() {
                            "timed out".to_string()
                        } else {
                            // The URL is left out: the caller names the method and path.
                            idsync_core::error_chain(&e.without_url())
                        }
                    ),
                    retry_after: None,
                });
            }
        };
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                return Answer::Failed(Outcome::Retryable {
                    reason: format!("{method} {path}: reading the answer: {e}"),
                    retry_after: None,
                })
            }
        };
        let json: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) if status.is_success() => {
                    return Answer::Failed(Outcome::Rejected {
                        reason: format!(
                            "{method} {path}: HTTP {} with a body that is not JSON ({e})",
                            status.as_u16()
                        ),
                    })
                }
                // Not JSON (an HTML error page, a stack trace): kept as text for the reason.
                Err(_) => Value::String(text),
            }
        };
        if status.is_success() {
            if let Some(sent) = &sent {
                self.keeps.observe(&method, path, sent, &json);
            }
            return Answer::Ok(json);
        }
        let reason = format!("{method} {path}: {}", detail(&json, status));
        Answer::Failed(match status {
            StatusCode::NOT_FOUND => Outcome::NotFound { reason },
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => Outcome::Retryable {
                reason,
                retry_after: wait,
            },
            // Not implemented will not become implemented by retrying.
            StatusCode::NOT_IMPLEMENTED => Outcome::Rejected { reason },
            s if s.is_server_error() => Outcome::Retryable {
                reason,
                retry_after: wait,
            },
            _ => Outcome::Rejected { reason },
        })
    }

    /// GET that must succeed, for reads outside of operations.
    async fn get(&self, path: &str) -> Result<Value, TargetError> {
        match self.send(Method::GET, path, None).await {
            Answer::Ok(v) => Ok(v),
            Answer::Failed(Outcome::Rejected { reason })
                if reason.contains("HTTP 401") || reason.contains("HTTP 403") =>
            {
                Err(TargetError::Auth(reason))
            }
            Answer::Failed(Outcome::Retryable {
                reason,
                retry_after: Some(retry_after),
            }) => Err(TargetError::Throttled {
                reason,
                retry_after,
            }),
            Answer::Failed(Outcome::Retryable { reason, .. }) => {
                Err(TargetError::Unavailable(reason))
            }
            Answer::Failed(Outcome::Rejected { reason } | Outcome::NotFound { reason }) => {
                Err(TargetError::Protocol(reason))
            }
            Answer::Failed(Outcome::Applied { .. } | Outcome::Skipped { .. }) => Err(
                TargetError::Protocol(format!("GET {path}: unexpected answer")),
            ),
        }
    }

    /// The service's capabilities, read once.
    pub async fn capabilities(&self) -> Result<Capabilities, TargetError> {
        self.caps
            .get_or_try_init(|| async {
                let v = self.get("/ServiceProviderConfig").await?;
                let flag = |k: &str| {
                    v.get(k)
                        .and_then(|o| o.get("supported"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                };
                let mut max = v
                    .get("filter")
                    .and_then(|f| f.get("maxResults"))
                    .and_then(Value::as_u64)
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| *n > 0)
                    .unwrap_or(100);
                if self.cfg.profile == Profile::AtlassianCloud {
                    max = max.min(100);
                }
                Ok(Capabilities {
                    patch: flag("patch"),
                    filter: flag("filter"),
                    max_results: max,
                })
            })
            .await
            .copied()
    }

    fn outside_domains(&self, user: &User) -> Option<String> {
        if self.cfg.profile != Profile::AtlassianCloud || self.cfg.verified_domains.is_empty() {
            return None;
        }
        let address = user.primary_email().unwrap_or(&user.user_name);
        let domain = address
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        let ok = self
            .cfg
            .verified_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&domain));
        (!ok).then(|| {
            format!(
                "{address} is not in a verified domain of the Atlassian organisation ({}): skipped",
                self.cfg.verified_domains.join(", ")
            )
        })
    }

    /// PATCH with these operations. The body is written straight from `ops` (typed member
    /// additions are never built as `Value` trees first: at a million memberships that
    /// building and dropping was half the client's CPU).
    async fn patch<T: Serialize + Sync>(&self, path: &str, ops: &[T]) -> Outcome {
        if ops.is_empty() {
            // Nothing to change, but the object must exist.
            return match self.send(Method::GET, path, None).await {
                Answer::Ok(_) => Outcome::Applied { target_id: None },
                Answer::Failed(o) => o,
            };
        }
        #[derive(Serialize)]
        struct PatchRequest<'a, T> {
            schemas: [&'static str; 1],
            #[serde(rename = "Operations")]
            operations: &'a [T],
        }
        let body = match serde_json::to_string(&PatchRequest {
            schemas: ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            operations: ops,
        }) {
            Ok(b) => b,
            Err(e) => {
                return Outcome::Rejected {
                    reason: format!("PATCH {path}: cannot write the request: {e}"),
                }
            }
        };
        match self.send(Method::PATCH, path, Some(body)).await {
            Answer::Ok(..) => Outcome::Applied { target_id: None },
            Answer::Failed(o) => o,
        }
    }

    /// Change a group where PATCH is unsupported: read it whole, change it, PUT it back.
    async fn put_group(
        &self,
        group_id: &str,
        change: impl FnOnce(&mut serde_json::Map<String, Value>),
    ) -> Outcome {
        let path = format!("/Groups/{group_id}");
        let mut v = match self.send(Method::GET, &path, None).await {
            Answer::Ok(v) => v,
            Answer::Failed(o) => return o,
        };
        let Some(o) = v.as_object_mut() else {
            return Outcome::Rejected {
                reason: format!("GET {path}: the answer is not a resource"),
            };
        };
        o.remove("meta");
        change(o);
        match self.send(Method::PUT, &path, Some(v.to_string())).await {
            Answer::Ok(_) => Outcome::Applied { target_id: None },
            Answer::Failed(o) => o,
        }
    }

    /// Whether the service takes PATCH (else the PUT fallbacks are used).
    async fn supports_patch(&self) -> Result<bool, Outcome> {
        self.capabilities()
            .await
            .map(|c| c.patch)
            .map_err(|e| Outcome::Retryable {
                reason: e.to_string(),
                retry_after: None,
            })
    }

    async fn create(&self, endpoint: &str, body: Value) -> Outcome {
        match self
            .send(Method::POST, endpoint, Some(body.to_string()))
            .await
        {
            Answer::Ok(v) => match v.get("id").and_then(Value::as_str) {
                Some(id) => Outcome::Applied {
                    target_id: Some(id.to_string()),
                },
                None => Outcome::Rejected {
                    reason: format!("POST {endpoint}: the service answered without an id"),
                },
            },
            Answer::Failed(o) => o,
        }
    }

    async fn delete(&self, path: &str) -> Outcome {
        match self.send(Method::DELETE, path, None).await {
            Answer::Ok(..) => Outcome::Applied { target_id: None },
            Answer::Failed(o) => o,
        }
    }
}

/// A PATCH operation adding members, as sent.
#[derive(Serialize)]
struct MembersAdd<'a> {
    op: &'static str,
    path: &'static str,
    value: Vec<Member<'a>>,
}

#[derive(Serialize)]
struct Member<'a> {
    value: &'a str,
}

fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn group_body(g: &Group) -> Value {
    let mut v = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": g.display_name});
    if let (Some(e), Some(o)) = (&g.external_id, v.as_object_mut()) {
        o.insert("externalId".into(), Value::String(e.clone()));
    }
    v
}

impl ScimTarget {
    /// Apply one operation (`Target::apply` keeps this run's listings up to date after it).
    async fn apply_op(&self, op: &TargetOp) -> Outcome {
        match op {
            TargetOp::CreateUser { user } => {
                if let Some(reason) = self.outside_domains(user) {
                    return Outcome::Skipped { reason };
                }
                self.apply_user(op, user).await
            }
            TargetOp::UpdateUser { after, .. } => {
                if let Some(reason) = self.outside_domains(after) {
                    return Outcome::Skipped { reason };
                }
                self.apply_user(op, after).await
            }
            TargetOp::DeleteUser { target_id } => self.delete(&format!("/Users/{target_id}")).await,
            TargetOp::CreateGroup { group, members } => self.create_group(group, members).await,
            TargetOp::UpdateGroup { before, after, .. } => {
                if self.cfg.profile == Profile::AtlassianCloud
                    && before.display_name != after.display_name
                    && !before.display_name.is_empty()
                {
                    return Outcome::Rejected {
                        reason: format!(
                            "Atlassian Cloud cannot rename groups: {:?} stays {:?} (a rename would need a new group and loses its permissions)",
                            before.display_name, after.display_name
                        ),
                    };
                }
                self.send_in_form(idsync_core::OpKind::UpdateGroup, op)
                    .await
            }
            TargetOp::DeleteGroup { target_id } => {
                self.delete(&format!("/Groups/{target_id}")).await
            }
            TargetOp::AddMembers { .. } => {
                self.send_in_form(idsync_core::OpKind::AddMembers, op).await
            }
            TargetOp::RemoveMembers { .. } => {
                self.send_in_form(idsync_core::OpKind::RemoveMembers, op)
                    .await
            }
            // SCIM groups hold users; idsync flattens nested groups for SCIM targets.
            TargetOp::AddChildGroups { .. } | TargetOp::RemoveChildGroups { .. } => {
                Outcome::Rejected {
                    reason: "a SCIM target takes no nested groups (memberships are flattened)"
                        .into(),
                }
            }
        }
    }
}

#[async_trait]
impl Target for ScimTarget {
    fn describe(&self) -> String {
        let profile = match self.cfg.profile {
            Profile::Generic => "generic",
            Profile::AtlassianCloud => "atlassian-cloud",
        };
        format!("SCIM {} ({profile})", self.cfg.base_url)
    }

    async fn health(&self) -> Result<(), TargetError> {
        // Discovery may be public; a one-item read of /Users proves the token too.
        self.capabilities().await?;
        self.list_get("/Users", &[("startIndex", "1".into())], 1)
            .await
            .map(|_| ())
    }

    /// Verified matches only (see `matching`).
    async fn find_user(&self, user: &User) -> Result<Option<String>, TargetError> {
        Ok(self.match_user(user).await?.map(|m| m.target_id))
    }

    async fn find_user_match(
        &self,
        user: &User,
    ) -> Result<Option<idsync_core::Match>, TargetError> {
        self.match_user(user).await
    }

    async fn emptiness(&self) -> Result<idsync_core::Emptiness, TargetError> {
        // One-item pages: `totalResults` says how many there are.
        let none = |v: &Value| v.get("totalResults").and_then(Value::as_u64) == Some(0);
        let users = self
            .list_get("/Users", &[("startIndex", "1".into())], 1)
            .await?;
        let groups = self
            .list_get(
                "/Groups",
                &[
                    ("startIndex", "1".into()),
                    ("excludedAttributes", "members".into()),
                ],
                1,
            )
            .await?;
        Ok(idsync_core::Emptiness {
            users: none(&users),
            groups: none(&groups),
        })
    }

    async fn find_group(&self, group: &Group) -> Result<Option<String>, TargetError> {
        Ok(self.match_group(group).await?.map(|m| m.target_id))
    }

    async fn find_group_match(
        &self,
        group: &Group,
    ) -> Result<Option<idsync_core::Match>, TargetError> {
        self.match_group(group).await
    }

    async fn apply(&self, op: &TargetOp) -> Outcome {
        let outcome = self.apply_op(op).await;
        self.listing_follows(op, &outcome).await;
        outcome
    }

    /// SCIM has no custom attributes outside schemas and no group description.
    fn project_user(&self, mut user: User) -> User {
        // Only extension attributes a flow mapped (`urn:<schema>:<attribute>`) reach the
        // service; the source's own custom attributes stay in idsync.
        user.custom.retain(|k, _| k.starts_with("urn:"));
        self.shape.user(user)
    }

    fn project_observed_user(&self, user: User) -> User {
        self.shape.without_omitted(user)
    }

    fn use_omissions(&self, paths: &[String]) {
        self.shape.use_omissions(paths);
    }

    fn take_learned_omissions(&self) -> Vec<idsync_core::LearnedOmission> {
        self.shape.take_learned()
    }

    fn project_group(&self, mut group: Group) -> Group {
        group.description = None;
        group
    }

    fn can_rename_groups(&self) -> bool {
        self.cfg.profile != Profile::AtlassianCloud
    }

    /// Always: in the POST, or added right after it (`groups.rs`).
    fn members_in_create(&self) -> bool {
        true
    }

    fn use_forms(&self, forms: &[idsync_core::LearnedForm]) {
        self.forms.use_forms(forms);
    }

    fn take_learned_forms(&self) -> Vec<idsync_core::LearnedForm> {
        self.forms.take_learned()
    }

    fn use_keeps(&self, learned: &[idsync_core::keeps::LearnedKeep]) {
        self.keeps.use_remembered(learned);
    }

    async fn known_keeps(&self) -> idsync_core::keeps::Known {
        self.keeps.known(self).await
    }

    fn take_learned_keeps(&self) -> Vec<idsync_core::keeps::LearnedKeep> {
        self.keeps.take_learned()
    }

    fn end_run(&self) {
        self.forget_listings();
    }

    async fn value_taken(&self, attribute: &str, value: &str) -> Result<bool, TargetError> {
        self.user_value_taken(attribute, value).await
    }

    async fn read_state(&self) -> Result<idsync_core::TargetSnapshot, TargetError> {
        let bad = |what: &str, e: idsync_scim::ScimError| {
            TargetError::Protocol(format!("{what}: {}", e.detail))
        };
        let mut users = Vec::new();
        for v in self.list_all("/Users").await? {
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| TargetError::Protocol("a user without id".into()))?
                .to_string();
            let mut user = user_from_scim(&known_only(&v, &USER_RESOURCE), &id)
                .map_err(|e| bad(&format!("user {id}"), e))?;
            user.custom = idsync_scim::resource::extension_attributes(&v);
            users.push(RemoteUser {
                target_id: id,
                user,
            });
        }
        let mut groups = Vec::new();
        for v in self.list_all("/Groups").await? {
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| TargetError::Protocol("a group without id".into()))?
                .to_string();
            let (group, members) = group_from_scim(&known_only(&v, &GROUP_RESOURCE), &id)
                .map_err(|e| bad(&format!("group {id}"), e))?;
            groups.push(RemoteGroup {
                target_id: id,
                group,
                members: members.into_iter().map(|(m, _)| m).collect(),
            });
        }
        Ok(idsync_core::TargetSnapshot { users, groups })
    }
}
