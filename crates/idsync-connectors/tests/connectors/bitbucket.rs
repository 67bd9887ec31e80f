//! The Bitbucket Data Center target against the Bitbucket simulator: the connector kit,
//! membership batches (`add-users`), one request per created user (the username is the id),
//! disabling by removing the access groups (recorded in idsync's record groups) and giving
//! them back, renames that answer the new id, the earlier version's numeric ids translated,
//! verified matching, Basic and the custom CA.

use idsync_connectors::targets::atlassian_dc::{Auth, ClientConfig};
use idsync_connectors::targets::bitbucket::{BitbucketTarget, BitbucketTargetConfig};
use idsync_connectors::testkit;
use idsync_core::*;
use idsync_sim::bitbucket::{self, BitbucketSimOptions, RunningBitbucketSim};
use std::sync::Arc;
use std::time::Duration;

fn config(sim: &RunningBitbucketSim, auth: Auth) -> BitbucketTargetConfig {
    BitbucketTargetConfig {
        client: ClientConfig {
            base_url: sim.root.clone(),
            auth,
            ca_file: sim.ca_pem.clone(),
            timeout: Duration::from_secs(10),
            concurrency: 4,
        },
        add_to_default_group: true,
        default_groups: Vec::new(),
        access_groups: Vec::new(),
        record_prefix: BitbucketTargetConfig::DEFAULT_RECORD_PREFIX.into(),
    }
}

fn token() -> Auth {
    Auth::Token("sim-bitbucket-pat".into())
}

async fn sim(opts: BitbucketSimOptions) -> RunningBitbucketSim {
    bitbucket::start(opts, Arc::new(SystemClock)).await.unwrap()
}

fn report(results: Vec<(&'static str, Result<(), testkit::KitFailure>)>) {
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    assert!(failed.is_empty(), "kit failures:\n{}", failed.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bitbucket_target_passes_the_kit_over_https_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = sim(BitbucketSimOptions {
        tls: true,
        cert_dir: Some(dir.path().to_path_buf()),
        ..BitbucketSimOptions::default()
    })
    .await;
    let t = BitbucketTarget::new(config(&s, token())).unwrap();
    report(testkit::run_all(&t, "kit").await);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bitbucket_target_passes_the_kit_with_basic() {
    let s = sim(BitbucketSimOptions::default()).await;
    let t = BitbucketTarget::new(config(
        &s,
        Auth::Basic {
            user: "admin".into(),
            password: "admin".into(),
        },
    ))
    .unwrap();
    report(testkit::run_all(&t, "basic").await);
    s.stop().await;
}

fn person(n: &str) -> User {
    let mut u = User::new(format!("{n}-src"), n);
    u.display_name = Some(format!("Person {n}"));
    u.emails = vec![Email {
        value: format!("{n}@example.com"),
        kind: Some("work".into()),
        primary: true,
        display: None,
    }];
    u
}

async fn created(t: &BitbucketTarget, u: &User) -> String {
    match t.apply(&TargetOp::CreateUser { user: u.clone() }).await {
        Outcome::Applied {
            target_id: Some(id),
        } => id,
        other => panic!("create {}: {other:?}", u.user_name),
    }
}

fn groups_of(s: &RunningBitbucketSim, name: &str) -> Vec<String> {
    let d = s.state.directory.read().unwrap();
    let mut g = d.groups_of(d.by_name(name).unwrap());
    g.sort();
    g
}

#[tokio::test]
async fn members_are_added_in_one_batch_per_group() {
    let s = sim(BitbucketSimOptions::default()).await;
    let t = BitbucketTarget::new(config(&s, token())).unwrap();
    let mut ids = Vec::new();
    for n in ["a1", "a2", "a3", "a4", "a5"] {
        ids.push(created(&t, &person(n)).await);
    }
    let g = match t
        .apply(&TargetOp::CreateGroup {
            group: Group::new("g", "devs"),
            members: Vec::new(),
        })
        .await
    {
        Outcome::Applied { target_id: Some(g) } => g,
        other => panic!("{other:?}"),
    };
    let before = s.state.stats().requests;
    let op = TargetOp::AddMembers {
        group_id: g.clone(),
        user_ids: ids.clone(),
    };
    assert_eq!(t.apply(&op).await, Outcome::Applied { target_id: None });
    assert_eq!(
        s.state.stats().requests - before,
        1,
        "one add-users request"
    );
    for id in &ids {
        assert!(groups_of(&s, id).contains(&"devs".to_string()));
    }
    s.stop().await;
}

#[tokio::test]
async fn disabling_removes_the_licensed_groups_and_a_returning_user_gets_them_back() {
    let s = sim(BitbucketSimOptions::default()).await;
    {
        let mut d = s.state.directory.write().unwrap();
        d.create_group("developers").unwrap();
        d.group_permissions
            .insert("developers".into(), "PROJECT_CREATE".into());
        d.create_group("readers").unwrap();
    }
    let t = BitbucketTarget::new(config(&s, token())).unwrap();
    let note = t.disable_note().await.unwrap().unwrap();
    assert!(
        note.contains("no deactivation call") && note.contains("developers, stash-users"),
        "{note}"
    );
    let u = person("ann");
    let id = created(&t, &u).await;
    for g in ["developers", "readers"] {
        let op = TargetOp::AddMembers {
            group_id: g.into(),
            user_ids: vec![id.clone()],
        };
        assert_eq!(t.apply(&op).await, Outcome::Applied { target_id: None });
    }
    let mut off = u.clone();
    off.active = false;
    let op = TargetOp::UpdateUser {
        target_id: id.clone(),
        before: u.clone(),
        after: off.clone(),
    };
    assert_eq!(t.apply(&op).await, Outcome::Applied { target_id: None });
    // The removed groups are recorded in idsync's record groups (Bitbucket's reference does
    // not document that an administrator may write another user's settings, and the
    // simulator refuses it).
    assert_eq!(
        groups_of(&s, &id),
        vec![
            "idsync-access-removed-developers".to_string(),
            "idsync-access-removed-stash-users".to_string(),
            "readers".to_string()
        ]
    );
    let snap = t.read_state().await.unwrap();
    let read = snap.users.iter().find(|r| r.target_id == id).unwrap();
    assert!(
        !read.user.active,
        "a user in a record group reads as disabled"
    );
    assert!(
        !snap
            .groups
            .iter()
            .any(|g| g.target_id.starts_with("idsync-access-removed-")),
        "the record groups are idsync's, not the source's"
    );
    let op = TargetOp::UpdateUser {
        target_id: id.clone(),
        before: off,
        after: u.clone(),
    };
    assert_eq!(t.apply(&op).await, Outcome::Applied { target_id: None });
    assert_eq!(
        groups_of(&s, &id),
        vec![
            "developers".to_string(),
            "readers".to_string(),
            "stash-users".to_string()
        ]
    );
    let snap = t.read_state().await.unwrap();
    assert!(snap
        .users
        .iter()
        .any(|r| r.target_id == id && r.user.active));
    s.stop().await;
}

#[tokio::test]
async fn a_rename_answers_the_new_username_and_matching_verifies_by_email() {
    let s = sim(BitbucketSimOptions::default()).await;
    let t = BitbucketTarget::new(config(&s, token())).unwrap();
    let u = person("bob");
    let id = created(&t, &u).await;
    assert_eq!(id, "bob");
    let mut renamed = u.clone();
    renamed.user_name = "robert".into();
    renamed.display_name = Some("Robert".into());
    let op = TargetOp::UpdateUser {
        target_id: id.clone(),
        before: u.clone(),
        after: renamed.clone(),
    };
    assert_eq!(
        t.apply(&op).await,
        Outcome::Applied {
            target_id: Some("robert".into())
        }
    );
    {
        let d = s.state.directory.read().unwrap();
        let b = d.user_named("robert").unwrap();
        assert_eq!(
            (b.name.as_str(), b.display_name.as_str()),
            ("robert", "Robert")
        );
    }
    let id = "robert".to_string();
    t.end_run();
    // A new user with bob's email but another username is matched by that email.
    let mut other = person("bobby");
    other.emails[0].value = "BOB@example.com".into();
    let m = t.find_user_match(&other).await.unwrap().unwrap();
    assert_eq!(m.target_id, id);
    assert!(m.by.unwrap().starts_with("email"));
    // Two users with that email are a conflict.
    s.state
        .directory
        .write()
        .unwrap()
        .create_user("bob2", "Bob Two", "bob@example.com", false)
        .unwrap();
    t.end_run();
    assert!(matches!(
        t.find_user_match(&other).await,
        Err(TargetError::Ambiguous { .. })
    ));
    s.stop().await;
}

#[tokio::test]
async fn bitbucket_errors_are_read_from_their_errors_list() {
    let s = sim(BitbucketSimOptions::default()).await;
    let t = BitbucketTarget::new(config(&s, token())).unwrap();
    let op = TargetOp::AddMembers {
        group_id: "no-such-group".into(),
        user_ids: vec!["admin".into()],
    };
    match t.apply(&op).await {
        Outcome::NotFound { reason } => {
            assert!(
                reason.contains("Group no-such-group does not exist"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    let bad = BitbucketTarget::new(config(&s, Auth::Token("wrong".into()))).unwrap();
    assert!(matches!(bad.health().await, Err(TargetError::Auth(_))));
    s.stop().await;
}

#[tokio::test]
async fn a_429_is_retryable_with_its_wait_and_an_empty_bucket_holds_the_next_request() {
    let s = sim(BitbucketSimOptions {
        rate_limit: Some(bitbucket::RateLimit {
            max: 2,
            fill: 1,
            interval_secs: 1,
        }),
        ..BitbucketSimOptions::default()
    })
    .await;
    let t = BitbucketTarget::new(config(&s, token())).unwrap();
    // An injected 429 with Retry-After: retryable, with its wait.
    s.state.set_faults(bitbucket::BitbucketFaults {
        fail_next: 1,
        fail_match: "POST /rest/api/1.0/admin/groups".into(),
        error_status: 429,
        retry_after_secs: 3,
        ..Default::default()
    });
    match t
        .apply(&TargetOp::CreateGroup {
            group: Group::new("g", "devs"),
            members: Vec::new(),
        })
        .await
    {
        Outcome::Retryable {
            retry_after: Some(d),
            reason,
        } => {
            assert_eq!(d, Duration::from_secs(3));
            assert!(reason.contains("HTTP 429"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The bucket (2 tokens, 1 a second) drained by the two requests above: the next ones
    // wait for tokens (X-RateLimit-Remaining: 0 with Retry-After) instead of meeting 429s.
    s.state.set_faults(bitbucket::BitbucketFaults::default());
    for n in ["r1", "r2", "r3"] {
        created(&t, &person(n)).await;
    }
    assert_eq!(s.state.stats().throttled, 1, "only the injected one");
    s.stop().await;
}

/// Issue 18's aim: one request per created user. Bitbucket answers a create with 204 and no
/// body; the username, which every admin resource takes, is the id, so nothing is read back.
/// A name with capitals and an `@` (whose slug Bitbucket makes otherwise) is used as it is:
/// updated, put in groups, disabled and given back, renamed (answering the new id), deleted.
#[tokio::test]
async fn a_create_is_one_request_and_the_username_with_capitals_is_the_id() {
    let s = sim(BitbucketSimOptions::default()).await;
    s.state
        .directory
        .write()
        .unwrap()
        .create_group("devs")
        .unwrap();
    let t = BitbucketTarget::new(config(&s, token())).unwrap();
    let mut jane = person("jane");
    jane.user_name = "Jane.Doe@Example.com".into();
    let before = s.state.stats().requests;
    let id = created(&t, &jane).await;
    assert_eq!(
        s.state.stats().requests - before,
        1,
        "one request per create"
    );
    assert_eq!(id, "Jane.Doe@Example.com");
    {
        let d = s.state.directory.read().unwrap();
        let u = d.user_named(&id).unwrap();
        assert_ne!(u.slug(), u.name, "the slug is not the name");
    }
    // An update takes one request (no lookup of the user first).
    let mut changed = jane.clone();
    changed.display_name = Some("Jane Doe".into());
    let before = s.state.stats().requests;
    let op = TargetOp::UpdateUser {
        target_id: id.clone(),
        before: jane.clone(),
        after: changed.clone(),
    };
    assert_eq!(t.apply(&op).await, Outcome::Applied { target_id: None });
    assert_eq!(s.state.stats().requests - before, 1);
    let op = TargetOp::AddMembers {
        group_id: "devs".into(),
        user_ids: vec![id.clone()],
    };
    assert_eq!(t.apply(&op).await, Outcome::Applied { target_id: None });
    assert!(groups_of(&s, &id).contains(&"devs".to_string()));
    // Disable and return, by the name.
    let mut off = changed.clone();
    off.active = false;
    for (b, a) in [(&changed, &off), (&off, &changed)] {
        let op = TargetOp::UpdateUser {
            target_id: id.clone(),
            before: b.clone(),
            after: a.clone(),
        };
        assert_eq!(t.apply(&op).await, Outcome::Applied { target_id: None });
    }
    assert_eq!(
        groups_of(&s, &id),
        vec!["devs".to_string(), "stash-users".to_string()]
    );
    // The reconcile's read names the user by its username.
    let snap = t.read_state().await.unwrap();
    assert!(snap
        .users
        .iter()
        .any(|r| r.target_id == id && r.user.active));
    let devs = snap.groups.iter().find(|g| g.target_id == "devs").unwrap();
    assert_eq!(devs.members, vec![id.clone()]);
    // A rename in case only is a rename too, and answers the new spelling.
    let mut lower = changed.clone();
    lower.user_name = "jane.doe@example.com".into();
    let op = TargetOp::UpdateUser {
        target_id: id.clone(),
        before: changed.clone(),
        after: lower,
    };
    assert_eq!(
        t.apply(&op).await,
        Outcome::Applied {
            target_id: Some("jane.doe@example.com".into())
        }
    );
    let op = TargetOp::DeleteUser {
        target_id: "jane.doe@example.com".into(),
    };
    assert_eq!(t.apply(&op).await, Outcome::Applied { target_id: None });
    assert!(s
        .state
        .directory
        .read()
        .unwrap()
        .by_name("jane.doe@example.com")
        .is_none());
    s.stop().await;
}

/// A ledger of the version that kept Bitbucket's numeric user ids: each id Bitbucket still
/// has is translated to its username (one listing); an id it no longer has is left out.
#[tokio::test]
async fn the_earlier_numeric_ids_are_translated_to_usernames() {
    let s = sim(BitbucketSimOptions::default()).await;
    let (ann, bob) = {
        let mut d = s.state.directory.write().unwrap();
        (
            d.create_user("Ann", "Ann", "ann@example.com", true)
                .unwrap(),
            d.create_user("bob", "Bob", "bob@example.com", true)
                .unwrap(),
        )
    };
    let t = BitbucketTarget::new(config(&s, token())).unwrap();
    assert_eq!(t.user_id_form(), Some("bitbucket-username"));
    let ids = vec![ann.to_string(), bob.to_string(), "999999".to_string()];
    let map = t.translate_user_ids(None, &ids).await.unwrap();
    assert_eq!(map.len(), 2, "{map:?}");
    assert_eq!(map[&ann.to_string()], "Ann");
    assert_eq!(map[&bob.to_string()], "bob");
    assert!(t
        .translate_user_ids(Some("bitbucket-username"), &ids)
        .await
        .unwrap()
        .is_empty());
    s.stop().await;
}
