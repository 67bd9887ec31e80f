//! Deprovisioning: the threshold hold, the policies, unique values, members added by hand.

use super::*;

#[tokio::test]
async fn deprovisions_above_the_threshold_wait_for_approve_or_reject() {
    let mut f = fixture(people(40), TestTarget::new()).await;
    f.rt.flows
        .get_mut("hr-to-app")
        .unwrap()
        .spec
        .deletion_threshold = DeletionThreshold {
        count: Some(5),
        percent: Some(50.0),
    };
    sync(&f, Mode::Full).await;
    let active = |f: &Fixture, name: &str| target_user(f, name).map(|u| u.1);
    let in_everyone = |f: &Fixture, name: &str| groups_of(f, name).iter().any(|g| g == "everyone");

    // Three users leave: below the threshold, deprovisioned at once.
    f.source
        .0
        .lock()
        .unwrap()
        .users
        .retain(|u| !["id-00000", "id-00001", "id-00002"].contains(&u.source_id.as_str()));
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(r.count("disable_user.applied"), 3);
    assert_eq!(active(&f, "user0@example.com"), Some(false));

    // Ten more leave (a bad day in the source) while someone is renamed: the rename is applied,
    // the ten keep their accounts and their groups.
    {
        let mut s = f.source.0.lock().unwrap();
        s.users.retain(|u| {
            let n: usize = u.source_id[3..].parse().unwrap();
            !(10..20).contains(&n)
        });
        s.users[0].display_name = Some("Renamed".into());
    }
    let held = sync(&f, Mode::Full).await;
    assert_eq!(held.status, RunStatus::Held, "{:?}", held.counts);
    assert_eq!(held.count("held"), 10);
    assert_eq!(held.count("update_user.applied"), 1);
    assert!(
        held.plan
            .warnings
            .iter()
            .any(|w| w.contains("deletion threshold")),
        "{:?}",
        held.plan.warnings
    );
    assert_eq!(active(&f, "user11@example.com"), Some(true));
    assert!(in_everyone(&f, "user11@example.com"));
    let log = f.rt.store.run_ops(&held.run_id).await.unwrap();
    assert_eq!(
        log.iter()
            .filter(|o| o.outcome == "held" && o.action == "disable_user")
            .count(),
        10
    );

    // While the hold waits, later runs hold too; the latest hold supersedes the earlier one.
    let again = sync(&f, Mode::Full).await;
    assert_eq!(again.status, RunStatus::Held);
    let first = f.rt.store.get_run(&held.run_id).await.unwrap().unwrap();
    assert_eq!(first.resolution.as_deref(), Some("superseded"));
    let err =
        f.rt.approve(&held.run_id, &NoProgress)
            .await
            .unwrap_err()
            .to_string();
    assert!(err.contains(&again.run_id), "{err}");

    // Reject: nothing deprovisioned; the next run judges again, and holds again.
    let rejected = f.rt.reject(&again.run_id).await.unwrap();
    assert_eq!(rejected.resolution.as_deref(), Some("rejected"));
    assert_eq!(active(&f, "user11@example.com"), Some(true));
    let third = sync(&f, Mode::Full).await;
    assert_eq!(third.status, RunStatus::Held);

    // Approve: the ten are deprovisioned and leave their groups; the flow stops waiting.
    let approved = f.rt.approve(&third.run_id, &NoProgress).await.unwrap();
    assert_eq!(
        approved.status,
        RunStatus::Succeeded,
        "{:?}",
        approved.counts
    );
    assert_eq!(approved.count("disable_user.applied"), 10);
    assert_eq!(active(&f, "user11@example.com"), Some(false));
    assert!(!in_everyone(&f, "user11@example.com"));
    let third = f.rt.store.get_run(&third.run_id).await.unwrap().unwrap();
    assert_eq!(third.resolution.as_deref(), Some("approved"));
    assert!(f
        .rt
        .store
        .pending_hold("hr-to-app")
        .await
        .unwrap()
        .is_none());
    assert_eq!(sync(&f, Mode::Full).await.count("planned"), 0);
    assert_ledger_matches_target(&f).await;
}

#[tokio::test]
async fn deprovisioning_policy_memberships_kept_by_rule_reenabled_on_return_or_left_alone() {
    use idsync_core::scope::{GroupPattern, MembershipPolicy};
    let mut f = fixture(people(6), TestTarget::new()).await;
    // Disable, remove memberships except in "engineering" (nested: the even users' group).
    f.rt.flows.get_mut("hr-to-app").unwrap().spec.memberships = MembershipPolicy {
        keep: false,
        keep_in: vec![GroupPattern::parse("regex:^eng").unwrap()],
    };
    sync(&f, Mode::Full).await;
    assert_eq!(
        groups_of(&f, "user2@example.com"),
        ["engineering", "everyone", "team"]
    );
    let two = f.source.0.lock().unwrap().users[2].clone();
    f.source
        .0
        .lock()
        .unwrap()
        .users
        .retain(|u| u.source_id != "id-00002");
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("disable_user.applied"), 1);
    assert_eq!(
        groups_of(&f, "user2@example.com"),
        ["engineering"],
        "kept where the rule says"
    );
    // Back in the source: enabled again, and in its groups again.
    f.source.0.lock().unwrap().users.push(two);
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("update_user.applied"), 1, "{:?}", r.plan);
    let back = target_user(&f, "user2@example.com").unwrap();
    assert!(back.1, "active again");
    assert_eq!(
        groups_of(&f, "user2@example.com"),
        ["engineering", "everyone", "team"]
    );

    // deprovision = "none": a user who leaves is left as the target has it.
    {
        let spec = &mut f.rt.flows.get_mut("hr-to-app").unwrap().spec;
        spec.plan.deprovision = DeprovisionAction::Nothing;
        spec.memberships = MembershipPolicy {
            keep: true,
            keep_in: Vec::new(),
        };
    }
    f.source
        .0
        .lock()
        .unwrap()
        .users
        .retain(|u| u.source_id != "id-00003");
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("planned"), 0, "{:?}", r.plan);
    let three = target_user(&f, "user3@example.com").unwrap();
    assert!(three.1, "still active");
    assert_eq!(groups_of(&f, "user3@example.com"), ["everyone"]);
}

#[tokio::test]
async fn deprovisioning_deletes_after_a_grace_period_or_anonymizes_reversibly() {
    let mut f = fixture(people(6), TestTarget::new()).await;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    f.rt.clock = clock.clone();
    f.rt.flows
        .get_mut("hr-to-app")
        .unwrap()
        .spec
        .plan
        .deprovision = DeprovisionAction::DeleteAfter { days: 30 };
    sync(&f, Mode::Full).await;
    f.source
        .0
        .lock()
        .unwrap()
        .users
        .retain(|u| u.source_id != "id-00002");
    assert_eq!(sync(&f, Mode::Full).await.count("disable_user.applied"), 1);
    clock.advance(29 * 86_400_000);
    assert_eq!(
        sync(&f, Mode::Full).await.count("planned"),
        0,
        "within the grace period"
    );
    clock.advance(2 * 86_400_000);
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("delete_user.applied"), 1, "{:?}", r.plan);
    let log = f.rt.store.run_ops(&r.run_id).await.unwrap();
    assert_eq!(
        log[0].reason,
        "disabled for more than the grace period of 30 days"
    );
    assert_eq!(f.target.users_named("user2@example.com"), 0);

    // Anonymize: placeholders in the target, the real values in the ledger, back on return.
    f.rt.flows
        .get_mut("hr-to-app")
        .unwrap()
        .spec
        .plan
        .deprovision = DeprovisionAction::Anonymize;
    let four = f.source.0.lock().unwrap().users[3].clone();
    assert_eq!(four.source_id, "id-00004");
    f.source
        .0
        .lock()
        .unwrap()
        .users
        .retain(|u| u.source_id != "id-00004");
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("disable_user.applied"), 1, "{:?}", r.plan);
    let users = target_view(&f.target).0;
    assert!(
        !users.iter().any(|u| u.0 == "user4@example.com"),
        "{users:?}"
    );
    let anon = users
        .iter()
        .find(|u| u.0.starts_with("deprovisioned-") && u.0.ends_with("@example.com"))
        .unwrap();
    assert_eq!((anon.1, anon.2.as_deref()), (false, Some("Former user")));
    let ledger = f.rt.store.load_ledger("hr-to-app").await.unwrap();
    let kept = ledger.users["id-00004"].original.as_ref().unwrap();
    assert_eq!(kept.user_name, "user4@example.com");
    assert_eq!(kept.display_name.as_deref(), Some("User 4"));
    assert_eq!(
        sync(&f, Mode::Full).await.count("planned"),
        0,
        "anonymized once"
    );
    f.source.0.lock().unwrap().users.push(four);
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("update_user.applied"), 1, "{:?}", r.plan);
    let back = target_user(&f, "user4@example.com").unwrap();
    assert_eq!((back.1, back.2.as_deref()), (true, Some("User 4")));
    assert!(
        f.rt.store.load_ledger("hr-to-app").await.unwrap().users["id-00004"]
            .original
            .is_none()
    );
    assert_ledger_matches_target(&f).await;
}

#[tokio::test]
async fn select_unique_value_asks_the_target_for_values_idsync_did_not_give() {
    use idsync_core::mapping::{Apply, Mapping};
    let mut f = fixture(people(1), TestTarget::new()).await;
    f.rt.flows.get_mut("hr-to-app").unwrap().spec.mapping = Mapping::compile(&[(
        "userName".to_string(),
        r#"SelectUniqueValue("handmade@example.com", Append("idsync-", [userName]))"#.to_string(),
        Apply::OnCreate,
    )])
    .unwrap();
    // Someone made a user by hand in the application with the first candidate.
    let made = f
        .target
        .apply(&TargetOp::CreateUser {
            user: User::new("by-hand", "handmade@example.com"),
        })
        .await;
    assert!(matches!(made, Outcome::Applied { .. }), "{made:?}");
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.count("create_user.applied"), 1, "{:?}", r.plan);
    assert_eq!(f.target.users_named("idsync-user0@example.com"), 1);
    assert_eq!(
        f.target.users_named("handmade@example.com"),
        1,
        "the hand-made user is left alone"
    );
    // Once created, the value stays (on create only), and nothing more is asked or planned.
    assert_eq!(sync(&f, Mode::Full).await.count("planned"), 0);
}

#[tokio::test]
async fn members_added_by_hand_stay_when_the_flow_keeps_them_and_go_when_authoritative() {
    use idsync_core::groups::{group_key, GroupRules};
    let mut f = fixture(people(6), TestTarget::new()).await;
    f.rt.flows.get_mut("hr-to-app").unwrap().spec.groups = GroupRules {
        keep_manual: true,
        default_all: vec!["all-staff".into()],
        ..GroupRules::default()
    };
    sync(&f, Mode::Full).await;
    let ledger = f.rt.store.load_ledger("hr-to-app").await.unwrap();
    let team = ledger.groups[&group_key("team")].target_id.clone();
    // user1 (odd: not in "team") is added to "team" by hand in the application.
    let u1 = ledger.users["id-00001"].target_id.clone();
    let added = f
        .target
        .apply(&TargetOp::AddMembers {
            group_id: team.clone(),
            user_ids: vec![u1.clone()],
        })
        .await;
    assert!(matches!(added, Outcome::Applied { .. }));
    let in_team = |f: &Fixture| {
        groups_of(f, "user1@example.com")
            .iter()
            .any(|g| g == "team")
    };
    // Reconciles see the hand-made membership and leave it; so do ordinary runs after them.
    for mode in [Mode::Reconcile, Mode::Reconcile, Mode::Full] {
        let r = sync(&f, mode).await;
        assert_eq!(
            r.count("remove_members.applied"),
            0,
            "{mode:?}: {:?}",
            r.plan
        );
        assert!(in_team(&f), "{mode:?}");
    }
    // Authoritative: the next reconcile takes it out.
    f.rt.flows
        .get_mut("hr-to-app")
        .unwrap()
        .spec
        .groups
        .keep_manual = false;
    let r = sync(&f, Mode::Reconcile).await;
    assert_eq!(r.count("remove_members.applied"), 1, "{:?}", r.plan);
    assert!(!in_team(&f));
}
