//! Bamboo's admin REST API for users and groups, below `/rest/api/latest`:
//! - `GET admin/users` (`filter`, `start`, `limit`), `POST admin/users`,
//!   `PUT admin/users/rename` (`{"name", "oldName"}`), `DELETE admin/users/{name}`,
//!   `GET admin/users/{name}/assigned-groups`, `POST`/`DELETE admin/users/{name}/groups`
//!   (a list of group names);
//! - `GET`/`POST admin/groups`, `DELETE admin/groups/{name}`,
//!   `POST admin/groups/{name}/add-users` and `DELETE .../remove-users` (a list of
//!   usernames), `GET .../more-members` and `.../more-non-members`;
//! - `GET currentUser`, `GET info` (anonymous).
//!
//! Lists are `RestPageModel`s: `{"size", "start", "limit", "isLastPage", "results"}`.

use super::directory::BambooError;
use super::server::{Answer, BambooSimState};
use axum::http::Method;
use serde_json::{json, Value};

pub(super) struct Request<'a> {
    pub method: &'a Method,
    /// Below `/rest/api/latest/`, still percent-encoded.
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Request<'_> {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Result<Value, BambooError> {
        serde_json::from_slice(self.body)
            .map_err(|e| BambooError::message(400, format!("Invalid JSON in the request: {e}")))
    }
    fn names(&self) -> Result<Vec<String>, BambooError> {
        match self.json()? {
            Value::Array(a) => a
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(BambooError::message(400, "Expected a list of names.")),
                })
                .collect(),
            _ => Err(BambooError::message(400, "Expected a list of names.")),
        }
    }
}

/// One page of `all` as Bamboo's `RestPageModel`.
fn page(st: &BambooSimState, req: &Request<'_>, all: Vec<Value>) -> Answer {
    let start = req
        .q("start")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let limit = req
        .q("limit")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(25)
        .clamp(1, st.opts.max_page.max(1));
    let results: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
    let last = start + results.len() >= all.len();
    Answer::json(
        200,
        json!({"size": results.len(), "start": start, "limit": limit, "isLastPage": last, "results": results}),
    )
}

fn decode(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8_lossy()
        .to_string()
}

fn done(r: Result<(), BambooError>) -> Answer {
    match r {
        Ok(()) => Answer::empty(204),
        Err(e) => e.into(),
    }
}

pub(super) fn handle(st: &BambooSimState, req: &Request<'_>) -> Answer {
    let segs: Vec<String> = req.path.split('/').map(decode).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let filter = req.q("filter").unwrap_or("").to_string();
    let m = req.method;
    let read = || {
        st.directory
            .read()
            .map_err(|_| BambooError::message(500, "lock"))
    };
    let write = || {
        st.directory
            .write()
            .map_err(|_| BambooError::message(500, "lock"))
    };
    let r: Result<Answer, BambooError> = (|| match (m, segs.as_slice()) {
        (&Method::GET, ["info"]) => Ok(Answer::json(
            200,
            json!({"version": st.opts.version, "edition": "", "buildNumber": "90605", "state": "RUNNING"}),
        )),
        (&Method::GET, ["currentUser"]) => {
            let d = read()?;
            let u = d
                .user(&st.opts.admin)
                .map(|u| u.json())
                .unwrap_or(Value::Null);
            Ok(Answer::json(200, u))
        }
        (&Method::GET, ["admin", "users"]) => Ok(page(st, req, read()?.find_users(&filter))),
        (&Method::POST, ["admin", "users"]) => {
            let body = req.json()?;
            Ok(Answer::json(201, write()?.create_user(&body)?))
        }
        (&Method::PUT, ["admin", "users", "rename"]) => {
            let body = req.json()?;
            let s = |k: &str| {
                body.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            write()?.rename_user(&s("oldName"), &s("name"))?;
            Ok(Answer::empty(204))
        }
        (&Method::DELETE, ["admin", "users", name]) => Ok(done(write()?.delete_user(name))),
        (&Method::GET, ["admin", "users", name, "assigned-groups"]) => {
            Ok(page(st, req, read()?.assigned_groups(name, &filter)?))
        }
        (&Method::POST, ["admin", "users", name, "groups"]) => {
            let groups = req.names()?;
            Ok(done(write()?.change_groups(name, &groups, true)))
        }
        (&Method::DELETE, ["admin", "users", name, "groups"]) => {
            let groups = req.names()?;
            Ok(done(write()?.change_groups(name, &groups, false)))
        }
        (&Method::GET, ["admin", "groups"]) => Ok(page(st, req, read()?.groups(&filter))),
        (&Method::POST, ["admin", "groups"]) => {
            let body = req.json()?;
            Ok(Answer::json(201, write()?.create_group(&body)?))
        }
        (&Method::DELETE, ["admin", "groups", name]) => Ok(done(write()?.delete_group(name))),
        (&Method::POST, ["admin", "groups", name, "add-users"]) => {
            let users = req.names()?;
            Ok(done(write()?.change_members(name, &users, true)))
        }
        (&Method::DELETE, ["admin", "groups", name, "remove-users"]) => {
            let users = req.names()?;
            Ok(done(write()?.change_members(name, &users, false)))
        }
        (&Method::GET, ["admin", "groups", name, "more-members"]) => {
            Ok(page(st, req, read()?.members(name, &filter, true)?))
        }
        (&Method::GET, ["admin", "groups", name, "more-non-members"]) => {
            Ok(page(st, req, read()?.members(name, &filter, false)?))
        }
        _ => Err(BambooError::message(
            404,
            format!("No resource at {} /rest/api/latest/{}", m, req.path),
        )),
    })();
    r.unwrap_or_else(Answer::from)
}
