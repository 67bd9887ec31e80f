//! Store tests against a real SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use idsync_core::*;
use idsync_store::*;
use proptest::prelude::*;

#[path = "store/crowd_feed.rs"]
mod crowd_feed;
#[path = "store/nesting.rs"]
mod nesting;

fn snapshot() -> Snapshot {
    Snapshot {
        users: vec![
            User::new("u1", "ada"),
            User::new("u2", "grace"),
            User::new("u3", "alan"),
        ],
        groups: vec![Group::new("g1", "eng"), Group::new("g2", "all")],
        memberships: vec![
            Membership {
                group: "g1".into(),
                member: MemberRef::user("u1"),
            },
            Membership {
                group: "g2".into(),
                member: MemberRef::group("g1"),
            },
            Membership {
                group: "g2".into(),
                member: MemberRef::user("u3"),
            },
        ],
    }
}

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.db")).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn replace_directory_writes_only_differences_and_logs_them() {
    let (_d, s) = open().await;
    let w = s
        .replace_directory("hr", "file", &snapshot(), Some("c1"), 10)
        .await
        .unwrap();
    assert_eq!(w.changes, 3 + 2 + 3);
    assert_eq!(w.last_seq, 8);
    assert_eq!(
        s.source_cursor("file").await.unwrap().as_deref(),
        Some("c1")
    );
    let again = s
        .replace_directory("hr", "file", &snapshot(), Some("c2"), 20)
        .await
        .unwrap();
    assert_eq!(again.changes, 0, "an unchanged snapshot writes nothing");
    assert_eq!(again.last_seq, 8);

    let loaded = s.load_directory("hr").await.unwrap();
    let ada_id = loaded
        .users
        .iter()
        .find(|u| u.source_id == "u1")
        .unwrap()
        .id
        .clone();
    assert!(!ada_id.is_empty());

    let mut next = snapshot();
    next.users[0].user_name = "ada.lovelace".into(); // rename
    next.users.retain(|u| u.source_id != "u2"); // deletion
    next.memberships.retain(|m| m.member.id != "u3");
    next.memberships.push(Membership {
        group: "g1".into(),
        member: MemberRef::user("u3"),
    });
    let w = s
        .replace_directory("hr", "file", &next, None, 30)
        .await
        .unwrap();
    assert_eq!(w.changes, 4);
    let loaded = s.load_directory("hr").await.unwrap();
    let ada = loaded.users.iter().find(|u| u.source_id == "u1").unwrap();
    assert_eq!(ada.user_name, "ada.lovelace");
    assert_eq!(ada.id, ada_id, "a rename keeps the internal id");
    assert_eq!(loaded.users.len(), 2);
    let log = s.changes_since("hr", 8, 100).await.unwrap();
    let kinds: Vec<&str> = log.iter().map(|c| c.change.kind()).collect();
    assert_eq!(
        kinds,
        vec!["upsert_user", "remove_member", "add_member", "delete_user"]
    );
    assert!(log.iter().all(|c| c.at_ms == 30));
    assert_eq!(s.last_seq("hr").await.unwrap(), 12);
    let counts = s.directory_counts("hr").await.unwrap();
    assert_eq!((counts.users, counts.groups, counts.memberships), (2, 2, 3));
}

#[tokio::test]
async fn apply_changes_logs_only_real_changes_and_cascades_deletes() {
    let (_d, s) = open().await;
    s.replace_directory("hr", "file", &snapshot(), None, 1)
        .await
        .unwrap();
    let start = s.last_seq("hr").await.unwrap();
    let mut ada = User::new("u1", "ada");
    let changes = vec![
        Change::UpsertUser { user: ada.clone() }, // identical: not logged
        Change::AddMember {
            group: "g1".into(),
            member: MemberRef::user("u1"),
        }, // exists: not logged
        Change::AddMember {
            group: "g2".into(),
            member: MemberRef::user("u2"),
        }, // new: logged
        Change::AddMember {
            group: "g2".into(),
            member: MemberRef::user("u2"),
        }, // the same again: not logged
        Change::DeleteGroup {
            source_id: "g1".into(),
        },
        Change::UpsertUser {
            user: {
                ada.title = Some("Countess".into());
                ada.clone()
            },
        },
    ];
    let w = s
        .apply_changes("hr", "scim", &changes, Some("delta-2"), 5)
        .await
        .unwrap();
    assert_eq!(w.changes, 3);
    assert_eq!(w.last_seq, start + 3);
    assert_eq!(
        s.source_cursor("scim").await.unwrap().as_deref(),
        Some("delta-2")
    );
    let d = s.load_directory("hr").await.unwrap();
    assert!(
        d.memberships
            .iter()
            .all(|m| m.group != "g1" && m.member.id != "g1"),
        "{:?}",
        d.memberships
    );
    assert_eq!(
        d.users
            .iter()
            .find(|u| u.source_id == "u1")
            .unwrap()
            .title
            .as_deref(),
        Some("Countess")
    );
}

#[tokio::test]
async fn everything_committed_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let s = Store::open(&path).await.unwrap();
        s.replace_directory("hr", "file", &snapshot(), Some("x"), 1)
            .await
            .unwrap();
        s.set_flow_cursor("f", 5).await.unwrap();
        s.close().await;
    }
    let s = Store::open(&path).await.unwrap();
    assert_eq!(s.load_directory("hr").await.unwrap().users.len(), 3);
    assert_eq!(s.flow_cursor("f").await.unwrap(), 5);
    assert_eq!(s.source_cursor("file").await.unwrap().as_deref(), Some("x"));
    assert_eq!(s.list_directories().await.unwrap(), vec!["hr".to_string()]);
}

#[tokio::test]
async fn runs_and_the_provisioning_log() {
    let (_d, s) = open().await;
    for (i, id) in ["r1", "r2"].iter().enumerate() {
        s.start_run(&NewRun {
            id: id.to_string(),
            flow: "f".into(),
            trigger: "manual".into(),
            mode: "full".into(),
            started_ms: 100 * (i as i64 + 1),
            dry_run: false,
        })
        .await
        .unwrap();
    }
    let running = s.get_run("r1").await.unwrap().unwrap();
    assert_eq!(running.status, RunStatus::Running);
    let mut counts = RunCounts::default();
    counts.0.insert("applied".into(), 2);
    s.finish_run("r1", RunStatus::PartiallyFailed, &counts, 150, Some("x"))
        .await
        .unwrap();
    let runs = s.list_runs(Some("f"), 10).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["r2", "r1"]
    );
    assert_eq!(runs[1].counts, counts);
    assert_eq!(runs[1].ended_ms, Some(150));
    assert!(s.list_runs(Some("other"), 10).await.unwrap().is_empty());

    let mut before = User::new("u1", "ada");
    let mut after = before.clone();
    after.title = Some("Dr".into());
    before.active = true;
    let recs = vec![
        OpRecord {
            seq: 1,
            op: Operation {
                key: "u1".into(),
                action: Action::UpdateUser {
                    before,
                    after,
                    changed: vec!["title".into()],
                },
                reason: Reason::ChangedInSource(vec!["title".into()]),
            },
            applied: false,
            target_id: None,
            outcome: "rejected".into(),
            error: Some("HTTP 400: bad title".into()),
            duration_ms: 3,
            at_ms: 120,
        },
        OpRecord {
            seq: 0,
            op: Operation {
                key: "g".into(),
                action: Action::AddMembers {
                    group: "G".into(),
                    users: vec!["u1".into()],
                },
                reason: Reason::MembershipsAdded,
            },
            applied: true,
            target_id: None,
            outcome: "applied".into(),
            error: None,
            duration_ms: 1,
            at_ms: 121,
        },
    ];
    s.record_ops("f", "r1", &recs).await.unwrap();
    let log = s.run_ops("r1").await.unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].seq, 0, "ordered by plan position");
    assert_eq!(log[1].changed, vec!["title".to_string()]);
    assert_eq!(log[1].reason, "changed in the source: title");
    assert_eq!(log[1].after.as_ref().unwrap()["title"], "Dr");
    assert_eq!(log[1].error.as_deref(), Some("HTTP 400: bad title"));
    // Only the applied record touched the ledger.
    let ledger = s.load_ledger("f").await.unwrap();
    assert!(ledger.users.is_empty());
    assert_eq!(ledger.members["g"].len(), 1);

    let purged = s.purge_before(140).await.unwrap();
    assert_eq!(purged.runs, 0, "r1 ended at 150");
    let purged = s.purge_before(1000).await.unwrap();
    assert_eq!((purged.runs, purged.operations), (1, 2));
    assert!(s.get_run("r1").await.unwrap().is_none());
    assert!(
        s.get_run("r2").await.unwrap().is_some(),
        "a running run is never purged"
    );
}

#[tokio::test]
async fn purge_keeps_change_log_entries_a_flow_has_not_passed() {
    let (_d, s) = open().await;
    s.register_flow("f", "hr").await.unwrap();
    s.replace_directory("hr", "file", &snapshot(), None, 1)
        .await
        .unwrap();
    s.set_flow_cursor("f", 3).await.unwrap();
    let p = s.purge_before(1_000).await.unwrap();
    assert_eq!(p.changes, 3);
    assert_eq!(
        s.changes_since("hr", 0, 100)
            .await
            .unwrap()
            .first()
            .map(|c| c.seq),
        Some(4)
    );
}

/// A group's membership changes share change-log rows (up to a thousand per row); each is still
/// read back on its own, in order, with its own position, from any position and with any limit.
#[tokio::test]
async fn membership_changes_read_back_one_by_one_from_any_position() {
    let (_d, s) = open().await;
    let users: Vec<User> = (0..2500)
        .map(|i| User::new(format!("u{i:04}"), format!("n{i}")))
        .collect();
    let member = |g: &str, m: MemberRef| Membership {
        group: g.into(),
        member: m,
    };
    let mut memberships: Vec<Membership> = users
        .iter()
        .map(|u| member("big", MemberRef::user(u.source_id.clone())))
        .collect();
    memberships.push(member("big", MemberRef::group("small")));
    memberships.extend((0..3).map(|i| member("small", MemberRef::user(format!("u{i:04}")))));
    let full = Snapshot {
        users,
        groups: vec![Group::new("big", "big"), Group::new("small", "small")],
        memberships: memberships.clone(),
    };
    s.replace_directory("hr", "file", &full, None, 10)
        .await
        .unwrap();
    // Two groups' changes interleaved in one write, and removals.
    let (ab, bc) = (MemberRef::user("u0001"), MemberRef::user("u0002"));
    s.apply_changes(
        "hr",
        "push",
        &[
            Change::RemoveMember {
                group: "small".into(),
                member: ab.clone(),
            },
            Change::RemoveMember {
                group: "big".into(),
                member: ab.clone(),
            },
            Change::RemoveMember {
                group: "small".into(),
                member: bc.clone(),
            },
        ],
        None,
        20,
    )
    .await
    .unwrap();
    let last = s.last_seq("hr").await.unwrap();
    assert_eq!(last, 2500 + 2 + 2504 + 3);

    let all = s.changes_since("hr", 0, i64::MAX).await.unwrap();
    let seqs: Vec<i64> = all.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<i64>>());
    let mut added: Vec<Membership> = all
        .iter()
        .filter_map(|c| match &c.change {
            Change::AddMember { group, member: m } => Some(member(group, m.clone())),
            _ => None,
        })
        .collect();
    added.sort();
    memberships.sort();
    assert_eq!(added, memberships);
    let removed: Vec<(String, MemberRef, i64)> = all[all.len() - 3..]
        .iter()
        .map(|c| match &c.change {
            Change::RemoveMember { group, member } => (group.clone(), member.clone(), c.at_ms),
            other => panic!("expected a removal, got {other:?}"),
        })
        .collect();
    assert_eq!(
        removed,
        vec![
            ("small".to_string(), ab.clone(), 20),
            ("big".to_string(), ab, 20),
            ("small".to_string(), bc, 20)
        ]
    );
    // From inside a row, across row boundaries, with limits that end inside a row.
    for after in [
        0,
        2501,
        2502,
        2503,
        3000,
        3501,
        3502,
        3503,
        5000,
        last - 2,
        last,
    ] {
        for limit in [1, 7, 999, 1000, 1001, 2600] {
            let got = s.changes_since("hr", after, limit).await.unwrap();
            let from = usize::try_from(after).unwrap();
            let to = (from + usize::try_from(limit).unwrap()).min(all.len());
            assert_eq!(got, all[from..to], "after {after}, limit {limit}");
        }
    }

    // Purging keeps every change a flow has not passed, and counts changes, not rows.
    s.register_flow("f", "hr").await.unwrap();
    s.set_flow_cursor("f", 3000).await.unwrap();
    let p = s.purge_before(1_000).await.unwrap();
    let left = s.changes_since("hr", 0, i64::MAX).await.unwrap();
    assert_eq!(usize::try_from(p.changes).unwrap() + left.len(), all.len());
    assert!(left.first().is_some_and(|c| c.seq <= 3001));
    assert_eq!(left[..], all[all.len() - left.len()..]);
}

fn ops_strategy() -> impl Strategy<Value = Vec<Operation>> {
    let user = (0..4usize, "[a-z]{1,3}", any::<bool>()).prop_map(|(i, n, a)| {
        let mut u = User::new(format!("u{i}"), n);
        u.active = a;
        u
    });
    let op = prop_oneof![
        user.clone().prop_map(|u| Operation {
            key: u.source_id.clone(),
            action: Action::CreateUser { user: u },
            reason: Reason::NewInSource
        }),
        user.clone().prop_map(|u| Operation {
            key: u.source_id.clone(),
            action: Action::UpdateUser {
                before: u.clone(),
                after: u,
                changed: vec![]
            },
            reason: Reason::NewInSource
        }),
        // Disables, plain or anonymizing (the name changes).
        (user.clone(), "[a-z]{1,3}").prop_map(|(u, n)| {
            let mut after = u.clone();
            after.active = false;
            after.user_name = n;
            Operation {
                key: u.source_id.clone(),
                action: Action::DisableUser { before: u, after },
                reason: Reason::RemovedFromSource,
            }
        }),
        user.prop_map(|u| Operation {
            key: u.source_id.clone(),
            action: Action::DeleteUser { before: u },
            reason: Reason::RemovedFromSource
        }),
        // Created empty, or with its first members.
        (
            0..3usize,
            "[A-Z]{1,3}",
            prop::collection::vec(0..4usize, 0..3)
        )
            .prop_map(|(i, n, us)| Operation {
                key: format!("g{i}"),
                action: Action::CreateGroup {
                    group: Group::new(format!("g{i}"), n),
                    members: us.iter().map(|u| Key::from(format!("u{u}"))).collect()
                },
                reason: Reason::NewInSource
            }),
        (0..3usize).prop_map(|i| Operation {
            key: format!("g{i}"),
            action: Action::DeleteGroup {
                before: Group::new(format!("g{i}"), "x")
            },
            reason: Reason::RemovedFromSource
        }),
        (0..3usize, prop::collection::vec(0..4usize, 1..4)).prop_map(|(g, us)| Operation {
            key: format!("g{g}"),
            action: Action::AddMembers {
                group: format!("G{g}"),
                users: us.iter().map(|u| Key::from(format!("u{u}"))).collect()
            },
            reason: Reason::MembershipsAdded
        }),
        (0..3usize, prop::collection::vec(0..4usize, 1..4)).prop_map(|(g, us)| Operation {
            key: format!("g{g}"),
            action: Action::RemoveMembers {
                group: format!("G{g}"),
                users: us.iter().map(|u| Key::from(format!("u{u}"))).collect()
            },
            reason: Reason::MembershipsRemoved
        }),
    ];
    prop::collection::vec(op, 0..25)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// The ledger in SQL changes exactly as `LedgerState::record` changes it in memory.
    #[test]
    fn recorded_ops_match_the_in_memory_ledger(ops in ops_strategy()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let s = Store::open_in_memory().await.unwrap();
            let mut mem = LedgerState::default();
            let mut recs = Vec::new();
            for (i, op) in ops.iter().enumerate() {
                let tid = format!("t-{}-{i}", op.key);
                // An update of something not in the ledger is a no-op both ways.
                let at_ms = 1_000 * i as i64;
                mem.record(op, Some(&tid), at_ms);
                recs.push(OpRecord { seq: i as i64, op: op.clone(), applied: true, target_id: Some(tid), outcome: "applied".into(), error: None, duration_ms: 0, at_ms });
            }
            s.record_ops("f", "r", &recs).await.unwrap();
            let stored = s.load_ledger("f").await.unwrap();
            prop_assert_eq!(stored, mem);
            Ok(())
        })?;
    }
}

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

/// A store written before memberships were numbered (migration 0011) keeps every membership,
/// ledger membership and e-mail address through the upgrade, and takes new ones after it.
#[tokio::test]
async fn memberships_of_an_older_store_survive_the_upgrade() {
    let d = tempfile::tempdir().unwrap();
    let old = d.path().join("migrations");
    std::fs::create_dir(&old).unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut names: Vec<_> = std::fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.as_str() < "0011")
        .collect();
    names.sort();
    assert_eq!(names.len(), 10);
    for n in &names {
        std::fs::copy(all.join(n), old.join(n)).unwrap();
    }
    let db = d.path().join("s.db");
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO directories (name, last_seq) VALUES ('hr', 0);
         INSERT INTO memberships (dir, group_id, member_kind, member_id) VALUES
           ('hr', 'g1', 'user', 'u1'), ('hr', 'g2', 'group', 'g1'), ('hr', 'g2', 'user', 'u3'),
           ('it', 'g1', 'user', 'u9');
         INSERT INTO user_emails (dir, user_id, email) VALUES ('hr', 'u1', 'ada@example.com');
         INSERT INTO flows (name, dir, cursor) VALUES ('f', 'hr', 0);
         INSERT INTO ledger_members (flow, group_key, user_key) VALUES
           ('f', 'g1', 'u1'), ('f', 'g1', 'u3'), ('f', 'g2', 'u3');",
    )
    .execute(&pool)
    .await
    .unwrap();
    let ada = serde_json::to_string(&User::new("u1", "ada")).unwrap();
    sqlx::query("INSERT INTO users (dir, source_id, id, user_name, data) VALUES ('hr', 'u1', 'u1', 'ada', $1)")
        .bind(ada)
        .execute(&pool)
        .await
        .unwrap();
    for (id, name) in [("g1", "eng"), ("g2", "all")] {
        let g = serde_json::to_string(&Group::new(id, name)).unwrap();
        sqlx::query("INSERT INTO groups_ (dir, source_id, id, display_name, data) VALUES ('hr', $1, $1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(g)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    let s = Store::open(&db).await.unwrap();
    let m = |g: &str, member: MemberRef| Membership {
        group: g.into(),
        member,
    };
    let mut want = vec![
        m("g1", MemberRef::user("u1")),
        m("g2", MemberRef::group("g1")),
        m("g2", MemberRef::user("u3")),
    ];
    want.sort();
    assert_eq!(s.load_directory("hr").await.unwrap().memberships, want);
    assert_eq!(
        s.load_directory("it").await.unwrap().memberships,
        vec![m("g1", MemberRef::user("u9"))]
    );
    assert_eq!(
        s.member_of("hr", "u1").await.unwrap(),
        vec![("g1".to_string(), "eng".to_string())]
    );
    assert_eq!(
        s.group_members("hr", "g2").await.unwrap(),
        vec![MemberRef::user("u3"), MemberRef::group("g1")]
    );
    let ledger = s.load_ledger("f").await.unwrap();
    let members = |g: &str| {
        let mut v: Vec<String> = ledger.members[g].iter().map(|k| k.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(members("g1"), ["u1", "u3"]);
    assert_eq!(members("g2"), ["u3"]);

    // After the upgrade: a new membership of a known user, one of a user never numbered, a
    // removal, and the e-mail lookup.
    let changes = [
        Change::AddMember {
            group: "g2".into(),
            member: MemberRef::user("u1"),
        },
        Change::AddMember {
            group: "g1".into(),
            member: MemberRef::user("u4"),
        },
        Change::RemoveMember {
            group: "g2".into(),
            member: MemberRef::group("g1"),
        },
    ];
    let w = s
        .apply_changes("hr", "scim", &changes, None, 5)
        .await
        .unwrap();
    assert_eq!(w.changes, 3);
    let mut want = vec![
        m("g1", MemberRef::user("u1")),
        m("g1", MemberRef::user("u4")),
        m("g2", MemberRef::user("u1")),
        m("g2", MemberRef::user("u3")),
    ];
    want.sort();
    assert_eq!(s.load_directory("hr").await.unwrap().memberships, want);
    let by_mail = s
        .find_users_by_email("hr", "ADA@example.com")
        .await
        .unwrap();
    assert_eq!(by_mail.len(), 1);
    assert_eq!(by_mail[0].user.user_name, "ada");
}

/// A user's groups, as `member_of` answers them (group ids, sorted).
async fn groups_of(s: &Store, dir: &str, user: &str) -> Vec<String> {
    let mut g: Vec<String> = s
        .member_of(dir, user)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    g.sort();
    g
}

fn add(group: &str, member: MemberRef) -> Change {
    Change::AddMember {
        group: group.into(),
        member,
    }
}

/// Which groups a member is in comes from maps kept in memory (no index by member): they must
/// follow this store's writes, notice another process's, and every deletion must still take
/// all of the deleted object's memberships with it.
#[tokio::test]
async fn a_members_groups_follow_every_write_also_from_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let s = Store::open(&path).await.unwrap();
    let other = Store::open(&path).await.unwrap();
    let mut snap = snapshot();
    snap.groups.push(Group::new("g3", "ops"));
    snap.memberships.push(Membership {
        group: "g3".into(),
        member: MemberRef::user("u1"),
    });
    s.replace_directory("hr", "file", &snap, None, 1)
        .await
        .unwrap();
    // The first question builds the map; writes here keep it.
    assert_eq!(groups_of(&s, "hr", "u1").await, vec!["g1", "g3"]);
    s.apply_changes(
        "hr",
        "scim",
        &[
            add("g2", MemberRef::user("u1")),
            Change::RemoveMember {
                group: "g3".into(),
                member: MemberRef::user("u1"),
            },
            add("g3", MemberRef::user("u2")),
        ],
        None,
        2,
    )
    .await
    .unwrap();
    assert_eq!(groups_of(&s, "hr", "u1").await, vec!["g1", "g2"]);
    assert_eq!(groups_of(&s, "hr", "u2").await, vec!["g3"]);

    // Another process adds u2 to g1 and deletes g3: this one's map is out of date.
    other
        .apply_changes(
            "hr",
            "scim",
            &[
                add("g1", MemberRef::user("u2")),
                Change::DeleteGroup {
                    source_id: "g3".into(),
                },
            ],
            None,
            3,
        )
        .await
        .unwrap();
    assert_eq!(groups_of(&s, "hr", "u2").await, vec!["g1"]);
    // Deleting u2 here drops the membership the other process added; deleting g1 (a user's
    // group, and a member of g2) in the same write drops all of its memberships, both ways.
    s.apply_changes(
        "hr",
        "scim",
        &[
            add("g2", MemberRef::user("u2")),
            Change::DeleteUser {
                source_id: "u2".into(),
            },
            Change::DeleteGroup {
                source_id: "g1".into(),
            },
        ],
        None,
        4,
    )
    .await
    .unwrap();
    let mut left: Vec<(String, String)> = s
        .load_directory("hr")
        .await
        .unwrap()
        .memberships
        .into_iter()
        .map(|m| (m.group, m.member.id))
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec![
            ("g2".to_string(), "u1".to_string()),
            ("g2".into(), "u3".into())
        ]
    );
    assert_eq!(s.directory_counts("hr").await.unwrap().memberships, 2);
    assert_eq!(groups_of(&s, "hr", "u1").await, vec!["g2"]);
    assert_eq!(groups_of(&other, "hr", "u1").await, vec!["g2"]);
    assert!(groups_of(&s, "hr", "u2").await.is_empty());

    // A user created again under a deleted id starts in no group.
    s.apply_changes(
        "hr",
        "scim",
        &[Change::UpsertUser {
            user: User::new("u2", "grace"),
        }],
        None,
        5,
    )
    .await
    .unwrap();
    assert!(groups_of(&other, "hr", "u2").await.is_empty());
}

fn ledger_op(key: &str, action: Action) -> OpRecord {
    OpRecord {
        seq: 0,
        op: Operation {
            key: key.into(),
            action,
            reason: Reason::MembershipsAdded,
        },
        applied: true,
        target_id: Some(format!("t-{key}")),
        outcome: "applied".into(),
        error: None,
        duration_ms: 1,
        at_ms: 1,
    }
}

/// A user deleted from the target leaves every group of the flow's ledger, also the groups
/// another process recorded, and only that user.
#[tokio::test]
async fn a_deleted_user_leaves_every_ledger_group() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let s = Store::open(&path).await.unwrap();
    let other = Store::open(&path).await.unwrap();
    s.register_flow("f", "hr").await.unwrap();
    let members = |group: &str, users: &[&str]| Action::AddMembers {
        group: group.into(),
        users: users.iter().map(|u| Key::from(*u)).collect(),
    };
    let delete = |user: &str| Action::DeleteUser {
        before: User::new(user, user),
    };
    s.record_ops(
        "f",
        "r1",
        &[
            ledger_op("a", members("A", &["u1", "u2"])),
            ledger_op("b", members("B", &["u1"])),
        ],
    )
    .await
    .unwrap();
    // The first deletion builds the map, the next ones follow it.
    s.record_ops("f", "r1", &[ledger_op("u2", delete("u2"))])
        .await
        .unwrap();
    other
        .record_ops(
            "f",
            "r2",
            &[
                ledger_op("c", members("C", &["u1", "u3"])),
                ledger_op("a", members("A", &["u3"])),
            ],
        )
        .await
        .unwrap();
    s.record_ops(
        "f",
        "r1",
        &[
            ledger_op("b", members("B", &["u3"])),
            ledger_op("u1", delete("u1")),
        ],
    )
    .await
    .unwrap();
    let ledger = s.load_ledger("f").await.unwrap();
    let users = |g: &str| -> Vec<&str> {
        ledger
            .members
            .get(g)
            .map(|u| u.iter().map(|k| &**k).collect())
            .unwrap_or_default()
    };
    assert_eq!(users("a"), vec!["u3"]);
    assert_eq!(users("b"), vec!["u3"]);
    assert_eq!(users("c"), vec!["u3"]);
}
