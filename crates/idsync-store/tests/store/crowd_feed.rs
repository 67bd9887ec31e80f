//! The event feed of a crowd target (issue 17, decision 0031): written with the ledger in one
//! transaction, positions that only grow, a new epoch when the ledger is replaced or another
//! flow feeds the target, purged events moving the first position on.

use super::{ledger_op, open};
use idsync_core::*;
use idsync_store::*;

fn served(events: &[&str]) -> ServedEvents<'static> {
    ServedEvents {
        target: "dc",
        at_ms: 1_000,
        events: events.iter().map(|e| e.to_string()).collect(),
    }
}

#[tokio::test]
async fn feed_positions_grow_with_the_ledger_and_restart_under_a_new_epoch() {
    let (_d, s) = open().await;
    s.register_flow("f", "d").await.unwrap();
    let create = ledger_op(
        "u1",
        Action::CreateUser {
            user: User::new("u1", "ada"),
        },
    );
    let v1 = s
        .record_ops_served("f", "r1", &[create], Some(&served(&["e1", "e2"])))
        .await
        .unwrap();
    let head = s.crowd_event_log("dc", "f").await.unwrap();
    assert_eq!((head.first_seq, head.last_seq), (1, 2));
    assert_eq!(s.ledger_version("f").await.unwrap(), v1);
    assert_eq!(
        s.crowd_events_after("dc", 0, 10).await.unwrap(),
        vec![(1, "e1".to_string()), (2, "e2".to_string())]
    );
    // A batch without a served target writes no event.
    s.record_ops("f", "r2", &[]).await.unwrap();
    s.record_ops_served("f", "r3", &[], Some(&served(&["e3"])))
        .await
        .unwrap();
    assert_eq!(s.crowd_events_after("dc", 2, 10).await.unwrap().len(), 1);
    let epoch = head.epoch.clone();

    // The ledger replaced wholesale: a new epoch, empty, positions going on.
    let ledger = s.load_ledger("f").await.unwrap();
    s.replace_ledger("f", &ledger).await.unwrap();
    let head = s.crowd_event_log("dc", "f").await.unwrap();
    assert_ne!(head.epoch, epoch);
    assert_eq!((head.first_seq, head.last_seq), (4, 3));
    assert!(s.crowd_events_after("dc", 0, 10).await.unwrap().is_empty());

    // Another flow feeding the target: a new epoch too.
    let epoch = head.epoch.clone();
    let head = s.crowd_event_log("dc", "g").await.unwrap();
    assert_ne!(head.epoch, epoch);
    assert_eq!(head.flow, "g");
    assert_eq!(head.first_seq, 4);
}

#[tokio::test]
async fn purging_old_events_moves_the_first_position_on() {
    let (_d, s) = open().await;
    s.register_flow("f", "d").await.unwrap();
    let mut old = served(&["a", "b"]);
    old.at_ms = 100;
    s.record_ops_served("f", "r1", &[], Some(&old))
        .await
        .unwrap();
    s.record_ops_served("f", "r2", &[], Some(&served(&["c"])))
        .await
        .unwrap();
    let epoch = s.crowd_event_log("dc", "f").await.unwrap().epoch;
    assert_eq!(s.purge_crowd_events("dc", 500, 100).await.unwrap(), 2);
    let head = s.crowd_event_log("dc", "f").await.unwrap();
    assert_eq!((head.first_seq, head.last_seq), (3, 3));
    assert_eq!(head.epoch, epoch, "tokens that lost nothing stay good");
    assert_eq!(s.purge_crowd_events("dc", 500, 100).await.unwrap(), 0);
    // No more events are kept than a token can be answered with.
    s.record_ops_served("f", "r3", &[], Some(&served(&["d", "e", "f"])))
        .await
        .unwrap();
    assert_eq!(s.purge_crowd_events("dc", 0, 2).await.unwrap(), 2);
    let head = s.crowd_event_log("dc", "f").await.unwrap();
    assert_eq!((head.first_seq, head.last_seq), (5, 6));
    assert_eq!(
        s.crowd_events_after("dc", 0, 10).await.unwrap(),
        vec![(5, "e".to_string()), (6, "f".to_string())]
    );
}

#[tokio::test]
async fn application_passwords_are_argon2_hashes() {
    let (_d, s) = open().await;
    let (app, pw) = s
        .create_crowd_app("dc", "jira", &["10.0.0.0/8".into()], 5)
        .await
        .unwrap();
    assert!(app.hash.starts_with("$argon2id$"), "{}", app.hash);
    assert!(verify_password(&app.hash, &pw));
    assert!(!verify_password(&app.hash, "wrong"));
    assert!(!verify_password("not a hash", &pw));
    assert!(matches!(
        s.create_crowd_app("dc", "jira", &[], 6).await,
        Err(StoreError::Conflict(_))
    ));
    let live = s.live_crowd_app("dc", "jira").await.unwrap().unwrap();
    assert_eq!(live.allow, vec!["10.0.0.0/8".to_string()]);
    assert!(s.revoke_crowd_app("dc", "jira", 7).await.unwrap().is_some());
    assert!(s.live_crowd_app("dc", "jira").await.unwrap().is_none());
    assert!(s.revoke_crowd_app("dc", "jira", 8).await.unwrap().is_none());
}
