//! Memberships numbered (migration 0011) and the reverse map of who is in which group.

use super::*;

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
