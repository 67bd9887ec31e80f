//! Runs, the provisioning log, purges and the ledger of what a flow wrote.

use super::*;

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
