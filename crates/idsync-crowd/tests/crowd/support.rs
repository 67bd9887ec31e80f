//! Users, groups and directories for the tests.

use idsync_core::{Email, Group, User};
use idsync_crowd::Directory;

pub fn user(key: &str, name: &str) -> (String, User) {
    let mut u = User::new(key, name);
    u.name.given_name = Some(format!("{name}-first"));
    u.name.family_name = Some(format!("{name}-last"));
    u.emails.push(Email {
        value: format!("{name}@example.com"),
        kind: Some("work".into()),
        primary: true,
        display: None,
    });
    (key.to_string(), u)
}

pub fn group(key: &str, name: &str) -> (String, Group) {
    (key.to_string(), Group::new(key, name))
}

pub fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

/// alice, Bob (inactive), carol; groups jira-users {alice, Bob}, Admins {alice}, empty.
pub fn small() -> Directory {
    let mut bob = user("k-bob", "Bob");
    bob.1.active = false;
    Directory::build(
        vec![user("k-alice", "alice"), bob, user("k-carol", "carol")],
        vec![
            group("g-users", "jira-users"),
            group("g-admins", "Admins"),
            group("g-empty", "empty"),
        ],
        vec![
            pair("g-users", "k-alice"),
            pair("g-users", "k-bob"),
            pair("g-admins", "k-alice"),
        ],
        Vec::new(),
    )
}

use idsync_crowd::{handle, EventLog, Format, Request, Response};

pub const BASE: &str = "http://127.0.0.1:8095/crowd/jira/rest/usermanagement/1";

/// One request against `dir` and `events`.
pub fn call(
    dir: &Directory,
    events: &EventLog,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    accept: Format,
    body: &[u8],
) -> Response {
    let query: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let content_type = if body.first() == Some(&b'{') {
        Format::Json
    } else {
        Format::Xml
    };
    let req = Request {
        method,
        path,
        query: &query,
        base_url: BASE,
        accept,
        content_type,
        body,
    };
    handle(&req, dir, events)
}

/// A GET answered in JSON, parsed.
pub fn get_json(dir: &Directory, path: &str, query: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let r = call(
        dir,
        &EventLog::new("e".into(), 1),
        "GET",
        path,
        query,
        Format::Json,
        b"",
    );
    let v = if r.body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&r.body).unwrap()
    };
    (r.status, v)
}

/// A GET answered in XML, as text.
pub fn get_xml(dir: &Directory, path: &str, query: &[(&str, &str)]) -> (u16, String) {
    let r = call(
        dir,
        &EventLog::new("e".into(), 1),
        "GET",
        path,
        query,
        Format::Xml,
        b"",
    );
    (r.status, String::from_utf8(r.body).unwrap())
}
