//! The SCIM endpoint's semantics through the binary (issue 15, items 1, 2, 3 and 6): every
//! attribute of RFC 7643 §4.1/§4.2 (Microsoft's own example create body among them), a
//! group's `meta.lastModified` moving with its members, the cap on PATCH operations and
//! `/healthz` answering while large PATCHes run, and strict typing.

use super::{create_token, free_port, idsync, wait_for, Server};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// `idsync serve` with a SCIM source directory `entra` and a token for it.
struct Scim {
    _server: Server,
    base: String,
    root: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Scim {
    fn start(dir: &Path, env: &[(&str, &str)]) -> Scim {
        let port = free_port();
        std::fs::write(
            dir.join("idsync.toml"),
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[sources.entra]\ntype = \"scim\"\n\n[targets.app]\ntype = \"test\"\njournal = \"target.jsonl\"\n\n[flows.entra-to-app]\nsource = \"entra\"\ntarget = \"app\"\n"
            ),
        )
        .unwrap();
        let token = create_token(dir, &["entra"]);
        // As `serve` starts it, with the tracing output (stderr) kept in a file too.
        let mut cmd = idsync();
        cmd.arg("--config")
            .arg(dir.join("idsync.toml"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "warn")
            .stdout(std::fs::File::create(dir.join("serve.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("serve.err")).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let server = Server(cmd.spawn().unwrap(), Some(dir.join("serve.err")));
        let probe = reqwest::blocking::Client::new();
        wait_for("healthz", || {
            probe
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        });
        Scim {
            _server: server,
            base: format!("http://127.0.0.1:{port}/scim/v2/entra"),
            root: format!("http://127.0.0.1:{port}"),
            token,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        let r = rb.send().unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None)
    }
    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body))
    }
    fn patch(&self, path: &str, ops: Value) -> (u16, Value) {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        self.call(reqwest::Method::PATCH, path, Some(&body))
    }
}

/// A SCIM error body (RFC 7644 §3.12) with this status and scimType.
fn assert_scim_error(v: &Value, status: u16, scim_type: Option<&str>) {
    assert_eq!(
        v["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
        "{v}"
    );
    assert_eq!(v["status"], status.to_string(), "{v}");
    assert_eq!(v["scimType"].as_str(), scim_type, "{v}");
}

/// Everything the directory's database files hold, as text (lossy).
fn database_bytes(dir: &Path) -> String {
    let mut all = Vec::new();
    for name in ["idsync.db", "idsync.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            all.extend(b);
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn scim_takes_every_rfc_7643_user_attribute_and_microsofts_example() {
    let dir = tempfile::tempdir().unwrap();
    // Debug tracing on: the password must not reach the log either.
    let scim = Scim::start(dir.path(), &[("RUST_LOG", "debug")]);

    // Microsoft's example create request from "Tutorial: Develop and plan provisioning for a
    // SCIM endpoint in Microsoft Entra ID" (User Operations, Create User): it carries "roles": [].
    let (s, v) = scim.post(
        "/Users",
        &json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
            "active": true,
            "emails": [{
                "primary": true,
                "type": "work",
                "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
            }],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": []
        }),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["externalId"], "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef");

    // Every attribute of the core User schema and the enterprise extension.
    let password = "Pa55-w0rd-that-must-not-be-kept";
    let sent = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": "bjensen@example.com",
        "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara",
                 "middleName": "Jane", "honorificPrefix": "Ms.", "honorificSuffix": "III"},
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "profileUrl": "https://login.example.com/bjensen",
        "title": "Tour Guide",
        "userType": "Employee",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "active": true,
        "password": password,
        "emails": [{"value": "bjensen@example.com", "display": "Babs at work", "type": "work", "primary": true}],
        "phoneNumbers": [{"value": "555-555-5555", "display": "desk", "type": "work", "primary": false}],
        "ims": [{"value": "someaimhandle", "type": "aim", "primary": false}],
        "photos": [{"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo", "primary": false}],
        "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
                       "region": "CA", "postalCode": "91608", "country": "USA", "primary": true}],
        "entitlements": [{"value": "Desk A", "display": "A desk", "primary": false}],
        "roles": [{"value": "Tour guide", "type": "job", "primary": true}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx", "primary": false}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios",
            "division": "Theme Park", "department": "Tour Operations",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
        }
    });
    let (s, created) = scim.post("/Users", &sent);
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (s, got) = scim.get(&format!("/Users/{id}"));
    assert_eq!(s, 200);
    for (k, v) in sent.as_object().unwrap() {
        match k.as_str() {
            "schemas" | "password" => {}
            k if k.starts_with("urn:") => {
                for (k2, v2) in v.as_object().unwrap() {
                    if k2 == "manager" {
                        assert_eq!(got[k][k2]["value"], v2["value"], "{k2}");
                    } else {
                        assert_eq!(&got[k][k2], v2, "{k2}");
                    }
                }
            }
            _ => assert_eq!(&got[k], v, "{k}"),
        }
    }
    assert!(got.get("password").is_none(), "{got}");
    assert!(!created.to_string().contains(password));

    // PATCH and PUT reach them; filters see them.
    let (s, v) = scim.patch(
        &format!("/Users/{id}"),
        json!([
            {"op": "add", "path": "roles", "value": [{"value": "Night guide", "type": "job"}]},
            {"op": "replace", "path": "entitlements[value eq \"Desk A\"].display", "value": "The corner desk"},
            {"op": "replace", "path": "profileUrl", "value": "https://login.example.com/babs"},
            {"op": "remove", "path": "x509Certificates"},
            {"op": "replace", "path": "password", "value": password}
        ]),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["roles"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["entitlements"][0]["display"], "The corner desk");
    assert_eq!(v["profileUrl"], "https://login.example.com/babs");
    assert!(v.get("x509Certificates").is_none() && v.get("password").is_none());
    let (s, v) =
        scim.get("/Users?filter=roles.value+eq+%22Night+guide%22+and+ims.type+eq+%22aim%22");
    assert_eq!((s, v["totalResults"].as_i64()), (200, Some(1)), "{v}");
    let mut put = sent.clone();
    put["nickName"] = json!("B.");
    put["photos"] = json!([]);
    let (s, v) = scim.call(reqwest::Method::PUT, &format!("/Users/{id}"), Some(&put));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["nickName"], "B.");
    assert!(v.get("photos").is_none(), "{v}");
    assert_eq!(v["roles"], sent["roles"], "PUT replaces");

    // /Schemas lists them, password write-only and never returned.
    let (_, v) = scim.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User");
    let attrs = v["attributes"].as_array().unwrap();
    for a in [
        "profileUrl",
        "password",
        "ims",
        "photos",
        "entitlements",
        "roles",
        "x509Certificates",
        "nickName",
        "locale",
        "timezone",
        "preferredLanguage",
        "userType",
        "addresses",
        "phoneNumbers",
    ] {
        assert!(attrs.iter().any(|x| x["name"] == a), "{a} not in /Schemas");
    }
    // With every sub-attribute of RFC 7643 §8.7.1.
    for (a, subs) in [
        ("emails", &["value", "display", "type", "primary"][..]),
        ("phoneNumbers", &["value", "display", "type", "primary"][..]),
        ("ims", &["value", "display", "type", "primary"][..]),
        ("photos", &["value", "display", "type", "primary"][..]),
    ] {
        let attr = attrs.iter().find(|x| x["name"] == a).unwrap();
        for sub in subs {
            assert!(
                attr["subAttributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x["name"] == *sub),
                "{a}.{sub} not in /Schemas"
            );
        }
    }
    let pw = attrs.iter().find(|x| x["name"] == "password").unwrap();
    assert_eq!(
        (pw["mutability"].as_str(), pw["returned"].as_str()),
        (Some("writeOnly"), Some("never"))
    );

    // The password is in no response, the database (users, change log) or the log.
    assert!(
        !database_bytes(dir.path()).contains(password),
        "the password reached the database"
    );
    let log = std::fs::read_to_string(dir.path().join("serve.err")).unwrap();
    assert!(!log.contains(password), "the password reached the log");
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "debug tracing was on"
    );
}

#[test]
fn a_groups_last_modified_moves_with_its_members() {
    let dir = tempfile::tempdir().unwrap();
    let scim = Scim::start(dir.path(), &[]);
    let (_, u) = scim.post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@example.com"}));
    let uid = u["id"].as_str().unwrap().to_string();
    let (s, g) = scim.post(
        "/Groups",
        &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "eng"}),
    );
    assert_eq!(s, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_string();
    let mut last = g["meta"]["lastModified"].as_str().unwrap().to_string();
    let changes = [
        // What Entra sends: member-only PATCHes, answered 204 without reading the group.
        json!([{"op": "Add", "path": "members", "value": [{"value": uid}]}]),
        json!([{"op": "Remove", "path": "members", "value": [{"value": uid}]}]),
        json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]),
        json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]),
    ];
    for ops in changes {
        // The next change happens at a later millisecond than the last stamp.
        let stamp =
            time::OffsetDateTime::parse(&last, &time::format_description::well_known::Rfc3339)
                .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while time::OffsetDateTime::now_utc() <= stamp + Duration::from_millis(2) {
            assert!(Instant::now() < deadline, "the clock does not move");
            std::thread::yield_now();
        }
        let (s, v) = scim.patch(&format!("/Groups/{gid}"), ops.clone());
        assert!(s == 204 || s == 200, "{ops}: {s} {v}");
        let (_, now) = scim.get(&format!("/Groups/{gid}"));
        let moved = now["meta"]["lastModified"].as_str().unwrap().to_string();
        assert_ne!(moved, last, "{ops}: meta.lastModified did not move");
        // A client asking for what changed since finds the group.
        let q = format!(
            "/Groups?filter=meta.lastModified+gt+%22{}%22",
            last.replace('+', "%2B")
        );
        let (s, found) = scim.get(&q);
        assert_eq!(s, 200, "{found}");
        assert_eq!(found["totalResults"], 1, "{ops}: {found}");
        assert_eq!(found["Resources"][0]["id"], gid.as_str());
        last = moved;
    }
    // A PUT that changes only the members moves it too.
    let stamp =
        time::OffsetDateTime::parse(&last, &time::format_description::well_known::Rfc3339).unwrap();
    while time::OffsetDateTime::now_utc() <= stamp + Duration::from_millis(2) {
        std::thread::yield_now();
    }
    let (s, v) = scim.call(
        reqwest::Method::PUT,
        &format!("/Groups/{gid}"),
        Some(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "eng", "members": [{"value": uid}]})),
    );
    assert_eq!(s, 200, "{v}");
    assert_ne!(v["meta"]["lastModified"].as_str().unwrap(), last, "{v}");
    let (_, now) = scim.get(&format!("/Groups/{gid}"));
    assert_eq!(
        now["meta"]["lastModified"], v["meta"]["lastModified"],
        "served as written"
    );
    // Deleting a member takes it out of the group: that moves it too.
    let last = now["meta"]["lastModified"].as_str().unwrap().to_string();
    let stamp =
        time::OffsetDateTime::parse(&last, &time::format_description::well_known::Rfc3339).unwrap();
    while time::OffsetDateTime::now_utc() <= stamp + Duration::from_millis(2) {
        std::thread::yield_now();
    }
    let (s, _) = scim.call(reqwest::Method::DELETE, &format!("/Users/{uid}"), None);
    assert_eq!(s, 204);
    let (_, after) = scim.get(&format!("/Groups/{gid}"));
    assert!(
        after
            .get("members")
            .is_none_or(|m| m.as_array().is_some_and(Vec::is_empty)),
        "{after}"
    );
    assert_ne!(
        after["meta"]["lastModified"].as_str().unwrap(),
        last,
        "{after}"
    );
}

#[test]
fn a_patch_over_the_cap_is_refused_and_large_patches_do_not_stall_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let scim = Scim::start(dir.path(), &[]);
    let (_, u) = scim.post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@example.com"}));
    let uid = u["id"].as_str().unwrap().to_string();
    let adds = |n: usize, tag: &str| -> Value {
        (0..n)
            .map(|i| json!({"op": "add", "path": "emails", "value": [{"value": format!("{tag}{i}@x.io")}]}))
            .collect()
    };
    // One operation over the documented maximum: 413 with a SCIM error, nothing changed.
    let (s, v) = scim.patch(&format!("/Users/{uid}"), adds(1001, "c"));
    assert_eq!(s, 413, "{v}");
    assert_scim_error(&v, 413, None);
    assert!(v["detail"].as_str().unwrap().contains("1000"), "{v}");
    // At the maximum, applied.
    let (s, v) = scim.patch(&format!("/Users/{uid}"), adds(1000, "m"));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["emails"].as_array().unwrap().len(), 1000);

    // Four clients send 20,000 operations each (what took 13 s each, and stalled the
    // server, when the work was quadratic and on the runtime's threads) while /healthz is
    // asked: every answer comes within its deadline.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|n| {
            let (base, token, uid, done) = (scim.base.clone(), scim.token.clone(), uid.clone(), done.clone());
            let ops = adds(20_000, &format!("h{n}-"));
            std::thread::spawn(move || {
                let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
                let r = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .unwrap()
                    .patch(format!("{base}/Users/{uid}"))
                    .bearer_auth(token)
                    .header("Content-Type", "application/scim+json")
                    .body(body.to_string())
                    .send();
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                r.map(|r| {
                    let status = r.status().as_u16();
                    (status, r.json::<Value>().unwrap_or(Value::Null))
                })
            })
        })
        .collect();
    let health = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut asked = 0;
    while done.load(std::sync::atomic::Ordering::SeqCst) < 4 || asked < 3 {
        let r = health.get(format!("{}/healthz", scim.root)).send();
        assert!(
            r.as_ref().is_ok_and(|r| r.status().is_success()),
            "/healthz did not answer within 3 s while large PATCHes ran: {r:?}"
        );
        asked += 1;
    }
    for s in senders {
        let (status, v) = s.join().unwrap().expect("the PATCH got an answer");
        assert_eq!(status, 413, "{v}");
        assert_scim_error(&v, 413, None);
    }
}

#[test]
fn scim_refuses_values_of_the_wrong_type_and_what_is_not_a_search_request() {
    let dir = tempfile::tempdir().unwrap();
    let scim = Scim::start(dir.path(), &[]);
    let user = |extra: Value| {
        let mut b = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "ada@example.com"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for bad in [
        json!({"userName": 12345}),
        json!({"emails": "a@b.c"}),
        json!({"emails": ["a@b.c"]}),
        json!({"active": "yes"}),
        json!({"displayName": {"text": "Ada"}}),
        json!({"name": "Ada Lovelace"}),
        json!({"roles": "admin"}),
        json!({"schemas": "urn:ietf:params:scim:schemas:core:2.0:User"}),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "eng"}),
        json!({"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": 7}}),
    ] {
        let (s, v) = scim.post("/Users", &user(bad.clone()));
        assert_eq!(s, 400, "{bad}: {v}");
        assert_scim_error(&v, 400, Some("invalidValue"));
    }
    let (_, v) = scim.get("/Users");
    assert_eq!(v["totalResults"], 0, "nothing was stored: {v}");

    // What Entra really sends is taken: booleans as strings, in any case.
    let (s, u) = scim.post("/Users", &user(json!({"active": "True", "emails": [{"value": "ada@example.com", "primary": "true", "type": "work"}]})));
    assert_eq!(s, 201, "{u}");
    let uid = u["id"].as_str().unwrap().to_string();
    let (s, v) = scim.patch(
        &format!("/Users/{uid}"),
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    );
    assert_eq!((s, &v["active"]), (200, &json!(false)), "{v}");
    let (s, v) = scim.patch(
        &format!("/Users/{uid}"),
        json!([{"op": "Replace", "value": {"active": "True"}}]),
    );
    assert_eq!((s, &v["active"]), (200, &json!(true)), "{v}");
    // In PATCH values, the same class is refused.
    for ops in [
        json!([{"op": "replace", "path": "userName", "value": 12345}]),
        json!([{"op": "replace", "path": "active", "value": "yes"}]),
        json!([{"op": "add", "path": "emails", "value": "b@c.d"}]),
        json!([{"op": "replace", "value": {"title": ["x"]}}]),
    ] {
        let (s, v) = scim.patch(&format!("/Users/{uid}"), ops.clone());
        assert_eq!(s, 400, "{ops}: {v}");
        assert_scim_error(&v, 400, Some("invalidValue"));
    }
    let (_, v) = scim.get(&format!("/Users/{uid}"));
    assert_eq!(
        (v["userName"].as_str(), v["active"].as_bool()),
        (Some("ada@example.com"), Some(true)),
        "{v}"
    );

    // POST .search takes a SearchRequest and nothing else.
    let (_, _) = scim.post("/Users", &user(json!({"userName": "bob@example.com"})));
    let search = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    for (body, scim_type) in [
        (json!({}), "invalidSyntax"),
        (
            json!({"filter": "userName eq \"bob@example.com\""}),
            "invalidSyntax",
        ),
        (
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "filter": "userName pr"}),
            "invalidSyntax",
        ),
        (
            json!({"schemas": search, "filter": "userName pr"}),
            "invalidSyntax",
        ),
        (
            json!({"schemas": [search], "filters": "userName eq \"bob@example.com\""}),
            "invalidSyntax",
        ),
        (json!([1, 2]), "invalidSyntax"),
        (json!({"schemas": [search], "filter": 5}), "invalidValue"),
        (json!({"schemas": [search], "count": "ten"}), "invalidValue"),
        (
            json!({"schemas": [search], "startIndex": 1.5}),
            "invalidValue",
        ),
        (
            json!({"schemas": [search], "attributes": [1]}),
            "invalidValue",
        ),
        (
            json!({"schemas": [search], "sortOrder": "sideways"}),
            "invalidValue",
        ),
    ] {
        for path in ["/.search", "/Users/.search"] {
            let (s, v) = scim.post(path, &body);
            assert_eq!(s, 400, "{path} {body}: {v}");
            assert_scim_error(&v, 400, Some(scim_type));
        }
    }
    let (s, v) = scim.post(
        "/Users/.search",
        &json!({"schemas": [search], "filter": "userName eq \"bob@example.com\"", "attributes": ["userName"], "count": 10}),
    );
    assert_eq!((s, v["totalResults"].as_i64()), (200, Some(1)), "{v}");
    assert_eq!(v["Resources"][0]["userName"], "bob@example.com");
    // The same class on a list's parameters and a bulk request.
    let (s, v) = scim.get("/Users?sortBy=userName&sortOrder=sideways");
    assert_eq!(s, 400, "{v}");
    assert_scim_error(&v, 400, Some("invalidValue"));
    let (s, v) = scim.post(
        "/Bulk",
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "failOnErrors": "one",
                "Operations": [{"method": "POST", "path": "/Users", "bulkId": "c", "data": {"userName": "carol@example.com"}}]}),
    );
    assert_eq!(s, 400, "{v}");
    assert_scim_error(&v, 400, Some("invalidValue"));
    let (_, v) = scim.get("/Users?filter=userName+eq+%22carol@example.com%22");
    assert_eq!(
        v["totalResults"], 0,
        "the refused bulk request created nothing: {v}"
    );
}
