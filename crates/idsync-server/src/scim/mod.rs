//! The SCIM 2.0 push endpoint: `/scim/v2/<directory>/...`, one per directory, each with its own
//! bearer tokens. Writes land in the directory and its change log, and the directory's flows
//! are woken at once.

mod auth;
mod bulk;
mod discovery;
mod errors;
mod groups;
mod list;
mod users;

use auth::*;
use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use bulk::*;
use discovery::*;
use errors::*;
use groups::*;
use idsync_config::ScimProfile;
use idsync_engine::{Service, Trigger};
use idsync_scim::resource::Meta;
use idsync_scim::ScimError;
use list::*;
use serde_json::Value;
use std::sync::Arc;
use users::*;

/// Most resources in one page.
pub const MAX_RESULTS: usize = 200;

/// Most resources in one page of a directory that behaves as Atlassian Cloud.
pub const ATLASSIAN_MAX_RESULTS: usize = 100;

/// Most operations in one bulk request, and its largest body in bytes.
pub const BULK_MAX_OPERATIONS: usize = 1000;
pub const BULK_MAX_PAYLOAD: usize = 1_048_576;

#[derive(Clone)]
pub(crate) struct ScimState {
    svc: Arc<Service>,
    /// The externally visible base URL prefix, e.g. `http://127.0.0.1:8080` (from Host when empty).
    public_url: Option<Arc<str>>,
}

fn scim_json(
    status: StatusCode,
    body: &Value,
    etag: Option<&str>,
    location: Option<&str>,
) -> Response {
    // Straight into bytes (Value's Display goes through a formatter adapter).
    let text = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (status, text).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/scim+json"),
    );
    if let Some(e) = etag.and_then(|e| HeaderValue::from_str(&format!("W/\"{e}\"")).ok()) {
        h.insert(header::ETAG, e);
    }
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        h.insert(header::LOCATION, l);
    }
    resp
}

pub(crate) fn router(svc: Arc<Service>, public_url: Option<String>) -> Router {
    let state = ScimState {
        svc,
        public_url: public_url.map(Arc::from),
    };
    // Every directory at /scim/v2/<dir>; one whose endpoint behaves as Atlassian Cloud's also
    // at Atlassian's own path, /scim/directory/<dir>.
    Router::new()
        .merge(routes("/scim/v2/{dir}"))
        .merge(routes("/scim/directory/{dir}"))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

fn routes(prefix: &str) -> Router<ScimState> {
    let at = |path: &str| format!("{prefix}{path}");
    Router::new()
        .route(&at("/ServiceProviderConfig"), get(service_provider_config))
        .route(&at("/ResourceTypes"), get(resource_types))
        .route(&at("/ResourceTypes/{id}"), get(resource_type))
        .route(&at("/Schemas"), get(schemas))
        .route(&at("/Schemas/{id}"), get(schema))
        .route(&at("/Users"), get(list_get(Kinds::Users)).post(create_user))
        .route(
            &at("/Users/{id}"),
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route(
            &at("/Groups"),
            get(list_get(Kinds::Groups)).post(create_group),
        )
        .route(
            &at("/Groups/{id}"),
            get(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route(&at("/Me"), get(me).post(me).put(me).patch(me).delete(me))
        .route(&at("/.search"), post(list_post(Kinds::Both)))
        .route(&at("/Bulk"), post(bulk))
        .route(&at("/Users/.search"), post(list_post(Kinds::Users)))
        .route(&at("/Groups/.search"), post(list_post(Kinds::Groups)))
        .route(&at("/{*rest}"), any(no_such_endpoint))
}

impl ScimState {
    fn base(&self, headers: &HeaderMap, dir: &str) -> String {
        let root = match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let host = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("localhost");
                format!("http://{host}")
            }
        };
        if self.atlassian(dir).is_some() {
            format!("{root}/scim/directory/{dir}")
        } else {
            format!("{root}/scim/v2/{dir}")
        }
    }

    /// The verified domains of a directory whose endpoint behaves as Atlassian Cloud's.
    fn atlassian(&self, dir: &str) -> Option<&[String]> {
        self.svc
            .runtime
            .push_endpoints
            .get(dir)
            .filter(|p| p.profile == ScimProfile::AtlassianCloud)
            .map(|p| p.verified_domains.as_slice())
    }

    /// Most resources in one page: Atlassian Cloud serves at most 100.
    fn max_results(&self, dir: &str) -> usize {
        if self.atlassian(dir).is_some() {
            ATLASSIAN_MAX_RESULTS
        } else {
            MAX_RESULTS
        }
    }

    /// Atlassian Cloud provisions only users of the organisation's verified domains.
    fn check_domain(&self, dir: &str, user: &idsync_core::User) -> Result<(), ScimError> {
        let Some(domains) = self.atlassian(dir) else {
            return Ok(());
        };
        let address = user
            .emails
            .iter()
            .find(|e| e.primary)
            .or_else(|| user.emails.first())
            .map_or(user.user_name.as_str(), |e| e.value.as_str());
        let domain = address
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        if domains.contains(&domain) {
            Ok(())
        } else {
            Err(ScimError::invalid_value(format!(
                "{address:?} is not in a verified domain of this organization ({}): Atlassian Cloud provisions only users of verified domains",
                domains.join(", ")
            )))
        }
    }

    fn now(&self) -> i64 {
        self.svc.runtime.clock.now_ms()
    }

    /// After a write: wake the directory's flows.
    fn written(&self, dir: &str) {
        self.svc.notify(dir, Trigger::Push);
    }
}

fn rfc3339(ms: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// A weak ETag from the resource's content (FNV-1a, 64 bits).
fn version_of(v: &Value) -> String {
    /// FNV-1a over the bytes written into it.
    struct Fnv(u64);
    impl std::io::Write for Fnv {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            for b in buf {
                self.0 ^= u64::from(*b);
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // The JSON text hashed as it is written, never held: writing a value into the hash
    // cannot fail.
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    let _ = serde_json::to_writer(&mut h, v);
    format!("{:016x}", h.0)
}

fn meta(created: i64, modified: i64) -> Meta {
    Meta {
        created: rfc3339(created),
        last_modified: rfc3339(modified),
        version: None,
    }
}

/// Fill in meta.version from the content and return it.
fn with_version(mut v: Value) -> (Value, String) {
    let version = version_of(&v);
    if let Some(m) = v.get_mut("meta").and_then(Value::as_object_mut) {
        m.insert("version".into(), Value::String(format!("W/\"{version}\"")));
    }
    (v, version)
}

fn check_if_match(headers: &HeaderMap, version: &str) -> Result<(), ScimError> {
    let Some(want) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let ok = want
        .split(',')
        .map(str::trim)
        .any(|w| w == "*" || w.trim_start_matches("W/").trim_matches('"') == version);
    if ok {
        Ok(())
    } else {
        Err(ScimError::precondition_failed(
            "the resource changed since the ETag given in If-Match",
        ))
    }
}

fn parse_body(body: &Bytes) -> Result<Value, ScimError> {
    serde_json::from_slice(body)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not JSON: {e}")))
}

/// Bodies up to this size are parsed and applied on the runtime's thread (handing them to the
/// blocking pool costs more than the work); larger ones go to the blocking pool.
const INLINE_BODY_MAX: usize = 64 * 1024;
/// Lists of up to this many resources are served on the runtime's thread.
const INLINE_RESOURCES_MAX: usize = 500;

/// Run a request's CPU work (parsing a body, applying a PATCH's operations, serving a list)
/// on the blocking pool when it is `heavy`, off the runtime's worker threads: a large request
/// then delays only itself, not every request sharing its thread (`/healthz`, other clients).
async fn off_runtime<T: Send + 'static>(
    heavy: bool,
    work: impl FnOnce() -> Result<T, ScimError> + Send + 'static,
) -> Result<T, ScimError> {
    if !heavy {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ScimError::internal(format!("the request's work stopped: {e}")))?
}

/// The stamps an object has after a write: `created` stays, `modified` moves only when the
/// content changed (the store skips unchanged objects).
fn stamps(before: Option<(i64, i64)>, changed: bool, now: i64) -> (i64, i64) {
    match before {
        None => (now, now),
        Some((created, _)) if changed => (created, now),
        Some(kept) => kept,
    }
}

/// The id of a created user or group: a UUID that starts with the time (version 7), so that
/// the store's B-trees keyed by id (the object's, its e-mails') take new ids at their end
/// instead of at a random page each; in a 100,000-user first sync that was two of the five
/// pages written at random per created user.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The read-only parts of a served resource, which a body built from it must not carry.
fn strip_read_only(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in ["id", "meta", "groups"] {
            o.remove(k);
        }
    }
    v
}

async fn no_such_endpoint() -> ScimResult {
    Err(ScimError::not_found("no such SCIM endpoint").into())
}
