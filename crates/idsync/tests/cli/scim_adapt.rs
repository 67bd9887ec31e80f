//! Issue 16, items 2 to 4: the SCIM target adapts to services that are not fully compliant.
//! The services are idsync's own SCIM endpoint behind a small HTTP relay that adds one quirk
//! (PATCH answered 501 although `/ServiceProviderConfig` says it is supported, ...), so that
//! each behaviour has a fast deterministic test through the binary.

use super::{idsync_scim_peer, text, write_people_csv};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// What the relay does to requests before (or instead of) passing them on.
#[derive(Clone, Copy, Default)]
pub(super) struct Quirks {
    /// PATCH is answered with this status and never reaches the service.
    pub(super) refuse_patch: Option<u16>,
    /// A PATCH whose operations filter members by value (`members[value eq "id"]`) is refused
    /// with 400 invalidPath, as services that take value lists only do.
    pub(super) refuse_member_filters: bool,
    /// Requests to users are refused (400 invalidValue) when they carry `primary` (of emails)
    /// and, for a POST or PUT, when they lack `name.formatted`: a service with stricter rules.
    pub(super) strict_users: bool,
    /// Requests to users that carry `department` are refused (400 naming it), and so is a
    /// PATCH without operations (RFC 7644 requires at least one).
    pub(super) refuse_department: bool,
    /// These user attributes (`title`, `department`, `emails.type`) are taken out of what
    /// users are sent (a service with no place for them): never stored, so never given back.
    pub(super) drops: &'static [&'static str],
}

/// An HTTP relay on a free loopback port in front of a real SCIM service. Stopped on drop.
pub(super) struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    /// Requests seen by method.
    patches: Arc<AtomicUsize>,
    puts: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    pub(super) fn start(upstream: &str, quirks: Quirks) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let (patches, puts) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let upstream = upstream.to_string();
        let thread = {
            let (stop, patches, puts) = (stop.clone(), patches.clone(), puts.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let (upstream, patches, puts) =
                        (upstream.clone(), patches.clone(), puts.clone());
                    std::thread::spawn(move || {
                        relay_one(conn, &upstream, quirks, &patches, &puts);
                    });
                }
            })
        };
        Relay {
            port,
            stop,
            patches,
            puts,
            thread: Some(thread),
        }
    }

    /// The URL of the relayed service's `path` (the service's own URL path).
    pub(super) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request: read it, answer it (refused, or as the service answers), close.
fn relay_one(
    mut conn: TcpStream,
    upstream: &str,
    quirks: Quirks,
    patches: &AtomicUsize,
    puts: &AtomicUsize,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            if k == "content-length" {
                length = v.parse().unwrap();
            }
            headers.push((k, v));
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    if !quirks.drops.is_empty() && path.contains("/Users") && method != "GET" {
        body = without(&body, quirks.drops);
    }
    let strict = (quirks.strict_users || quirks.refuse_department)
        .then(|| strict_refusal(quirks, &method, &path, &body))
        .flatten();
    let (status, answer) = match method.as_str() {
        _ if strict.is_some() => (400, strict.unwrap_or_default().into_bytes()),
        "PATCH"
            if quirks.refuse_member_filters
                && String::from_utf8_lossy(&body).contains("members[value eq") =>
        {
            patches.fetch_add(1, Ordering::SeqCst);
            (
                400,
                br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidPath","detail":"filters in paths are not supported"}"#.to_vec(),
            )
        }
        "PATCH" => {
            patches.fetch_add(1, Ordering::SeqCst);
            match quirks.refuse_patch {
                Some(code) => (
                    code,
                    format!(
                        r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"{code}","detail":"PATCH is not supported by this service"}}"#
                    )
                    .into_bytes(),
                ),
                None => forward(upstream, &method, &path, &headers, body),
            }
        }
        m => {
            if m == "PUT" {
                puts.fetch_add(1, Ordering::SeqCst);
            }
            forward(upstream, &method, &path, &headers, body)
        }
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.len()
    );
    let _ = conn.write_all(&answer);
    let _ = conn.flush();
}

/// A request body to users without the attributes in `drops` (nor PATCH operations setting
/// them): top-level and enterprise attributes by name, sub-attributes as `emails.type`.
fn without(body: &[u8], drops: &[&str]) -> Vec<u8> {
    fn strip(v: &mut Value, drops: &[&str]) {
        let Some(o) = v.as_object_mut() else { return };
        for d in drops {
            match d.split_once('.') {
                None => {
                    o.remove(*d);
                    for (k, ext) in o.iter_mut() {
                        if k.starts_with("urn:") {
                            if let Some(ext) = ext.as_object_mut() {
                                ext.remove(*d);
                            }
                        }
                    }
                }
                Some((head, sub)) => match o.get_mut(head) {
                    Some(Value::Array(items)) => {
                        for i in items.iter_mut().filter_map(Value::as_object_mut) {
                            i.remove(sub);
                        }
                    }
                    Some(Value::Object(inner)) => {
                        inner.remove(sub);
                    }
                    _ => {}
                },
            }
        }
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    strip(&mut v, drops);
    if let Some(ops) = v.get_mut("Operations").and_then(Value::as_array_mut) {
        let dropped = |p: &str| {
            drops
                .iter()
                .any(|d| p == *d || p.ends_with(&format!(":{d}")))
        };
        ops.retain(|op| !op.get("path").and_then(Value::as_str).is_some_and(dropped));
        for op in ops.iter_mut() {
            let path = op.get("path").and_then(Value::as_str).map(str::to_string);
            let Some(value) = op.get_mut("value") else {
                continue;
            };
            match path {
                // A value list (`emails`): its elements lose the dropped sub-attributes.
                Some(p) => {
                    let mut wrapped = serde_json::json!({ p.clone(): value.clone() });
                    strip(&mut wrapped, drops);
                    if let Some(w) = wrapped.get(&p) {
                        *value = w.clone();
                    }
                }
                None => strip(value, drops),
            }
        }
    }
    v.to_string().into_bytes()
}

/// What a service with stricter rules answers a request to users it refuses (`strict_users`).
fn strict_refusal(quirks: Quirks, method: &str, path: &str, body: &[u8]) -> Option<String> {
    if !path.contains("/Users") || !["POST", "PUT", "PATCH"].contains(&method) {
        return None;
    }
    let body = String::from_utf8_lossy(body);
    let detail = if quirks.refuse_department && body.contains("department") {
        "Attribute department is not supported"
    } else if quirks.refuse_department && body.contains("\"Operations\":[]") {
        "Operations must not be empty"
    } else if !quirks.strict_users {
        return None;
    } else if body.contains("\"primary\"") {
        "Attribute emails.primary is not supported"
    } else if method != "PATCH" && !body.contains("\"formatted\"") {
        "Attribute name.formatted is required"
    } else {
        return None;
    };
    Some(format!(
        r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidValue","detail":"{detail}"}}"#
    ))
}

fn forward(
    upstream: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let client = reqwest::blocking::Client::new();
    let mut rb = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{upstream}{path}"),
    );
    for (k, v) in headers {
        if k == "authorization" || k == "content-type" || k == "accept" {
            rb = rb.header(k.as_str(), v.as_str());
        }
    }
    let r = rb.body(body).send().unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().unwrap().to_vec())
}

/// A file-directory flow into the SCIM service at `url` (token in IDSYNC_TEST_ADAPT_TOKEN).
fn flow_into(dir: &Path, url: &str, n: usize) {
    write_people_csv(dir, n);
    std::fs::write(
        dir.join("idsync.toml"),
        format!(
            "[store]\npath = \"idsync.db\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.app]\ntype = \"scim\"\nurl = \"{url}\"\ntoken = \"${{env:IDSYNC_TEST_ADAPT_TOKEN}}\"\n\n[flows.hr-to-app]\nsource = \"hr\"\ntarget = \"app\"\n"
        ),
    )
    .unwrap();
}

fn sync(dir: &Path, token: &str) -> (String, String) {
    let o = super::idsync()
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(["sync", "hr-to-app"])
        .env("RUST_LOG", "warn")
        .env("IDSYNC_TEST_ADAPT_TOKEN", token)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

fn edit_users(dir: &Path, f: impl FnOnce(String) -> String) {
    let csv = std::fs::read_to_string(dir.join("users.csv")).unwrap();
    std::fs::write(dir.join("users.csv"), f(csv)).unwrap();
}

/// Item 2: a service that says it takes PATCH and answers it 501 (then one answering 405):
/// member additions, user and group updates and member removals are sent again with PUT of the
/// whole resource, the run succeeds, the run log says which form was learned, and later runs
/// (new processes) start with PUT and send no PATCH at all.
#[test]
fn patch_refused_at_run_time_falls_back_to_put_and_is_remembered() {
    for code in [501u16, 405] {
        let (_server, _peer_dir, url, token) = idsync_scim_peer();
        let base = url.trim_start_matches("http://");
        let (host, scim_path) = base.split_at(base.find('/').unwrap());
        let relay = Relay::start(
            &format!("http://{host}"),
            Quirks {
                refuse_patch: Some(code),
                ..Quirks::default()
            },
        );
        let http = reqwest::blocking::Client::new();
        let get = |path: &str| -> Value {
            http.get(format!("{url}{path}"))
                .bearer_auth(&token)
                .send()
                .unwrap()
                .json()
                .unwrap()
        };
        let members = |name: &str| -> usize {
            get(&format!("/Groups?filter=displayName%20eq%20%22{name}%22"))["Resources"][0]
                ["members"]
                .as_array()
                .map_or(0, Vec::len)
        };
        let dir = tempfile::tempdir().unwrap();
        flow_into(dir.path(), &relay.url(scim_path), 6);
        // The members follow each group's POST in a PATCH (not in the POST, the default), so
        // that the full sync meets the refused PATCH.
        let config = std::fs::read_to_string(dir.path().join("idsync.toml")).unwrap();
        std::fs::write(
            dir.path().join("idsync.toml"),
            config.replace(
                "IDSYNC_TEST_ADAPT_TOKEN}\"\n",
                "IDSYNC_TEST_ADAPT_TOKEN}\"\nmembers_in_create = false\n",
            ),
        )
        .unwrap();

        // Full sync: the groups' members are added with PUT after the first PATCH is refused.
        let (out, err) = sync(dir.path(), &token);
        assert!(out.contains("succeeded"), "{out}{err}");
        assert_eq!(members("everyone"), 6, "{err}");
        assert_eq!(members("engineering"), 2, "{err}");
        assert!(
            err.contains("target request form learned")
                && err.contains("add-members is sent as put")
                && err.contains(&format!("HTTP {code}")),
            "the run log says what was learned and why: {err}"
        );

        // A user's name changes and user0 leaves engineering: an update and a removal.
        edit_users(dir.path(), |csv| {
            csv.replace("User,Number 1,", "Ada,Number 1,").replace(
                "user0@example.com,Dept 0,g-eng",
                "user0@example.com,Dept 0,g-all",
            )
        });
        let (out, err) = sync(dir.path(), &token);
        assert!(out.contains("succeeded"), "{out}{err}");
        let u1 = get("/Users?filter=userName%20eq%20%22user1@example.com%22");
        assert_eq!(u1["Resources"][0]["name"]["givenName"], "Ada", "{err}");
        assert_eq!(members("engineering"), 1, "{err}");
        assert_eq!(members("everyone"), 6, "{err}");
        for kind in ["update-user", "remove-members"] {
            assert!(
                err.contains(&format!("{kind} is sent as put")),
                "{kind} learned: {err}"
            );
        }
        assert!(
            !err.contains("add-members is sent as put"),
            "what was remembered is not learned again: {err}"
        );

        // Later runs start with what was learned: no PATCH is tried at all.
        let patches_before = relay.patches.load(Ordering::SeqCst);
        let puts_before = relay.puts.load(Ordering::SeqCst);
        edit_users(dir.path(), |csv| {
            csv.replace("Ada,Number 1,", "Grace,Number 1,").replace(
                "user0@example.com,Dept 0,g-all",
                "user0@example.com,Dept 0,g-eng",
            )
        });
        let (out, err) = sync(dir.path(), &token);
        assert!(out.contains("succeeded"), "{out}{err}");
        let u1 = get("/Users?filter=userName%20eq%20%22user1@example.com%22");
        assert_eq!(u1["Resources"][0]["name"]["givenName"], "Grace");
        assert_eq!(members("engineering"), 2);
        assert_eq!(
            relay.patches.load(Ordering::SeqCst),
            patches_before,
            "no PATCH once PUT was learned: {err}"
        );
        assert!(relay.puts.load(Ordering::SeqCst) > puts_before);
        assert!(!err.contains("form learned"), "nothing new learned: {err}");
        let (out, _) = sync(dir.path(), &token);
        assert!(out.contains("(0 planned"), "converged: {out}");
    }
}

/// Item 2: a service that refuses a member removal by path filter (400 invalidPath) gets it as
/// a PATCH with a value list, learned once and remembered; PATCH stays in use for the rest.
#[test]
fn member_filter_refused_falls_back_to_a_value_list_and_is_remembered() {
    let (_server, _peer_dir, url, token) = idsync_scim_peer();
    let base = url.trim_start_matches("http://");
    let (host, scim_path) = base.split_at(base.find('/').unwrap());
    let relay = Relay::start(
        &format!("http://{host}"),
        Quirks {
            refuse_member_filters: true,
            ..Quirks::default()
        },
    );
    let http = reqwest::blocking::Client::new();
    let members = |name: &str| -> usize {
        let v: Value = http
            .get(format!(
                "{url}/Groups?filter=displayName%20eq%20%22{name}%22"
            ))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["Resources"][0]["members"].as_array().map_or(0, Vec::len)
    };
    let dir = tempfile::tempdir().unwrap();
    flow_into(dir.path(), &relay.url(scim_path), 9);
    let (out, err) = sync(dir.path(), &token);
    assert!(out.contains("succeeded"), "{out}{err}");
    assert_eq!(members("engineering"), 3);

    edit_users(dir.path(), |csv| {
        csv.replace(
            "user0@example.com,Dept 0,g-eng",
            "user0@example.com,Dept 0,g-all",
        )
    });
    let (out, err) = sync(dir.path(), &token);
    assert!(out.contains("succeeded"), "{out}{err}");
    assert_eq!(members("engineering"), 2, "{err}");
    assert!(
        err.contains("remove-members is sent as patch-value") && err.contains("invalidPath"),
        "{err}"
    );
    assert_eq!(
        relay.puts.load(Ordering::SeqCst),
        0,
        "PATCH still works: {err}"
    );

    // The next removal goes straight out as a value list: no refused PATCH on the way.
    let before = relay.patches.load(Ordering::SeqCst);
    edit_users(dir.path(), |csv| {
        csv.replace(
            "user3@example.com,Dept 3,g-eng",
            "user3@example.com,Dept 3,g-all",
        )
    });
    let (out, err) = sync(dir.path(), &token);
    assert!(out.contains("succeeded"), "{out}{err}");
    assert_eq!(members("engineering"), 1, "{err}");
    assert_eq!(relay.patches.load(Ordering::SeqCst), before + 1, "{err}");
    assert!(!err.contains("form learned"), "{err}");
}

/// Item 3: a reconcile whose repairs fail leaves the ledger as it was for what it could not
/// repair. Before, the ledger was replaced by what the target held before any repair was
/// applied, so every later plan listed the failed repairs again as "changed in the source" and
/// every run failed on them (the flow ended in quarantine).
#[test]
fn a_failed_reconcile_leaves_the_ledger_as_it_was() {
    use idsync_connectors::targets::test::TestTarget;
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 6);
    let config = |extra: &str| {
        format!(
            "[store]\npath = \"idsync.db\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.app]\ntype = \"test\"\njournal = \"target.jsonl\"\n{extra}\n[flows.hr-to-app]\nsource = \"hr\"\ntarget = \"app\"\n"
        )
    };
    std::fs::write(dir.path().join("idsync.toml"), config("")).unwrap();
    let o = super::run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // By hand in the application: user1 and user2 renamed. The application then refuses
    // changes to user1 (the repair fails); user2's repair goes through.
    let journal = dir.path().join("target.jsonl");
    {
        let target = TestTarget::with_journal(&journal).unwrap();
        for name in ["user1@example.com", "user2@example.com"] {
            let id = target
                .state()
                .users
                .iter()
                .find(|u| u.user.user_name == name)
                .unwrap()
                .target_id
                .clone();
            target.hand_update_user(&id, |u| {
                u.name.given_name = Some("Changed by hand".into());
            });
        }
    }
    std::fs::write(
        dir.path().join("idsync.toml"),
        config("reject_user_names = [\"^user1@\"]\n"),
    )
    .unwrap();
    let o = super::run(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "the repair of user1 fails: {}",
        text(&o)
    );
    let target = TestTarget::read_journal(&journal).unwrap();
    let given = |name: &str| {
        target
            .state()
            .users
            .iter()
            .find(|u| u.user.user_name == name)
            .and_then(|u| u.user.name.given_name.clone())
    };
    assert_eq!(given("user2@example.com").as_deref(), Some("User"));
    assert_eq!(
        given("user1@example.com").as_deref(),
        Some("Changed by hand")
    );

    // Nothing changed in the source: the next plain runs plan nothing and succeed.
    let o = super::run(dir.path(), &["plan", "hr-to-app", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        plan["operations"].as_array().map(Vec::len),
        Some(0),
        "no false updates after the failed reconcile: {plan}"
    );
    let o = super::run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(0 planned"),
        "{}",
        text(&o)
    );

    // The next reconcile still sees user1's drift and tries again.
    let o = super::run(dir.path(), &["plan", "hr-to-app", "--full", "--json"]);
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let ops = plan["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "{plan}");
}

/// Item 3: a target that drops `department` and `emails.type` and computes `name.formatted`
/// itself: a reconcile plans no false repairs (the plan says what is not compared), converges
/// at once, and still repairs a real hand edit.
#[test]
fn reconcile_compares_only_what_the_target_keeps() {
    use idsync_connectors::targets::test::TestTarget;
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 6);
    std::fs::write(
        dir.path().join("idsync.toml"),
        "[store]\npath = \"idsync.db\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.app]\ntype = \"test\"\njournal = \"target.jsonl\"\ndrop_attributes = [\"department\", \"emails.type\"]\ncompute_attributes = [\"name.formatted\"]\n\n[flows.hr-to-app]\nsource = \"hr\"\ntarget = \"app\"\n",
    )
    .unwrap();
    let o = super::run(dir.path(), &["sync", "hr-to-app"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let journal = dir.path().join("target.jsonl");
    let held = TestTarget::read_journal(&journal).unwrap().state();
    assert!(held.users.iter().all(|u| u.user.department.is_none()
        && u.user.name.formatted.is_some()
        && u.user.emails.iter().all(|e| e.kind.is_none())));

    let o = super::run(dir.path(), &["plan", "hr-to-app", "--full", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        plan["operations"].as_array().map(Vec::len),
        Some(0),
        "no false repairs: {plan}"
    );
    let warnings = plan["warnings"].to_string();
    for what in [
        "does not keep department of users",
        "does not keep emails.type of users",
        "computes name.formatted of users itself",
    ] {
        assert!(warnings.contains(what), "{what}: {warnings}");
    }
    let o = super::run(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(0 planned"),
        "{}",
        text(&o)
    );

    // A real hand edit is repaired, and only it.
    {
        let target = TestTarget::with_journal(&journal).unwrap();
        let id = target
            .state()
            .users
            .iter()
            .find(|u| u.user.user_name == "user2@example.com")
            .unwrap()
            .target_id
            .clone();
        target.hand_update_user(&id, |u| u.name.family_name = Some("By hand".into()));
    }
    let o = super::run(dir.path(), &["sync", "hr-to-app", "--full"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(1 planned, 1 applied"),
        "{}",
        text(&o)
    );
    for args in [
        &["sync", "hr-to-app", "--full"][..],
        &["sync", "hr-to-app"][..],
    ] {
        let o = super::run(dir.path(), args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("(0 planned"),
            "{args:?}: {}",
            text(&o)
        );
    }
}

/// Item 2 with the test target's "no PATCH" switch: the engine keeps what the target learned
/// in the store and gives it back to the next run (a new process), which learns nothing again.
#[test]
fn a_target_without_patch_is_learned_once_and_remembered() {
    use idsync_connectors::targets::test::TestTarget;
    let dir = tempfile::tempdir().unwrap();
    write_people_csv(dir.path(), 6);
    std::fs::write(
        dir.path().join("idsync.toml"),
        "[store]\npath = \"idsync.db\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.app]\ntype = \"test\"\njournal = \"target.jsonl\"\nno_patch = true\n\n[flows.hr-to-app]\nsource = \"hr\"\ntarget = \"app\"\n",
    )
    .unwrap();
    let sync = || {
        let o = super::run(dir.path(), &["sync", "hr-to-app"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let err = sync();
    assert!(err.contains("add-members is sent as put"), "{err}");
    edit_users(dir.path(), |csv| {
        csv.replace("User,Number 1,", "Ada,Number 1,")
    });
    let err = sync();
    assert!(err.contains("update-user is sent as put"), "{err}");
    assert!(
        !err.contains("add-members"),
        "remembered, not learned again: {err}"
    );
    edit_users(dir.path(), |csv| {
        csv.replace("Ada,Number 1,", "Grace,Number 1,")
    });
    let err = sync();
    assert!(!err.contains("form learned"), "{err}");
    let target = TestTarget::read_journal(&dir.path().join("target.jsonl")).unwrap();
    assert!(target
        .state()
        .users
        .iter()
        .any(|u| u.user.name.given_name.as_deref() == Some("Grace")));
}
