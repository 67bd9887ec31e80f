//! What a SCIM target keeps, learned from its `/Schemas` and its answers rather than from a
//! reconcile's read alone, and remembered per target (issue 16, item 3; decision 0029); and
//! the listing a service that cannot filter needs, once per run instead of once per create
//! (decision 0025).

use super::{run, text};
use idsync_connectors::testkit::peers::scim2_server_with;
use serde_json::{json, Value};
use std::path::Path;

const TOKEN: &str = "keeps-token";

/// A plain SCIM client for arranging and inspecting the service.
struct Service {
    url: String,
    http: reqwest::blocking::Client,
}

impl Service {
    fn new(url: &str) -> Self {
        Service {
            url: url.to_string(),
            http: reqwest::blocking::Client::new(),
        }
    }

    /// Every user (without `count` or `filter`: these services may not take them).
    fn users(&self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let v: Value = self
                .http
                .get(format!("{}/Users?startIndex={}", self.url, out.len() + 1))
                .bearer_auth(TOKEN)
                .send()
                .unwrap()
                .json()
                .unwrap();
            let page = v["Resources"].as_array().cloned().unwrap_or_default();
            let total = v["totalResults"].as_u64().unwrap_or(0) as usize;
            let n = page.len();
            out.extend(page);
            if n == 0 || out.len() >= total {
                return out;
            }
        }
    }

    /// Change a user by hand: PATCH with these operations.
    fn patch_user(&self, id: &str, ops: Value) {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        let r = self
            .http
            .patch(format!("{}/Users/{id}", self.url))
            .bearer_auth(TOKEN)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap());
    }

    fn user_named(&self, name: &str) -> Value {
        self.users()
            .into_iter()
            .find(|u| u["userName"].as_str() == Some(name))
            .unwrap()
    }
}

/// `n` source users, each with a title.
fn write_users(dir: &Path, n: usize) {
    let mut csv = String::from("sourceId,userName,givenName,familyName,email,title\n");
    for i in 0..n {
        csv.push_str(&format!(
            "id-{i:04},user{i}@example.com,User,Number {i},user{i}@example.com,Title {i}\n"
        ));
    }
    std::fs::write(dir.join("users.csv"), csv).unwrap();
}

fn write_scim_config(dir: &Path, url: &str) {
    std::fs::write(
        dir.join("idsync.toml"),
        format!(
            "[store]\npath = \"idsync.db\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\n\n[targets.app]\ntype = \"scim\"\nurl = \"{url}\"\ntoken = \"{TOKEN}\"\n\n[flows.hr-to-app]\nsource = \"hr\"\ntarget = \"app\"\n"
        ),
    )
    .unwrap();
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o));
    text(&o)
}

/// Item 2: `title` removed by hand from every user that had it is drift, not the service's
/// rule: the service gave it back when the users were created, so a reconcile repairs all of
/// them (before, a read where no user has it was taken for a service that drops it).
#[test]
fn an_attribute_removed_by_hand_from_every_user_is_repaired() {
    let peer = scim2_server_with(TOKEN, &[]).unwrap();
    let svc = Service::new(&peer.url);
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path(), 4);
    write_scim_config(dir.path(), &peer.url);
    ok(dir.path(), &["sync", "hr-to-app"]);
    assert!(svc
        .users()
        .iter()
        .all(|u| u["title"].as_str().is_some_and(|t| t.starts_with("Title"))));

    for u in svc.users() {
        svc.patch_user(
            u["id"].as_str().unwrap(),
            json!([{"op": "remove", "path": "title"}]),
        );
    }
    assert!(svc.users().iter().all(|u| u.get("title").is_none()));

    let out = ok(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert!(out.contains("(4 planned, 4 applied"), "{out}");
    for i in 0..4 {
        let u = svc.user_named(&format!("user{i}@example.com"));
        assert_eq!(u["title"], json!(format!("Title {i}")), "{u}");
    }
    let out = ok(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert!(out.contains("(0 planned"), "{out}");
}
