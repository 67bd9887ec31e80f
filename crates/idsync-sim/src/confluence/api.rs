//! The Confluence REST resources the simulator answers, after authentication and faults:
//! users (`/rest/api/user`, `/rest/api/user/list`), the admin user and group APIs
//! (`/rest/api/admin/...`, with *Update user* from 9.4 and the active users' list from 9.3),
//! groups and members (`/rest/api/group`), memberships
//! (`/rest/api/user/{username}/group/{groupName}`), the CQL search for users
//! (`/rest/api/search?cql=type=user`, every version), long tasks, the server information and
//! applinks manifest, and, before 9.0, the JSON-RPC remote API's user calls.

use super::directory::{Capabilities, ConfError, ConfUser};
use super::server::{Answer, ConfluenceSimState};
use axum::http::Method;
use serde_json::{json, Value};

/// The most values a page holds, whatever `limit` asks (as Confluence caps its pages).
pub const MAX_LIMIT: usize = 200;

pub(super) struct Request<'a> {
    pub method: &'a Method,
    /// The raw path (`/rest/api/...`), percent-encoded.
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
    pub root: &'a str,
}

impl Request<'_> {
    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Result<Value, ConfError> {
        serde_json::from_slice(self.body)
            .map_err(|e| ConfError::new(400, format!("Could not parse the request body: {e}")))
    }
    fn expands(&self, what: &str) -> bool {
        self.q("expand")
            .is_some_and(|e| e.split(',').any(|x| x.trim() == what))
    }
}

fn decode(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8_lossy()
        .into_owned()
}

fn not_found(req: &Request) -> ConfError {
    ConfError::new(404, format!("null for uri: {}{}", req.root, req.path))
}

pub(super) fn handle(st: &ConfluenceSimState, req: &Request) -> Answer {
    match route(st, req) {
        Ok(a) => a,
        Err(e) => e.into(),
    }
}

fn person(u: &ConfUser, root: &str, status: bool) -> Value {
    let mut v = json!({
        "type": "known",
        "username": u.username,
        "userKey": u.key,
        "profilePicture": {
            "path": "/images/icons/profilepics/default.svg",
            "width": 48,
            "height": 48,
            "isDefault": true
        },
        "displayName": u.display_name,
        "_links": {"base": root, "context": "", "self": format!("{root}/rest/api/user?key={}", u.key)},
        "_expandable": {"status": ""},
    });
    if status {
        v["status"] = json!(if u.active { "Active" } else { "Deactivated" });
        if let Some(o) = v.as_object_mut() {
            o.remove("_expandable");
        }
    }
    v
}

fn group_json(name: &str, root: &str) -> Value {
    json!({
        "type": "group",
        "name": name,
        "_links": {"self": format!("{root}/rest/api/group/{name}")},
    })
}

/// One page of `values`, as Confluence pages its collections: `results`, `start`, `limit`,
/// `size` and `_links.next` while more remain.
fn page(req: &Request, values: Vec<Value>) -> Result<Answer, ConfError> {
    let num = |name: &str, default: usize| -> Result<usize, ConfError> {
        match req.q(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ConfError::new(400, format!("{name} must be a number, not {v:?}"))),
        }
    };
    let start = num("start", 0)?;
    let limit = num("limit", 25)?.clamp(1, MAX_LIMIT);
    let total = values.len();
    let results: Vec<Value> = values.into_iter().skip(start).take(limit).collect();
    let mut links =
        json!({"base": req.root, "context": "", "self": format!("{}{}", req.root, req.path)});
    if start + results.len() < total {
        let mut q: Vec<(String, String)> = req
            .query
            .iter()
            .filter(|(k, _)| k != "start" && k != "limit")
            .cloned()
            .collect();
        q.push(("limit".into(), limit.to_string()));
        q.push(("start".into(), (start + results.len()).to_string()));
        let qs = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q)
            .finish();
        links["next"] = json!(format!("{}?{qs}", req.path));
    }
    Ok(Answer::json(
        200,
        json!({
            "results": results,
            "start": start,
            "limit": limit,
            "size": results.len(),
            "_links": links,
        }),
    ))
}

fn write_lock(
    st: &ConfluenceSimState,
) -> Result<std::sync::RwLockWriteGuard<'_, super::directory::Directory>, ConfError> {
    st.directory
        .write()
        .map_err(|_| ConfError::new(500, "directory lock poisoned"))
}

fn read_lock(
    st: &ConfluenceSimState,
) -> Result<std::sync::RwLockReadGuard<'_, super::directory::Directory>, ConfError> {
    st.directory
        .read()
        .map_err(|_| ConfError::new(500, "directory lock poisoned"))
}

fn route(st: &ConfluenceSimState, req: &Request) -> Result<Answer, ConfError> {
    let v = st.opts.version;
    let segs: Vec<String> = req
        .path
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method;
    match (m, s.as_slice()) {
        (&Method::GET, ["rest", "applinks", "1.0", "manifest"]) => Ok(Answer::json(
            200,
            json!({
                "id": "8a7f808a-0000-0000-0000-simconfluence",
                "name": "Confluence",
                "typeId": "confluence",
                "version": v.to_string(),
                "buildNumber": v.0 * 1000 + v.1 * 10 + v.2,
                "applinksVersion": "9.0.0",
                "url": req.root,
            }),
        )),
        (&Method::GET, ["rest", "api", "server-information"]) if v.has_server_information() => {
            Ok(Answer::json(
                200,
                json!({
                    "baseUrl": req.root,
                    "version": v.to_string(),
                    "buildNumber": v.0 * 1000 + v.1 * 10 + v.2,
                    "marketplaceBuildNumber": v.0 * 1000 + v.1 * 10 + v.2,
                    "buildDate": "2025-01-01T00:00:00.000Z",
                }),
            ))
        }
        (&Method::GET, ["rest", "api", "user"]) => {
            let d = read_lock(st)?;
            let u = match (req.q("key"), req.q("username")) {
                (Some(k), _) => d.by_key(k),
                (None, Some(n)) => d.by_name(n),
                (None, None) => {
                    return Err(ConfError::new(400, "A username or key must be given"));
                }
            };
            let u = u.ok_or_else(|| {
                ConfError::new(
                    404,
                    format!(
                        "No user found with {}",
                        req.q("key")
                            .map(|k| format!("key: {k}"))
                            .or_else(|| req.q("username").map(|n| format!("username: {n}")))
                            .unwrap_or_default()
                    ),
                )
            })?;
            Ok(Answer::json(
                200,
                person(u, req.root, req.expands("status")),
            ))
        }
        (&Method::GET, ["rest", "api", "user", "current"]) => {
            let d = read_lock(st)?;
            let u = d
                .by_name(&st.opts.admin)
                .ok_or_else(|| ConfError::new(404, "The administrator is gone"))?;
            Ok(Answer::json(
                200,
                person(u, req.root, req.expands("status")),
            ))
        }
        (&Method::GET, ["rest", "api", "user", "list"]) if v.has_admin_users() => {
            let d = read_lock(st)?;
            let all = d
                .users()
                .map(|u| person(u, req.root, req.expands("status")))
                .collect();
            page(req, all)
        }
        (&Method::GET, ["rest", "api", "admin", "users", "list", "active"])
            if v.has_active_users_list() =>
        {
            // Users that count into the licence: active and licensed (the index's view).
            let d = read_lock(st)?;
            let all = d
                .users()
                .filter(|u| u.active && d.licensed(&u.key))
                .map(|u| {
                    let mut p = person(u, req.root, req.expands("status"));
                    if v.active_users_show_email() {
                        p["email"] = json!(u.email);
                    }
                    p
                })
                .collect::<Vec<_>>();
            let total = all.len();
            let mut a = page(req, all)?;
            if let Some(b) = a.body.as_mut() {
                b["totalCount"] = json!(total);
            }
            Ok(a)
        }
        (&Method::GET, ["rest", "api", "search"]) => search(st, req),
        (&Method::PUT, ["rest", "api", "admin", "user", user]) if v.has_admin_user_update() => {
            let b = req.json()?;
            let field = |k: &str| b.get(k).and_then(Value::as_str);
            write_lock(st)?.update_user(user, field("fullName"), field("email"))?;
            Ok(Answer::empty(204))
        }
        // The path serves DELETE (8.4 and later): another method on it is not allowed.
        (&Method::PUT, ["rest", "api", "admin", "user", _]) if v.has_admin_users() => {
            Err(ConfError::new(405, "HTTP 405 Method Not Allowed"))
        }
        (&Method::PUT, ["rest", "api", "user", user, "group", group]) => {
            write_lock(st)?.add_member(user, group)?;
            Ok(Answer::empty(204))
        }
        (&Method::DELETE, ["rest", "api", "user", user, "group", group]) => {
            write_lock(st)?.remove_member(user, group)?;
            Ok(Answer::empty(204))
        }
        (&Method::GET, ["rest", "api", "group"]) => {
            let d = read_lock(st)?;
            let all = d
                .group_names()
                .iter()
                .map(|g| group_json(g, req.root))
                .collect();
            page(req, all)
        }
        (&Method::GET, ["rest", "api", "group", group]) => {
            let d = read_lock(st)?;
            if !d.has_group(group) {
                return Err(ConfError::new(
                    404,
                    format!("Group with name '{group}' does not exist"),
                ));
            }
            Ok(Answer::json(
                200,
                group_json(&group.to_lowercase(), req.root),
            ))
        }
        (&Method::GET, ["rest", "api", "group", group, "member"]) => {
            let d = read_lock(st)?;
            let all = d
                .members(group)?
                .into_iter()
                .map(|u| person(u, req.root, req.expands("status")))
                .collect();
            page(req, all)
        }
        (&Method::POST, ["rest", "api", "admin", "user"]) if v.has_admin_users() => {
            let b = req.json()?;
            let text = |k: &str| {
                b.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let notify = b
                .get("notifyViaEmail")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if text("password").is_empty() && !notify {
                return Err(ConfError::new(
                    400,
                    "Either a password or notifyViaEmail must be given",
                ));
            }
            if text("email").is_empty() {
                return Err(ConfError::new(400, "Email cannot be empty"));
            }
            let u = write_lock(st)?.create_user(
                &text("userName"),
                &text("fullName"),
                &text("email"),
            )?;
            Ok(Answer::json(200, person(&u, req.root, false)))
        }
        (&Method::DELETE, ["rest", "api", "admin", "user", user]) if v.has_admin_users() => {
            let mut d = write_lock(st)?;
            d.delete_user(user)?;
            let id = d.add_task(&format!("Removing user {user}"));
            Ok(Answer::json(
                202,
                json!({"id": id, "links": {"status": format!("/rest/api/longtask/{id}")}}),
            ))
        }
        (&Method::PUT, ["rest", "api", "admin", "user", user, what @ ("disable" | "enable")])
            if v.has_admin_users() =>
        {
            write_lock(st)?.set_active(user, *what == "enable")?;
            Ok(Answer::empty(204))
        }
        (&Method::POST, ["rest", "api", "admin", "group"]) => {
            let b = req.json()?;
            let name = b.get("name").and_then(Value::as_str).unwrap_or_default();
            let n = write_lock(st)?.create_group(name)?;
            Ok(Answer::json(200, group_json(&n, req.root)))
        }
        (&Method::DELETE, ["rest", "api", "admin", "group", group]) => {
            write_lock(st)?.delete_group(group)?;
            Ok(Answer::empty(204))
        }
        (&Method::GET, ["rest", "api", "longtask", id]) => {
            let d = read_lock(st)?;
            let name = d
                .task(id)
                .ok_or_else(|| ConfError::new(404, format!("No long task with id {id}")))?;
            Ok(Answer::json(
                200,
                json!({
                    "id": id,
                    "name": {"key": name, "args": []},
                    "elapsedTime": 1,
                    "percentageComplete": 100,
                    "successful": true,
                    "finished": true,
                    "messages": [],
                }),
            ))
        }
        (&Method::POST, ["rpc", "json-rpc", "confluenceservice-v2"]) if v.has_json_rpc() => {
            Ok(json_rpc(st, req))
        }
        _ => Err(not_found(req)),
    }
}

/// `GET /rest/api/search`: CQL over the search index. The simulator answers the user search
/// (`type=user`, every user, paged like every collection, each result a `user` with its
/// `entityType`) and refuses any other CQL with 501 (a limit of the simulator, not of
/// Confluence).
fn search(st: &ConfluenceSimState, req: &Request) -> Result<Answer, ConfError> {
    let cql = req
        .q("cql")
        .ok_or_else(|| ConfError::new(400, "The cql parameter is required"))?;
    let plain: String = cql
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
        .collect::<String>()
        .to_lowercase();
    if plain != "type=user" {
        return Err(ConfError::new(
            501,
            format!("The simulator's search answers only cql=type=user, not {cql:?}"),
        ));
    }
    let d = read_lock(st)?;
    let mut users: Vec<&ConfUser> = d.users().collect();
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let total = users.len();
    let all = users
        .into_iter()
        .map(|u| {
            json!({
                "user": person(u, req.root, false),
                "title": u.display_name,
                "excerpt": "",
                "url": format!("/display/~{}", u.username),
                "resultGlobalContainer": {"title": "People", "displayUrl": "/browse/people"},
                "entityType": "user",
                "iconCssClass": "aui-icon content-type-profile",
                "lastModified": "2025-01-01T00:00:00.000Z",
                "friendlyLastModified": "Jan 01, 2025",
                "score": 0.0,
            })
        })
        .collect();
    let mut a = page(req, all)?;
    if let Some(b) = a.body.as_mut() {
        b["totalSize"] = json!(total);
        b["cqlQuery"] = json!(cql);
        b["searchDuration"] = json!(1);
    }
    Ok(a)
}

/// The JSON-RPC remote API (before 9.0): `addUser`, `editUser`, `getUser`, `removeUser`.
/// Errors come back as HTTP 200 with an `error` member, as Confluence answers them.
fn json_rpc(st: &ConfluenceSimState, req: &Request) -> Answer {
    let b: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
    let id = b.get("id").cloned().unwrap_or(Value::Null);
    let method = b.get("method").and_then(Value::as_str).unwrap_or_default();
    let params = b
        .get("params")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let remote = params.first().cloned().unwrap_or(Value::Null);
    let field = |k: &str| {
        remote
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let result: Result<Value, ConfError> = (|| match method {
        "addUser" => {
            let password = params.get(1).and_then(Value::as_str).unwrap_or_default();
            if password.is_empty() {
                return Err(ConfError::new(400, "A password is required"));
            }
            write_lock(st)?.create_user(&field("name"), &field("fullname"), &field("email"))?;
            Ok(Value::Null)
        }
        "editUser" => {
            write_lock(st)?.edit_user(&field("name"), &field("fullname"), &field("email"))?;
            Ok(json!(true))
        }
        "getUser" => {
            let name = remote.as_str().unwrap_or_default();
            let d = read_lock(st)?;
            let u = d
                .by_name(name)
                .ok_or_else(|| ConfError::new(404, format!("No user with username {name}")))?;
            Ok(json!({
                "name": u.username,
                "fullname": u.display_name,
                "email": u.email,
                "url": format!("{}/display/~{}", req.root, u.username),
                "key": u.key,
            }))
        }
        "removeUser" => {
            let name = remote.as_str().unwrap_or_default();
            write_lock(st)?.delete_user(name)?;
            Ok(json!(true))
        }
        other => Err(ConfError::new(404, format!("No such method: {other}"))),
    })();
    match result {
        Ok(r) => Answer::json(200, json!({"jsonrpc": "2.0", "id": id, "result": r})),
        Err(e) => Answer::json(
            200,
            json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": 500,
                "message": e.message,
                "data": {"exception": "com.atlassian.confluence.rpc.RemoteException"},
            }}),
        ),
    }
}
