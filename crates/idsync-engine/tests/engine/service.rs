//! The service: pushes, quarantine, failed source reads, the connector kit, skips, intervals.

use super::*;

#[tokio::test]
async fn a_push_reaches_the_target_through_the_service() {
    let f = fixture(people(3), TestTarget::new()).await;
    let target = f.target.clone();
    let rt = Arc::new(f.rt);
    let svc = Service::new(rt.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = svc.start(stop_rx);
    // A push source writes straight into the directory and says so.
    let mut u = User::new("pushed-1", "pushed@example.com");
    u.display_name = Some("Pushed".into());
    rt.store
        .apply_changes("hr", "scim", &[Change::UpsertUser { user: u }], None, 0)
        .await
        .unwrap();
    svc.notify("hr", Trigger::Push);
    let t = &target;
    until("the pushed user never reached the target", || async move {
        t.users_named("pushed@example.com") > 0
    })
    .await;
    let runs = rt.store.list_runs(Some("hr-to-app"), 5).await.unwrap();
    assert_eq!(runs[0].trigger, "push");
    assert_eq!(runs[0].mode, "incremental");
    stop_tx.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn a_quarantined_flow_waits_out_its_backoff_then_a_good_run_ends_it() {
    let mut f = fixture(people(3), TestTarget::new()).await;
    let clock = Arc::new(ManualClock::new(1_000_000));
    f.rt.clock = clock.clone();
    let target = f.target.clone();
    let rt = Arc::new(f.rt);
    // Three bad runs in a row (recorded as the runtime records them) quarantine the flow.
    for i in 0..3 {
        let (h, entered) = rt
            .store
            .record_flow_failure(
                "hr-to-app",
                "hr",
                "HTTP 401: the API key expired",
                1_000_000,
                3,
            )
            .await
            .unwrap();
        assert_eq!((h.failures, entered), (i + 1, i == 2));
    }
    assert_eq!(quarantine_backoff_ms(3), 300_000);
    assert_eq!(quarantine_backoff_ms(5), 1_200_000);
    assert_eq!(quarantine_backoff_ms(40), 86_400_000);

    let svc = Service::new(rt.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = svc.start(stop_rx);
    let mut u = User::new("pushed-1", "pushed@example.com");
    u.display_name = Some("Pushed".into());
    rt.store
        .apply_changes("hr", "scim", &[Change::UpsertUser { user: u }], None, 0)
        .await
        .unwrap();
    svc.notify("hr", Trigger::Push);
    // Within the backoff the follower sees the change and leaves the flow alone.
    let metrics = &svc.metrics;
    until("the follower never looked", || async move {
        metrics.quarantine_skips("hr-to-app") >= 2
    })
    .await;
    assert_eq!(target.users_named("pushed@example.com"), 0);
    assert!(rt
        .store
        .list_runs(Some("hr-to-app"), 5)
        .await
        .unwrap()
        .is_empty());
    // Five minutes later it tries again; the run is good, and the quarantine ends.
    clock.advance(300_000);
    let t = &target;
    until("no run after the backoff", || async move {
        t.users_named("pushed@example.com") > 0
    })
    .await;
    let store = &rt.store;
    until("still quarantined after a good run", || async move {
        store
            .flow_health("hr-to-app")
            .await
            .unwrap()
            .quarantined_ms
            .is_none()
    })
    .await;
    assert_eq!(rt.store.flow_health("hr-to-app").await.unwrap().failures, 0);
    stop_tx.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn a_failed_source_read_changes_nothing() {
    struct Broken;
    #[async_trait]
    impl Source for Broken {
        fn describe(&self) -> String {
            "broken".into()
        }
        async fn read(&self, _: Option<&str>) -> Result<SourceRead, SourceError> {
            Err(SourceError::Unavailable("HTTP 503 on page 3".into()))
        }
    }
    let mut f = fixture(people(5), TestTarget::new()).await;
    sync(&f, Mode::Full).await;
    f.rt.sources.get_mut("hr").unwrap().source = Arc::new(Broken);
    let err =
        f.rt.sync("hr-to-app", Mode::Full, false, &NoProgress)
            .await
            .unwrap_err();
    assert!(err.to_string().contains("HTTP 503 on page 3"), "{err}");
    assert_eq!(
        f.rt.store.load_directory("hr").await.unwrap().users.len(),
        5
    );
    assert_eq!(
        target_view(&f.target).0.iter().filter(|u| u.1).count(),
        5,
        "nobody deprovisioned"
    );
}

#[tokio::test]
async fn the_conformance_kit_passes_against_the_test_target() {
    let t = TestTarget::new();
    let results = idsync_connectors::testkit::run_all(&t, "kit").await;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(results.len() >= 10);
}

#[tokio::test]
async fn objects_the_target_skips_are_logged_not_failed() {
    let t = TestTarget::new();
    t.skip_user_names(&["^user[0-2]@".to_string()]).unwrap();
    let f = fixture(people(6), t).await;
    let r = sync(&f, Mode::Full).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.counts);
    assert_eq!(r.count("create_user.skipped"), 3);
    assert_eq!(r.count("failed"), 0);
    // Each planned operation counts once; the skipped users' memberships are skipped too, and
    // counted as members.
    assert_eq!(r.count("skipped"), 3, "{:?}", r.counts);
    assert_eq!(
        r.count("applied") + r.count("failed") + r.count("skipped"),
        r.count("planned"),
        "{:?}",
        r.counts
    );
    assert!(
        r.count("members.skipped") >= 3,
        "the skipped users' memberships are skipped too: {:?}",
        r.counts
    );
    let ops = f.rt.store.run_ops(&r.run_id).await.unwrap();
    assert!(ops
        .iter()
        .any(|o| o.outcome == "skipped" && o.action == "add_members"));
    assert!(ops
        .iter()
        .filter(|o| o.outcome == "skipped" && o.action == "create_user")
        .all(|o| o.error.as_deref().is_some_and(|e| e.contains("outside"))));
    assert_eq!(f.target.user_count(), 3);
    assert_ledger_matches_target(&f).await;
}

#[tokio::test]
async fn a_source_on_an_interval_is_read_and_provisioned_by_the_service() {
    let mut f = fixture(people(2), TestTarget::new()).await;
    if let Some(src) = f.rt.sources.get_mut("hr") {
        src.interval = Some(Duration::from_millis(50));
    }
    let (source, target) = (f.source.clone(), f.target.clone());
    let rt = Arc::new(f.rt);
    let svc = Service::new(rt.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = svc.start(stop_rx);
    let wait = |what: &'static str, name: &'static str| {
        let target = target.clone();
        async move {
            let t = &target;
            until(&format!("{what} never reached the target"), || async move {
                t.users_named(name) > 0
            })
            .await;
        }
    };
    wait("the first read", "user1@example.com").await;
    source
        .0
        .lock()
        .unwrap()
        .users
        .push(User::new("late", "late@example.com"));
    wait("a user added to the source later", "late@example.com").await;
    let runs = rt.store.list_runs(Some("hr-to-app"), 10).await.unwrap();
    assert!(runs.iter().all(|r| r.trigger == "schedule"), "{runs:?}");
    stop_tx.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
}

/// A Graph read that fails half-way (5xx on every next page, after the delta link expired and a
/// full read was needed) changes nothing: no partial snapshot is taken as the directory, so
/// nobody is deprovisioned.
#[tokio::test]
async fn a_graph_read_failing_mid_paging_deprovisions_nobody() {
    use idsync_connectors::sources::msgraph::client::{
        Cloud, Credential, GraphClient, GraphConfig,
    };
    use idsync_connectors::sources::msgraph::{GraphSource, GraphSourceConfig};
    use idsync_sim::graph::{self, Faults, GraphSimOptions, TenantSpec};
    let opts = GraphSimOptions {
        spec: TenantSpec {
            users: 120,
            groups: 6,
            memberships: 200,
            ..TenantSpec::default()
        },
        max_page: 25,
        ..GraphSimOptions::default()
    };
    let sim = graph::start(opts.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    let mut cfg = GraphConfig::new(
        &sim.tenant_id,
        &opts.reader.client_id,
        Credential::Secret(opts.reader.client_secret.clone()),
        Cloud::Global,
    );
    cfg.authority = sim.root.clone();
    cfg.graph = sim.root.clone();
    cfg.max_retries = 2;
    cfg.max_backoff = Duration::from_millis(5);
    let source = GraphSource::new(
        GraphClient::new(cfg, Arc::new(SystemClock)).unwrap(),
        GraphSourceConfig::default(),
    );
    let f = fixture(Snapshot::default(), TestTarget::new()).await;
    let mut rt = f.rt;
    rt.sources.insert(
        "hr".into(),
        SourceEntry {
            name: "hr".into(),
            directory: "hr".into(),
            interval: None,
            source: Arc::new(source),
        },
    );
    let first = rt
        .sync("hr-to-app", Mode::Full, false, &NoProgress)
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    let active = |t: &TestTarget| t.state().users.iter().filter(|u| u.user.active).count();
    assert_eq!(f.target.state().users.len(), 120);
    let enabled = active(&f.target);
    assert!(enabled > 100, "most simulated users are enabled");

    sim.state.expire_delta_links();
    sim.state.set_faults(Faults {
        fail_next: 1000,
        fail_match: "skiptoken".into(),
        error_status: 502,
        ..Faults::default()
    });
    let err = rt
        .sync("hr-to-app", Mode::Full, false, &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("502"), "{err}");
    // The failed read is in the history, and the directory is whole.
    let reads = rt.store.list_runs(Some("source:hr"), 10).await.unwrap();
    assert_eq!(reads[0].status, RunStatus::Failed);
    assert_eq!(rt.store.directory_counts("hr").await.unwrap().users, 120);
    let plan = rt.sync("hr-to-app", Mode::Full, true, &NoProgress).await;
    assert!(
        plan.is_err(),
        "the dry run reads the source too, and fails the same way"
    );
    let run = rt
        .run(
            "hr-to-app",
            RunOptions {
                trigger: Trigger::Manual,
                mode: Mode::Full,
                dry_run: false,
            },
            false,
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(run.plan.deprovisions(), 0);
    assert_eq!(active(&f.target), enabled);

    // When Graph recovers, the next read is whole again.
    sim.state.set_faults(Faults::default());
    let again = rt
        .sync("hr-to-app", Mode::Full, false, &NoProgress)
        .await
        .unwrap();
    assert_eq!(again.status, RunStatus::Succeeded);
    assert_eq!(active(&f.target), enabled);
}
