//! A flow's `inactive_after` (issue 19, item 4; decision 0043): users without a login for N
//! days are deprovisioned by the flow's policy, members of exempt groups are not, the deletion
//! threshold holds them like any deprovision, and the next login undoes it.

use super::*;
use serde_json::json;

const DAY: i64 = 86_400_000;

#[tokio::test(flavor = "multi_thread")]
async fn users_without_a_login_for_n_days_are_disabled_held_by_the_threshold_and_back_at_their_next_login(
) {
    let f = fixture(people(4), TestTarget::new()).await;
    let Fixture {
        _dir,
        mut rt,
        target,
        ..
    } = f;
    let t0 = 1_788_048_000_000; // 2026-08-30
    let clock = Arc::new(ManualClock::new(t0));
    rt.clock = clock.clone();
    {
        let flow = rt.flows.get_mut("hr-to-app").unwrap();
        flow.spec.inactivity = Some(idsync_core::inactivity::Inactivity {
            after_days: 90,
            exempt: vec![idsync_core::scope::GroupPattern::parse("team").unwrap()],
        });
        flow.spec.deletion_threshold = DeletionThreshold {
            count: Some(1),
            percent: None,
        };
    }
    rt.login_sources.insert(
        "hr".into(),
        LoginSource {
            name: "hr".into(),
            directory: "hr".into(),
            wait: Duration::from_secs(10),
            graph: None,
            read_by_source: true,
        },
    );
    let rt = Arc::new(rt);
    let first = rt
        .sync("hr-to-app", Mode::Full, false, &NoProgress)
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    assert_eq!(target.state().users.len(), 4);
    // Introducing the setting disables nobody: users are counted from the first run.
    let a = rt
        .store
        .user_activity("hr", "id-00001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.first_seen_ms, a.last_login_ms), (t0, None));

    // id-00003 logs in on day 10; nobody else ever does.
    clock.set(t0 + 10 * DAY);
    let out = rt
        .login(Login {
            source: "hr".into(),
            subject: "id-00003".into(),
            ..Login::default()
        })
        .await
        .unwrap();
    assert!(matches!(out.decision, LoginDecision::Allowed { .. }));

    // Day 97: id-00001 (never logged in) is inactive; id-00000 and id-00002 are in `team`
    // (exempt); id-00003 logged in 87 days ago.
    clock.set(t0 + 97 * DAY);
    let plan = rt
        .sync("hr-to-app", Mode::Full, true, &NoProgress)
        .await
        .unwrap();
    let deprovisions: Vec<(String, String)> = plan
        .plan
        .operations
        .iter()
        .filter(|o| o.action.is_deprovision())
        .map(|o| (o.key.clone(), o.reason.to_string()))
        .collect();
    assert_eq!(
        deprovisions,
        vec![(
            "id-00001".to_string(),
            "no login for 97 days; never logged in since idsync first counted the user on 2026-08-30"
                .to_string()
        )]
    );
    // Day 101: id-00003 too (last login day 10); two deprovisions are above the threshold.
    clock.set(t0 + 101 * DAY);
    let held = rt
        .sync("hr-to-app", Mode::Full, false, &NoProgress)
        .await
        .unwrap();
    assert_eq!(held.status, RunStatus::Held);
    let ops = rt.store.run_ops(&held.run_id).await.unwrap();
    let reasons: Vec<String> = ops
        .iter()
        .filter(|o| o.outcome == "held")
        .map(|o| o.reason.clone())
        .collect();
    assert!(
        reasons.contains(&"no login for 91 days; last login 2026-09-09".to_string()),
        "{reasons:?}"
    );
    assert!(target.state().users.iter().all(|u| u.user.active));
    rt.approve(&held.run_id, &NoProgress).await.unwrap();
    let active = |name: &str| {
        target
            .state()
            .users
            .iter()
            .find(|u| u.user.user_name == name)
            .unwrap()
            .user
            .active
    };
    assert!(!active("user1@example.com"));
    assert!(!active("user3@example.com"));
    assert!(active("user0@example.com") && active("user2@example.com"));

    // The next login undoes it: the login's own run enables the user again.
    clock.set(t0 + 102 * DAY);
    let out = rt
        .login(Login {
            source: "hr".into(),
            subject: "id-00001".into(),
            attributes: json!({}).as_object().cloned().unwrap(),
            ..Login::default()
        })
        .await
        .unwrap();
    match &out.decision {
        LoginDecision::Allowed { flows } => assert!(
            matches!(
                flows[0].run,
                FlowRun::Finished {
                    status: RunStatus::Succeeded,
                    ..
                }
            ),
            "{flows:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(active("user1@example.com"));
    assert!(!active("user3@example.com"));
    let plan = rt
        .sync("hr-to-app", Mode::Full, true, &NoProgress)
        .await
        .unwrap();
    assert_eq!(plan.plan.len(), 0, "{:?}", plan.plan.operations);
}
