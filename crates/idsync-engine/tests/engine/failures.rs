//! A target that throttles, fails, times out or drifts: retries, matching, reconcile, dry runs, pacing.

use super::*;

/// A target that keeps saying "slow down" (429 with Retry-After) is waited for: the waits are
/// shared by every operation and do not use up an operation's retries, nor count as failures of
/// the target, so a sync into a throttling target ends with everything applied.
#[tokio::test]
async fn a_target_that_keeps_throttling_is_waited_for_not_failed() {
    let t = TestTarget::new();
    // More throttled answers in a row than an operation has retries (5).
    t.fail_next(
        20,
        Fault::TooManyRequests {
            retry_after: Duration::from_millis(2),
        },
    );
    let f = fixture(people(12), t).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.counts);
    assert_eq!(r.count("create_user.applied"), 12);
    assert_eq!(r.count("create_user.failed"), 0);
    assert_eq!(f.target.user_count(), 12);
    assert_ledger_matches_target(&f).await;
}

#[tokio::test]
async fn retryable_errors_are_retried_and_permanent_ones_recorded() {
    let t = TestTarget::new();
    t.fail_next(
        6,
        Fault::TooManyRequests {
            retry_after: Duration::from_millis(5),
        },
    );
    t.fail_next(2, Fault::ServerError(503));
    t.reject_user_names(&["user1[0-9]@example\\.com".to_string()])
        .unwrap();
    let f = fixture(people(30), t).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::PartiallyFailed);
    assert_eq!(r.count("create_user.failed"), 10, "user10..user19 rejected");
    assert_eq!(r.count("create_user.applied"), 20);
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    let rejected: Vec<_> = ops
        .iter()
        .filter(|o| o.outcome == "rejected" && o.action == "create_user")
        .collect();
    assert_eq!(rejected.len(), 10);
    assert!(rejected
        .iter()
        .all(|o| o.error.as_deref().is_some_and(|e| !e.is_empty())));
    // Their memberships could not be added: recorded, not fatal.
    assert!(ops
        .iter()
        .any(|o| o.action == "add_members" && o.outcome == "rejected"));
    assert_eq!(f.target.user_count(), 20);
    assert_ledger_matches_target(&f).await;
    // The next run tries the rejected ones again and only those.
    f.target.reject_user_names(&[]).unwrap();
    let again = sync(&f, Mode::Full).await;
    assert_eq!(again.status, RunStatus::Succeeded);
    assert_eq!(again.count("create_user.applied"), 10);
    assert_ledger_matches_target(&f).await;
}

#[tokio::test]
async fn exhausted_retries_fail_the_operation_not_the_run() {
    let t = TestTarget::new();
    t.fail_next(1000, Fault::ServerError(503));
    let f = fixture(people(3), t).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.count("applied"), 0);
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    assert!(ops.iter().all(|o| o.outcome != "applied"));
    assert!(ops
        .iter()
        .any(|o| o.outcome == "failed" && o.error.as_deref().unwrap_or("").contains("503")));
    assert!(f
        .rt
        .store
        .load_ledger("hr-to-app")
        .await
        .unwrap()
        .users
        .is_empty());
}

#[tokio::test]
async fn a_create_that_timed_out_after_applying_is_not_duplicated() {
    let t = TestTarget::new();
    t.fail_next(5, Fault::TimeoutAfterApply);
    let f = fixture(people(10), t).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded);
    for i in 0..10 {
        assert_eq!(f.target.users_named(&format!("user{i}@example.com")), 1);
    }
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    assert!(
        ops.iter().any(|o| o.outcome == "linked"),
        "the retried create found and linked the first one"
    );
    assert_ledger_matches_target(&f).await;
}

/// A first sync into an empty target creates without searching it first (two requests less
/// per object); once the target holds users, every create searches and links what it finds.
#[tokio::test]
async fn creates_search_the_target_only_when_it_holds_something() {
    let f = fixture(people(10), TestTarget::new()).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(f.target.user_count(), 10);
    assert_eq!(f.target.searches(), 0);

    // Another target already holding one of the users (made by hand).
    let t = TestTarget::new();
    let mut existing = people(1).users[0].clone();
    existing.source_id = "made-by-hand".into();
    assert!(matches!(
        t.apply(&TargetOp::CreateUser { user: existing }).await,
        Outcome::Applied { .. }
    ));
    let f = fixture(people(10), t).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded);
    assert!(f.target.searches() >= 10, "{}", f.target.searches());
    assert_eq!(f.target.users_named("user0@example.com"), 1);
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    assert_eq!(ops.iter().filter(|o| o.outcome == "linked").count(), 1);
    assert_ledger_matches_target(&f).await;
}

#[tokio::test]
async fn reconcile_repairs_changes_made_by_hand_in_the_target() {
    let f = fixture(people(10), TestTarget::new()).await;
    sync(&f, Mode::Full).await;
    let ledger = f.rt.store.load_ledger("hr-to-app").await.unwrap();
    let u0 = ledger.users["id-00000"].target_id.clone();
    let u1 = ledger.users["id-00001"].target_id.clone();
    let u2 = ledger.users["id-00002"].target_id.clone();
    let team = ledger.groups["g-team"].target_id.clone();
    f.target
        .hand_update_user(&u0, |u| u.display_name = Some("Edited by hand".into()));
    f.target.hand_delete_user(&u1);
    f.target.hand_remove_member(&team, &u2);

    // An ordinary run trusts the ledger and sees nothing.
    assert_eq!(sync(&f, Mode::Full).await.count("planned"), 0);
    let r = sync(&f, Mode::Reconcile).await;
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(r.count("update_user.applied"), 1);
    assert_eq!(r.count("create_user.applied"), 1);
    assert!(r.count("add_members.applied") >= 1);
    let (users, groups) = target_view(&f.target);
    assert!(users.contains(&("user0@example.com".into(), true, Some("User 0".into()))));
    assert!(users.iter().any(|u| u.0 == "user1@example.com"));
    assert!(groups
        .iter()
        .find(|g| g.0 == "team")
        .unwrap()
        .1
        .contains(&"user2@example.com".to_string()));
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    assert!(ops
        .iter()
        .any(|o| o.reason == "changed by hand in the target: displayName"));
    assert_ledger_matches_target(&f).await;
    assert_eq!(sync(&f, Mode::Reconcile).await.count("planned"), 0);
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let f = fixture(people(5), TestTarget::new()).await;
    let r =
        f.rt.sync("hr-to-app", Mode::Full, true, &NoProgress)
            .await
            .unwrap();
    assert_eq!(r.plan.counts()["create_user"], 5);
    assert_eq!(f.target.apply_calls(), 0);
    assert!(f.rt.store.list_runs(None, 10).await.unwrap().is_empty());
    assert_eq!(f.rt.store.flow_cursor("hr-to-app").await.unwrap(), 0);
}

#[tokio::test]
async fn rate_limit_paces_operations() {
    let f = fixture(people(4), TestTarget::new()).await;
    let mut rt = f.rt;
    // 20 ops/s towards the target: the 4 users, 3 groups and their memberships take time.
    let app = rt.targets["app"].target.clone();
    rt.targets
        .insert("app".into(), TargetEntry::new("app", app, 20.0));
    let started = std::time::Instant::now();
    let r = rt
        .sync("hr-to-app", Mode::Full, false, &NoProgress)
        .await
        .unwrap();
    let n = r.count("applied");
    assert!(n >= 10);
    // n operations at 20/s cannot finish faster than (n-1)/20 s.
    assert!(started.elapsed() >= Duration::from_millis(((n - 1) * 50) as u64));
}
