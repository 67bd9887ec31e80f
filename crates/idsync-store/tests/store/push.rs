//! The push endpoints' checked writes and tokens.

use super::*;

/// Concurrent checked writes are committed together, each in its own savepoint: a conflict
/// fails only its own write, and every answered success is committed.
#[tokio::test]
async fn concurrent_checked_writes_commit_together_and_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let s = Store::open(&path).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            // 100 names, each attempted twice (the second time in upper case).
            let name = if i < 100 {
                format!("user{i}")
            } else {
                format!("USER{}", i - 100)
            };
            let u = User::new(format!("id-{i}"), name.clone());
            s.write_checked(
                "push",
                "scim",
                &[Unique::UserName { name, except: None }],
                &[Change::UpsertUser { user: u }],
                1,
            )
            .await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((ok, conflicts), (100, 100));
    s.close().await;
    // Everything answered as written is there after a reopen, and nothing else.
    let s = Store::open(&path).await.unwrap();
    let d = s.load_directory("push").await.unwrap();
    assert_eq!(d.users.len(), 100);
    assert_eq!(s.last_seq("push").await.unwrap(), 100);
    let names: std::collections::BTreeSet<String> =
        d.users.iter().map(|u| u.user_name.to_lowercase()).collect();
    assert_eq!(names.len(), 100);
}

/// A verified push token is taken on trust for a few seconds: revoked in this process it is
/// refused at once; revoked by another process (the CLI) once those seconds have passed.
#[tokio::test]
async fn revoked_tokens_are_refused_at_once_here_and_within_seconds_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let server = Store::open(&path).await.unwrap();
    let cli = Store::open(&path).await.unwrap();
    let (a, secret_a) = server.create_token("push", "a", 1_000).await.unwrap();
    let (b, secret_b) = server.create_token("push", "b", 1_000).await.unwrap();
    for secret in [&secret_a, &secret_b] {
        assert!(server.verify_token(secret, 2_000).await.unwrap().is_some());
    }
    assert!(server
        .verify_token("idsync_wrong", 2_000)
        .await
        .unwrap()
        .is_none());

    assert!(server.revoke_token(&a.id, 3_000).await.unwrap());
    assert!(server
        .verify_token(&secret_a, 3_001)
        .await
        .unwrap()
        .is_none());

    assert!(cli.revoke_token(&b.id, 3_000).await.unwrap());
    assert!(server
        .verify_token(&secret_b, 3_500)
        .await
        .unwrap()
        .is_some());
    assert!(server
        .verify_token(&secret_b, 2_000 + TOKEN_CACHE_MS)
        .await
        .unwrap()
        .is_none());
}
