//! Issue 16, item 4: shaping what is sent to a service with stricter rules than SCIM's, by
//! per-target settings (`omit`, `required_name_formatted`). The service is idsync's own SCIM
//! endpoint behind the relay of `scim_adapt`, which refuses what such a service refuses.

use super::scim_adapt::{Quirks, Relay};
use super::{idsync_scim_peer, text, write_people_csv};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;

fn config(url: &str, target_extra: &str) -> String {
    format!(
        "[store]\npath = \"idsync.db\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.app]\ntype = \"scim\"\nurl = \"{url}\"\ntoken = \"${{env:IDSYNC_TEST_SHAPE_TOKEN}}\"\n{target_extra}\n[flows.hr-to-app]\nsource = \"hr\"\ntarget = \"app\"\n"
    )
}

fn idsync(dir: &Path, token: &str, args: &[&str]) -> Output {
    super::idsync()
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env("IDSYNC_TEST_SHAPE_TOKEN", token)
        .output()
        .unwrap()
}

/// A service that refuses `emails[].primary` and requires `name.formatted`: without settings
/// every create is refused with the service's message; with `omit = ["emails.primary"]` and
/// `required_name_formatted = true` the full sync, a name change and a reconcile go through,
/// and an omitted attribute changed by hand in the service is not compared.
#[test]
fn omit_and_required_name_formatted_shape_what_a_strict_service_is_sent() {
    let (_server, _peer_dir, url, token) = idsync_scim_peer();
    let base = url.trim_start_matches("http://");
    let (host, scim_path) = base.split_at(base.find('/').unwrap());
    let relay = Relay::start(
        &format!("http://{host}"),
        Quirks {
            strict_users: true,
            ..Quirks::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 4);
    let target_url = relay.url(scim_path);

    // Without settings: refused, with the service's reason.
    std::fs::write(dir.path().join("idsync.toml"), config(&target_url, "")).unwrap();
    let o = idsync(dir.path(), &token, &["sync", "hr-to-app"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("emails.primary is not supported"),
        "{}",
        text(&o)
    );

    std::fs::write(
        dir.path().join("idsync.toml"),
        config(
            &target_url,
            "omit = [\"emails.primary\", \"title\"]\nrequired_name_formatted = true\n",
        ),
    )
    .unwrap();
    let o = idsync(dir.path(), &token, &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let http = reqwest::blocking::Client::new();
    let user = |name: &str| -> Value {
        http.get(format!("{url}/Users?filter=userName%20eq%20%22{name}%22"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()["Resources"][0]
            .clone()
    };
    let u1 = user("user1@example.com");
    assert_eq!(u1["name"]["formatted"], "User Number 1", "{u1}");
    assert_eq!(u1["emails"][0]["value"], "user1@example.com", "{u1}");
    assert!(
        u1["emails"][0].get("primary").is_none() || u1["emails"][0]["primary"] == false,
        "primary never sent: {u1}"
    );

    // A name change: the update carries the new formatted name.
    let csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    std::fs::write(
        dir.path().join("users.csv"),
        csv.replace("User,Number 1,", "Ada,Number 1,"),
    )
    .unwrap();
    let o = idsync(dir.path(), &token, &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        user("user1@example.com")["name"]["formatted"],
        "Ada Number 1"
    );

    // By hand in the service: user2 gets a title (omitted: never sent, so never compared).
    let id = user("user2@example.com")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http
        .patch(format!("{url}/Users/{id}"))
        .bearer_auth(&token)
        .header("Content-Type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": "Set by hand"}]})
            .to_string(),
        )
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    let o = idsync(
        dir.path(),
        &token,
        &["plan", "hr-to-app", "--full", "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        plan["operations"].as_array().map(Vec::len),
        Some(0),
        "the omitted title is not compared, the rest converged: {plan}"
    );
    let o = idsync(dir.path(), &token, &["sync", "hr-to-app", "--full"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(user("user2@example.com")["title"], "Set by hand");

    // An attribute omitted after it was sent: no update to take it away (it is simply no
    // longer sent nor compared), and the service keeps the value it has.
    std::fs::write(
        dir.path().join("idsync.toml"),
        config(
            &target_url,
            "omit = [\"emails.primary\", \"title\", \"department\"]\nrequired_name_formatted = true\n",
        ),
    )
    .unwrap();
    let o = idsync(dir.path(), &token, &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(0 planned"),
        "{}",
        text(&o)
    );
}

/// `config check` names the key and the file of a bad `omit` entry and of a contradiction.
#[test]
fn config_check_names_bad_shape_settings() {
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 1);
    std::fs::write(
        dir.path().join("idsync.toml"),
        config(
            "https://app.example/scim/v2",
            "omit = [\"title\", \"userName\", \"emails.colour\", \"name.formatted\"]\nrequired_name_formatted = true\n",
        ),
    )
    .unwrap();
    let o = idsync(dir.path(), "t", &["config", "check"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let err = text(&o);
    for expected in [
        "targets.app.omit[1]",
        "\"userName\" cannot be left out",
        "targets.app.omit[2]",
        "\"emails.colour\" is not a user attribute idsync sends",
        "targets.app.required_name_formatted",
        "idsync.toml",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
    assert!(!err.contains("targets.app.omit[0]"), "{err}");
}

/// Item 4, learned: a service that refuses `emails[].primary` with a 400 naming it. With no
/// `omit`, the first create is refused, sent again without it and succeeds; the run log says
/// once what was learned; the store remembers it, so later runs (new processes) never send it
/// and learn nothing again.
#[test]
fn a_refused_attribute_named_by_the_service_is_learned_and_remembered() {
    let (_server, _peer_dir, url, token) = idsync_scim_peer();
    let base = url.trim_start_matches("http://");
    let (host, scim_path) = base.split_at(base.find('/').unwrap());
    let relay = Relay::start(
        &format!("http://{host}"),
        Quirks {
            strict_users: true,
            ..Quirks::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 4);
    std::fs::write(
        dir.path().join("idsync.toml"),
        config(&relay.url(scim_path), "required_name_formatted = true\n"),
    )
    .unwrap();
    let o = idsync(dir.path(), &token, &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(
        err.matches("target attribute learned: emails.primary is refused and no longer sent")
            .count(),
        1,
        "said once: {err}"
    );
    assert!(
        err.contains("Attribute emails.primary is not supported"),
        "{err}"
    );
    let http = reqwest::blocking::Client::new();
    let users: Value = http
        .get(format!("{url}/Users"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(users["totalResults"], 4, "{users}");

    // A later run changes a user: nothing refused, nothing learned again.
    let csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    std::fs::write(
        dir.path().join("users.csv"),
        csv.replace("User,Number 1,", "Ada,Number 1,"),
    )
    .unwrap();
    let o = idsync(dir.path(), &token, &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(1 planned, 1 applied"),
        "{}",
        text(&o)
    );
    assert!(!text(&o).contains("attribute learned"), "{}", text(&o));
    // A new user is created without primary from the start (a refusal would be learned and
    // said again), and a reconcile then converges.
    let mut csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    csv.push_str("id-000009,new9@example.com,New,Nine,new9@example.com,Dept 1,g-all\n");
    std::fs::write(dir.path().join("users.csv"), csv).unwrap();
    let o = idsync(dir.path(), &token, &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("attribute learned"), "{}", text(&o));
    let o = idsync(dir.path(), &token, &["sync", "hr-to-app", "--full"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = idsync(dir.path(), &token, &["sync", "hr-to-app", "--full"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(0 planned"),
        "{}",
        text(&o)
    );
}

/// Item 4, learned on an update: a service that starts refusing `department` when a user's
/// department changes. The refusal is learned, and the change, which was only of the refused
/// attribute, leaves nothing to send: no empty PATCH (refused by such services), the run
/// succeeds, and the next runs plan nothing.
#[test]
fn an_update_of_only_a_refused_attribute_sends_nothing_after_learning() {
    let (_server, _peer_dir, url, token) = idsync_scim_peer();
    let base = url.trim_start_matches("http://");
    let (host, scim_path) = base.split_at(base.find('/').unwrap());
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 3);
    std::fs::write(dir.path().join("idsync.toml"), config(&url, "")).unwrap();
    let o = idsync(dir.path(), &token, &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let relay = Relay::start(
        &format!("http://{host}"),
        Quirks {
            refuse_department: true,
            ..Quirks::default()
        },
    );
    std::fs::write(
        dir.path().join("idsync.toml"),
        config(&relay.url(scim_path), ""),
    )
    .unwrap();
    let csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    std::fs::write(
        dir.path().join("users.csv"),
        csv.replace("user1@example.com,Dept 1,", "user1@example.com,Dept 9,"),
    )
    .unwrap();
    let o = idsync(dir.path(), &token, &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("target attribute learned: department is refused"),
        "{}",
        text(&o)
    );
    let o = idsync(dir.path(), &token, &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(0 planned"),
        "{}",
        text(&o)
    );
}
