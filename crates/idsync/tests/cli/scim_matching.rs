//! Matching before create against SCIM services that are not compliant (issue 16, items 1, 5
//! and 6), through the binary: a service that ignores filters, one that says it does not
//! filter, two accounts that both match, a service that crashes on `count`, and a target that
//! fails every operation of a kind the same way.

use super::{run, text};
use idsync_connectors::testkit::peers::{scim2_server_quirky, scim2_server_with};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "quirk-token";

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

    /// Create a user; its id.
    fn add_user(&self, user_name: &str, family: &str, emails: &[&str]) -> String {
        let emails: Vec<Value> = emails.iter().map(|e| json!({"value": e})).collect();
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name,
            "name": {"givenName": "Kept", "familyName": family},
            "emails": emails,
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

    fn user(&self, id: &str) -> Value {
        self.http
            .get(format!("{}/Users/{id}", self.url))
            .bearer_auth(TOKEN)
            .send()
            .unwrap()
            .json()
            .unwrap()
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

    fn delete_all_users(&self) {
        for u in self.users() {
            let id = u["id"].as_str().unwrap();
            self.http
                .delete(format!("{}/Users/{id}", self.url))
                .bearer_auth(TOKEN)
                .send()
                .unwrap();
        }
    }
}

/// Source users: (sourceId, userName, familyName, email).
fn write_users(dir: &Path, users: &[(String, String, String, String)]) {
    let mut csv = String::from("sourceId,userName,givenName,familyName,email\n");
    for (id, name, family, email) in users {
        csv.push_str(&format!("{id},{name},Source,{family},{email}\n"));
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

fn people(n: usize) -> Vec<(String, String, String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("id-{i:03}"),
                format!("user{i}@example.com"),
                format!("Number {i}"),
                format!("user{i}@example.com"),
            )
        })
        .collect()
}

/// The failure the issue reports: a service that ignores `filter` answered every search with
/// its whole list, and idsync linked every new user to the first account and overwrote it.
#[test]
fn a_service_that_ignores_filters_is_matched_by_listing_and_nothing_else_is_overwritten() {
    let peer = scim2_server_quirky(TOKEN, &["ignores-filters"], &[]).unwrap();
    let svc = Service::new(&peer.url);
    let boss = svc.add_user("boss@example.com", "Boss", &["boss@example.com"]);
    // An existing account of a source user, its userName in other case.
    let existing = svc.add_user("USER1@Example.com", "Old", &["user1@example.com"]);
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path(), &people(6));
    write_scim_config(dir.path(), &peer.url);

    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let b = svc.user(&boss);
    assert_eq!(b["userName"], "boss@example.com", "{b}");
    assert_eq!(b["name"]["familyName"], "Boss", "{b}");
    let e = svc.user(&existing);
    assert_eq!(
        e["name"]["familyName"], "Number 1",
        "linked and updated: {e}"
    );
    let users = svc.users();
    assert_eq!(users.len(), 7, "6 source users (one linked) and the boss");
    let again = run(dir.path(), &["plan", "hr-to-app", "--full"]);
    assert!(text(&again).contains("nothing to do"), "{}", text(&again));
}

/// `filter.supported: false` in the ServiceProviderConfig: the service refuses filters (501),
/// so idsync lists its users page by page (pages of 2 here) and matches them itself.
#[test]
fn a_service_without_filtering_is_listed_in_its_paging_and_matched_locally() {
    let probe = scim2_server_with(TOKEN, &[]).unwrap();
    let mut spc: Value = reqwest::blocking::Client::new()
        .get(format!("{}/ServiceProviderConfig", probe.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    drop(probe);
    spc["filter"] = json!({"supported": false, "maxResults": 2});
    let dir = tempfile::tempdir().unwrap();
    let spc_file = dir.path().join("spc.json");
    std::fs::write(&spc_file, spc.to_string()).unwrap();
    let peer = scim2_server_with(
        TOKEN,
        &["--service-provider-config", spc_file.to_str().unwrap()],
    )
    .unwrap();
    let svc = Service::new(&peer.url);
    for i in 0..5 {
        svc.add_user(&format!("other{i}@example.com"), "Other", &[]);
    }
    let existing = svc.add_user("user4@example.com", "Old", &[]);
    write_users(dir.path(), &people(6));
    write_scim_config(dir.path(), &peer.url);

    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        svc.users().len(),
        11,
        "5 others, 6 source users, none twice"
    );
    assert_eq!(svc.user(&existing)["name"]["familyName"], "Number 4");
    for u in svc.users() {
        if u["userName"].as_str().unwrap().starts_with("other") {
            assert_eq!(u["name"]["familyName"], "Other", "{u}");
        }
    }
}

/// A service that neither filters (`filter.supported: false`) nor lets itself be listed
/// without a filter: matching is impossible, so nothing is created and the run ends with one
/// message saying why.
#[test]
fn a_service_that_can_be_neither_searched_nor_listed_is_refused_with_one_message() {
    let probe = scim2_server_with(TOKEN, &[]).unwrap();
    let mut spc: Value = reqwest::blocking::Client::new()
        .get(format!("{}/ServiceProviderConfig", probe.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    drop(probe);
    spc["filter"] = json!({"supported": false, "maxResults": 100});
    let dir = tempfile::tempdir().unwrap();
    let spc_file = dir.path().join("spc.json");
    std::fs::write(&spc_file, spc.to_string()).unwrap();
    let peer = scim2_server_quirky(
        TOKEN,
        &["lists-need-filter"],
        &["--service-provider-config", spc_file.to_str().unwrap()],
    )
    .unwrap();
    let svc = Service::new(&peer.url);
    let existing = svc.add_user("user1@example.com", "Old", &[]);
    write_users(dir.path(), &people(8));
    write_scim_config(dir.path(), &peer.url);

    let o = run(dir.path(), &["sync", "hr-to-app"]);
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("cannot match safely"), "{out}");
    assert!(out.contains("filter.supported: false"), "{out}");
    assert!(out.contains("a filter is required"), "{out}");
    assert_eq!(
        out.matches("cannot match safely").count(),
        1,
        "said once: {out}"
    );
    assert_eq!(svc.user(&existing)["name"]["familyName"], "Old");
    // The quirk refuses lists by GET only: a SearchRequest without filter counts them.
    let total: Value = svc
        .http
        .post(format!("{}/Users/.search", peer.url))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}).to_string(),
        )
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(total["totalResults"], 1, "nothing created: {total}");
}

/// Two accounts both verify as the match of one source user (by email): a conflict, named
/// with both candidates, and neither account is written to; the other users are provisioned.
#[test]
fn two_verified_matches_are_a_conflict_and_neither_is_written() {
    let peer = scim2_server_with(TOKEN, &[]).unwrap();
    let svc = Service::new(&peer.url);
    let a = svc.add_user("ann.one", "First", &["user2@example.com"]);
    let b = svc.add_user("ann.two", "Second", &["USER2@example.com"]);
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path(), &people(4));
    write_scim_config(dir.path(), &peer.url);

    let o = run(dir.path(), &["sync", "hr-to-app"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    let log = text(&run(dir.path(), &["log", "hr-to-app"]));
    let said = format!("{out}{log}");
    assert!(said.contains("user2@example.com"), "{said}");
    assert!(said.contains(&a) && said.contains(&b), "{said}");
    assert!(said.contains("conflict"), "{said}");
    assert_eq!(svc.user(&a)["name"]["familyName"], "First");
    assert_eq!(svc.user(&b)["name"]["familyName"], "Second");
    assert_eq!(svc.users().len(), 5, "3 created, the two accounts kept");
}

/// Group displayNames compare as the service's `/Schemas` says: here case-exact, so the
/// service's own "Engineering" is another group than the source's "engineering" and is left
/// alone (the service ignores filters too, so only idsync's check tells them apart).
#[test]
fn group_names_compare_as_the_services_schema_says() {
    let probe = scim2_server_with(TOKEN, &[]).unwrap();
    let list: Value = reqwest::blocking::Client::new()
        .get(format!("{}/Schemas", probe.url))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    drop(probe);
    let mut schemas = list["Resources"].as_array().unwrap().clone();
    for schema in &mut schemas {
        if schema["id"] == "urn:ietf:params:scim:schemas:core:2.0:Group" {
            for a in schema["attributes"].as_array_mut().unwrap() {
                if a["name"] == "displayName" {
                    a["caseExact"] = json!(true);
                }
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let schema_file = dir.path().join("schemas.json");
    std::fs::write(&schema_file, Value::Array(schemas).to_string()).unwrap();
    let peer = scim2_server_quirky(
        TOKEN,
        &["ignores-filters"],
        &["--schema", schema_file.to_str().unwrap()],
    )
    .unwrap();
    let http = reqwest::blocking::Client::new();
    let theirs: Value = http
        .post(format!("{}/Groups", peer.url))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/scim+json")
        .body(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering"}).to_string())
        .send()
        .unwrap()
        .json()
        .unwrap();
    write_users(dir.path(), &people(2));
    std::fs::write(
        dir.path().join("groups.csv"),
        "sourceId,displayName,description\ng-eng,engineering,\n",
    )
    .unwrap();
    write_scim_config(dir.path(), &peer.url);
    let toml = std::fs::read_to_string(dir.path().join("idsync.toml")).unwrap();
    std::fs::write(
        dir.path().join("idsync.toml"),
        toml.replace(
            "users = \"users.csv\"",
            "users = \"users.csv\"\ngroups = \"groups.csv\"",
        ),
    )
    .unwrap();

    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let groups: Value = http
        .get(format!("{}/Groups", peer.url))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&str> = groups["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{groups}");
    assert!(
        names.contains(&"Engineering") && names.contains(&"engineering"),
        "{names:?}"
    );
    let kept: Value = http
        .get(format!(
            "{}/Groups/{}",
            peer.url,
            theirs["id"].as_str().unwrap()
        ))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(kept["displayName"], "Engineering");
}

/// A service that answers 500 to any list request with `count`: idsync asks without it
/// (once, then for the rest of the run) and the sync, a reconcile and a re-plan work.
#[test]
fn a_service_that_crashes_on_count_is_listed_without_it() {
    let peer = scim2_server_quirky(TOKEN, &["crashes-on-count"], &[]).unwrap();
    let svc = Service::new(&peer.url);
    let existing = svc.add_user("user0@example.com", "Old", &[]);
    let dir = tempfile::tempdir().unwrap();
    write_users(dir.path(), &people(5));
    write_scim_config(dir.path(), &peer.url);

    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(svc.users().len(), 5);
    assert_eq!(svc.user(&existing)["name"]["familyName"], "Number 0");
    let o = run(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let again = run(dir.path(), &["plan", "hr-to-app", "--full"]);
    assert!(text(&again).contains("nothing to do"), "{}", text(&again));
}

/// Every user create fails with the same 500: the run stops after the first few with one
/// message naming the target, the operation kind and the error, instead of retrying each of
/// the 40 users for minutes.
#[test]
fn the_same_server_error_on_every_create_stops_the_run_fast() {
    let dir = tempfile::tempdir().unwrap();
    super::write_people_csv(dir.path(), 40);
    super::write_config(dir.path(), "");
    super::with_test_target_keys(
        dir.path(),
        "fail_every = { create_user = \"500 user creation is not supported\" }",
    );
    let started = Instant::now();
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    let took = started.elapsed();
    let out = text(&o);
    assert_ne!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains("every create_user fails the same way")
            && out.contains("HTTP 500: user creation is not supported"),
        "{out}"
    );
    assert!(out.contains("app") || out.contains("test target"), "{out}");
    assert_eq!(
        out.matches("user creation is not supported").count(),
        1,
        "said once: {out}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}: {out}");
}

/// A failure of some users while others of the same kind succeed is theirs: the run goes on.
#[test]
fn failures_of_single_users_do_not_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    super::write_people_csv(dir.path(), 12);
    super::write_config(dir.path(), "");
    super::with_test_target_keys(dir.path(), "reject_user_names = [\"^user[0-3]@\"]");
    let o = run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(!text(&o).contains("fails the same way"), "{}", text(&o));
    let t = idsync_connectors::targets::test::TestTarget::read_journal(
        &dir.path().join("target.jsonl"),
    )
    .unwrap();
    assert_eq!(t.user_count(), 8);
}

/// Names that pre-existing accounts and source users draw from, so that they collide.
const POOL: [&str; 5] = ["ann", "bob", "cy", "dee", "eve"];

fn name_strategy() -> impl Strategy<Value = (usize, bool)> {
    (0..POOL.len(), any::<bool>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    /// For services that ignore or honour filters and random pre-existing accounts (names and
    /// emails drawn from one pool, in random case), a sync never writes to an account that
    /// does not verify as the match of the source user written to it: every account that
    /// matches no source user is left exactly as it was, and an account that was changed holds
    /// the userName or the email of the source user whose values it now has.
    #[test]
    fn a_sync_writes_only_to_verified_matches(
        ignores in any::<bool>(),
        existing in proptest::collection::vec((name_strategy(), name_strategy()), 1..5),
        source in proptest::collection::btree_set(0..POOL.len(), 1..4),
    ) {
        let quirks: &[&str] = if ignores { &["ignores-filters"] } else { &[] };
        let peer = scim2_server_quirky(TOKEN, quirks, &[]).unwrap();
        let svc = Service::new(&peer.url);
        svc.delete_all_users();
        let mut before = Vec::new();
        let mut taken = std::collections::HashSet::new();
        for (i, ((n, upper), (m, upper_m))) in existing.iter().enumerate() {
            let case = |s: String, up: bool| if up { s.to_uppercase() } else { s };
            // The source user's own userName where still free (userName is unique), else
            // another account of the same person.
            let plain = format!("{}@example.com", POOL[*n]);
            let user_name = if taken.insert(plain.clone()) {
                case(plain, *upper)
            } else {
                case(format!("{}-acct{i}@x.org", POOL[*n]), *upper)
            };
            let email = case(format!("{}@example.com", POOL[*m]), *upper_m);
            let id = svc.add_user(&user_name, "Kept", &[&email]);
            before.push(svc.user(&id));
        }
        let dir = tempfile::tempdir().unwrap();
        let users: Vec<(String, String, String, String)> = source
            .iter()
            .map(|&s| {
                (
                    format!("id-{s}"),
                    format!("{}@example.com", POOL[s]),
                    format!("From {}", POOL[s]),
                    format!("{}@example.com", POOL[s]),
                )
            })
            .collect();
        write_users(dir.path(), &users);
        write_scim_config(dir.path(), &peer.url);
        let o = run(dir.path(), &["sync", "hr-to-app"]);
        prop_assert!(matches!(o.status.code(), Some(0) | Some(3)), "{}", text(&o));
        for old in &before {
            let id = old["id"].as_str().unwrap();
            let now = svc.user(id);
            let emails: Vec<String> = old["emails"]
                .as_array()
                .map(|a| a.iter().filter_map(|e| e["value"].as_str()).map(str::to_lowercase).collect())
                .unwrap_or_default();
            let holder = users.iter().find(|u| {
                old["userName"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&u.1))
                    || emails.contains(&u.3.to_lowercase())
            });
            if now["meta"]["version"] != old["meta"]["version"] {
                let family = now["name"]["familyName"].as_str().unwrap_or_default().to_string();
                let writer = users.iter().find(|u| u.2 == family);
                prop_assert!(writer.is_some(), "changed by no source user: {old} -> {now}");
                let writer = writer.unwrap();
                prop_assert!(
                    old["userName"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&writer.1))
                        || emails.contains(&writer.3.to_lowercase()),
                    "written to an account that does not match {}: {old} -> {now}", writer.1
                );
            } else if holder.is_none() {
                prop_assert_eq!(&now, old);
            }
        }
        drop(peer);
    }
}
