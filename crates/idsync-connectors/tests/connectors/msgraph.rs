//! The Microsoft Graph source against the Graph simulator on loopback.

use idsync_connectors::sources::msgraph::{
    GraphScope, GraphSource, GraphSourceConfig, UserKey, UserNameFrom,
};
use idsync_core::{desired_state, Change, MemberKind, Snapshot, Source, SourceRead, SystemClock};
use idsync_msgraph::{Cloud, Credential, GraphClient, GraphConfig};
use idsync_sim::graph::{self, Faults, GraphSimOptions, Kind, RunningGraphSim, TenantSpec};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

fn spec(users: usize, groups: usize, memberships: usize) -> TenantSpec {
    TenantSpec {
        users,
        groups,
        memberships,
        depth: 3,
        seed: 7,
        b2c: false,
        name: "contoso".into(),
    }
}

async fn sim_with(spec: TenantSpec, tls: Option<&std::path::Path>) -> RunningGraphSim {
    let opts = GraphSimOptions {
        spec,
        tls: tls.is_some(),
        cert_dir: tls.map(std::path::Path::to_path_buf),
        page_size: 50,
        max_page: 50,
        ..GraphSimOptions::default()
    };
    graph::start(opts, Arc::new(SystemClock)).await.unwrap()
}

fn client_for(sim: &RunningGraphSim, secret: &str, client_id: Option<&str>) -> GraphClient {
    let mut cfg = GraphConfig::new(
        &sim.tenant_id,
        client_id.unwrap_or(&GraphSimOptions::default().reader.client_id),
        Credential::Secret(secret.into()),
        Cloud::Global,
    );
    cfg.authority = sim.root.clone();
    cfg.graph = sim.root.clone();
    cfg.ca_file = sim.ca_pem.clone();
    cfg.max_backoff = Duration::from_millis(50);
    GraphClient::new(cfg, Arc::new(SystemClock)).unwrap()
}

fn source(sim: &RunningGraphSim, cfg: GraphSourceConfig) -> GraphSource {
    GraphSource::new(client_for(sim, "sim-secret", None), cfg)
}

fn full(read: SourceRead) -> (Snapshot, Option<String>) {
    match read {
        SourceRead::Full { snapshot, cursor } => (snapshot, cursor),
        SourceRead::Delta { .. } => panic!("expected a full read"),
    }
}

fn delta(read: SourceRead) -> (Vec<Change>, String) {
    match read {
        SourceRead::Delta { changes, cursor } => (changes, cursor),
        SourceRead::Full { .. } => panic!("expected a delta read"),
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

const APP_CERT: &str = include_str!("../../../idsync-sim/fixtures/app-cert.pem");

#[tokio::test]
async fn graph_signs_in_with_a_certificate_registered_on_the_app() {
    let cert = idsync_msgraph::ClientCertificate::from_pem(APP_CERT, None).unwrap();
    let cert = Arc::new(cert);
    let cert_client = |sim: &RunningGraphSim| {
        let mut cfg = GraphConfig::new(
            &sim.tenant_id,
            &GraphSimOptions::default().reader.client_id,
            Credential::Certificate(cert.clone()),
            Cloud::Global,
        );
        cfg.authority = sim.root.clone();
        cfg.graph = sim.root.clone();
        GraphClient::new(cfg, Arc::new(SystemClock)).unwrap()
    };
    // Registered: a token, twice (each request signs a fresh assertion: the simulator, like
    // Entra, refuses a replayed jti), and the directory reads.
    let mut opts = GraphSimOptions {
        spec: spec(30, 3, 60),
        ..GraphSimOptions::default()
    };
    opts.reader.certificates = graph::RegisteredCert::from_pem(APP_CERT).unwrap();
    let sim = graph::start(opts, Arc::new(SystemClock)).await.unwrap();
    let client = cert_client(&sim);
    assert!(!client.access_token().await.unwrap().is_empty());
    let src = GraphSource::new(client, GraphSourceConfig::default());
    let (snap, _) = full(src.read(None).await.unwrap());
    assert_eq!(snap.users.len(), 30);
    let again = cert_client(&sim);
    assert!(again
        .granted_roles()
        .await
        .unwrap()
        .contains(&"User.Read.All".to_string()));
    assert_eq!(sim.state.stats().tokens_issued, 2);

    // Not registered: Entra's words, not a bare 401.
    let bare = sim_with(spec(5, 1, 5), None).await;
    let err = cert_client(&bare)
        .access_token()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AADSTS700027"), "{err}");
    assert!(err.contains("not registered on application"), "{err}");
}

#[tokio::test]
async fn graph_full_read_matches_the_tenant_and_delta_carries_only_changes() {
    let sim = sim_with(spec(240, 24, 900), None).await;
    let src = source(&sim, GraphSourceConfig::default());
    let (snap, cursor) = full(src.read(None).await.unwrap());
    let (users, groups, links) = {
        let t = sim.state.tenant.read().unwrap();
        (t.user_count(), t.group_count(), t.membership_count())
    };
    assert_eq!(
        (snap.users.len(), snap.groups.len(), snap.memberships.len()),
        (users, groups, links)
    );
    // Keys are object ids; attributes arrive mapped; managers as ids.
    {
        let t = sim.state.tenant.read().unwrap();
        let first = &snap.users[0];
        let raw = t.get(Kind::User, &first.source_id).unwrap();
        assert_eq!(
            Some(first.user_name.as_str()),
            raw.props["userPrincipalName"].as_str()
        );
        assert_eq!(
            first.department.as_deref(),
            raw.props["department"].as_str()
        );
        assert!(first.custom.contains_key("extensionAttribute1"));
    }
    assert!(snap.users.iter().filter(|u| u.manager.is_some()).count() >= users * 9 / 10);
    let cursor = cursor.expect("a delta cursor after the first read");
    let before = sim.state.stats().requests;

    // Nothing changed: an empty delta.
    let (changes, cursor) = delta(src.read(Some(&cursor)).await.unwrap());
    assert!(changes.is_empty(), "{} changes", changes.len());

    // Add, update, delete, membership changes.
    let (new_id, updated, deleted, group, member) = {
        let mut t = sim.state.tenant.write().unwrap();
        let new = t
            .create(Kind::User, obj(json!({"displayName": "New Person", "userPrincipalName": "new.person@contoso.com", "mail": "new.person@contoso.com"})), "2026-11-25T00:00:00Z")
            .unwrap();
        let ids: Vec<String> = t.objects(Kind::User).keys().cloned().collect();
        t.update(
            Kind::User,
            &ids[3],
            obj(json!({"jobTitle": "Chief Analyst", "department": "Research"})),
        )
        .unwrap();
        t.delete(Kind::User, &ids[4]).unwrap();
        let group = t.objects(Kind::Group).keys().next().cloned().unwrap();
        let new_id = new["id"].as_str().unwrap().to_string();
        t.add_member(&group, &new_id).unwrap();
        let member = t
            .members(&group)
            .unwrap()
            .into_iter()
            .find(|(k, id)| *k == Kind::User && *id != new_id)
            .unwrap()
            .1;
        t.remove_member(&group, &member).unwrap();
        (new_id, ids[3].clone(), ids[4].clone(), group, member)
    };
    let (changes, _) = delta(src.read(Some(&cursor)).await.unwrap());
    let has = |f: &dyn Fn(&Change) -> bool| changes.iter().any(f);
    assert!(has(
        &|c| matches!(c, Change::UpsertUser { user } if user.source_id == new_id && user.user_name == "new.person@contoso.com")
    ));
    assert!(has(
        &|c| matches!(c, Change::UpsertUser { user } if user.source_id == updated && user.title.as_deref() == Some("Chief Analyst"))
    ));
    assert!(has(
        &|c| matches!(c, Change::DeleteUser { source_id } if *source_id == deleted)
    ));
    assert!(has(
        &|c| matches!(c, Change::AddMember { group: g, member: m } if *g == group && m.id == new_id)
    ));
    assert!(has(
        &|c| matches!(c, Change::RemoveMember { group: g, member: m } if *g == group && m.id == member)
    ));
    // Only the changed objects travel: one upsert per changed user, and the deletion's
    // membership removals.
    let upserts = changes
        .iter()
        .filter(|c| matches!(c, Change::UpsertUser { .. }))
        .count();
    assert_eq!(upserts, 2, "{} changes", changes.len());
    // Two delta rounds cost a handful of requests, not a re-read of 240 users.
    assert!(sim.state.stats().requests - before < 12);
}

#[tokio::test]
async fn graph_sparse_delta_items_are_completed_with_a_batch() {
    let sim = sim_with(spec(60, 6, 100), None).await;
    let src = source(&sim, GraphSourceConfig::default());
    let (_, cursor) = full(src.read(None).await.unwrap());
    sim.state.set_faults(Faults {
        sparse_delta: true,
        ..Faults::default()
    });
    let id = {
        let mut t = sim.state.tenant.write().unwrap();
        let id = t.objects(Kind::User).keys().nth(5).cloned().unwrap();
        t.update(Kind::User, &id, obj(json!({"jobTitle": "Sparse"})))
            .unwrap();
        id
    };
    let (changes, _) = delta(src.read(cursor.as_deref()).await.unwrap());
    let user = changes
        .iter()
        .find_map(|c| match c {
            Change::UpsertUser { user } if user.source_id == id => Some(user.clone()),
            _ => None,
        })
        .unwrap();
    // The whole user, not just the two properties the delta carried.
    assert_eq!(user.title.as_deref(), Some("Sparse"));
    assert!(user.user_name.contains('@'));
    assert!(user.department.is_some());
}

#[tokio::test]
async fn graph_nested_groups_three_deep_with_a_cycle() {
    let sim = sim_with(spec(90, 9, 200), None).await;
    // Levels 0, 1, 2: close the cycle by nesting a level-0 group under its level-2 grandchild.
    let (top, mid, leaf) = {
        let mut t = sim.state.tenant.write().unwrap();
        let groups: Vec<String> = t.objects(Kind::Group).keys().cloned().collect();
        let mut chain = None;
        'outer: for top in &groups {
            for (k, mid) in t.members(top).unwrap() {
                if k != Kind::Group {
                    continue;
                }
                for (k2, leaf) in t.members(&mid).unwrap() {
                    if k2 == Kind::Group {
                        chain = Some((top.clone(), mid.clone(), leaf));
                        break 'outer;
                    }
                }
            }
        }
        let (top, mid, leaf) = chain.expect("three levels of nesting");
        t.add_member(&leaf, &top).unwrap();
        (top, mid, leaf)
    };
    let src = source(&sim, GraphSourceConfig::default());
    let (snap, _) = full(src.read(None).await.unwrap());
    let nested = |g: &str, m: &str| {
        snap.memberships
            .iter()
            .any(|x| x.group == g && x.member.kind == MemberKind::Group && x.member.id == m)
    };
    assert!(nested(&top, &mid) && nested(&mid, &leaf) && nested(&leaf, &top));
    // Effective membership through the cycle: a direct user of the leaf is in all three, and
    // a direct user of the top is in the leaf.
    let state = desired_state(&snap);
    let direct_user = |g: &str| {
        snap.memberships
            .iter()
            .find(|x| x.group == g && x.member.kind == MemberKind::User)
            .map(|x| x.member.id.clone())
    };
    let leaf_user = direct_user(&leaf).expect("the leaf group has users");
    let top_user = direct_user(&top).expect("the top group has users");
    for g in [&top, &mid, &leaf] {
        let members = &state.members[g.as_str()];
        assert!(members.iter().any(|m| &**m == leaf_user.as_str()), "{g}");
        assert!(members.iter().any(|m| &**m == top_user.as_str()), "{g}");
    }
}

#[tokio::test]
async fn graph_scope_by_group_and_by_application_assignment() {
    let sim = sim_with(spec(120, 12, 300), None).await;
    let (top_name, top_id, expected_users, app_id, assigned_users) = {
        let t = sim.state.tenant.read().unwrap();
        // A level-0 group has nested groups under it.
        let (top_id, top) = t
            .objects(Kind::Group)
            .iter()
            .find(|(id, _)| {
                t.members(id)
                    .unwrap()
                    .iter()
                    .any(|(k, _)| *k == Kind::Group)
            })
            .map(|(id, o)| (id.clone(), o.clone()))
            .unwrap();
        let users: BTreeSet<String> = t
            .transitive_members(&top_id)
            .unwrap()
            .into_iter()
            .filter(|(k, _)| *k == Kind::User)
            .map(|(_, id)| id)
            .collect();
        let sp = &t.service_principals[0];
        let mut assigned: BTreeSet<String> = BTreeSet::new();
        for a in &sp.assignments {
            match a.principal.0 {
                Kind::User => {
                    assigned.insert(a.principal.1.clone());
                }
                Kind::Group => assigned.extend(
                    t.transitive_members(&a.principal.1)
                        .unwrap()
                        .into_iter()
                        .filter(|(k, _)| *k == Kind::User)
                        .map(|(_, id)| id),
                ),
            }
        }
        (
            top.props["displayName"].as_str().unwrap().to_string(),
            top_id,
            users,
            sp.app_id.clone(),
            assigned,
        )
    };
    let src = source(
        &sim,
        GraphSourceConfig {
            scope: GraphScope::Groups(vec![top_name.clone()]),
            ..GraphSourceConfig::default()
        },
    );
    let (snap, _) = full(src.read(None).await.unwrap());
    let got: BTreeSet<String> = snap.users.iter().map(|u| u.source_id.clone()).collect();
    assert_eq!(got, expected_users);
    assert!(snap.groups.iter().any(|g| g.source_id == top_id));
    assert!(snap.groups.len() > 1, "nested groups come along");
    assert!(snap.users.len() < 120);

    let src = source(
        &sim,
        GraphSourceConfig {
            scope: GraphScope::App(app_id),
            ..GraphSourceConfig::default()
        },
    );
    let (snap, _) = full(src.read(None).await.unwrap());
    let got: BTreeSet<String> = snap.users.iter().map(|u| u.source_id.clone()).collect();
    assert_eq!(got, assigned_users);

    // A group name that does not exist is an error, not an empty directory.
    let src = source(
        &sim,
        GraphSourceConfig {
            scope: GraphScope::Groups(vec!["No Such Group".into()]),
            ..GraphSourceConfig::default()
        },
    );
    let err = src.read(None).await.unwrap_err().to_string();
    assert!(err.contains("No Such Group"), "{err}");
}

#[tokio::test]
async fn graph_expired_delta_link_means_a_full_read() {
    let sim = sim_with(spec(40, 4, 60), None).await;
    let src = source(&sim, GraphSourceConfig::default());
    let (_, cursor) = full(src.read(None).await.unwrap());
    sim.state.expire_delta_links();
    let (snap, cursor2) = full(src.read(cursor.as_deref()).await.unwrap());
    assert_eq!(snap.users.len(), 40);
    // And the new link works.
    let (changes, _) = delta(src.read(cursor2.as_deref()).await.unwrap());
    assert!(changes.is_empty());
}

#[tokio::test]
async fn graph_429_storm_is_ridden_out_and_a_5xx_mid_paging_fails_the_whole_read() {
    let sim = sim_with(spec(200, 10, 300), None).await;
    let calm = {
        let src = source(&sim, GraphSourceConfig::default());
        full(src.read(None).await.unwrap()).0
    };
    sim.state.set_faults(Faults {
        throttle_rate: 0.4,
        retry_after_secs: 0,
        ..Faults::default()
    });
    let src = source(&sim, GraphSourceConfig::default());
    let (storm, _) = full(src.read(None).await.unwrap());
    assert_eq!(storm, calm, "throttling changes nothing in what is read");
    let (client, server) = (src.stats(), sim.state.stats());
    assert!(server.throttled > 0, "{server:?}");
    assert_eq!(client.throttled, server.throttled, "{client:?} {server:?}");
    assert!(client.retries >= client.throttled, "{client:?}");

    // A page that keeps failing fails the read: no partial snapshot.
    sim.state.set_faults(Faults {
        fail_next: 100,
        fail_match: "skiptoken".into(),
        error_status: 503,
        retry_after_secs: 0,
        ..Faults::default()
    });
    let src = source(&sim, GraphSourceConfig::default());
    let err = src.read(None).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
}

#[tokio::test]
async fn graph_near_its_throttling_limit_the_client_stops_spending_for_the_window() {
    let opts = GraphSimOptions {
        spec: spec(20, 2, 20),
        budget: Some(20),
        ..GraphSimOptions::default()
    };
    let sim = graph::start(opts, Arc::new(SystemClock)).await.unwrap();
    let client = client_for(&sim, "sim-secret", None);
    let url = format!("{}/v1.0/users?$top=1", sim.root);
    let mut sent = 0;
    while client.stats().near_limit == 0 && sent < 20 {
        client.get(&url, &[]).await.unwrap();
        sent += 1;
    }
    // Graph (here the simulator) says 80 % of the app's 20 units are spent ...
    assert_eq!(client.stats().near_limit, 1, "after {sent} requests");
    assert!(sim.state.stats().resource_units >= 16);
    // ... and the client holds further requests for the rest of its 10 s window instead of
    // running into 429s.
    assert!(
        client.budget_wait() > Duration::from_secs(5),
        "{:?}",
        client.budget_wait()
    );
    assert_eq!(sim.state.stats().throttled, 0);
}

#[tokio::test]
async fn graph_b2c_tenant_local_accounts_and_extension_attributes() {
    let sim = sim_with(
        TenantSpec {
            b2c: true,
            ..spec(30, 3, 40)
        },
        None,
    )
    .await;
    let ext = {
        let t = sim.state.tenant.read().unwrap();
        format!("extension_{}_loyaltyId", t.extension_app)
    };
    // Delta is refused by B2C, as on the real service.
    let src = source(&sim, GraphSourceConfig::default());
    let err = src.read(None).await.unwrap_err().to_string();
    assert!(err.contains("not supported"), "{err}");

    let src = source(
        &sim,
        GraphSourceConfig {
            delta: false,
            user_name: UserNameFrom::Identity("emailAddress".into()),
            key: UserKey::Identity("emailAddress".into()),
            extensions: vec![ext],
            ..GraphSourceConfig::default()
        },
    );
    let (snap, cursor) = full(src.read(None).await.unwrap());
    assert!(cursor.is_none());
    assert_eq!(snap.users.len(), 30);
    let u = &snap.users[0];
    assert!(u.user_name.ends_with("@example.net"), "{}", u.user_name);
    assert!(
        u.source_id.starts_with("contoso.onmicrosoft.com/"),
        "{}",
        u.source_id
    );
    assert_eq!(u.primary_email(), Some(u.user_name.as_str()));
    assert!(u.custom.contains_key("loyaltyId"));
    // Memberships name the users by their identity keys.
    let keys: BTreeSet<&str> = snap.users.iter().map(|u| u.source_id.as_str()).collect();
    assert!(!snap.memberships.is_empty());
    assert!(snap
        .memberships
        .iter()
        .filter(|m| m.member.kind == MemberKind::User)
        .all(|m| keys.contains(m.member.id.as_str())));
    // So do managers (everyone but the first of each block of 20 has one).
    let managers: Vec<&str> = snap
        .users
        .iter()
        .filter_map(|u| u.manager.as_deref())
        .collect();
    assert_eq!(managers.len(), 28);
    assert!(managers.iter().all(|m| keys.contains(m)), "{managers:?}");
}

#[tokio::test]
async fn graph_https_token_cache_and_missing_consent() {
    let dir = tempfile::tempdir().unwrap();
    let sim = sim_with(spec(20, 2, 20), Some(dir.path())).await;
    assert!(sim.root.starts_with("https://"));
    let src = source(&sim, GraphSourceConfig::default());
    let (snap, cursor) = full(src.read(None).await.unwrap());
    assert_eq!(snap.users.len(), 20);
    src.read(cursor.as_deref()).await.unwrap();
    assert_eq!(src.stats().tokens, 1, "the token is cached between reads");

    // A wrong secret is an authentication error that says so.
    let bad = GraphSource::new(
        client_for(&sim, "wrong", None),
        GraphSourceConfig::default(),
    );
    let err = bad.read(None).await.unwrap_err().to_string();
    assert!(err.contains("Invalid client secret"), "{err}");

    // An app without the group permissions: the error names what to grant.
    let mut opts = GraphSimOptions {
        spec: spec(10, 2, 10),
        ..GraphSimOptions::default()
    };
    opts.reader.roles = vec!["User.Read.All".into()];
    let narrow = graph::start(opts, Arc::new(SystemClock)).await.unwrap();
    let src = GraphSource::new(
        client_for(&narrow, "sim-secret", None),
        GraphSourceConfig::default(),
    );
    let err = src.read(None).await.unwrap_err().to_string();
    assert!(
        err.contains("grant admin consent for GroupMember.Read.All"),
        "{err}"
    );
}
