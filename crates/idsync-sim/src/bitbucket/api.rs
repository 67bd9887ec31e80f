//! `/rest/api/1.0`: the admin user, group, membership and permission resources of Bitbucket
//! Data Center's REST API, the user and user-settings resources, and
//! `application-properties`, with Bitbucket's paging (`start`/`limit` up to 1,000, answers
//! with `size`, `limit`, `start`, `isLastPage` and `nextPageStart`), its status codes (a
//! create answers 204; a duplicate 409) and its `errors[]` bodies.

use super::directory::{BbUser, BitbucketError, Directory};
use super::server::{Answer, BitbucketSimState};
use axum::http::Method;
use serde_json::{json, Value};

/// The largest page Bitbucket serves (`page.max.*`); a larger `limit` gets this many.
pub const MAX_PAGE: usize = 1000;

pub(super) struct Request<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
    pub root: &'a str,
}

impl Request<'_> {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    fn flag(&self, k: &str, default: bool) -> bool {
        self.q(k)
            .map_or(default, |v| v.eq_ignore_ascii_case("true"))
    }
    fn int(&self, k: &str, default: usize) -> Result<usize, BitbucketError> {
        match self.q(k) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .map(|n| usize::try_from(n.max(0)).unwrap_or(0))
                .map_err(|_| BitbucketError::field(k, format!("'{v}' is not a number"))),
        }
    }
    fn json(&self) -> Result<Value, BitbucketError> {
        serde_json::from_slice(self.body).map_err(|e| {
            BitbucketError::new(
                400,
                "com.atlassian.bitbucket.rest.exception.UnmarshalException",
                format!("The request body could not be read: {e}"),
            )
        })
    }
    fn required(&self, k: &str) -> Result<&str, BitbucketError> {
        self.q(k)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| BitbucketError::field(k, format!("The parameter '{k}' is required.")))
    }
    /// One page of `items` (Bitbucket's `PagedResponse`).
    fn page(&self, items: Vec<Value>) -> Result<Answer, BitbucketError> {
        self.page_of(items, |v| v.clone())
    }
    /// One page of `items`, each shown by `show` (only those on the page are).
    fn page_of<T>(
        &self,
        items: Vec<T>,
        show: impl Fn(&T) -> Value,
    ) -> Result<Answer, BitbucketError> {
        let start = self.int("start", 0)?;
        let limit = self.int("limit", 25)?.clamp(1, MAX_PAGE);
        let total = items.len();
        let values: Vec<Value> = items.iter().skip(start).take(limit).map(show).collect();
        let last = start + values.len() >= total;
        let mut page = json!({
            "size": values.len(),
            "limit": limit,
            "start": start,
            "isLastPage": last,
            "values": values,
        });
        if !last {
            page["nextPageStart"] = json!(start + limit);
        }
        Ok(Answer::json(200, page))
    }
}

fn field<'a>(body: &'a Value, k: &str) -> Result<&'a str, BitbucketError> {
    body.get(k)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| BitbucketError::field(k, format!("'{k}' is required.")))
}

fn strings(body: &Value, k: &str) -> Result<Vec<String>, BitbucketError> {
    body.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .ok_or_else(|| BitbucketError::field(k, format!("'{k}' must be a list of names.")))
}

/// Whether `filter` is in any of `fields`, ignoring ASCII case (without allocating: a listing
/// filters every user on every request).
fn matches(filter: Option<&str>, fields: &[&str]) -> bool {
    match filter.filter(|f| !f.is_empty()) {
        None => true,
        Some(f) => {
            let f = f.as_bytes();
            fields.iter().any(|x| {
                x.len() >= f.len()
                    && x.as_bytes()
                        .windows(f.len())
                        .any(|w| w.eq_ignore_ascii_case(f))
            })
        }
    }
}

fn group_json(name: &str) -> Value {
    json!({"name": name, "deletable": true})
}

/// User settings are the caller's own: the reference documents `users/{userSlug}/settings`
/// as the settings "for a specific user identified by the user slug", answering 204 or 401,
/// and says nowhere that an administrator may read or write another user's (where the avatar
/// resource, beside it, says so). The simulator holds Bitbucket to what is documented, so a
/// client that writes another user's settings fails here as it may on a real Bitbucket.
fn own_settings(st: &BitbucketSimState, d: &Directory, id: u64) -> Result<(), BitbucketError> {
    if d.by_name(&st.opts.admin) == Some(id) {
        return Ok(());
    }
    Err(BitbucketError::new(
        401,
        "com.atlassian.bitbucket.AuthorisationException",
        "You are not permitted to access this user's settings.",
    ))
}

pub(super) fn handle(st: &BitbucketSimState, r: &Request<'_>) -> Answer {
    match route(st, r) {
        Ok(a) => a,
        Err(e) => Answer::from(e),
    }
}

fn route(st: &BitbucketSimState, r: &Request<'_>) -> Result<Answer, BitbucketError> {
    let read = || {
        st.directory.read().map_err(|_| {
            BitbucketError::new(500, "java.lang.IllegalStateException", "directory poisoned")
        })
    };
    let write = || {
        st.directory.write().map_err(|_| {
            BitbucketError::new(500, "java.lang.IllegalStateException", "directory poisoned")
        })
    };
    let root = format!("{}/rest/api/1.0", r.root);
    let user_page = |d: &Directory, filter: Option<&str>| -> Result<Answer, BitbucketError> {
        r.page_of(d.filtered_users(filter), |u| u.json(&root))
    };
    let m = r.method;
    let segs: Vec<&str> = r.path.split('/').collect();
    match (m, segs.as_slice()) {
        (&Method::GET, ["application-properties"]) => Ok(Answer::json(
            200,
            json!({
                "version": st.opts.version,
                "buildNumber": st.opts.version.replace('.', "").chars().take(7).collect::<String>(),
                "buildDate": "1700000000000",
                "displayName": "Bitbucket",
            }),
        )),
        (&Method::GET, ["admin", "users"]) | (&Method::GET, ["users"]) => {
            let d = read()?;
            user_page(&d, r.q("filter"))
        }
        (&Method::POST, ["admin", "users"]) => {
            let name = r.required("name")?;
            let display = r.required("displayName")?;
            let email = r.required("emailAddress")?;
            let notify = r.flag("notify", true);
            if !notify && r.q("password").is_none_or(str::is_empty) {
                return Err(BitbucketError::field(
                    "password",
                    "A password is required when no notification is sent.",
                ));
            }
            write()?.create_user(name, display, email, r.flag("addToDefaultGroup", true))?;
            Ok(Answer::empty(204))
        }
        (&Method::PUT, ["admin", "users"]) => {
            let body = r.json()?;
            let name = field(&body, "name")?;
            let mut d = write()?;
            let id = d.update_user(
                name,
                body.get("displayName").and_then(Value::as_str),
                body.get("email").and_then(Value::as_str),
            )?;
            let u = d.users.get(&id).map(|u| u.json(&root)).unwrap_or_default();
            Ok(Answer::json(200, u))
        }
        (&Method::DELETE, ["admin", "users"]) => {
            let name = r.required("name")?;
            let u = write()?.delete_user(name)?;
            Ok(Answer::json(200, u.json(&root)))
        }
        (&Method::POST, ["admin", "users", "rename"]) => {
            let body = r.json()?;
            let mut d = write()?;
            let id = d.rename_user(field(&body, "name")?, field(&body, "newName")?)?;
            let u = d.users.get(&id).map(|u| u.json(&root)).unwrap_or_default();
            Ok(Answer::json(200, u))
        }
        (&Method::POST, ["admin", "users", "add-groups"]) => {
            let body = r.json()?;
            let user = field(&body, "user")?;
            let groups = strings(&body, "groups")?;
            let mut d = write()?;
            for g in &groups {
                d.group(g)?;
            }
            for g in &groups {
                d.add_members(g, &[user])?;
            }
            Ok(Answer::empty(200))
        }
        (&Method::POST, ["admin", "users", "remove-group"]) => {
            let body = r.json()?;
            write()?.remove_member(field(&body, "itemName")?, field(&body, "context")?)?;
            Ok(Answer::empty(200))
        }
        (&Method::GET, ["admin", "users", "more-members"]) => {
            let d = read()?;
            let id = d.user_named(r.required("context")?)?.id;
            let groups: Vec<Value> = d
                .groups_of(id)
                .iter()
                .filter(|g| matches(r.q("filter"), &[g]))
                .map(|g| group_json(g))
                .collect();
            r.page(groups)
        }
        (&Method::GET, ["admin", "groups"]) | (&Method::GET, ["groups"]) => {
            let d = read()?;
            let groups: Vec<Value> = d
                .groups
                .values()
                .filter(|g| matches(r.q("filter"), &[&g.name]))
                .map(|g| group_json(&g.name))
                .collect();
            r.page(groups)
        }
        (&Method::POST, ["admin", "groups"]) => {
            let name = r.required("name")?;
            write()?.create_group(name)?;
            Ok(Answer::json(200, group_json(name)))
        }
        (&Method::DELETE, ["admin", "groups"]) => {
            let g = write()?.delete_group(r.required("name")?)?;
            Ok(Answer::json(200, group_json(&g.name)))
        }
        (&Method::POST, ["admin", "groups", "add-users"]) => {
            let body = r.json()?;
            let group = field(&body, "group")?;
            let users = strings(&body, "users")?;
            let names: Vec<&str> = users.iter().map(String::as_str).collect();
            write()?.add_members(group, &names)?;
            Ok(Answer::empty(200))
        }
        (&Method::POST, ["admin", "groups", "remove-user"]) => {
            let body = r.json()?;
            write()?.remove_member(field(&body, "context")?, field(&body, "itemName")?)?;
            Ok(Answer::empty(200))
        }
        (&Method::GET, ["admin", "groups", "more-members"]) => {
            let d = read()?;
            let g = d.group(r.required("context")?)?;
            let mut users: Vec<&BbUser> = g
                .members
                .iter()
                .filter_map(|id| d.users.get(id))
                .filter(|u| matches(r.q("filter"), &[&u.name, &u.display_name, &u.email]))
                .collect();
            users.sort_by_cached_key(|u| u.name.to_lowercase());
            r.page_of(users, |u| u.json(&root))
        }
        (&Method::GET, ["admin", "permissions", "groups"]) => {
            let d = read()?;
            let perms: Vec<Value> = d
                .group_permissions
                .iter()
                .filter_map(|(k, p)| d.groups.get(k).map(|g| (g, p)))
                .filter(|(g, _)| matches(r.q("filter"), &[&g.name]))
                .map(|(g, p)| json!({"group": group_json(&g.name), "permission": p}))
                .collect();
            r.page(perms)
        }
        (&Method::GET, ["users", slug]) => {
            let d = read()?;
            let id = d
                .by_slug(slug)
                .ok_or_else(|| BitbucketError::no_user(slug))?;
            let u = d.users.get(&id).map(|u| u.json(&root)).unwrap_or_default();
            Ok(Answer::json(200, u))
        }
        (&Method::GET, ["users", slug, "settings"]) => {
            let d = read()?;
            let id = d
                .by_slug(slug)
                .ok_or_else(|| BitbucketError::no_user(slug))?;
            own_settings(st, &d, id)?;
            let s = d
                .users
                .get(&id)
                .map(|u| json!(u.settings))
                .unwrap_or_default();
            Ok(Answer::json(200, s))
        }
        (&Method::POST, ["users", slug, "settings"]) => {
            let body = r.json()?;
            let Value::Object(entries) = body else {
                return Err(BitbucketError::field(
                    "settings",
                    "Expected a map of settings.",
                ));
            };
            let mut d = write()?;
            let id = d
                .by_slug(slug)
                .ok_or_else(|| BitbucketError::no_user(slug))?;
            own_settings(st, &d, id)?;
            if let Some(u) = d.users.get_mut(&id) {
                for (k, v) in entries {
                    if v.is_null() {
                        u.settings.remove(&k);
                    } else {
                        u.settings.insert(k, v);
                    }
                }
            }
            Ok(Answer::empty(204))
        }
        _ => Err(BitbucketError::new(
            404,
            "com.sun.jersey.api.NotFoundException",
            format!("No resource for {m} /rest/api/1.0/{}", r.path),
        )),
    }
}
