//! The SCIM 2.0 push endpoint: `/scim/v2/<directory>/...`, one per directory, each with its own
//! bearer tokens. Writes land in the directory and its change log, and the directory's flows
//! are woken at once.

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use idsync_config::ScimProfile;
use idsync_core::{Change, MemberKind, MemberRef};
use idsync_engine::{Service, Trigger};
use idsync_scim::filter::{values, AttrPath, Filter};
use idsync_scim::patch::{apply, member_changes, parse_request};
use idsync_scim::resource::{
    group_from_scim, group_to_scim, project, user_from_scim, user_to_scim, MemberView, Meta,
};
use idsync_scim::schema::{
    all_schemas, schema_json, ResourceSchema, GROUP_RESOURCE, USER_RESOURCE,
};
use idsync_scim::{ScimError, LIST_RESPONSE, SERVICE_PROVIDER_CONFIG_SCHEMA};
use idsync_store::{MemberPatch, StoreError, StoredGroup, StoredUser, Unique};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

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

/// An error on the SCIM endpoint: always a SCIM error body with status and scimType.
pub(crate) struct ScimFailure(ScimError);

impl From<ScimError> for ScimFailure {
    fn from(e: ScimError) -> Self {
        Self(e)
    }
}

impl From<StoreError> for ScimFailure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(msg) => Self(ScimError::uniqueness(msg)),
            StoreError::NotFound(msg) => Self(ScimError::not_found(msg)),
            StoreError::Invalid(msg) => Self(ScimError::invalid_value(msg)),
            other => {
                tracing::error!(error = %other, "store error on the SCIM endpoint");
                Self(ScimError::internal(
                    "the store failed; the request changed nothing",
                ))
            }
        }
    }
}

impl IntoResponse for ScimFailure {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, self.0.to_json().to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/scim+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

type ScimResult = Result<Response, ScimFailure>;

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

async fn authenticate(
    State(st): State<ScimState>,
    Path(params): Path<BTreeMap<String, String>>,
    req: Request,
    next: Next,
) -> Result<Response, ScimFailure> {
    let dir = params.get("dir").cloned().unwrap_or_default();
    let secret = crate::auth::bearer(req.headers())
        .unwrap_or_default()
        .to_string();
    if secret.is_empty() {
        return Err(ScimError::unauthorized().into());
    }
    let now = st.svc.runtime.clock.now_ms();
    match st.svc.runtime.store.verify_token(&secret, now).await? {
        Some(token) if token.directory == dir => {
            if req.uri().path().starts_with("/scim/directory/") && st.atlassian(&dir).is_none() {
                return Err(ScimError::not_found(format!(
                    "directory {dir:?} does not behave as Atlassian Cloud: its endpoint is /scim/v2/{dir}"
                ))
                .into());
            }
            Ok(next.run(req).await)
        }
        _ => Err(ScimError::unauthorized().into()),
    }
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

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

fn split_list(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .map(|s| {
            s.split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

struct Paging {
    start: usize,
    count: usize,
}

fn paging(p: &ListParams, max: usize) -> Result<Paging, ScimError> {
    let num = |s: &Option<String>, what: &str| -> Result<Option<i64>, ScimError> {
        s.as_deref()
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| ScimError::invalid_value(format!("{what} must be an integer")))
            })
            .transpose()
    };
    let start = num(&p.start_index, "startIndex")?.unwrap_or(1).max(1);
    let count = num(&p.count, "count")?.unwrap_or(100).clamp(0, max as i64);
    Ok(Paging {
        start: usize::try_from(start).unwrap_or(1),
        count: usize::try_from(count).unwrap_or(0),
    })
}

fn list_response(
    mut items: Vec<Value>,
    p: &ListParams,
    schema: &ResourceSchema,
    max: usize,
) -> Result<Value, ScimError> {
    if let Some(sort_by) = p.sort_by.as_deref().filter(|s| !s.trim().is_empty()) {
        let path = AttrPath::parse(sort_by.trim()).map_err(|_| {
            ScimError::invalid_value(format!("sortBy: {sort_by:?} is not an attribute path"))
        })?;
        let exact = schema.case_exact(&path);
        let key = |v: &Value| -> Option<String> {
            values(v, &path).into_iter().find_map(|x| match x {
                Value::String(s) if exact => Some(s.clone()),
                Value::String(s) => Some(s.to_lowercase()),
                Value::Object(o) => o
                    .get("value")
                    .and_then(Value::as_str)
                    .map(str::to_lowercase),
                Value::Null => None,
                other => Some(other.to_string()),
            })
        };
        // Resources without the attribute sort last in ascending order.
        items.sort_by(|a, b| match (key(a), key(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        if p.sort_order
            .as_deref()
            .is_some_and(|o| o.eq_ignore_ascii_case("descending"))
        {
            items.reverse();
        }
    }
    let pg = paging(p, max)?;
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(pg.start - 1)
        .take(pg.count)
        .collect();
    Ok(json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": pg.start,
        "itemsPerPage": page.len(),
        "Resources": page,
    }))
}

// ------------------------------------------------------------------------------ discovery

async fn service_provider_config(
    State(st): State<ScimState>,
    Path(dir): Path<String>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let bulk = if st.atlassian(&dir).is_some() {
        json!({"supported": false, "maxOperations": 0, "maxPayloadSize": 0})
    } else {
        json!({"supported": true, "maxOperations": BULK_MAX_OPERATIONS, "maxPayloadSize": BULK_MAX_PAYLOAD})
    };
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA],
            "documentationUri": "https://github.com/idsync/idsync",
            "patch": {"supported": true},
            "bulk": bulk,
            "filter": {"supported": true, "maxResults": st.max_results(&dir)},
            "changePassword": {"supported": false},
            "sort": {"supported": true},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A token made with `idsync token create <directory>`",
                "primary": true
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
        }),
        None,
        None,
    ))
}

fn resource_schemas() -> [&'static ResourceSchema; 2] {
    [&USER_RESOURCE, &GROUP_RESOURCE]
}

async fn resource_types(
    State(st): State<ScimState>,
    Path(dir): Path<String>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let items: Vec<Value> = resource_schemas()
        .iter()
        .map(|r| r.resource_type_json(&base))
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &json!({"schemas": [LIST_RESPONSE], "totalResults": items.len(), "startIndex": 1, "itemsPerPage": items.len(), "Resources": items}),
        None,
        None,
    ))
}

async fn resource_type(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let r = resource_schemas()
        .into_iter()
        .find(|r| r.name.eq_ignore_ascii_case(&id))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {id}")))?;
    Ok(scim_json(
        StatusCode::OK,
        &r.resource_type_json(&base),
        None,
        None,
    ))
}

async fn schemas(
    State(st): State<ScimState>,
    Path(dir): Path<String>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let items: Vec<Value> = all_schemas()
        .iter()
        .map(|s| schema_json(s, &base))
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &json!({"schemas": [LIST_RESPONSE], "totalResults": items.len(), "startIndex": 1, "itemsPerPage": items.len(), "Resources": items}),
        None,
        None,
    ))
}

async fn schema(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let s = all_schemas()
        .into_iter()
        .find(|s| s.id.eq_ignore_ascii_case(&id))
        .ok_or_else(|| ScimError::not_found(format!("no schema {id}")))?;
    Ok(scim_json(
        StatusCode::OK,
        &schema_json(s, &base),
        None,
        None,
    ))
}

async fn me() -> ScimResult {
    Err(ScimError::new(
        501,
        None,
        "/Me is not supported: tokens authenticate a provisioning client, not a user",
    )
    .into())
}

// ----------------------------------------------------------------------------------- users

/// A user as served: the stored user and the groups it is a direct member of.
struct UserView {
    su: StoredUser,
    groups: Vec<(String, String)>,
}

impl UserView {
    fn json(&self, base: &str) -> (Value, String) {
        with_version(user_to_scim(
            &self.su.user,
            base,
            &self.groups,
            &meta(self.su.created_ms, self.su.modified_ms),
        ))
    }
}

async fn load_user_view(st: &ScimState, dir: &str, id: &str) -> Result<UserView, ScimFailure> {
    let su = load_user(st, dir, id).await?;
    let groups = st
        .svc
        .runtime
        .store
        .member_of(dir, &su.user.source_id)
        .await?;
    Ok(UserView { su, groups })
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

async fn load_user(st: &ScimState, dir: &str, id: &str) -> Result<StoredUser, ScimFailure> {
    st.svc
        .runtime
        .store
        .get_user(dir, id)
        .await?
        .ok_or_else(|| ScimFailure(ScimError::not_found(format!("no user with id {id}"))))
}

/// Every user matching the request's filter, as SCIM resources.
async fn search_users(
    st: &ScimState,
    dir: &str,
    headers: &HeaderMap,
    p: &ListParams,
) -> Result<Vec<Value>, ScimFailure> {
    let base = st.base(headers, dir);
    let dir = dir.to_string();
    let store = &st.svc.runtime.store;
    let filter = p
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(Filter::parse)
        .transpose()?;
    // Equality on an indexed attribute narrows the candidates; the filter still decides.
    let top = |name: &str, path: &AttrPath| {
        path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case(name)
    };
    let candidates = match filter.as_ref().and_then(Filter::eq_value) {
        Some((path, v)) if top("userName", path) => store.find_users_by_name(&dir, v).await?,
        Some((path, v)) if top("id", path) => store.get_user(&dir, v).await?.into_iter().collect(),
        Some((path, v)) if top("externalId", path) => {
            store.find_users_by_external_id(&dir, v).await?
        }
        Some((path, v))
            if path.urn.is_none()
                && path.name.eq_ignore_ascii_case("emails")
                && path
                    .sub
                    .as_deref()
                    .is_none_or(|s| s.eq_ignore_ascii_case("value")) =>
        {
            store.find_users_by_email(&dir, v).await?
        }
        _ => store.list_users(&dir).await?,
    };
    // Group memberships are looked up only when the filter could test them.
    let wants_groups = p
        .filter
        .as_deref()
        .is_some_and(|f| f.to_ascii_lowercase().contains("groups"));
    let mut items = Vec::with_capacity(candidates.len());
    for su in candidates {
        let groups = if wants_groups {
            store.member_of(&dir, &su.user.source_id).await?
        } else {
            Vec::new()
        };
        let (v, _) = UserView { su, groups }.json(&base);
        if filter
            .as_ref()
            .is_none_or(|f| f.matches(&v, &|p| USER_RESOURCE.case_exact(p)))
        {
            items.push(v);
        }
    }
    Ok(items)
}

fn project_list(body: &mut Value, p: &ListParams) {
    let (a, x) = (
        split_list(&p.attributes),
        split_list(&p.excluded_attributes),
    );
    if let Some(list) = body.get_mut("Resources").and_then(Value::as_array_mut) {
        for v in list.iter_mut() {
            project(v, &a, &x);
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Projection {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

fn project_one(mut v: Value, p: &Projection) -> Value {
    project(
        &mut v,
        &split_list(&p.attributes),
        &split_list(&p.excluded_attributes),
    );
    v
}

async fn get_user(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(p): Query<Projection>,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let (v, version) = load_user_view(&st, &dir, &id).await?.json(&base);
    Ok(scim_json(
        StatusCode::OK,
        &project_one(v, &p),
        Some(&version),
        None,
    ))
}

/// The id of a created user or group: a UUID that starts with the time (version 7), so that
/// the store's B-trees keyed by id (the object's, its e-mails') take new ids at their end
/// instead of at a random page each; in a 100,000-user first sync that was two of the five
/// pages written at random per created user.
fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn create_user(
    State(st): State<ScimState>,
    Path(dir): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let body = parse_body(&body)?;
    let id = new_id();
    let user = user_from_scim(&body, &id)?;
    st.check_domain(&dir, &user)?;
    let check = Unique::UserName {
        name: user.user_name.clone(),
        except: None,
    };
    let now = st.now();
    let served = user.clone();
    st.svc
        .runtime
        .store
        .write_checked(&dir, "scim", &[check], &[Change::UpsertUser { user }], now)
        .await?;
    st.written(&dir);
    // What was written is what is served: a new user belongs to no group yet.
    let view = UserView {
        su: StoredUser {
            user: served,
            created_ms: now,
            modified_ms: now,
        },
        groups: Vec::new(),
    };
    let (v, version) = view.json(&base);
    Ok(scim_json(
        StatusCode::CREATED,
        &v,
        Some(&version),
        Some(&format!("{base}/Users/{id}")),
    ))
}

/// Write a replaced user and serve it as written (its groups do not change through /Users).
async fn save_user(
    st: &ScimState,
    dir: &str,
    base: &str,
    current: UserView,
    mut user: idsync_core::User,
) -> ScimResult {
    st.check_domain(dir, &user)?;
    let check = Unique::UserName {
        name: user.user_name.clone(),
        except: Some(current.su.user.source_id.clone()),
    };
    user.id.clone_from(&current.su.user.id);
    let changed = user != current.su.user;
    let now = st.now();
    st.svc
        .runtime
        .store
        .write_checked(
            dir,
            "scim",
            &[check],
            &[Change::UpsertUser { user: user.clone() }],
            now,
        )
        .await?;
    st.written(dir);
    let (created_ms, modified_ms) = stamps(
        Some((current.su.created_ms, current.su.modified_ms)),
        changed,
        now,
    );
    let view = UserView {
        su: StoredUser {
            user,
            created_ms,
            modified_ms,
        },
        groups: current.groups,
    };
    let (v, version) = view.json(base);
    Ok(scim_json(StatusCode::OK, &v, Some(&version), None))
}

async fn replace_user(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let current = load_user_view(&st, &dir, &id).await?;
    check_if_match(&headers, &current.json(&base).1)?;
    let body = parse_body(&body)?;
    let user = user_from_scim(&body, &id)?;
    save_user(&st, &dir, &base, current, user).await
}

async fn patch_user(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let current = load_user_view(&st, &dir, &id).await?;
    let (mut v, version) = current.json(&base);
    check_if_match(&headers, &version)?;
    let ops = parse_request(&parse_body(&body)?)?;
    apply(&mut v, &ops, &USER_RESOURCE)?;
    let user = user_from_scim(&strip_read_only(v), &id)?;
    save_user(&st, &dir, &base, current, user).await
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

async fn delete_user(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let version = load_user_view(&st, &dir, &id).await?.json(&base).1;
    delete_resource(
        &st,
        &dir,
        &headers,
        &version,
        Change::DeleteUser { source_id: id },
    )
    .await
}

// ---------------------------------------------------------------------------------- groups

/// A group as served: the stored group and its direct members (in the store's order: users
/// first, then by id, as `BTreeSet<MemberRef>` orders them too).
struct GroupView {
    sg: StoredGroup,
    members: BTreeSet<MemberRef>,
}

impl GroupView {
    fn json(&self, base: &str) -> (Value, String) {
        group_json(&self.sg, base, Some(&self.members))
    }
}

/// A group as served, with its members or (`excludedAttributes=members`) without.
fn group_json(
    sg: &StoredGroup,
    base: &str,
    members: Option<&BTreeSet<MemberRef>>,
) -> (Value, String) {
    let members: Option<Vec<MemberView>> = members.map(|ms| {
        ms.iter()
            .map(|m| MemberView {
                member: m.clone(),
                display: None,
            })
            .collect()
    });
    with_version(group_to_scim(
        &sg.group,
        base,
        members.as_deref(),
        &meta(sg.created_ms, sg.modified_ms),
    ))
}

/// The members of a group, unless the request excludes them.
async fn members_unless_excluded(
    st: &ScimState,
    dir: &str,
    sg: &StoredGroup,
    excluded: &Option<String>,
) -> Result<Option<BTreeSet<MemberRef>>, ScimFailure> {
    if split_list(excluded)
        .iter()
        .any(|a| a.eq_ignore_ascii_case("members"))
    {
        return Ok(None);
    }
    let members = st
        .svc
        .runtime
        .store
        .group_members(dir, &sg.group.source_id)
        .await?;
    Ok(Some(members.into_iter().collect()))
}

async fn load_group_view(st: &ScimState, dir: &str, id: &str) -> Result<GroupView, ScimFailure> {
    let sg = load_group(st, dir, id).await?;
    let members = st
        .svc
        .runtime
        .store
        .group_members(dir, id)
        .await?
        .into_iter()
        .collect();
    Ok(GroupView { sg, members })
}

async fn load_group(st: &ScimState, dir: &str, id: &str) -> Result<StoredGroup, ScimFailure> {
    st.svc
        .runtime
        .store
        .get_group(dir, id)
        .await?
        .ok_or_else(|| ScimFailure(ScimError::not_found(format!("no group with id {id}"))))
}

/// Every group matching the request's filter, as SCIM resources.
async fn search_groups(
    st: &ScimState,
    dir: &str,
    headers: &HeaderMap,
    p: &ListParams,
) -> Result<Vec<Value>, ScimFailure> {
    let base = st.base(headers, dir);
    let dir = dir.to_string();
    let store = &st.svc.runtime.store;
    let filter = p
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(Filter::parse)
        .transpose()?;
    let candidates = match filter.as_ref().and_then(Filter::simple_eq) {
        Some((path, v)) if path.urn.is_none() && path.name.eq_ignore_ascii_case("displayName") => {
            store.find_groups_by_name(&dir, v).await?
        }
        Some((path, v)) if path.urn.is_none() && path.name.eq_ignore_ascii_case("id") => {
            store.get_group(&dir, v).await?.into_iter().collect()
        }
        _ => store.list_groups(&dir).await?,
    };
    let mut items = Vec::with_capacity(candidates.len());
    for sg in &candidates {
        let members = members_unless_excluded(st, &dir, sg, &p.excluded_attributes).await?;
        let (v, _) = group_json(sg, &base, members.as_ref());
        if filter
            .as_ref()
            .is_none_or(|f| f.matches(&v, &|p| GROUP_RESOURCE.case_exact(p)))
        {
            items.push(v);
        }
    }
    Ok(items)
}

/// A POSTed search (RFC 7644 §3.4.3) as list parameters.
fn search_params(body: &Bytes) -> Result<ListParams, ScimError> {
    let v = parse_body(body)?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let list = |k: &str| -> Option<String> {
        match v.get(k) {
            Some(Value::Array(a)) => Some(
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    };
    let num = |k: &str| {
        v.get(k)
            .map(|n| n.to_string().trim_matches('"').to_string())
    };
    Ok(ListParams {
        filter: text("filter"),
        start_index: num("startIndex"),
        count: num("count"),
        sort_by: text("sortBy"),
        sort_order: text("sortOrder"),
        attributes: list("attributes"),
        excluded_attributes: list("excludedAttributes"),
    })
}

/// The resources a list or search covers.
#[derive(Clone, Copy, PartialEq)]
enum Kinds {
    Users,
    Groups,
    Both,
}

/// GET /Users, GET /Groups, and POST .search at the root or under either: the matching
/// resources, paged, sorted and projected.
async fn list(
    st: &ScimState,
    dir: &str,
    headers: &HeaderMap,
    p: &ListParams,
    kinds: Kinds,
) -> ScimResult {
    let mut items = Vec::new();
    if kinds != Kinds::Groups {
        items.extend(search_users(st, dir, headers, p).await?);
    }
    if kinds != Kinds::Users {
        items.extend(search_groups(st, dir, headers, p).await?);
    }
    let schema = if kinds == Kinds::Groups {
        &GROUP_RESOURCE
    } else {
        &USER_RESOURCE
    };
    let mut out = list_response(items, p, schema, st.max_results(dir))?;
    project_list(&mut out, p);
    Ok(scim_json(StatusCode::OK, &out, None, None))
}

/// The handler of a GET on a list.
fn list_get(
    kinds: Kinds,
) -> impl Fn(State<ScimState>, Path<String>, HeaderMap, Query<ListParams>) -> BoxedScim + Clone {
    move |State(st), Path(dir), headers, Query(p)| {
        Box::pin(async move { list(&st, &dir, &headers, &p, kinds).await })
    }
}

/// The handler of a POSTed search (RFC 7644 §3.4.3).
fn list_post(
    kinds: Kinds,
) -> impl Fn(State<ScimState>, Path<String>, HeaderMap, Bytes) -> BoxedScim + Clone {
    move |State(st), Path(dir), headers, body| {
        Box::pin(async move {
            let p = search_params(&body)?;
            list(&st, &dir, &headers, &p, kinds).await
        })
    }
}

type BoxedScim = std::pin::Pin<Box<dyn std::future::Future<Output = ScimResult> + Send>>;

async fn no_such_endpoint() -> ScimResult {
    Err(ScimError::not_found("no such SCIM endpoint").into())
}

async fn get_group(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(p): Query<Projection>,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let sg = load_group(&st, &dir, &id).await?;
    let members = members_unless_excluded(&st, &dir, &sg, &p.excluded_attributes).await?;
    let (v, version) = group_json(&sg, &base, members.as_ref());
    Ok(scim_json(
        StatusCode::OK,
        &project_one(v, &p),
        Some(&version),
        None,
    ))
}

/// Resolve requested members to users or groups of the directory; unknown ids are refused.
async fn resolve_members(
    st: &ScimState,
    dir: &str,
    group_id: &str,
    requested: &[(String, Option<MemberKind>)],
    have: &BTreeSet<MemberRef>,
) -> Result<BTreeSet<MemberRef>, ScimFailure> {
    let existing: std::collections::HashMap<&str, &MemberRef> =
        have.iter().map(|m| (m.id.as_str(), m)).collect();
    let mut out = BTreeSet::new();
    // Members the group already has are known to exist: only new ones are looked up, together.
    let mut unknown: Vec<(String, Option<MemberKind>)> = Vec::new();
    for (id, kind) in requested {
        match existing
            .get(id.as_str())
            .filter(|m| kind.is_none_or(|k| k == m.kind))
        {
            Some(m) => {
                out.insert((*m).clone());
            }
            None => unknown.push((id.clone(), *kind)),
        }
    }
    if unknown.is_empty() {
        return Ok(out);
    }
    let ids: Vec<&str> = unknown.iter().map(|(id, _)| id.as_str()).collect();
    let kinds = st.svc.runtime.store.kinds_of(dir, &ids).await?;
    out.extend(resolve_known(&kinds, group_id, &unknown)?);
    Ok(out)
}

/// Requested members as users or groups, by what the directory says each id is.
fn resolve_known(
    kinds: &std::collections::HashMap<String, MemberKind>,
    group_id: &str,
    requested: &[(String, Option<MemberKind>)],
) -> Result<BTreeSet<MemberRef>, ScimFailure> {
    let mut out = BTreeSet::new();
    for (id, asked) in requested {
        let found = kinds
            .get(id)
            .copied()
            .filter(|k| asked.is_none_or(|a| a == *k))
            .filter(|k| !(*k == MemberKind::Group && id == group_id));
        let Some(kind) = found else {
            return Err(ScimError::invalid_value(format!(
                "members: no {} with id {id}",
                asked.unwrap_or(MemberKind::Group).as_str()
            ))
            .into());
        };
        out.insert(MemberRef {
            kind,
            id: id.clone(),
        });
    }
    Ok(out)
}

/// Write a new or replaced group with its members, and serve it as written. `current` is
/// `None` for a create.
async fn save_group(
    st: &ScimState,
    dir: &str,
    base: &str,
    current: Option<GroupView>,
    mut group: idsync_core::Group,
    want: BTreeSet<MemberRef>,
) -> ScimResult {
    let id = group.source_id.clone();
    let creating = current.is_none();
    let check = Unique::GroupName {
        name: group.display_name.clone(),
        except: (!creating).then(|| id.clone()),
    };
    let (before, have) = match current {
        Some(c) => {
            if st.atlassian(dir).is_some() && c.sg.group.display_name != group.display_name {
                return Err(ScimError::mutability(format!(
                    "group {:?} cannot be renamed {:?}: Atlassian Cloud does not support group renames",
                    c.sg.group.display_name, group.display_name
                ))
                .into());
            }
            group.id.clone_from(&c.sg.group.id);
            let changed = group != c.sg.group;
            (
                Some(((c.sg.created_ms, c.sg.modified_ms), changed)),
                c.members,
            )
        }
        None => (None, BTreeSet::new()),
    };
    let mut changes = vec![Change::UpsertGroup {
        group: group.clone(),
    }];
    changes.extend(have.difference(&want).map(|m| Change::RemoveMember {
        group: id.clone(),
        member: m.clone(),
    }));
    changes.extend(want.difference(&have).map(|m| Change::AddMember {
        group: id.clone(),
        member: m.clone(),
    }));
    let now = st.now();
    st.svc
        .runtime
        .store
        .write_checked(dir, "scim", &[check], &changes, now)
        .await?;
    st.written(dir);
    let (created_ms, modified_ms) = stamps(
        before.map(|(s, _)| s),
        before.is_some_and(|(_, changed)| changed),
        now,
    );
    let view = GroupView {
        sg: StoredGroup {
            group,
            created_ms,
            modified_ms,
        },
        members: want,
    };
    let (v, version) = view.json(base);
    let (status, location) = if creating {
        (StatusCode::CREATED, Some(format!("{base}/Groups/{id}")))
    } else {
        (StatusCode::OK, None)
    };
    Ok(scim_json(status, &v, Some(&version), location.as_deref()))
}

async fn create_group(
    State(st): State<ScimState>,
    Path(dir): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let id = new_id();
    let (group, requested) = group_from_scim(&parse_body(&body)?, &id)?;
    let want = resolve_members(&st, &dir, &id, &requested, &BTreeSet::new()).await?;
    save_group(&st, &dir, &base, None, group, want).await
}

async fn replace_group(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let current = load_group_view(&st, &dir, &id).await?;
    check_if_match(&headers, &current.json(&base).1)?;
    let (group, requested) = group_from_scim(&parse_body(&body)?, &id)?;
    let want = resolve_members(&st, &dir, &id, &requested, &current.members).await?;
    save_group(&st, &dir, &base, Some(current), group, want).await
}

async fn patch_group(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let ops = parse_request(&parse_body(&body)?)?;
    // Adding and removing members (what identity providers send) touches only those members:
    // no read of the whole group, and 204 No Content as Entra expects. With If-Match the
    // group's version must be computed, so the general path runs.
    if headers.get(header::IF_MATCH).is_none() {
        if let Some(members) = member_changes(&ops) {
            return patch_members(&st, &dir, &id, &members).await;
        }
    }
    let current = load_group_view(&st, &dir, &id).await?;
    let (mut v, version) = current.json(&base);
    check_if_match(&headers, &version)?;
    apply(&mut v, &ops, &GROUP_RESOURCE)?;
    let (group, requested) = group_from_scim(&strip_read_only(v), &id)?;
    let want = resolve_members(&st, &dir, &id, &requested, &current.members).await?;
    save_group(&st, &dir, &base, Some(current), group, want).await
}

/// A PATCH that only adds and removes members, applied without reading the group: the
/// store's writer decides what each member is as it writes (see `MemberPatch`).
async fn patch_members(
    st: &ScimState,
    dir: &str,
    id: &str,
    members: &[(bool, String)],
) -> ScimResult {
    let patch = MemberPatch {
        group: id.to_string(),
        ops: members.to_vec(),
    };
    st.svc
        .runtime
        .store
        .patch_members(dir, "scim", patch, st.now())
        .await?;
    st.written(dir);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn delete_group(
    State(st): State<ScimState>,
    Path((dir, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ScimResult {
    let base = st.base(&headers, &dir);
    let version = load_group_view(&st, &dir, &id).await?.json(&base).1;
    delete_resource(
        &st,
        &dir,
        &headers,
        &version,
        Change::DeleteGroup { source_id: id },
    )
    .await
}

/// DELETE of a user or group whose current version is `version`: gone, once the request's
/// If-Match (if any) holds.
async fn delete_resource(
    st: &ScimState,
    dir: &str,
    headers: &HeaderMap,
    version: &str,
    change: Change,
) -> ScimResult {
    check_if_match(headers, version)?;
    st.svc
        .runtime
        .store
        .write_checked(dir, "scim", &[], &[change], st.now())
        .await?;
    st.written(dir);
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ------------------------------------------------------------------------------------ bulk

/// Replace every `"bulkId:<id>"` string in a value by the id that bulk operation created.
/// Returns the first reference that cannot be resolved yet.
fn resolve_bulk_ids(v: &mut Value, ids: &BTreeMap<String, String>) -> Result<(), String> {
    match v {
        Value::String(s) => {
            if let Some(r) = s.strip_prefix("bulkId:") {
                match ids.get(r) {
                    Some(id) => *s = id.clone(),
                    None => return Err(r.to_string()),
                }
            }
            Ok(())
        }
        Value::Array(a) => a.iter_mut().try_for_each(|x| resolve_bulk_ids(x, ids)),
        Value::Object(o) => o.values_mut().try_for_each(|x| resolve_bulk_ids(x, ids)),
        _ => Ok(()),
    }
}

/// POST /Bulk (RFC 7644 §3.7): operations in order, `bulkId` references resolved (an operation
/// whose reference is not created yet waits for it), stopping after `failOnErrors` errors.
async fn bulk(
    State(st): State<ScimState>,
    Path(dir): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ScimResult {
    if st.atlassian(&dir).is_some() {
        return Err(ScimError::new(
            501,
            None,
            "Atlassian Cloud's user provisioning API has no /Bulk endpoint",
        )
        .into());
    }
    if body.len() > BULK_MAX_PAYLOAD {
        return Err(ScimError::new(
            413,
            None,
            format!("the bulk request is larger than {BULK_MAX_PAYLOAD} bytes"),
        )
        .into());
    }
    let req = parse_body(&body)?;
    let ok_schema = req
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .any(|s| s.as_str() == Some(idsync_scim::BULK_REQUEST))
        });
    if !ok_schema {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must contain {}",
            idsync_scim::BULK_REQUEST
        ))
        .into());
    }
    let ops = req
        .get("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_syntax("Operations must be an array"))?;
    if ops.len() > BULK_MAX_OPERATIONS {
        return Err(ScimError::new(
            413,
            None,
            format!("more than {BULK_MAX_OPERATIONS} operations"),
        )
        .into());
    }
    let fail_on = req
        .get("failOnErrors")
        .and_then(Value::as_u64)
        .map(|n| n as usize);
    let base = st.base(&headers, &dir);
    let mut created: BTreeMap<String, String> = BTreeMap::new();
    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut errors = 0usize;
    let mut pending: Vec<usize> = (0..ops.len()).collect();
    'rounds: loop {
        let mut progressed = false;
        let mut waiting = Vec::new();
        for i in pending {
            let op = &ops[i];
            let method = op
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_uppercase();
            let bulk_id = op.get("bulkId").and_then(Value::as_str).map(str::to_string);
            let mut path = Value::String(
                op.get("path")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            );
            let mut data = op.get("data").cloned().unwrap_or(Value::Null);
            // Path segments and data values may name operations by bulkId; one that is not
            // done yet makes this operation wait for the next round.
            if let Value::String(p) = &path {
                let segments: Result<Vec<String>, String> = p
                    .split('/')
                    .map(|seg| {
                        let mut v = Value::String(seg.to_string());
                        resolve_bulk_ids(&mut v, &created)
                            .map(|()| v.as_str().unwrap_or_default().to_string())
                    })
                    .collect();
                match segments {
                    Ok(s) => path = Value::String(s.join("/")),
                    Err(_) => {
                        waiting.push(i);
                        continue;
                    }
                }
            }
            if resolve_bulk_ids(&mut data, &created).is_err() {
                waiting.push(i);
                continue;
            }
            let path = path.as_str().unwrap_or_default().to_string();
            progressed = true;
            let (status, response) =
                bulk_one(&st, &dir, &headers, &method, &path, data, op.get("version")).await;
            let mut entry = json!({"method": method, "status": status.as_u16().to_string()});
            if let Some(o) = entry.as_object_mut() {
                if let Some(b) = &bulk_id {
                    o.insert("bulkId".into(), Value::String(b.clone()));
                }
                if status.is_success() {
                    if let Some(id) = response.get("id").and_then(Value::as_str) {
                        let kind = if path.starts_with("/Groups") {
                            "Groups"
                        } else {
                            "Users"
                        };
                        o.insert(
                            "location".into(),
                            Value::String(format!("{base}/{kind}/{id}")),
                        );
                        if let Some(b) = &bulk_id {
                            created.insert(b.clone(), id.to_string());
                        }
                    }
                    if let Some(v) = response.get("meta").and_then(|m| m.get("version")) {
                        o.insert("version".into(), v.clone());
                    }
                } else {
                    o.insert("response".into(), response);
                }
            }
            if !status.is_success() {
                errors += 1;
            }
            results[i] = Some(entry);
            if fail_on.is_some_and(|n| n > 0 && errors >= n) {
                break 'rounds;
            }
        }
        if waiting.is_empty() {
            break;
        }
        if !progressed {
            // Circular or dangling references: each waiting operation fails.
            for i in waiting {
                let op = &ops[i];
                let mut entry = json!({
                    "method": op.get("method").cloned().unwrap_or(Value::Null),
                    "status": "409",
                    "response": ScimError::new(409, Some(idsync_scim::ScimType::InvalidValue), "a bulkId reference names no operation that succeeded").to_json(),
                });
                if let (Some(b), Some(o)) = (op.get("bulkId"), entry.as_object_mut()) {
                    o.insert("bulkId".into(), b.clone());
                }
                results[i] = Some(entry);
            }
            break;
        }
        pending = waiting;
    }
    let out: Vec<Value> = results.into_iter().flatten().collect();
    Ok(scim_json(
        StatusCode::OK,
        &json!({"schemas": [idsync_scim::BULK_RESPONSE], "Operations": out}),
        None,
        None,
    ))
}

/// One bulk operation through the same handlers as single requests.
async fn bulk_one(
    st: &ScimState,
    dir: &str,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    data: Value,
    version: Option<&Value>,
) -> (StatusCode, Value) {
    let mut headers = headers.clone();
    if let Some(v) = version
        .and_then(Value::as_str)
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert(header::IF_MATCH, v);
    }
    let body = Bytes::from(data.to_string());
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let st = State(st.clone());
    let d = dir.to_string();
    let id = |i: usize| segments.get(i).map(|s| s.to_string()).unwrap_or_default();
    let result = match (method, segments.first().copied(), segments.len()) {
        ("POST", Some("Users"), 1) => create_user(st, Path(d), headers, body).await,
        ("POST", Some("Groups"), 1) => create_group(st, Path(d), headers, body).await,
        ("PUT", Some("Users"), 2) => replace_user(st, Path((d, id(1))), headers, body).await,
        ("PUT", Some("Groups"), 2) => replace_group(st, Path((d, id(1))), headers, body).await,
        ("PATCH", Some("Users"), 2) => patch_user(st, Path((d, id(1))), headers, body).await,
        ("PATCH", Some("Groups"), 2) => patch_group(st, Path((d, id(1))), headers, body).await,
        ("DELETE", Some("Users"), 2) => delete_user(st, Path((d, id(1))), headers).await,
        ("DELETE", Some("Groups"), 2) => delete_group(st, Path((d, id(1))), headers).await,
        _ => Err(ScimFailure(ScimError::invalid_syntax(format!(
            "bulk: {method} {path} is not an operation on /Users or /Groups"
        )))),
    };
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::from_u16(e.0.status).unwrap_or(StatusCode::BAD_REQUEST),
                e.0.to_json(),
            )
        }
    };
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), BULK_MAX_PAYLOAD * 4)
        .await
        .unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
