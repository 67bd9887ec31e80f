//! The Graph v1.0 surface of the simulator, transport-free: a request in, a response out, so
//! the HTTP layer and `$batch` share one dispatcher.

use super::directory::sp_json;
use super::odata::{self, Expr};
use super::tenant::{Kind, Tenant, TenantError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// A Graph request, as the dispatcher sees it.
#[derive(Debug, Clone, Default)]
pub struct GraphRequest {
    pub method: String,
    /// The path below `/v1.0`, starting with `/`.
    pub path: String,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    pub consistency_eventual: bool,
    /// `Prefer: odata.maxpagesize=N`.
    pub max_page_size: Option<usize>,
    pub body: Option<Value>,
    /// `scheme://host/v1.0`, for the links in answers.
    pub base: String,
}

impl GraphRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A Graph answer.
#[derive(Debug, Clone)]
pub struct GraphResponse {
    pub status: u16,
    pub body: Body,
}

#[derive(Debug, Clone)]
pub enum Body {
    Json(Value),
    Text(String),
    Empty,
}

impl GraphResponse {
    pub fn json(status: u16, v: Value) -> Self {
        GraphResponse {
            status,
            body: Body::Json(v),
        }
    }
    pub fn empty(status: u16) -> Self {
        GraphResponse {
            status,
            body: Body::Empty,
        }
    }
    /// A Graph error body: `{"error": {"code", "message", "innerError"}}`.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        GraphResponse::json(
            status,
            json!({"error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": now_rfc3339(),
                    "request-id": uuid::Uuid::new_v4().to_string(),
                    "client-request-id": uuid::Uuid::new_v4().to_string()
                }
            }}),
        )
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The permissions a request needs: any one of them.
pub fn required_roles(method: &str, path: &str) -> &'static [&'static str] {
    // getMemberObjects is a POST that only reads.
    let read = method == "GET" || path.trim_end_matches('/').ends_with("/getMemberObjects");
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match (first, read) {
        ("users", true) => &[
            "User.Read.All",
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        ("users", false) => &["User.ReadWrite.All", "Directory.ReadWrite.All"],
        ("groups", true) => &[
            "Group.Read.All",
            "GroupMember.Read.All",
            "Group.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        ("groups", false) => &[
            "Group.ReadWrite.All",
            "GroupMember.ReadWrite.All",
            "Directory.ReadWrite.All",
        ],
        ("servicePrincipals" | "applications", _) => &[
            "Application.Read.All",
            "Application.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        ("organization", _) | ("domains", _) => &[
            "Organization.Read.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        _ => &[],
    }
}

/// Resource units a request costs (Graph's identity and access limits: a get 1, a list 2,
/// members 3, transitive members 5, delta 5; `$select` saves one, `$expand` adds one; never
/// below 1).
pub fn resource_units(r: &GraphRequest) -> u32 {
    let segs: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    let mut cost: i32 = match segs.as_slice() {
        [_, d] if d.contains("delta") => 5,
        [_, _, "transitiveMembers", ..] => 5,
        [_, _, "members", ..] => 3,
        [_] => 2,
        _ => 1,
    };
    if r.method != "GET" {
        return 1;
    }
    if r.param("$select").is_some() {
        cost -= 1;
    }
    if r.param("$expand").is_some() {
        cost += 1;
    }
    cost.max(1) as u32
}

pub(super) const USER_DEFAULTS: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];
pub(super) const GROUP_DEFAULTS: &[&str] = &[
    "createdDateTime",
    "description",
    "displayName",
    "groupTypes",
    "mail",
    "mailEnabled",
    "mailNickname",
    "securityEnabled",
];

/// What a paging or delta link carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Cursor {
    /// Kind: "u" or "g".
    pub(super) k: String,
    /// Delta window: changes after `s` up to `v`.
    pub(super) s: u64,
    pub(super) v: u64,
    /// Last id of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) a: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) sel: Vec<String>,
    /// The simulator process that issued it.
    pub(super) e: String,
    /// When the delta link was issued (ms).
    pub(super) t: i64,
}

pub(super) fn encode(c: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).unwrap_or_default())
}

pub(super) fn decode(s: &str) -> Option<Cursor> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()
}

/// Delta links last seven days, as on the real service.
pub const DELTA_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;

fn kind_of_segment(s: &str) -> Option<Kind> {
    match s {
        "users" => Some(Kind::User),
        "groups" => Some(Kind::Group),
        _ => None,
    }
}

pub(super) fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::User => "users",
        Kind::Group => "groups",
    }
}

fn not_found(id: &str) -> GraphResponse {
    GraphResponse::error(
        404,
        "Request_ResourceNotFound",
        &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

pub(super) fn bad(message: &str) -> GraphResponse {
    GraphResponse::error(400, "Request_BadRequest", message)
}

fn tenant_error(e: TenantError) -> GraphResponse {
    match e {
        TenantError::NotFound(m) => GraphResponse::error(404, "Request_ResourceNotFound", &m),
        TenantError::Invalid(m) => GraphResponse::error(400, "Request_BadRequest", &m),
        TenantError::Conflict(m) => GraphResponse::error(400, "Request_BadRequest", &m),
    }
}

pub(super) fn is_delta(seg: &str) -> bool {
    matches!(
        seg,
        "delta" | "delta()" | "microsoft.graph.delta" | "microsoft.graph.delta()"
    )
}

/// The dispatcher. `epoch` names this simulator process (links from another are refused);
/// `now_ms` is the simulator's clock.
pub struct Api<'a> {
    pub epoch: &'a str,
    pub now_ms: i64,
    pub default_page: usize,
    /// The largest page served, whatever the client asks for.
    pub max_page: usize,
    /// Updates in later delta rounds carry only `id` and `displayName`.
    pub sparse_delta: bool,
    /// Pages of an initial delta round after the first repeat this many objects of the page
    /// before.
    pub delta_replay: usize,
}

impl Api<'_> {
    /// The page size a request asks for (`$top`, else `Prefer: odata.maxpagesize`), bounded.
    pub(super) fn page_size_of(&self, r: &GraphRequest) -> Result<usize, GraphResponse> {
        self.page_size(r)
    }

    fn page_size(&self, r: &GraphRequest) -> Result<usize, GraphResponse> {
        match r.param("$top") {
            Some(t) => match t.parse::<usize>() {
                Ok(n) if (1..=999).contains(&n) => Ok(n.min(self.max_page.max(1))),
                _ => Err(bad(&format!(
                    "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
                ))),
            },
            None => Ok(r
                .max_page_size
                .unwrap_or(self.default_page)
                .clamp(1, self.max_page.clamp(1, 999))),
        }
    }

    /// Read-only requests.
    pub fn read(&self, t: &Tenant, r: &GraphRequest) -> GraphResponse {
        let path = r.path.trim_start_matches('/').trim_end_matches('/');
        let segs: Vec<&str> = path.split('/').collect();
        match segs.as_slice() {
            ["organization"] => self.organization(t, r),
            [sp] if sp.starts_with("servicePrincipals(appId=") => {
                let app = strip_key(
                    sp.trim_start_matches("servicePrincipals(")
                        .trim_end_matches(')'),
                );
                match t.service_principals.iter().find(|s| s.app_id == app) {
                    Some(sp) => GraphResponse::json(200, sp_json(sp)),
                    None => not_found(&app),
                }
            }

            ["users" | "groups", "$count"] => {
                if !r.consistency_eventual {
                    return bad("Count is not supported without the ConsistencyLevel header set to eventual.");
                }
                let kind = kind_of_segment(segs[0]).unwrap_or(Kind::User);
                match self.filtered(t, kind, r) {
                    Ok(ids) => GraphResponse {
                        status: 200,
                        body: Body::Text(ids.len().to_string()),
                    },
                    Err(e) => e,
                }
            }
            [coll, d] if is_delta(d) => match kind_of_segment(coll) {
                Some(kind) => self.delta(t, kind, r),
                None => not_found(path),
            },
            [coll] => match kind_of_segment(coll) {
                Some(kind) => self.list(t, kind, r),
                None if *coll == "servicePrincipals" => self.service_principals(t, r),
                None if *coll == "applications" => self.applications(t, r),
                None => not_found(coll),
            },
            ["servicePrincipals", id] => match t.service_principals.iter().find(|s| s.id == *id) {
                Some(sp) => GraphResponse::json(200, sp_json(sp)),
                None => not_found(id),
            },
            ["servicePrincipals", id, "appRoleAssignedTo"] => self.assignments(t, id, r),
            ["applications", id] => self.application(t, id, r),
            ["applications", id, "extensionProperties"] => self.extension_properties(t, id, r),
            [coll, id] => match kind_of_segment(coll) {
                Some(kind) => self.get_one(t, kind, id, r),
                None => not_found(coll),
            },
            [_, id, f] if super::member_objects::is_call(r) && f.ends_with("getMemberObjects") => {
                self.member_objects(t, id, r)
            }
            ["users", id, "manager"] => {
                let manager = t
                    .get(Kind::User, id)
                    .and_then(|u| u.props.get("manager"))
                    .and_then(|m| m.get("id"))
                    .and_then(Value::as_str)
                    .and_then(|m| t.get(Kind::User, m));
                match manager {
                    Some(m) => {
                        let mut v = odata::project(
                            &m.props,
                            &odata::parse_select(r.param("$select")),
                            USER_DEFAULTS,
                        );
                        v.insert("@odata.type".into(), json!(Kind::User.odata_type()));
                        GraphResponse::json(200, Value::Object(v))
                    }
                    None => not_found(id),
                }
            }
            ["groups", id, rel @ ("members" | "transitiveMembers"), rest @ ..] => {
                let only = match rest {
                    [] => None,
                    ["microsoft.graph.user"] => Some(Kind::User),
                    ["microsoft.graph.group"] => Some(Kind::Group),
                    _ => return not_found(path),
                };
                let members = if *rel == "members" {
                    t.members(id)
                } else {
                    t.transitive_members(id)
                };
                let Some(members) = members else {
                    return not_found(id);
                };
                self.member_page(t, members, only, r)
            }
            _ => not_found(path),
        }
    }

    pub(super) fn filter_of(r: &GraphRequest) -> Result<Option<Expr>, GraphResponse> {
        let Some(f) = r.param("$filter") else {
            return Ok(None);
        };
        let e = odata::parse_filter(f).map_err(|m| bad(&format!("Invalid filter clause: {m}")))?;
        if odata::is_advanced(&e) && !(r.consistency_eventual && r.param("$count").is_some()) {
            return Err(bad("Unsupported or invalid query filter clause specified for property, or the filter needs ConsistencyLevel: eventual and $count=true."));
        }
        Ok(Some(e))
    }

    /// The ids of the objects of a kind that pass the request's `$filter`, in id order.
    fn filtered(
        &self,
        t: &Tenant,
        kind: Kind,
        r: &GraphRequest,
    ) -> Result<Vec<String>, GraphResponse> {
        let f = Self::filter_of(r)?;
        Ok(t.objects(kind)
            .iter()
            .filter(|(_, o)| {
                f.as_ref()
                    .is_none_or(|f| odata::eval(f, &Value::Object(o.props.clone())))
            })
            .map(|(id, _)| id.clone())
            .collect())
    }

    fn render(&self, t: &Tenant, kind: Kind, id: &str, r: &GraphRequest) -> Option<Value> {
        let o = t.get(kind, id)?;
        let select = odata::parse_select(r.param("$select"));
        let defaults = match kind {
            Kind::User => USER_DEFAULTS,
            Kind::Group => GROUP_DEFAULTS,
        };
        let mut v = odata::project(&o.props, &select, defaults);
        let expand = r.param("$expand").unwrap_or("");
        if kind == Kind::User && expand.starts_with("manager") {
            if let Some(m) = o.props.get("manager").and_then(|m| m.get("id")) {
                v.insert(
                    "manager".into(),
                    json!({"@odata.type": Kind::User.odata_type(), "id": m}),
                );
            }
        }
        Some(Value::Object(v))
    }

    fn get_one(&self, t: &Tenant, kind: Kind, id: &str, r: &GraphRequest) -> GraphResponse {
        match self.render(t, kind, id, r) {
            Some(mut v) => {
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "@odata.context".into(),
                        json!(format!("{}/$metadata#{}/$entity", r.base, kind_name(kind))),
                    );
                }
                GraphResponse::json(200, v)
            }
            None => not_found(id),
        }
    }

    fn list(&self, t: &Tenant, kind: Kind, r: &GraphRequest) -> GraphResponse {
        use std::ops::Bound::{Excluded, Unbounded};
        let size = match self.page_size(r) {
            Ok(n) => n,
            Err(e) => return e,
        };
        let filter = match Self::filter_of(r) {
            Ok(f) => f,
            Err(e) => return e,
        };
        let passes = |o: &super::tenant::Obj| {
            filter
                .as_ref()
                .is_none_or(|f| odata::eval(f, &Value::Object(o.props.clone())))
        };
        let after = r.param("$skiptoken").and_then(decode).and_then(|c| c.a);
        let objects = t.objects(kind);
        let rest = match &after {
            Some(a) => objects.range::<str, _>((Excluded(a.as_str()), Unbounded)),
            None => objects.range::<str, _>(..),
        };
        let mut ids: Vec<&str> = Vec::with_capacity(size);
        let mut more = false;
        for (id, o) in rest {
            if passes(o) {
                if ids.len() == size {
                    more = true;
                    break;
                }
                ids.push(id);
            }
        }
        let page: Vec<Value> = ids
            .iter()
            .filter_map(|id| self.render(t, kind, id, r))
            .collect();
        let mut out = Map::new();
        out.insert(
            "@odata.context".into(),
            json!(format!("{}/$metadata#{}", r.base, kind_name(kind))),
        );
        if r.param("$count").is_some_and(|c| c == "true") {
            if !r.consistency_eventual {
                return bad("$count requires the ConsistencyLevel header set to eventual.");
            }
            let n = objects.values().filter(|o| passes(o)).count();
            out.insert("@odata.count".into(), json!(n));
        }
        if more {
            if let Some(last) = ids.last() {
                let c = Cursor {
                    k: kind_name(kind).into(),
                    s: 0,
                    v: 0,
                    a: Some((*last).to_string()),
                    sel: Vec::new(),
                    e: self.epoch.into(),
                    t: self.now_ms,
                };
                out.insert(
                    "@odata.nextLink".into(),
                    json!(self.link(r, kind_name(kind), &[("$skiptoken", encode(&c))], true)),
                );
            }
        }
        out.insert("value".into(), Value::Array(page));
        GraphResponse::json(200, Value::Object(out))
    }

    /// A link back to a collection with the request's query options and a token.
    pub(super) fn link(
        &self,
        r: &GraphRequest,
        path: &str,
        extra: &[(&str, String)],
        keep_query: bool,
    ) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if keep_query {
            for (k, v) in &r.query {
                if !k.eq_ignore_ascii_case("$skiptoken") && !k.eq_ignore_ascii_case("$deltatoken") {
                    q.append_pair(k, v);
                }
            }
        }
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        format!("{}/{path}?{}", r.base, q.finish())
    }

    fn member_page(
        &self,
        t: &Tenant,
        members: Vec<(Kind, String)>,
        only: Option<Kind>,
        r: &GraphRequest,
    ) -> GraphResponse {
        let size = match self.page_size(r) {
            Ok(n) => n,
            Err(e) => return e,
        };
        let mut members: Vec<(Kind, String)> = members
            .into_iter()
            .filter(|(k, _)| only.is_none_or(|o| o == *k))
            .collect();
        members.sort_by(|a, b| a.1.cmp(&b.1));
        let after = r.param("$skiptoken").and_then(decode).and_then(|c| c.a);
        let start = after.map_or(0, |a| {
            members.partition_point(|m| m.1.as_str() <= a.as_str())
        });
        let page: Vec<Value> = members[start..]
            .iter()
            .take(size)
            .filter_map(|(k, id)| {
                let mut v = self.render(t, *k, id, r)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("@odata.type".into(), json!(k.odata_type()));
                }
                Some(v)
            })
            .collect();
        let mut out = Map::new();
        out.insert(
            "@odata.context".into(),
            json!(format!("{}/$metadata#directoryObjects", r.base)),
        );
        if start + size < members.len() {
            if let Some(last) = members.get(start + size - 1) {
                let c = Cursor {
                    k: "m".into(),
                    s: 0,
                    v: 0,
                    a: Some(last.1.clone()),
                    sel: Vec::new(),
                    e: self.epoch.into(),
                    t: self.now_ms,
                };
                let path = r.path.trim_start_matches('/').to_string();
                out.insert(
                    "@odata.nextLink".into(),
                    json!(self.link(r, &path, &[("$skiptoken", encode(&c))], true)),
                );
            }
        }
        out.insert("value".into(), Value::Array(page));
        GraphResponse::json(200, Value::Object(out))
    }

    /// Writes: create, update, delete users and groups; add and remove members.
    pub fn write(&self, t: &mut Tenant, r: &GraphRequest) -> GraphResponse {
        let path = r.path.trim_start_matches('/').trim_end_matches('/');
        let segs: Vec<&str> = path.split('/').collect();
        let body = || -> Result<Map<String, Value>, GraphResponse> {
            match &r.body {
                Some(Value::Object(o)) => Ok(o.clone()),
                _ => Err(bad("The request body must be a JSON object.")),
            }
        };
        let created = now_rfc3339();
        match (r.method.as_str(), segs.as_slice()) {
            ("POST", [coll]) => {
                let Some(kind) = kind_of_segment(coll) else {
                    return not_found(coll);
                };
                let b = match body() {
                    Ok(b) => b,
                    Err(e) => return e,
                };
                match t.create(kind, b, &created) {
                    Ok(mut props) => {
                        props.insert(
                            "@odata.context".into(),
                            json!(format!("{}/$metadata#{}/$entity", r.base, kind_name(kind))),
                        );
                        GraphResponse::json(201, Value::Object(props))
                    }
                    Err(e) => tenant_error(e),
                }
            }
            ("PATCH", [coll, id]) => {
                let Some(kind) = kind_of_segment(coll) else {
                    return not_found(coll);
                };
                let b = match body() {
                    Ok(b) => b,
                    Err(e) => return e,
                };
                done(t.update(kind, id, b))
            }
            ("PUT", ["users", id, "manager", "$ref"]) => {
                let b = match body() {
                    Ok(b) => b,
                    Err(e) => return e,
                };
                let Some(m) = ref_id(&b) else {
                    return bad("@odata.id is required.");
                };
                if t.get(Kind::User, m).is_none() {
                    return not_found(m);
                }
                let mut p = Map::new();
                p.insert("manager".into(), json!({"id": m}));
                done(t.update(Kind::User, id, p))
            }
            ("DELETE", [coll, id]) => {
                let Some(kind) = kind_of_segment(coll) else {
                    return not_found(coll);
                };
                done(t.delete(kind, id))
            }
            ("POST", ["groups", id, "members", "$ref"]) => {
                let b = match body() {
                    Ok(b) => b,
                    Err(e) => return e,
                };
                let Some(m) = ref_id(&b) else {
                    return bad("@odata.id is required.");
                };
                done(t.add_member(id, m))
            }
            ("DELETE", ["groups", id, "members", member, "$ref"]) => {
                done(t.remove_member(id, member))
            }
            _ => GraphResponse::error(
                405,
                "Request_BadRequest",
                &format!("{} is not supported on /{path}", r.method),
            ),
        }
    }
}

/// The object id an `{"@odata.id": ".../directoryObjects/{id}"}` reference names.
fn ref_id(body: &Map<String, Value>) -> Option<&str> {
    body.get("@odata.id")
        .and_then(Value::as_str)
        .and_then(|s| s.rsplit('/').next())
}

/// A write's answer: 204 No Content, or the tenant's refusal.
fn done(r: Result<(), TenantError>) -> GraphResponse {
    match r {
        Ok(()) => GraphResponse::empty(204),
        Err(e) => tenant_error(e),
    }
}

fn strip_key(s: &str) -> String {
    s.trim_start_matches("appId='")
        .trim_end_matches('\'')
        .to_string()
}
