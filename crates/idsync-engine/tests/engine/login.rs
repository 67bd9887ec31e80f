//! `Runtime::login` (issue 19, item 3; decision 0042): the directory updated from the login,
//! group ids named, refusals, the user's flows run for that user with a bounded wait.

use super::*;
use idsync_connectors::sources::msgraph::GraphSource;
use serde_json::json;

/// A runtime with a source `web` that takes logins (directory `web`) and a flow `web-to-app`
/// into a test target.
pub(super) fn login_runtime(
    store: Store,
    target: Arc<TestTarget>,
    read_by_source: bool,
    graph: Option<Arc<GraphSource>>,
    wait: Duration,
    tweak: impl FnOnce(&mut FlowSpec),
) -> Arc<Runtime> {
    let mut rt = Runtime::new(store, Arc::new(SystemClock));
    rt.login_sources.insert(
        "web".into(),
        LoginSource {
            name: "web".into(),
            directory: "web".into(),
            wait,
            graph,
            read_by_source,
        },
    );
    rt.targets
        .insert("app".into(), TargetEntry::new("app", target, 0.0));
    let mut spec = FlowSpec {
        name: "web-to-app".into(),
        directory: "web".into(),
        target: "app".into(),
        plan: PlanOptions::default(),
        concurrency: 8,
        backoff: Backoff {
            max_retries: 2,
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        },
        deletion_threshold: DeletionThreshold::default(),
        mapping: idsync_core::mapping::Mapping::default(),
        scope: idsync_core::scope::Scope::default(),
        only_users: None,
        inactivity: None,
        memberships: idsync_core::scope::MembershipPolicy::default(),
        groups: idsync_core::groups::GroupRules::default(),
        nested_groups: false,
    };
    tweak(&mut spec);
    rt.flows.insert(
        "web-to-app".into(),
        FlowEntry {
            spec,
            source: None,
            enabled: true,
            full_reconcile_interval: None,
        },
    );
    Arc::new(rt)
}

pub(super) async fn store_in(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("idsync.db")).await.unwrap()
}

pub(super) fn login(
    subject: &str,
    attributes: serde_json::Value,
    groups: Option<&[&str]>,
) -> Login {
    Login {
        source: "web".into(),
        subject: subject.into(),
        attributes: attributes.as_object().cloned().unwrap_or_default(),
        groups: groups.map(|g| g.iter().map(|s| s.to_string()).collect()),
        groups_overage: false,
    }
}

pub(super) fn flows(o: &LoginOutcome) -> &[FlowLogin] {
    match &o.decision {
        LoginDecision::Allowed { flows } => flows,
        LoginDecision::Refused { reason } => panic!("refused: {reason}"),
    }
}

/// userName -> (active, displayName, groups by name) in the test target.
pub(super) fn in_target(t: &TestTarget, name: &str) -> Option<(bool, Option<String>, Vec<String>)> {
    let s = t.state();
    let u = s.users.iter().find(|u| u.user.user_name == name)?;
    let mut groups: Vec<String> = s
        .groups
        .iter()
        .filter(|g| g.members.contains(&u.target_id))
        .map(|g| g.group.display_name.clone())
        .collect();
    groups.sort();
    Some((u.user.active, u.user.display_name.clone(), groups))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_login_creates_the_user_and_provisions_it_with_group_names_before_returning() {
    let dir = tempfile::tempdir().unwrap();
    let target = Arc::new(TestTarget::new());
    let rt = login_runtime(
        store_in(&dir).await,
        target.clone(),
        false,
        None,
        Duration::from_secs(10),
        |s| {
            s.groups
                .names
                .insert("9f1c-partners".into(), "Partners".into());
        },
    );
    let out = rt
        .login(login(
            "oid-ann",
            json!({"userName": "ann@example.com", "displayName": "Ann", "emails": [{"value": "ann@example.com", "primary": true}]}),
            Some(&["9f1c-partners", "77aa-unnamed"]),
        ))
        .await
        .unwrap();
    assert!(out.created);
    let f = flows(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].target, "app");
    assert!(
        matches!(
            &f[0].run,
            FlowRun::Finished {
                status: RunStatus::Succeeded,
                ..
            }
        ),
        "{:?}",
        f[0].run
    );
    // The flow's names table names one group; the other, named nowhere, keeps its id.
    assert_eq!(f[0].groups, vec!["77aa-unnamed", "Partners"]);
    assert!(
        out.warnings.iter().any(|w| w.contains("77aa-unnamed")),
        "{:?}",
        out.warnings
    );
    // In the target when the login returns, with its groups.
    let (active, display, groups) = in_target(&target, "ann@example.com").unwrap();
    assert!(active);
    assert_eq!(display.as_deref(), Some("Ann"));
    assert_eq!(groups, vec!["77aa-unnamed", "Partners"]);
    // In the directory with the change log, the login recorded, the run a `login` run.
    let stored = rt.store.get_user("web", "oid-ann").await.unwrap().unwrap();
    assert_eq!(stored.user.user_name, "ann@example.com");
    assert!(rt.store.last_seq("web").await.unwrap() >= 5);
    let a = rt
        .store
        .user_activity("web", "oid-ann")
        .await
        .unwrap()
        .unwrap();
    assert!(a.last_login_ms.is_some());
    let runs = rt.store.list_runs(Some("web-to-app"), 5).await.unwrap();
    assert_eq!(runs[0].trigger, "login");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_changes_only_what_it_carries_and_groups_only_when_sent() {
    let dir = tempfile::tempdir().unwrap();
    let target = Arc::new(TestTarget::new());
    let rt = login_runtime(
        store_in(&dir).await,
        target.clone(),
        false,
        None,
        Duration::from_secs(10),
        |_| {},
    );
    let first = json!({"userName": "bob@example.com", "displayName": "Bob", "department": "R&D", "title": "Engineer", "loyaltyId": "L-1"});
    rt.login(login("oid-bob", first, Some(&["ga", "gb"])))
        .await
        .unwrap();
    // A later login carries only the display name and one group.
    let out = rt
        .login(login(
            "oid-bob",
            json!({"displayName": "Bob B."}),
            Some(&["gb"]),
        ))
        .await
        .unwrap();
    assert!(!out.created);
    assert_eq!(flows(&out)[0].groups, vec!["gb"]);
    let u = rt
        .store
        .get_user("web", "oid-bob")
        .await
        .unwrap()
        .unwrap()
        .user;
    assert_eq!(u.display_name.as_deref(), Some("Bob B."));
    assert_eq!(u.department.as_deref(), Some("R&D"), "absent: kept");
    assert_eq!(u.title.as_deref(), Some("Engineer"));
    assert_eq!(
        u.custom.get("loyaltyId"),
        Some(&AttrValue::String("L-1".into()))
    );
    let groups = |rt: &Arc<Runtime>| {
        let rt = rt.clone();
        async move {
            let mut g: Vec<String> = rt
                .store
                .member_of("web", "oid-bob")
                .await
                .unwrap()
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            g.sort();
            g
        }
    };
    assert_eq!(groups(&rt).await, vec!["gb"]);
    assert_eq!(in_target(&target, "bob@example.com").unwrap().2, vec!["gb"]);
    // No groups claim (B2C): memberships stay.
    let out = rt.login(login("oid-bob", json!({}), None)).await.unwrap();
    assert_eq!(flows(&out)[0].groups, vec!["gb"]);
    assert_eq!(groups(&rt).await, vec!["gb"]);
    // Attributes a login may not set are refused by name, and nothing is written.
    let seq = rt.store.last_seq("web").await.unwrap();
    let err = rt
        .login(login("oid-bob", json!({"active": true}), None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("active"), "{err}");
    assert_eq!(rt.store.last_seq("web").await.unwrap(), seq);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_or_unscoped_user_is_refused_with_the_reason_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let target = Arc::new(TestTarget::new());
    let scope = idsync_core::scope::Scope {
        groups: vec![vec![idsync_core::scope::Clause::new(
            "department",
            "equals",
            Some("R&D"),
            None,
        )
        .unwrap()]],
    };
    let rt = login_runtime(
        store_in(&dir).await,
        target.clone(),
        false,
        None,
        Duration::from_secs(10),
        |s| s.scope = scope,
    );
    let out = rt
        .login(login(
            "oid-sam",
            json!({"userName": "sam@example.com", "department": "Sales"}),
            None,
        ))
        .await
        .unwrap();
    match &out.decision {
        LoginDecision::Refused { reason } => {
            assert!(reason.contains("web-to-app"), "{reason}");
            assert!(reason.contains("department"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(rt.store.get_user("web", "oid-sam").await.unwrap().is_none());
    assert!(target.state().users.is_empty());

    // A user disabled in the directory (accountEnabled false).
    let mut dis = User::new("oid-dee", "dee@example.com");
    dis.department = Some("R&D".into());
    dis.active = false;
    rt.store
        .apply_changes("web", "web", &[Change::UpsertUser { user: dis }], None, 1)
        .await
        .unwrap();
    let out = rt
        .login(login("oid-dee", json!({"displayName": "Dee"}), None))
        .await
        .unwrap();
    match &out.decision {
        LoginDecision::Refused { reason } => assert!(reason.contains("disabled"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let u = rt
        .store
        .get_user("web", "oid-dee")
        .await
        .unwrap()
        .unwrap()
        .user;
    assert_eq!(u.display_name, None, "a refused login writes nothing");
    assert!(rt
        .store
        .user_activity("web", "oid-dee")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_flow_does_not_hold_the_login_and_its_run_follows_even_when_the_login_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let target = Arc::new(TestTarget::new());
    let rt = login_runtime(
        store_in(&dir).await,
        target.clone(),
        false,
        None,
        Duration::from_millis(200),
        |_| {},
    );
    // Another run of the flow is under way in this process.
    let lock = rt.flow_lock("web-to-app");
    let busy = lock.lock().await;
    let started = std::time::Instant::now();
    let out = rt
        .login(login(
            "oid-cy",
            json!({"userName": "cy@example.com"}),
            Some(&["g1"]),
        ))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(flows(&out)[0].run, FlowRun::Running);
    assert_eq!(flows(&out)[0].groups, vec!["g1"]);
    assert!(in_target(&target, "cy@example.com").is_none());
    // A second login whose caller goes away before the answer.
    let rt2 = rt.clone();
    let pending = tokio::spawn(async move {
        rt2.login(login("oid-di", json!({"userName": "di@example.com"}), None))
            .await
    });
    until("the second login is recorded", || async {
        rt.store
            .user_activity("web", "oid-di")
            .await
            .unwrap()
            .is_some()
    })
    .await;
    pending.abort();
    drop(busy);
    until("both users provisioned after the busy run", || async {
        in_target(&target, "cy@example.com").is_some()
            && in_target(&target, "di@example.com").is_some()
    })
    .await;
    assert_eq!(in_target(&target, "cy@example.com").unwrap().2, vec!["g1"]);
    // The users queued meanwhile shared one run.
    until("the run is recorded", || async {
        let runs = rt.store.list_runs(Some("web-to-app"), 10).await.unwrap();
        runs.iter().all(|r| r.status != RunStatus::Running) && !runs.is_empty()
    })
    .await;
    let runs = rt.store.list_runs(Some("web-to-app"), 10).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
}

/// A Graph simulator and a source over it, signed in with the reader app.
async fn graph_sim(
    users: usize,
    groups: usize,
    memberships: usize,
    page: usize,
) -> (idsync_sim::graph::RunningGraphSim, Arc<GraphSource>) {
    use idsync_connectors::sources::msgraph::client::{
        Cloud, Credential, GraphClient, GraphConfig,
    };
    use idsync_connectors::sources::msgraph::GraphSourceConfig;
    use idsync_sim::graph::{self, GraphSimOptions, TenantSpec};
    let opts = GraphSimOptions {
        spec: TenantSpec {
            users,
            groups,
            memberships,
            depth: 2,
            ..TenantSpec::default()
        },
        max_page: page,
        page_size: page,
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
    let source = GraphSource::new(
        GraphClient::new(cfg, Arc::new(SystemClock)).unwrap(),
        GraphSourceConfig::default(),
    );
    (sim, Arc::new(source))
}

#[tokio::test(flavor = "multi_thread")]
async fn group_overage_is_resolved_through_graph_and_ids_named_there() {
    let (sim, graph) = graph_sim(40, 12, 200, 2).await;
    // The simulated user in the most groups, and their names as Graph has them.
    let (user, want) = {
        let t = sim.state.tenant.read().unwrap();
        let user = t
            .objects(idsync_sim::graph::Kind::User)
            .keys()
            .max_by_key(|u| t.transitive_member_of(u).len())
            .unwrap()
            .clone();
        let mut names: Vec<String> = t
            .transitive_member_of(&user)
            .iter()
            .map(|g| {
                t.get(idsync_sim::graph::Kind::Group, g).unwrap().props["displayName"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        names.sort_by_key(|n| n.to_lowercase());
        (user, names)
    };
    assert!(want.len() > 2, "more groups than one page: {want:?}");
    let dir = tempfile::tempdir().unwrap();
    let target = Arc::new(TestTarget::new());
    let rt = login_runtime(
        store_in(&dir).await,
        target.clone(),
        false,
        Some(graph),
        Duration::from_secs(10),
        |_| {},
    );
    let mut l = login(&user, json!({"userName": "over@example.com"}), None);
    l.groups_overage = true;
    let out = rt.login(l).await.unwrap();
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let mut got = flows(&out)[0].groups.clone();
    got.sort_by_key(|n| n.to_lowercase());
    assert_eq!(got, want);
    let mut in_app = in_target(&target, "over@example.com").unwrap().2;
    in_app.sort_by_key(|n| n.to_lowercase());
    assert_eq!(in_app, want);

    // Ids sent in the token are named through Graph (`GET /groups/{id}`).
    let first_group = {
        let t = sim.state.tenant.read().unwrap();
        t.transitive_member_of(&user)[0].clone()
    };
    let out = rt
        .login(login(&user, json!({}), Some(&[first_group.as_str()])))
        .await
        .unwrap();
    assert_eq!(flows(&out)[0].groups.len(), 1);
    assert!(want.contains(&flows(&out)[0].groups[0]));
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_read_that_started_before_a_login_does_not_undo_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = Arc::new(TestTarget::new());
    let store = store_in(&dir).await;
    // The directory as a reader filled it: Eve in group g-old.
    let mut eve = User::new("oid-eve", "eve@example.com");
    eve.display_name = Some("Eve".into());
    let snapshot = Snapshot {
        users: vec![eve.clone()],
        groups: vec![Group::new("g-old", "old"), Group::new("g-new", "new")],
        memberships: vec![Membership {
            group: "g-old".into(),
            member: MemberRef::user("oid-eve"),
        }],
    };
    store
        .replace_directory("web", "web", &snapshot, None, 1)
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let rt = {
        let mut rt = Arc::try_unwrap(login_runtime(
            store,
            target.clone(),
            true,
            None,
            Duration::from_secs(10),
            |_| {},
        ))
        .ok()
        .unwrap();
        rt.clock = clock.clone();
        Arc::new(rt)
    };
    // A full read starts at t=1,000,000 with the old snapshot; the login lands during it.
    let source = MemorySource(Mutex::new(snapshot));
    clock.set(1_000_500);
    rt.login(login(
        "oid-eve",
        json!({"displayName": "Eve Renamed"}),
        Some(&["g-new", "g-unknown"]),
    ))
    .await
    .unwrap();
    // The read's start, as its clock said.
    clock.set(1_000_000);
    ingest(&rt.store, "web", "web", &source, clock.as_ref())
        .await
        .unwrap();
    let u = rt
        .store
        .get_user("web", "oid-eve")
        .await
        .unwrap()
        .unwrap()
        .user;
    assert_eq!(u.display_name.as_deref(), Some("Eve Renamed"));
    let groups: Vec<String> = rt
        .store
        .member_of("web", "oid-eve")
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    // g-unknown is not the reader's group: the login did not add it.
    assert_eq!(groups, vec!["g-new"]);
    // A read that starts after the login is the source's word again.
    clock.set(1_002_000);
    ingest(&rt.store, "web", "web", &source, clock.as_ref())
        .await
        .unwrap();
    let u = rt
        .store
        .get_user("web", "oid-eve")
        .await
        .unwrap()
        .unwrap()
        .user;
    assert_eq!(u.display_name.as_deref(), Some("Eve"));
}
