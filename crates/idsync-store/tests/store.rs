//! Store tests against a real SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use idsync_core::*;
use idsync_store::*;
use proptest::prelude::*;

#[path = "store/crowd_feed.rs"]
mod crowd_feed;
#[path = "store/member_of.rs"]
mod member_of;
#[path = "store/nesting.rs"]
mod nesting;
#[path = "store/push.rs"]
mod push;
#[path = "store/runs_and_ledger.rs"]
mod runs_and_ledger;

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

pub(crate) async fn open() -> (tempfile::TempDir, Store) {
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

pub(crate) fn ledger_op(key: &str, action: Action) -> OpRecord {
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
