//! `/rest/api/2`: the user, group, picker, property, application-role and serverInfo
//! resources of Jira Data Center's REST API, with their paging (`user/search`: `startAt` and
//! `maxResults` up to 1,000, a plain array; `group/member`: up to 50, with `isLast` and
//! `nextPage`), their status codes and their error bodies.

use super::directory::{JiraError, JiraUser, UserFields};
use super::server::{Answer, JiraSimState};
use axum::http::Method;
use serde_json::{json, Value};

pub(super) struct Request<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
    pub root: &'a str,
    pub caller: Option<u64>,
}

impl Request<'_> {
    pub(super) fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, k: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn flag(&self, k: &str, default: bool) -> bool {
        self.q(k)
            .map_or(default, |v| v.eq_ignore_ascii_case("true"))
    }
    fn int(&self, k: &str, default: usize) -> Result<usize, JiraError> {
        match self.q(k) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .map(|n| usize::try_from(n.max(0)).unwrap_or(0))
                .map_err(|_| {
                    JiraError::message(
                        400,
                        format!("The parameter '{k}' must be a number, got '{v}'"),
                    )
                }),
        }
    }
    pub(super) fn json(&self) -> Result<Value, JiraError> {
        serde_json::from_slice(self.body).map_err(|e| {
            JiraError::message(
                400,
                format!("Unexpected character in the request body: {e}"),
            )
        })
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(super) fn user_json(r: &Request, u: &JiraUser, groups: Option<Vec<String>>) -> Value {
    let mut v = json!({
        "self": format!("{}/rest/api/2/user?username={}", r.root, enc(&u.name)),
        "key": u.key,
        "name": u.name,
        "emailAddress": u.email,
        "avatarUrls": {
            "48x48": format!("{}/secure/useravatar?ownerId={}&avatarId=10122", r.root, enc(&u.key)),
            "24x24": format!("{}/secure/useravatar?size=small&ownerId={}&avatarId=10122", r.root, enc(&u.key)),
        },
        "displayName": u.display_name,
        "active": u.active,
        "deleted": false,
        "timeZone": "UTC",
        "locale": "en_US",
        "expand": "groups,applicationRoles",
    });
    if let Some(g) = groups {
        v["groups"] = json!({
            "size": g.len(),
            "items": g.iter().map(|n| json!({"name": n, "self": format!("{}/rest/api/2/group?groupname={}", r.root, enc(n))})).collect::<Vec<_>>(),
        });
    }
    v
}

fn group_json(r: &Request, name: &str, size: usize) -> Value {
    json!({
        "name": name,
        "self": format!("{}/rest/api/2/group?groupname={}", r.root, enc(name)),
        "users": {"size": size, "items": [], "max-results": 50, "start-index": 0, "end-index": 0},
        "expand": "users",
    })
}

fn server_info(st: &JiraSimState, r: &Request) -> Answer {
    let v = st.opts.version;
    Answer::json(
        200,
        json!({
            "baseUrl": r.root,
            "version": v.to_string(),
            "versionNumbers": [v.0, v.1, v.2],
            "deploymentType": "Server",
            "buildNumber": v.0 * 100_000 + v.1 * 1_000 + v.2,
            "buildDate": "2024-01-01T00:00:00.000+0000",
            "serverTime": "2026-01-01T00:00:00.000+0000",
            "scmInfo": "idsync-simulator",
            "serverTitle": "Jira (idsync simulator)",
        }),
    )
}

pub(super) fn handle(st: &JiraSimState, r: &Request) -> Answer {
    let result = route(st, r);
    result.unwrap_or_else(Answer::from)
}

pub(super) fn not_found(r: &Request) -> JiraError {
    JiraError::message(
        404,
        format!("null for uri: {}/rest/api/2/{}", r.root, r.path),
    )
}

fn route(st: &JiraSimState, r: &Request) -> Result<Answer, JiraError> {
    let m = r.method;
    match r.path {
        "serverInfo" if m == Method::GET => Ok(server_info(st, r)),
        "myself" if m == Method::GET => {
            let d = read(st)?;
            let u = r
                .caller
                .and_then(|c| d.user(c))
                .ok_or_else(|| not_found(r))?;
            Ok(Answer::json(200, user_json(r, u, Some(d.groups_of(u.id)))))
        }
        "user" => user(st, r),
        p if p == "project" || p.starts_with("project/") || p.starts_with("component") => {
            super::projects::route(st, r)
        }
        "user/search" if m == Method::GET => search(st, r),
        "user/properties" if m == Method::GET => {
            let d = read(st)?;
            let id = d.find(r.q("username"), r.q("userKey"))?;
            let keys: Vec<Value> = d
                .user(id)
                .map(|u| {
                    u.properties
                        .keys()
                        .map(|k| json!({"key": k, "self": format!("{}/rest/api/2/user/properties/{}?userKey={}", r.root, enc(k), enc(&u.key))}))
                        .collect()
                })
                .unwrap_or_default();
            Ok(Answer::json(200, json!({"keys": keys})))
        }
        p if p.starts_with("user/properties/") => property(st, r, &p["user/properties/".len()..]),
        "group" => group(st, r),
        "group/member" if m == Method::GET => members(st, r),
        "group/user" => membership(st, r),
        "groups/picker" if m == Method::GET => picker(st, r),
        "groupuserpicker" if m == Method::GET => group_user_picker(st, r),
        "applicationrole" if m == Method::GET => {
            let d = read(st)?;
            Ok(Answer::json(
                200,
                Value::Array(d.roles.iter().map(|x| d.role_json(x)).collect()),
            ))
        }
        p if p.starts_with("applicationrole/") && m == Method::GET => {
            let key = &p["applicationrole/".len()..];
            let d = read(st)?;
            let role = d.roles.iter().find(|x| x.key == key).ok_or_else(|| {
                JiraError::message(404, format!("The application role '{key}' does not exist."))
            })?;
            Ok(Answer::json(200, d.role_json(role)))
        }
        _ => Err(not_found(r)),
    }
}

pub(super) fn read(
    st: &JiraSimState,
) -> Result<std::sync::RwLockReadGuard<'_, super::directory::Directory>, JiraError> {
    st.directory
        .read()
        .map_err(|_| JiraError::message(500, "Internal server error"))
}

pub(super) fn write(
    st: &JiraSimState,
) -> Result<std::sync::RwLockWriteGuard<'_, super::directory::Directory>, JiraError> {
    st.directory
        .write()
        .map_err(|_| JiraError::message(500, "Internal server error"))
}

fn user(st: &JiraSimState, r: &Request) -> Result<Answer, JiraError> {
    let m = r.method;
    if m == Method::GET {
        let d = read(st)?;
        let id = d.find(r.q("username"), r.q("key"))?;
        let expand = r.q("expand").unwrap_or("");
        let u = d.user(id).ok_or_else(|| not_found(r))?;
        let groups = expand.contains("groups").then(|| d.groups_of(id));
        return Ok(Answer::json(200, user_json(r, u, groups)));
    }
    if m == Method::POST {
        let body = r.json()?;
        let f = UserFields::from_json(&body)?;
        // `applicationKeys: []` creates a user without application access.
        let no_access = body
            .get("applicationKeys")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        let mut d = write(st)?;
        let id = d.create_user(f, no_access)?;
        let u = d.user(id).ok_or_else(|| not_found(r))?;
        return Ok(Answer::json(201, user_json(r, u, None)));
    }
    if m == Method::PUT {
        let body = r.json()?;
        let f = UserFields::from_json(&body)?;
        let mut d = write(st)?;
        let id = d.find(r.q("username"), r.q("key"))?;
        d.update_user(id, f, r.caller)?;
        let u = d.user(id).ok_or_else(|| not_found(r))?;
        return Ok(Answer::json(200, user_json(r, u, None)));
    }
    if m == Method::DELETE {
        let mut d = write(st)?;
        let id = d.find(r.q("username"), r.q("key"))?;
        d.delete_user(id, r.caller)?;
        return Ok(Answer::empty(204));
    }
    Err(JiraError::message(405, "Method Not Allowed"))
}

fn search(st: &JiraSimState, r: &Request) -> Result<Answer, JiraError> {
    let Some(q) = r.q("username").filter(|q| !q.is_empty()) else {
        return Err(JiraError::field(
            400,
            "username",
            "The username query parameter was not provided",
        ));
    };
    let start = r.int("startAt", 0)?;
    let max = r.int("maxResults", 50)?.min(1000);
    let d = read(st)?;
    let found = d.search(
        q,
        r.flag("includeActive", true),
        r.flag("includeInactive", false),
    );
    let page: Vec<Value> = found
        .into_iter()
        .skip(start)
        .take(max)
        .map(|u| user_json(r, u, None))
        .collect();
    Ok(Answer::json(200, Value::Array(page)))
}

fn property(st: &JiraSimState, r: &Request, key: &str) -> Result<Answer, JiraError> {
    let key = percent_encoding::percent_decode_str(key)
        .decode_utf8_lossy()
        .to_string();
    let m = r.method;
    if m == Method::GET {
        let d = read(st)?;
        let id = d.find(r.q("username"), r.q("userKey"))?;
        let v = d
            .user(id)
            .and_then(|u| u.properties.get(&key))
            .ok_or_else(|| {
                JiraError::message(
                    404,
                    format!("The property with key '{key}' does not exist."),
                )
            })?;
        return Ok(Answer::json(200, json!({"key": key, "value": v})));
    }
    if m == Method::PUT {
        let value = r.json()?;
        let mut d = write(st)?;
        let id = d.find(r.q("username"), r.q("userKey"))?;
        let created = d.set_property(id, &key, value)?;
        return Ok(Answer::empty(if created { 201 } else { 200 }));
    }
    if m == Method::DELETE {
        let mut d = write(st)?;
        let id = d.find(r.q("username"), r.q("userKey"))?;
        d.delete_property(id, &key)?;
        return Ok(Answer::empty(204));
    }
    Err(JiraError::message(405, "Method Not Allowed"))
}

fn group(st: &JiraSimState, r: &Request) -> Result<Answer, JiraError> {
    let m = r.method;
    if m == Method::POST {
        let body = r.json()?;
        let name = body.get("name").and_then(Value::as_str).unwrap_or("");
        let mut d = write(st)?;
        d.create_group(name)?;
        let g = d.group(name).map(|g| g.name.clone()).unwrap_or_default();
        return Ok(Answer::json(201, group_json(r, &g, 0)));
    }
    if m == Method::DELETE {
        let name = r.q("groupname").unwrap_or("");
        let mut d = write(st)?;
        d.delete_group(name, r.q("swapGroup"))?;
        return Ok(Answer::empty(200));
    }
    if m == Method::GET {
        let name = r.q("groupname").unwrap_or("");
        let d = read(st)?;
        let g = d
            .group(name)
            .ok_or_else(|| JiraError::message(404, "Specified group does not exist."))?;
        return Ok(Answer::json(200, group_json(r, &g.name, g.members.len())));
    }
    Err(JiraError::message(405, "Method Not Allowed"))
}

fn members(st: &JiraSimState, r: &Request) -> Result<Answer, JiraError> {
    let name = r.q("groupname").unwrap_or("");
    let start = r.int("startAt", 0)?;
    let max = r.int("maxResults", 50)?.clamp(1, 50);
    let inactive = r.flag("includeInactiveUsers", false);
    let d = read(st)?;
    let g = d
        .group(name)
        .ok_or_else(|| JiraError::message(404, "Specified group does not exist."))?;
    let mut users: Vec<&JiraUser> = g
        .members
        .iter()
        .filter_map(|id| d.user(*id))
        .filter(|u| u.active || inactive)
        .collect();
    users.sort_by_key(|u| u.name.to_lowercase());
    let total = users.len();
    let values: Vec<Value> = users
        .iter()
        .skip(start)
        .take(max)
        .map(|u| user_json(r, u, None))
        .collect();
    let is_last = start + values.len() >= total;
    let this = format!(
        "{}/rest/api/2/group/member?includeInactiveUsers={inactive}&maxResults={max}&groupname={}&startAt={start}",
        r.root,
        enc(&g.name)
    );
    let mut v = json!({
        "self": this,
        "maxResults": max,
        "startAt": start,
        "total": total,
        "isLast": is_last,
        "values": values,
    });
    if !is_last {
        v["nextPage"] = json!(format!(
            "{}/rest/api/2/group/member?includeInactiveUsers={inactive}&maxResults={max}&groupname={}&startAt={}",
            r.root,
            enc(&g.name),
            start + max
        ));
    }
    Ok(Answer::json(200, v))
}

fn membership(st: &JiraSimState, r: &Request) -> Result<Answer, JiraError> {
    let group = r.q("groupname").unwrap_or("").to_string();
    if r.method == Method::POST {
        let body = r.json()?;
        let name = body.get("name").and_then(Value::as_str);
        let mut d = write(st)?;
        if d.group(&group).is_none() {
            return Err(JiraError::message(404, "Specified group does not exist."));
        }
        let id = d.find(name, None)?;
        d.add_member(&group, id)?;
        let (n, size) = d
            .group(&group)
            .map(|g| (g.name.clone(), g.members.len()))
            .unwrap_or_default();
        return Ok(Answer::json(201, group_json(r, &n, size)));
    }
    if r.method == Method::DELETE {
        let mut d = write(st)?;
        if d.group(&group).is_none() {
            return Err(JiraError::message(404, "Specified group does not exist."));
        }
        let id = d.find(r.q("username"), r.q("key"))?;
        d.remove_member(&group, id)?;
        return Ok(Answer::empty(200));
    }
    Err(JiraError::message(405, "Method Not Allowed"))
}

/// `groups/picker`: groups whose name contains the query (any case), sorted, without the
/// excluded ones, at most `maxResults` (default 20), with the total in the header.
fn picker(st: &JiraSimState, r: &Request) -> Result<Answer, JiraError> {
    let q = r.q("query").unwrap_or("").to_lowercase();
    let exclude: Vec<String> = r.all("exclude").iter().map(|e| e.to_lowercase()).collect();
    let max = r.int("maxResults", 20)?;
    let d = read(st)?;
    let mut names: Vec<&str> = d
        .groups()
        .filter(|g| g.name.to_lowercase().contains(&q))
        .filter(|g| !exclude.contains(&g.name.to_lowercase()))
        .map(|g| g.name.as_str())
        .collect();
    names.sort_by_key(|n| n.to_lowercase());
    let total = names.len();
    let shown: Vec<Value> = names
        .iter()
        .take(max)
        .map(|n| json!({"name": n, "html": html_mark(n, &q), "labels": []}))
        .collect();
    Ok(Answer::json(
        200,
        json!({
            "header": format!("Showing {} of {} matching groups", shown.len(), total),
            "total": total,
            "groups": shown,
        }),
    ))
}

fn html_mark(name: &str, q: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    if q.is_empty() {
        return esc(name);
    }
    match name.to_lowercase().find(q) {
        Some(i) if name.is_char_boundary(i) && name.is_char_boundary(i + q.len()) => format!(
            "{}<b>{}</b>{}",
            esc(&name[..i]),
            esc(&name[i..i + q.len()]),
            esc(&name[i + q.len()..])
        ),
        _ => esc(name),
    }
}

/// `groupuserpicker`: users as `user/search` finds them and groups as the picker does.
fn group_user_picker(st: &JiraSimState, r: &Request) -> Result<Answer, JiraError> {
    let Some(q) = r.q("query").filter(|q| !q.is_empty()) else {
        return Err(JiraError::message(400, "The query parameter is required."));
    };
    let max = r.int("maxResults", 20)?;
    let d = read(st)?;
    let users = d.search(q, true, false);
    let total = users.len();
    let shown: Vec<Value> = users
        .iter()
        .take(max)
        .map(|u| json!({"name": u.name, "key": u.key, "displayName": u.display_name, "html": format!("{} - {} ({})", html_mark(&u.display_name, &q.to_lowercase()), u.email, u.name)}))
        .collect();
    let ql = q.to_lowercase();
    let mut groups: Vec<&str> = d
        .groups()
        .filter(|g| g.name.to_lowercase().contains(&ql))
        .map(|g| g.name.as_str())
        .collect();
    groups.sort_by_key(|n| n.to_lowercase());
    let gtotal = groups.len();
    let gshown: Vec<Value> = groups
        .iter()
        .take(max)
        .map(|n| json!({"name": n, "html": html_mark(n, &ql), "labels": []}))
        .collect();
    Ok(Answer::json(
        200,
        json!({
            "users": {"users": shown, "total": total, "header": format!("Showing {} of {} matching users", shown.len(), total)},
            "groups": {"header": format!("Showing {} of {} matching groups", gshown.len(), gtotal), "total": gtotal, "groups": gshown},
        }),
    ))
}
