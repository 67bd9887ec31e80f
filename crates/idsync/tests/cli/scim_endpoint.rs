//! idsync's own SCIM endpoint as Entra and Atlassian Cloud speak to it, provisioning real SCIM
//! services and idsync's endpoint through the kit, and `/Bulk`.

use super::*;

/// What Microsoft Entra's provisioning service sends, end to end through `idsync serve`: the
/// pushes land in the directory and reach the flow's target.
#[test]
fn scim_endpoint_speaks_entra() {
    use serde_json::{json, Value};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[sources.entra]\ntype = \"scim\"\n\n[targets.app]\ntype = \"test\"\njournal = \"target.jsonl\"\n\n[flows.entra-to-app]\nsource = \"entra\"\ntarget = \"app\"\n"
        ),
    )
    .unwrap();
    let token = create_token(dir.path(), &["entra", "--name", "entra-prod"]);
    assert!(token.starts_with("idsync_"));
    let _server = serve(dir.path(), port, &[]);
    let base = format!("http://127.0.0.1:{port}/scim/v2/entra");
    let http = reqwest::blocking::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut rb = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token);
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let etag = r
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string());
        let text = r.text().unwrap();
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            etag,
        )
    };
    use reqwest::Method as M;

    // "Test connection": a random userName, 200 with an empty list.
    let (s, v, _) = call(
        M::GET,
        "/Users?filter=userName+eq+%22f0d5b2b1-b9b0-4b8a-9c5c-000000000000%22",
        None,
    );
    assert_eq!((s, v["totalResults"].as_i64()), (200, Some(0)));
    // Wrong token: 401 with a SCIM error.
    let r = http
        .get(format!("{base}/Users"))
        .bearer_auth("idsync_wrong")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    // Create as Entra does.
    let entra_user = |upn: &str, mail_nick: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": mail_nick,
            "userName": upn,
            "active": true,
            "displayName": "Ada Lovelace",
            "emails": [{"primary": true, "type": "work", "value": upn}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "Ada Lovelace", "familyName": "Lovelace", "givenName": "Ada"},
            "title": "Countess",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "1815", "department": "Analytical Engines"}
        })
    };
    let (s, ada, etag) = call(
        M::POST,
        "/Users",
        Some(entra_user("ada@contoso.com", "ada")),
    );
    assert_eq!(s, 201, "{ada}");
    let ada_id = ada["id"].as_str().unwrap().to_string();
    assert!(etag.is_some());
    let (s, dup, _) = call(
        M::POST,
        "/Users",
        Some(entra_user("ADA@contoso.com", "ada2")),
    );
    assert_eq!((s, dup["scimType"].as_str()), (409, Some("uniqueness")));
    let (s, grace, _) = call(
        M::POST,
        "/Users",
        Some(entra_user("grace@contoso.com", "grace")),
    );
    assert_eq!(s, 201);
    let grace_id = grace["id"].as_str().unwrap().to_string();

    // Matching by userName and by externalId.
    let (_, v, _) = call(
        M::GET,
        "/Users?filter=userName+eq+%22Ada%40contoso.com%22",
        None,
    );
    assert_eq!(v["Resources"][0]["id"], ada_id.as_str());
    let (_, v, _) = call(M::GET, "/Users?filter=externalId+eq+%22grace%22", None);
    assert_eq!(v["Resources"][0]["id"], grace_id.as_str());
    // externalId is case-exact; emails match in any case (Atlassian Cloud matches by email).
    let (_, v, _) = call(M::GET, "/Users?filter=externalId+eq+%22GRACE%22", None);
    assert_eq!(v["totalResults"], 0);
    for f in [
        "emails.value+eq+%22GRACE%40contoso.com%22",
        "emails+eq+%22grace%40contoso.com%22",
    ] {
        let (_, v, _) = call(M::GET, &format!("/Users?filter={f}"), None);
        assert_eq!(
            (v["totalResults"].as_i64(), &v["Resources"][0]["id"]),
            (Some(1), &json!(grace_id)),
            "{f}"
        );
    }

    // PATCH in Entra's forms: capitalised ops, booleans as strings, no path, URN paths.
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let (s, v, patched_etag) = call(
        M::PATCH,
        &format!("/Users/{ada_id}"),
        Some(patch(json!([
            {"op": "Replace", "path": "displayName", "value": "Augusta Ada King"},
            {"op": "Add", "value": {"name.givenName": "Augusta", "emails[type eq \"work\"].value": "augusta@contoso.com"}},
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": grace_id}
        ]))),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["name"]["givenName"], "Augusta");
    assert_eq!(v["emails"][0]["value"], "augusta@contoso.com");
    assert_eq!(
        v["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"],
        grace_id.as_str()
    );
    // A write answers with what a read then serves, ETag included, so the ETag of the answer
    // works in If-Match.
    let (_, read, read_etag) = call(M::GET, &format!("/Users/{ada_id}"), None);
    assert_eq!((&read, &read_etag), (&v, &patched_etag));
    // The email index follows the change.
    let (_, v, _) = call(
        M::GET,
        "/Users?filter=emails.value+eq+%22ada%40contoso.com%22",
        None,
    );
    assert_eq!(v["totalResults"], 0);
    let (_, v, _) = call(
        M::GET,
        "/Users?filter=emails.value+eq+%22augusta%40contoso.com%22",
        None,
    );
    assert_eq!(v["Resources"][0]["id"], ada_id.as_str());
    assert_ne!(patched_etag, etag);

    // If-Match with a stale ETag is refused.
    let r = http
        .patch(format!("{base}/Users/{ada_id}"))
        .bearer_auth(&token)
        .header("If-Match", etag.unwrap())
        .header("Content-Type", "application/scim+json")
        .body(patch(json!([{"op": "replace", "path": "title", "value": "x"}])).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status(), 412);

    // Groups: lookup without members, create, add and remove members both ways.
    let (s, v, _) = call(
        M::GET,
        "/Groups?excludedAttributes=members&filter=displayName+eq+%22Engineering%22",
        None,
    );
    assert_eq!((s, v["totalResults"].as_i64()), (200, Some(0)));
    let (s, g, _) = call(
        M::POST,
        "/Groups",
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering", "externalId": "eng", "members": []}),
        ),
    );
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_string();
    let (_, read, read_etag) = call(M::GET, &format!("/Groups/{gid}"), None);
    assert_eq!(read, g);
    // Member-only PATCH (what Entra sends): 204 No Content, as in Entra's SCIM reference.
    let (s, _, _) = call(
        M::PATCH,
        &format!("/Groups/{gid}"),
        Some(patch(
            json!([{"op": "Add", "path": "members", "value": [{"value": ada_id}]}]),
        )),
    );
    assert_eq!(s, 204);
    // With If-Match the whole group is checked and served: the answer is what a read serves.
    let (_, _, etag_one) = call(M::GET, &format!("/Groups/{gid}"), None);
    assert_ne!(read_etag, etag_one);
    let r = http
        .patch(format!("{base}/Groups/{gid}"))
        .bearer_auth(&token)
        .header("If-Match", etag_one.clone().unwrap())
        .header("Content-Type", "application/scim+json")
        .body(
            patch(json!([{"op": "Add", "path": "members", "value": [{"value": grace_id}]}]))
                .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let added_etag = r
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    let added: Value = r.json().unwrap();
    assert_eq!(added["members"].as_array().map(Vec::len), Some(2));
    let (_, read, now_etag) = call(M::GET, &format!("/Groups/{gid}"), None);
    assert_eq!((&read, &now_etag), (&added, &added_etag));
    let (s, _, _) = call(
        M::PATCH,
        &format!("/Groups/{gid}"),
        Some(patch(
            json!([{"op": "Remove", "path": format!("members[value eq \"{grace_id}\"]")}]),
        )),
    );
    assert_eq!(s, 204);
    let (_, v, _) = call(M::GET, &format!("/Groups/{gid}"), None);
    let members: Vec<&str> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(members, vec![ada_id.as_str()]);
    let (s, v, _) = call(
        M::PATCH,
        &format!("/Groups/{gid}"),
        Some(patch(
            json!([{"op": "Add", "path": "members", "value": [{"value": "no-such-user"}]}]),
        )),
    );
    assert_eq!((s, v["scimType"].as_str()), (400, Some("invalidValue")));
    // Members added to, or removed from, a group that does not exist: 404.
    for op in [
        json!([{"op": "Add", "path": "members", "value": [{"value": ada_id}]}]),
        json!([{"op": "Remove", "path": format!("members[value eq \"{ada_id}\"]")}]),
    ] {
        let (s, v, _) = call(M::PATCH, "/Groups/no-such-group", Some(patch(op)));
        assert_eq!((s, v["status"].as_str()), (404, Some("404")), "{v}");
    }
    let (_, v, _) = call(M::GET, &format!("/Users/{ada_id}"), None);
    assert_eq!(v["groups"][0]["display"], "Engineering");

    // The flow carried all of it to the target.
    let journal = dir.path().join("target.jsonl");
    wait_for("the patched user in the target", || {
        let t = TestTarget::read_journal(&journal).ok()?;
        let s = t.state();
        let ada = s
            .users
            .iter()
            .find(|u| u.user.user_name == "ada@contoso.com")?;
        (ada.user.name.given_name.as_deref() == Some("Augusta")
            && ada.user.primary_email() == Some("augusta@contoso.com")
            && t.users_named("grace@contoso.com") == 1)
            .then_some(())
    });
    wait_for("membership in the target", || {
        let t = TestTarget::read_journal(&journal).ok()?;
        let s = t.state();
        let eng = s
            .groups
            .iter()
            .find(|g| g.group.display_name == "Engineering")?;
        (eng.members.len() == 1).then_some(())
    });

    // Soft delete, then hard delete; unknown ids are 404.
    let (s, v, _) = call(
        M::PATCH,
        &format!("/Users/{grace_id}"),
        Some(patch(
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )),
    );
    assert_eq!((s, &v["active"]), (200, &json!(false)));
    let (s, _, _) = call(M::DELETE, &format!("/Users/{ada_id}"), None);
    assert_eq!(s, 204);
    let (s, v, _) = call(M::GET, &format!("/Users/{ada_id}"), None);
    assert_eq!((s, v["status"].as_str()), (404, Some("404")));
    wait_for("deprovisioning in the target", || {
        let t = TestTarget::read_journal(&journal).ok()?;
        let s = t.state();
        let inactive = |name: &str| {
            s.users
                .iter()
                .any(|u| u.user.user_name == name && !u.user.active)
        };
        (inactive("grace@contoso.com") && inactive("ada@contoso.com")).then_some(())
    });

    // Tokens are listed with their last use, and a revoked token stops working: revoked from
    // another process (the CLI), within the 5 s the server takes a verified token on trust.
    let o = run(dir.path(), &["token", "list", "--json"]);
    let tokens: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(tokens[0]["name"], "entra-prod");
    assert!(tokens[0]["last_used_ms"].as_i64().is_some());
    let id = tokens[0]["id"].as_str().unwrap().to_string();
    let revoked = Instant::now();
    assert_eq!(
        run(dir.path(), &["token", "revoke", &id]).status.code(),
        Some(0)
    );
    wait_for("the revoked token to be refused", || {
        let r = http
            .get(format!("{base}/Users"))
            .bearer_auth(&token)
            .send()
            .ok()?;
        (r.status() == 401).then_some(())
    });
    assert!(revoked.elapsed() < Duration::from_secs(7));
}

/// An `idsync serve` whose directory `apps` takes SCIM pushes: idsync's own endpoint as a
/// provisioning target.
#[test]
fn scim_endpoint_can_behave_as_atlassian_cloud() {
    use serde_json::{json, Value};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nscim_rate = 0\n\n[sources.atl]\ntype = \"scim\"\nprofile = \"atlassian-cloud\"\nverified_domains = [\"Example.com\"]\n\n[sources.plain]\ntype = \"scim\"\n"
        ),
    )
    .unwrap();
    let (token, plain_token) = (
        create_token(dir.path(), &["atl"]),
        create_token(dir.path(), &["plain"]),
    );
    let _server = serve(dir.path(), port, &[]);
    let root = format!("http://127.0.0.1:{port}");
    let http = reqwest::blocking::Client::new();
    let call = |method: reqwest::Method, url: String, token: &str, body: Option<Value>| {
        let mut rb = http.request(method, url).bearer_auth(token);
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let v = serde_json::from_str::<Value>(&r.text().unwrap()).unwrap_or(Value::Null);
        (status, v, location)
    };
    let base = format!("{root}/scim/directory/atl");
    let user = |name: &str| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "emails": [{"value": name, "type": "work", "primary": true}], "active": true});
    use reqwest::Method;

    // Atlassian's path, and its locations.
    let (st, v, loc) = call(
        Method::POST,
        format!("{base}/Users"),
        &token,
        Some(user("ada@example.com")),
    );
    assert_eq!(st, 201, "{v}");
    assert!(loc.unwrap().starts_with(&format!("{base}/Users/")));
    // Only verified domains (compared in any case).
    let (st, v, _) = call(
        Method::POST,
        format!("{base}/Users"),
        &token,
        Some(user("eve@elsewhere.org")),
    );
    assert_eq!(
        (st, v["scimType"].as_str()),
        (400, Some("invalidValue")),
        "{v}"
    );
    assert!(
        v["detail"].as_str().unwrap().contains("verified domain"),
        "{v}"
    );

    // Pages of at most 100.
    for i in 0..105 {
        let (st, v, _) = call(
            Method::POST,
            format!("{base}/Users"),
            &token,
            Some(user(&format!("u{i}@EXAMPLE.com"))),
        );
        assert_eq!(st, 201, "{v}");
    }
    let (_, page, _) = call(Method::GET, format!("{base}/Users?count=500"), &token, None);
    assert_eq!(
        (page["totalResults"].as_u64(), page["itemsPerPage"].as_u64()),
        (Some(106), Some(100)),
        "{page}"
    );

    // No group renames; member changes are fine.
    let (st, g, _) = call(
        Method::POST,
        format!("{base}/Groups"),
        &token,
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "jira-users"}),
        ),
    );
    assert_eq!(st, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_string();
    let rename = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "displayName", "value": "jira-people"}]});
    let (st, v, _) = call(
        Method::PATCH,
        format!("{base}/Groups/{gid}"),
        &token,
        Some(rename),
    );
    assert_eq!(
        (st, v["scimType"].as_str()),
        (400, Some("mutability")),
        "{v}"
    );
    let (_, g, _) = call(Method::GET, format!("{base}/Groups/{gid}"), &token, None);
    assert_eq!(g["displayName"], "jira-users");
    let uid = page["Resources"][0]["id"].as_str().unwrap();
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}]});
    let (st, v, _) = call(
        Method::PATCH,
        format!("{base}/Groups/{gid}"),
        &token,
        Some(add),
    );
    assert_eq!(st, 204, "{v}");

    // No bulk, and discovery says so.
    let (st, _, _) = call(
        Method::POST,
        format!("{base}/Bulk"),
        &token,
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": []}),
        ),
    );
    assert_eq!(st, 501);
    let (_, spc, _) = call(
        Method::GET,
        format!("{base}/ServiceProviderConfig"),
        &token,
        None,
    );
    assert_eq!(spc["bulk"]["supported"], false, "{spc}");
    assert_eq!(spc["filter"]["maxResults"], 100, "{spc}");

    // The same directory at /scim/v2 (same data); a generic directory has no Atlassian path.
    let (_, v2, _) = call(
        Method::GET,
        format!("{root}/scim/v2/atl/Groups/{gid}"),
        &token,
        None,
    );
    assert_eq!(v2["members"].as_array().map(Vec::len), Some(1), "{v2}");
    let (st, _, _) = call(
        Method::GET,
        format!("{root}/scim/directory/plain/Users"),
        &plain_token,
        None,
    );
    assert_eq!(st, 404);
    let (st, v, _) = call(
        Method::POST,
        format!("{root}/scim/v2/plain/Users"),
        &plain_token,
        Some(user("eve@elsewhere.org")),
    );
    assert_eq!(st, 201, "a generic directory takes any domain: {v}");
}

/// Provision a file directory into a SCIM service through the real binary: full sync, an
/// incremental change, a membership change, a deprovision, and a reconcile after the service
/// was changed by hand.
fn provision_into(url: &str, token: &str) {
    use serde_json::{json, Value};
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 6);
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!(
            "[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.app]\ntype = \"scim\"\nurl = \"{url}\"\ntoken = \"${{env:IDSYNC_TEST_PEER_TOKEN}}\"\n\n[flows.hr-to-app]\nsource = \"hr\"\ntarget = \"app\"\n"
        ),
    )
    .unwrap();
    let http = reqwest::blocking::Client::new();
    let get = |path: &str| -> Value {
        http.get(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    let user = |name: &str| -> Value {
        let v = get(&format!("/Users?filter=userName%20eq%20%22{name}%22"));
        v["Resources"][0].clone()
    };
    let group_members = |name: &str| -> Vec<String> {
        let v = get(&format!("/Groups?filter=displayName%20eq%20%22{name}%22"));
        let mut m: Vec<String> = v["Resources"][0]["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        m.sort();
        m
    };
    // The token goes to the child alone: tests of other peers run beside this one.
    let sync = |args: &[&str]| {
        let o = idsync()
            .arg("--config")
            .arg(dir.path().join("idsync.toml"))
            .args(args)
            .env("RUST_LOG", "warn")
            .env("IDSYNC_TEST_PEER_TOKEN", token)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).to_string()
    };

    // Full sync: 6 users, 2 groups, nested groups flattened.
    let out = sync(&["sync", "hr-to-app"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(get("/Users")["totalResults"], 6);
    assert_eq!(user("user1@example.com")["name"]["familyName"], "Number 1");
    assert_eq!(group_members("everyone").len(), 6);
    assert_eq!(group_members("engineering").len(), 2);
    assert!(sync(&["sync", "hr-to-app"]).contains("(0 planned"));

    // An incremental change and a membership change.
    let csv = std::fs::read_to_string(dir.path().join("users.csv")).unwrap();
    let csv = csv.replace("User,Number 1,", "Ada,Number 1,").replace(
        "id-000002,user2@example.com,User,Number 2,user2@example.com,Dept 2,g-all",
        "id-000002,user2@example.com,User,Number 2,user2@example.com,Dept 2,g-eng",
    );
    std::fs::write(dir.path().join("users.csv"), &csv).unwrap();
    let out = sync(&["sync", "hr-to-app"]);
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(user("user1@example.com")["name"]["givenName"], "Ada");
    let user2 = user("user2@example.com")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(group_members("engineering").contains(&user2));

    // A deprovision: user5 leaves the source and is disabled in the service.
    let csv: String = csv
        .lines()
        .filter(|l| !l.starts_with("id-000005"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("users.csv"), csv).unwrap();
    sync(&["sync", "hr-to-app"]);
    assert_eq!(user("user5@example.com")["active"], json!(false));
    let user5 = user("user5@example.com")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!group_members("everyone").contains(&user5));

    // By hand in the service: a name changed, a user deleted. A plain sync trusts the ledger;
    // a reconcile (--full) repairs both.
    let u1 = user("user1@example.com")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http
        .patch(format!("{url}/Users/{u1}"))
        .bearer_auth(token)
        .header("Content-Type", "application/scim+json")
        .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "displayName", "value": "Edited by hand"}]}).to_string())
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let u3 = user("user3@example.com")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(http
        .delete(format!("{url}/Users/{u3}"))
        .bearer_auth(token)
        .send()
        .unwrap()
        .status()
        .is_success());
    assert!(sync(&["sync", "hr-to-app"]).contains("(0 planned"));
    let out = sync(&["sync", "hr-to-app", "--full"]);
    assert!(out.contains("succeeded"), "{out}");
    assert!(user("user1@example.com")
        .get("displayName")
        .is_none_or(|d| d != "Edited by hand"));
    assert!(
        user("user3@example.com")["id"].is_string(),
        "the deleted user was created again"
    );
    let again = sync(&["plan", "hr-to-app", "--full"]);
    assert!(
        again.contains("nothing to do"),
        "a second reconcile finds nothing: {again}"
    );
}

#[test]
fn provisions_scim2_server() {
    let peer = idsync_connectors::testkit::peers::scim2_server("peer-token").unwrap();
    provision_into(&peer.url, "peer-token");
}

#[test]
fn provisions_idsyncs_own_scim_endpoint_and_passes_the_kit() {
    let (_server, _dir, url, token) = idsync_scim_peer();
    provision_into(&url, &token);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = idsync_connectors::targets::scim::ScimTarget::new(
        idsync_connectors::targets::scim::ScimTargetConfig::new(
            &url,
            &token,
            idsync_connectors::targets::scim::Profile::Generic,
        ),
    )
    .unwrap();
    let results = rt.block_on(idsync_connectors::testkit::run_all(&t, "own"));
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn scim_bulk_resolves_bulk_ids_and_honours_fail_on_errors() {
    use serde_json::{json, Value};
    let (_server, _dir, url, token) = idsync_scim_peer();
    let http = reqwest::blocking::Client::new();
    let bulk = |body: Value| -> Value {
        let r = http
            .post(format!("{url}/Bulk"))
            .bearer_auth(&token)
            .header("Content-Type", "application/scim+json")
            .body(body.to_string())
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    };
    let user = |name: &str| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
    // The group comes first but names users created later in the same request.
    let v = bulk(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Bulk", "members": [{"type": "User", "value": "bulkId:a"}, {"type": "User", "value": "bulkId:b"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": user("bulk-a")},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": user("bulk-b")},
            {"method": "POST", "path": "/Users", "bulkId": "dup", "data": user("BULK-A")},
            {"method": "PATCH", "path": "/Users/bulkId:a", "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "title", "value": "Bulk test"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "x", "data": {"schemas": [], "userName": "bulk-x", "manager": "bulkId:nobody"}}
        ]
    }));
    let ops = v["Operations"].as_array().unwrap();
    let status = |bulk_id: &str| {
        ops.iter()
            .find(|o| o["bulkId"] == bulk_id)
            .map(|o| o["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("a").as_deref(), Some("201"));
    assert_eq!(status("g").as_deref(), Some("201"));
    assert_eq!(status("dup").as_deref(), Some("409"));
    assert_eq!(
        status("x").as_deref(),
        Some("409"),
        "a reference to no operation fails"
    );
    assert!(ops
        .iter()
        .any(|o| o["method"] == "PATCH" && o["status"] == "200"));
    let group: Value = http
        .get(
            ops.iter().find(|o| o["bulkId"] == "g").unwrap()["location"]
                .as_str()
                .unwrap(),
        )
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(group["members"].as_array().unwrap().len(), 2);
    let a: Value = http
        .get(format!("{url}/Users?filter=userName%20eq%20%22bulk-a%22"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(a["Resources"][0]["title"], "Bulk test");

    // failOnErrors: 1 stops at the first error.
    let v = bulk(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "failOnErrors": 1,
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "d", "data": user("bulk-b")},
            {"method": "POST", "path": "/Users", "bulkId": "e", "data": user("bulk-e")}
        ]
    }));
    assert_eq!(v["Operations"].as_array().unwrap().len(), 1);
    let e: Value = http
        .get(format!("{url}/Users?filter=userName%20eq%20%22bulk-e%22"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(e["totalResults"], 0);
}
