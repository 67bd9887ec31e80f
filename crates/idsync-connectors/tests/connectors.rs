//! File source and scriptable test target.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use idsync_connectors::sources::file::{FileFormat, FileSource, FileSourceConfig};
use idsync_connectors::targets::test::{Fault, TestTarget};
use idsync_connectors::testkit;
use idsync_core::*;
use std::io::Write;
use std::path::Path;

#[path = "connectors/bamboo.rs"]
mod bamboo;
#[path = "connectors/bitbucket.rs"]
mod bitbucket;
#[path = "connectors/confluence.rs"]
mod confluence;
#[path = "connectors/jira.rs"]
mod jira;
#[path = "connectors/jira_listing.rs"]
mod jira_listing;
#[path = "connectors/jira_seats.rs"]
mod jira_seats;
#[path = "connectors/msgraph.rs"]
mod msgraph;

fn json_source(path: &Path) -> FileSource {
    FileSource::new(FileSourceConfig {
        format: FileFormat::Json,
        path: Some(path.into()),
        users: None,
        groups: None,
        memberships: None,
    })
}

fn csv_source(dir: &Path, groups: bool, memberships: bool) -> FileSource {
    FileSource::new(FileSourceConfig {
        format: FileFormat::Csv,
        path: None,
        users: Some(dir.join("users.csv")),
        groups: groups.then(|| dir.join("groups.csv")),
        memberships: memberships.then(|| dir.join("memberships.csv")),
    })
}

async fn full(src: &FileSource) -> Snapshot {
    match src.read(None).await.unwrap() {
        SourceRead::Full { snapshot, .. } => snapshot,
        other => panic!("expected a full read, got {other:?}"),
    }
}

async fn invalid(src: &FileSource) -> (String, String) {
    match src.read(None).await {
        Err(SourceError::Invalid { location, message }) => (location, message),
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[tokio::test]
async fn json_with_every_membership_form_and_unchanged_delta() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("people.json");
    std::fs::write(&p, r#"{
      "users": [
        {"sourceId": "u1", "userName": "ada", "name": {"givenName": "Ada"}, "emails": [{"value": "ada@x.org", "type": "work", "primary": true}],
         "custom": {"level": {"type": "integer", "value": 7}}, "groups": ["g1"]},
        {"sourceId": "u2", "userName": "bob", "active": false}
      ],
      "groups": [{"sourceId": "g1", "displayName": "eng"}, {"sourceId": "g2", "displayName": "all"}],
      "memberships": [
        {"group": "g2", "memberGroup": "g1"},
        {"group": "g2", "user": "u2"},
        {"group": "g1", "member": {"kind": "user", "id": "u1"}}
      ]
    }"#).unwrap();
    let src = json_source(&p);
    let (snap, cursor) = match src.read(None).await.unwrap() {
        SourceRead::Full { snapshot, cursor } => (snapshot, cursor.unwrap()),
        other => panic!("{other:?}"),
    };
    assert_eq!(snap.users.len(), 2);
    assert_eq!(snap.users[0].name.given_name.as_deref(), Some("Ada"));
    assert_eq!(snap.users[0].custom["level"], AttrValue::Integer(7));
    assert!(!snap.users[1].active);
    // u1 in g1 both through "groups" and an explicit membership: once.
    assert_eq!(snap.memberships.len(), 3, "{:?}", snap.memberships);
    assert!(snap.memberships.contains(&Membership {
        group: "g2".into(),
        member: MemberRef::group("g1")
    }));
    // Unchanged files: an empty delta.
    match src.read(Some(&cursor)).await.unwrap() {
        SourceRead::Delta { changes, cursor: c } => {
            assert!(changes.is_empty());
            assert_eq!(c, cursor);
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&p, r#"{"users": []}"#).unwrap();
    assert!(
        full(&src).await.users.is_empty(),
        "a changed file is read again"
    );
}

#[tokio::test]
async fn json_errors_say_where() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("people.json");
    let cases = [
        (
            "{\"users\": [\n  {\"sourceId\": \"u1\"\n",
            "people.json line 3",
            "EOF",
        ),
        (
            r#"{"users": [{"sourceId": "u1"}]}"#,
            "people.json users[0]",
            "userName",
        ),
        (
            r#"{"users": [{"sourceId": "u1", "userName": "a"}, {"sourceId": "u1", "userName": "b"}]}"#,
            "people.json users[1]",
            "duplicate sourceId",
        ),
        (
            r#"{"users": [{"sourceId": "u1", "userName": "Ann"}, {"sourceId": "u2", "userName": "ann"}]}"#,
            "people.json users[1]",
            "duplicate userName",
        ),
        (
            r#"{"groups": [{"sourceId": "g", "displayName": "g"}], "memberships": [{"group": "g", "user": "ghost"}]}"#,
            "people.json memberships[0]",
            "unknown user \"ghost\"",
        ),
        (
            r#"{"memberships": [{"group": "nope", "user": "u"}]}"#,
            "people.json memberships[0]",
            "unknown group",
        ),
        (r#"{"people": []}"#, "people.json line 1", "unknown field"),
    ];
    for (text, loc, msg) in cases {
        std::fs::write(&p, text).unwrap();
        let (l, m) = invalid(&json_source(&p)).await;
        assert!(
            l.starts_with(loc),
            "{text}: location {l:?}, expected {loc:?}"
        );
        assert!(m.contains(msg), "{text}: message {m:?}, expected {msg:?}");
    }
    let missing = json_source(&dir.path().join("absent.json"))
        .read(None)
        .await;
    assert!(matches!(missing, Err(SourceError::Io { path, .. }) if path.ends_with("absent.json")));
}

#[tokio::test]
async fn csv_with_every_column_bom_and_sugar() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("users.csv"),
        "\u{feff}SourceId,userName,externalId,givenName,familyName,middleName,formatted,displayName,email,emails,phone,active,title,department,employeeId,manager,preferredLanguage,locale,timezone,groups,custom.costCenter\n\
         u1,ada@x.org,E-1,Ada,Lovelace,King,Ada King Lovelace,Ada L.,ada@x.org,ada.l@x.org;countess@x.org,+44 1,yes,Countess,Math,42,u2,en,en-GB,Europe/London,g1;g2,CC-9\n\
         u2,charles@x.org,,,,,,,,,,0,,,,,,,,,\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("groups.csv"),
        "sourceId,displayName,externalId,description\ng1,eng,x1,Engineers\ng2,all,,\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("memberships.csv"),
        "group,member,kind\ng2,g1,group\ng1,u2,\n",
    )
    .unwrap();
    let snap = full(&csv_source(dir.path(), true, true)).await;
    let ada = &snap.users[0];
    assert_eq!(ada.external_id.as_deref(), Some("E-1"));
    assert_eq!(ada.name.middle_name.as_deref(), Some("King"));
    assert_eq!(ada.emails.len(), 3);
    assert!(ada.emails[0].primary && !ada.emails[1].primary);
    assert_eq!(ada.primary_email(), Some("ada@x.org"));
    assert_eq!(ada.phone_numbers[0].value, "+44 1");
    assert_eq!(
        (
            ada.title.as_deref(),
            ada.department.as_deref(),
            ada.employee_id.as_deref()
        ),
        (Some("Countess"), Some("Math"), Some("42"))
    );
    assert_eq!(
        (
            ada.manager.as_deref(),
            ada.preferred_language.as_deref(),
            ada.locale.as_deref(),
            ada.timezone.as_deref()
        ),
        (Some("u2"), Some("en"), Some("en-GB"), Some("Europe/London"))
    );
    assert_eq!(ada.custom["costCenter"], AttrValue::String("CC-9".into()));
    assert!(!snap.users[1].active);
    assert_eq!(snap.users[1].display_name, None);
    assert_eq!(snap.groups[0].description.as_deref(), Some("Engineers"));
    let mut ms: Vec<String> = snap
        .memberships
        .iter()
        .map(|m| format!("{}<{}:{}", m.group, m.member.kind.as_str(), m.member.id))
        .collect();
    ms.sort();
    assert_eq!(
        ms,
        vec!["g1<user:u1", "g1<user:u2", "g2<group:g1", "g2<user:u1"]
    );
}

#[tokio::test]
async fn csv_errors_say_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "sourceId,userName,shoeSize\nu1,a,42\n",
            "users.csv line 1",
            "unknown column \"shoesize\"",
        ),
        (
            "sourceId,userName,señal\nu1,a,42\n",
            "users.csv line 1",
            "unknown column \"señal\"",
        ),
        (
            "sourceId,displayName\nu1,a\n",
            "users.csv line 1",
            "sourceId and userName are required",
        ),
        (
            "sourceId,userName\nu1,a\nu2,\n",
            "users.csv line 3",
            "userName is empty",
        ),
        (
            "sourceId,userName,active\nu1,a,maybe\n",
            "users.csv line 2",
            "not true or false",
        ),
        (
            "sourceId,userName\nu1,a\nu1,b\n",
            "users.csv line 3",
            "duplicate sourceId",
        ),
        (
            "sourceId,userName\nu1,a\nu2,b,c\n",
            "users.csv line 3",
            "found record with 3 fields",
        ),
        (
            "sourceId,userName,groups\nu1,a,nope\n",
            "users.csv line 2",
            "unknown group \"nope\"",
        ),
    ];
    for (text, loc, msg) in cases {
        std::fs::write(dir.path().join("users.csv"), text).unwrap();
        let (l, m) = invalid(&csv_source(dir.path(), false, false)).await;
        assert_eq!(l, loc, "{text}: {m}");
        assert!(m.contains(msg), "{text}: message {m:?}, expected {msg:?}");
    }
}

#[tokio::test]
async fn csv_of_many_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("users.csv")).unwrap();
    writeln!(f, "sourceId,userName,email").unwrap();
    for i in 0..100 {
        writeln!(f, "id-{i},user{i},user{i}@example.com").unwrap();
    }
    drop(f);
    let snap = full(&csv_source(dir.path(), false, false)).await;
    assert_eq!(snap.users.len(), 100);
    assert_eq!(snap.users[99].primary_email(), Some("user99@example.com"));
}

#[tokio::test]
async fn the_kit_passes_against_the_test_target() {
    let t = TestTarget::new();
    let results = testkit::run_all(&t, "kit").await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(results.len(), 11);
    let results = testkit::fault_cases(&t).await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(t.faults_injected(), 6);
}

#[tokio::test]
async fn the_kit_catches_a_broken_target() {
    /// A target that forgets updates: the kit must say so.
    struct Forgetful(TestTarget);
    #[async_trait::async_trait]
    impl Target for Forgetful {
        fn describe(&self) -> String {
            "forgetful".into()
        }
        async fn health(&self) -> Result<(), TargetError> {
            self.0.health().await
        }
        async fn find_user(&self, u: &User) -> Result<Option<String>, TargetError> {
            self.0.find_user(u).await
        }
        async fn find_group(&self, g: &Group) -> Result<Option<String>, TargetError> {
            self.0.find_group(g).await
        }
        async fn apply(&self, op: &TargetOp) -> Outcome {
            match op {
                TargetOp::UpdateUser { .. } => Outcome::Applied { target_id: None },
                other => self.0.apply(other).await,
            }
        }
        async fn read_state(&self) -> Result<TargetSnapshot, TargetError> {
            self.0.read_state().await
        }
    }
    let results = testkit::run_all(&Forgetful(TestTarget::new()), "broken").await;
    let failed: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(
        failed,
        vec![
            "update_user",
            "disable_and_enable_user",
            "update_unknown_is_not_found"
        ]
    );
}

#[tokio::test]
async fn journal_replay_reproduces_the_state_and_survives_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let before = {
        let t = TestTarget::with_journal(&path).unwrap();
        testkit::run_all(&t, "j").await;
        let a = t.state().users[0].target_id.clone();
        t.hand_update_user(&a, |u| u.title = Some("by hand".into()));
        t.state()
    };
    // A kill -9 in the middle of a write leaves half a line.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"op\":\"put_us")
        .unwrap();
    let t = TestTarget::with_journal(&path).unwrap();
    assert_eq!(t.state(), before);
    // The torn line is cut off, so new entries land on a clean line.
    let g = Group::new("x", "after-crash");
    assert!(matches!(
        t.apply(&TargetOp::CreateGroup {
            group: g,
            members: Vec::new()
        })
        .await,
        Outcome::Applied { .. }
    ));
    drop(t);
    let t = TestTarget::with_journal(&path).unwrap();
    assert_eq!(t.state().groups.len(), before.groups.len() + 1);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let clock = std::sync::Arc::new(ManualClock::new(1_000_000));
    let t = TestTarget::new().with_clock(clock.clone());
    t.rate_limit(2);
    let op = |n: usize| TargetOp::CreateGroup {
        group: Group::new(format!("g{n}"), format!("g{n}")),
        members: Vec::new(),
    };
    assert!(matches!(t.apply(&op(1)).await, Outcome::Applied { .. }));
    assert!(matches!(t.apply(&op(2)).await, Outcome::Applied { .. }));
    match t.apply(&op(3)).await {
        Outcome::Retryable {
            retry_after: Some(d),
            reason,
        } => {
            assert!(reason.contains("429"));
            assert_eq!(d, std::time::Duration::from_millis(500));
        }
        other => panic!("{other:?}"),
    }
    clock.advance(500);
    assert!(matches!(t.apply(&op(3)).await, Outcome::Applied { .. }));
    t.fail_next(1, Fault::Permanent("no".into()));
    assert!(matches!(t.apply(&op(4)).await, Outcome::Rejected { .. }));
}

// ------------------------------------------------------------------ SCIM target, real peers

mod scim_peers {
    use idsync_connectors::targets::scim::{Profile, ScimTarget, ScimTargetConfig};
    use idsync_connectors::testkit;
    use idsync_core::*;
    use std::time::Duration;

    use idsync_connectors::testkit::peers::{scim2_server, Peer};

    async fn start_scim2_server() -> (Peer, String) {
        let peer = scim2_server("peer-secret").unwrap();
        let url = peer.url.clone();
        (peer, url)
    }

    #[tokio::test]
    async fn the_kit_passes_against_scim2_server() {
        let (_peer, base) = start_scim2_server().await;
        let t = ScimTarget::new(ScimTargetConfig::new(
            &base,
            "peer-secret",
            Profile::Generic,
        ))
        .unwrap();
        let caps = t.capabilities().await.unwrap();
        assert!(caps.patch && caps.filter);
        let results = testkit::run_all(&t, "peer").await;
        let failures: Vec<String> = results
            .iter()
            .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
        // A wrong token is an authentication error, not a crash.
        let bad = ScimTarget::new(ScimTargetConfig::new(&base, "wrong", Profile::Generic)).unwrap();
        assert!(matches!(bad.health().await, Err(TargetError::Auth(_))));
    }

    #[tokio::test]
    async fn paging_reads_everything_and_minimal_patch_touches_only_changes() {
        let (_peer, base) = start_scim2_server().await;
        let t = ScimTarget::new(ScimTargetConfig::new(
            &base,
            "peer-secret",
            Profile::Generic,
        ))
        .unwrap();
        let page = t.capabilities().await.unwrap().max_results;
        let n = page.min(50) + 7;
        let mut ids = Vec::new();
        for i in 0..n {
            let mut u = User::new(format!("s{i}"), format!("page{i}@example.com"));
            u.emails = vec![Email {
                value: format!("page{i}@example.com"),
                kind: Some("work".into()),
                primary: true,
                display: None,
            }];
            match t.apply(&TargetOp::CreateUser { user: u }).await {
                Outcome::Applied {
                    target_id: Some(id),
                } => ids.push(id),
                other => panic!("{other:?}"),
            }
        }
        let state = t.read_state().await.unwrap();
        assert_eq!(state.users.len(), n);
        // Atlassian-style page size of 100 at most, even if the service offers more.
        let mut cfg = ScimTargetConfig::new(&base, "peer-secret", Profile::AtlassianCloud);
        cfg.verified_domains = vec!["example.com".into()];
        let atl = ScimTarget::new(cfg).unwrap();
        assert!(atl.capabilities().await.unwrap().max_results <= 100);
        let mut outsider = User::new("x", "someone@elsewhere.org");
        outsider.emails = vec![Email {
            value: "someone@elsewhere.org".into(),
            kind: None,
            primary: true,
            display: None,
        }];
        match atl.apply(&TargetOp::CreateUser { user: outsider }).await {
            Outcome::Skipped { reason } => {
                assert!(reason.contains("not in a verified domain"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let g = Group::new("g", "atl-group");
        let Outcome::Applied {
            target_id: Some(gid),
        } = atl
            .apply(&TargetOp::CreateGroup {
                group: g.clone(),
                members: Vec::new(),
            })
            .await
        else {
            panic!()
        };
        let mut renamed = g.clone();
        renamed.display_name = "atl-group-2".into();
        match atl
            .apply(&TargetOp::UpdateGroup {
                target_id: gid,
                before: g,
                after: renamed,
            })
            .await
        {
            Outcome::Rejected { reason } => {
                assert!(reason.contains("cannot rename groups"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_answers_are_errors_with_context() {
        // A "service" that answers garbage: an HTTP listener written by hand.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let (status, body) = if req.starts_with("GET /ServiceProviderConfig") {
                    ("200 OK", r#"{"patch":{"supported":true},"filter":{"supported":true,"maxResults":2}}"#.to_string())
                } else if req.starts_with("GET /Users?startIndex=1") {
                    ("200 OK", r#"{"totalResults":4,"Resources":[{"id":"a","userName":"a"},{"id":"b","userName":"b"}]}"#.to_string())
                } else if req.starts_with("GET /Users?startIndex=3") {
                    ("503 Service Unavailable", String::new())
                } else if req.starts_with("POST /Users") {
                    ("201 Created", "{not json".to_string())
                } else {
                    ("429 Too Many Requests", String::new())
                };
                let extra = if status.starts_with("429") {
                    "Retry-After: 7\r\n"
                } else {
                    ""
                };
                let resp = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}", body.len());
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        let t = ScimTarget::new(ScimTargetConfig::new(
            &format!("http://127.0.0.1:{port}"),
            "x",
            Profile::Generic,
        ))
        .unwrap();
        // A 5xx in the middle of paging fails the read: no partial state.
        match t.read_state().await {
            Err(TargetError::Unavailable(m)) => {
                assert!(m.contains("startIndex=3") && m.contains("503"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        match t
            .apply(&TargetOp::CreateUser {
                user: User::new("s", "u"),
            })
            .await
        {
            Outcome::Rejected { reason } => assert!(reason.contains("not JSON"), "{reason}"),
            other => panic!("{other:?}"),
        }
        match t
            .apply(&TargetOp::DeleteUser {
                target_id: "a".into(),
            })
            .await
        {
            Outcome::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A service without PATCH: updates and member changes go as PUT of the whole resource, and
/// the kit passes.
#[tokio::test]
async fn a_service_without_patch_gets_put() {
    use idsync_connectors::targets::scim::{Profile, ScimTarget, ScimTargetConfig};
    use idsync_connectors::testkit::peers::scim2_server_with;
    let dir = tempfile::tempdir().unwrap();
    let spc = dir.path().join("spc.json");
    std::fs::write(
        &spc,
        serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": false},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": true, "maxResults": 50},
            "changePassword": {"supported": false},
            "sort": {"supported": true},
            "etag": {"supported": false},
            "authenticationSchemes": [{"type": "oauthbearertoken", "name": "Bearer", "description": "token"}]
        })
        .to_string(),
    )
    .unwrap();
    let peer = scim2_server_with(
        "put-token",
        &["--service-provider-config", spc.to_str().unwrap()],
    )
    .unwrap();
    let t = ScimTarget::new(ScimTargetConfig::new(
        &peer.url,
        "put-token",
        Profile::Generic,
    ))
    .unwrap();
    let caps = t.capabilities().await.unwrap();
    assert!(!caps.patch, "{caps:?}");
    assert_eq!(caps.max_results, 50);
    let results = testkit::run_all(&t, "put").await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    // Users, groups and members all go by PUT.
    assert!(failures.is_empty(), "{failures:#?}");
}
