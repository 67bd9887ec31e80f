//! What a SCIM target keeps, learned from its `/Schemas` and its answers rather than from a
//! reconcile's read alone, and remembered per target (issue 16, item 3; decision 0029); and
//! the listing a service that cannot filter needs, once per run instead of once per create
//! (decision 0025).

use super::scim_adapt::{Quirks, Relay};
use super::{run, text};
use idsync_connectors::testkit::peers::{
    quirky_list_requests, scim2_server_quirky, scim2_server_with,
};
use proptest::prelude::*;
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

impl Service {
    /// Create a user by hand; its id.
    fn add_user(&self, user_name: &str, email: &str) -> String {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "name": {"givenName": "Kept", "familyName": "Here"},
            "emails": [{"value": email}],
        });
        let r = self
            .http
            .post(format!("{}/Users", self.url))
            .bearer_auth(TOKEN)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap());
        let v: Value = r.json().unwrap();
        v["id"].as_str().unwrap().to_string()
    }
}

/// Decision 0025: a service that ignores filters is listed once per run, and every create of
/// the run is matched against that listing (kept up to date with what the run creates), so 40
/// creates cost one listing, not 40 (before: one per create and matching attribute).
#[test]
fn a_service_that_ignores_filters_is_listed_once_per_run_not_once_per_create() {
    let peer = scim2_server_quirky(TOKEN, &["ignores-filters"], &[]).unwrap();
    let svc = Service::new(&peer.url);
    let boss = svc.add_user("boss@example.com", "boss@example.com");
    // A source user's existing account (its userName in other case): linked, not duplicated.
    let existing = svc.add_user("USER7@Example.com", "user7@example.com");
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path(), 40);
    write_scim_config(dir.path(), &peer.url);
    let before = quirky_list_requests(&peer).unwrap();
    let out = ok(dir.path(), &["sync", "hr-to-app"]);
    let after = quirky_list_requests(&peer).unwrap();
    let lists =
        after.get("/Users").copied().unwrap_or(0) - before.get("/Users").copied().unwrap_or(0);
    // The health check, the emptiness check, the search that shows filters are ignored, and
    // the listing (one page here): a handful, whatever the number of creates.
    assert!(
        lists <= 5,
        "{lists} list requests for 40 creates: {after:?}\n{out}"
    );

    let users = svc.users();
    assert_eq!(
        users.len(),
        41,
        "40 source users, the boss, once each: {users:?}"
    );
    for i in 0..40 {
        let name = format!("user{i}@example.com");
        let n = users
            .iter()
            .filter(|u| {
                u["userName"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(&name))
            })
            .count();
        assert_eq!(n, 1, "{name}");
    }
    let linked = users.iter().find(|u| u["id"] == json!(existing)).unwrap();
    assert_eq!(linked["title"], json!("Title 7"), "{linked}");
    let boss = users.iter().find(|u| u["id"] == json!(boss)).unwrap();
    assert_eq!(
        boss["userName"],
        json!("boss@example.com"),
        "untouched: {boss}"
    );

    // The next run lists the service afresh (a listing lasts one run): a user created by hand
    // since is matched, not duplicated.
    let mut csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    csv.push_str("id-new,late@example.com,Late,Comer,late@example.com,Title L\n");
    std::fs::write(dir.path().join("users.csv"), csv).unwrap();
    let late = svc.add_user("late@example.com", "late@example.com");
    ok(dir.path(), &["sync", "hr-to-app"]);
    let users = svc.users();
    assert_eq!(users.len(), 42, "{users:?}");
    let late = users.iter().find(|u| u["id"] == json!(late)).unwrap();
    assert_eq!(late["title"], json!("Title L"), "{late}");
}

/// Item 3: what the service's answers to the creates showed (it does not keep `title`) is
/// remembered, and a later reconcile (another process) compares by it, even where one object
/// in the service holds a title (set there by hand) and the read alone would take `title` for
/// kept and "repair" every other user, on every reconcile, in vain.
#[test]
fn what_the_create_answers_showed_is_remembered_and_compared_by() {
    let peer = scim2_server_with(TOKEN, &[]).unwrap();
    let base = peer.url.trim_start_matches("http://");
    let (host, scim_path) = base.split_at(base.find('/').unwrap());
    let relay = Relay::start(
        &format!("http://{host}"),
        Quirks {
            drops: &["title"],
            ..Quirks::default()
        },
    );
    let url = relay.url(scim_path);
    let svc = Service::new(&peer.url);
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path(), 4);
    write_scim_config(dir.path(), &url);
    let out = ok(dir.path(), &["sync", "hr-to-app"]);
    assert!(
        out.contains("the target does not keep title of users"),
        "said once when learned: {out}"
    );
    assert!(svc.users().iter().all(|u| u.get("title").is_none()));

    // Someone gives one user a title in the service itself.
    let one = svc.user_named("user2@example.com");
    svc.patch_user(
        one["id"].as_str().unwrap(),
        json!([{"op": "replace", "path": "title", "value": "Set by hand"}]),
    );

    let o = run(dir.path(), &["plan", "hr-to-app", "--full", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        plan["operations"].as_array().map(Vec::len),
        Some(0),
        "no repairs of what the service does not keep: {plan}"
    );
    let warnings = plan["warnings"].to_string();
    assert!(
        warnings.contains("does not keep title of users (its answers to what it was sent show it)"),
        "{warnings}"
    );
    let out = ok(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert!(out.contains("(0 planned"), "{out}");
    // Learned once: later runs do not say it again.
    assert!(!out.contains("target attribute learned"), "{out}");
}

/// Attributes a relayed service may drop (any subset), and what a pre-existing account may
/// hold there, set in the service itself (a value the service's API never takes from idsync).
const DROPPABLE: [(&str, &str); 4] = [
    ("title", "Old title"),
    ("department", "Old department"),
    ("locale", "fr-FR"),
    ("emails.type", "home"),
];

/// A source user `i` as the CSV of the property test writes it.
fn keeps_csv(n: usize) -> String {
    let mut csv =
        String::from("sourceId,userName,givenName,familyName,email,title,department,locale\n");
    for i in 0..n {
        csv.push_str(&format!(
            "id-{i:04},user{i}@example.com,User,Number {i},user{i}@example.com,Title {i},Dept {i},en-GB\n"
        ));
    }
    csv
}

/// An account created in the service directly, before idsync: `values` for the given
/// droppable attributes.
fn account(svc: &Service, user_name: &str, values: &[(&str, &str)]) -> String {
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Old", "familyName": "Account"},
        "emails": [{"value": user_name}],
    });
    for (path, value) in values {
        match *path {
            "department" => {
                body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] =
                    json!({"department": value})
            }
            "emails.type" => body["emails"][0]["type"] = json!(value),
            p => body[p] = json!(value),
        }
    }
    let r = svc
        .http
        .post(format!("{}/Users", svc.url))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/scim+json")
        .body(body.to_string())
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    /// Issue 16's property, with what is learned from the service's answers: whatever subset
    /// of attributes the service keeps, and whatever values accounts that were there before
    /// hold for those it does not, the first reconcile after the sync that created (or
    /// adopted) the users plans nothing, a reconcile converges at once, and nothing is
    /// written to an account that is no verified match (a bystander keeps its version). At
    /// least one source user's account is there before the sync (adopted).
    #[test]
    fn whatever_the_service_keeps_a_reconcile_plans_nothing_and_writes_only_to_matches(
        dropped in proptest::collection::btree_set(0..DROPPABLE.len(), 0..=DROPPABLE.len()),
        n in 3usize..6,
        before in proptest::collection::btree_set(0usize..3, 1..3),
        hand in any::<bool>(),
    ) {
        let drops: Vec<&'static str> = dropped.iter().map(|&i| DROPPABLE[i].0).collect();
        let drops: &'static [&'static str] = Box::leak(drops.into_boxed_slice());
        let peer = scim2_server_with(TOKEN, &[]).unwrap();
        let base = peer.url.trim_start_matches("http://");
        let (host, scim_path) = base.split_at(base.find('/').unwrap());
        let relay = Relay::start(&format!("http://{host}"), Quirks { drops, ..Quirks::default() });
        let svc = Service::new(&peer.url);
        let bystander = account(&svc, "bystander@example.org", &[("title", "Boss")]);
        let bystander_before = svc.users().into_iter().find(|u| u["id"] == json!(bystander)).unwrap();
        let hand_values: Vec<(&str, &str)> = if hand {
            dropped.iter().map(|&i| DROPPABLE[i]).collect()
        } else {
            Vec::new()
        };
        let mut adopted = Vec::new();
        for &i in &before {
            adopted.push((i, account(&svc, &format!("user{i}@example.com"), &hand_values)));
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users.csv"), keeps_csv(n)).unwrap();
        write_scim_config(dir.path(), &relay.url(scim_path));

        ok(dir.path(), &["sync", "hr-to-app"]);
        let o = run(dir.path(), &["plan", "hr-to-app", "--full", "--json"]);
        prop_assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
        prop_assert_eq!(
            plan["operations"].as_array().map(Vec::len),
            Some(0),
            "drops {:?}, adopted {:?}, hand values {}: {}", drops, adopted, hand, plan
        );
        let out = ok(dir.path(), &["sync", "hr-to-app", "--full"]);
        prop_assert!(out.contains("(0 planned"), "{}", out);

        let users = svc.users();
        prop_assert_eq!(users.len(), n + 1, "{:?}", users);
        let now = users.iter().find(|u| u["id"] == json!(bystander)).unwrap();
        prop_assert_eq!(&now["meta"]["version"], &bystander_before["meta"]["version"], "{}", now);
        for (i, id) in &adopted {
            let u = users.iter().find(|u| u["id"] == json!(id)).unwrap();
            prop_assert_eq!(&u["name"]["familyName"], &json!(format!("Number {i}")), "{}", u);
        }
        drop(relay);
        drop(peer);
    }
}
