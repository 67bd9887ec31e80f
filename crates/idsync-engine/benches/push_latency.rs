//! Push latency: how long a change written by a push source takes to reach the flow's target
//! through the running service (change-log follower, plan, apply), with 10,000 users already
//! provisioned. `cargo bench -p idsync-engine --bench push_latency` prints the median and p90
//! of 30 pushes and the machine it ran on.

// The `idsync` crate's benchmark helpers: one machine line for every figure.
#[allow(dead_code)]
#[path = "../../idsync/benches/common/mod.rs"]
mod common;

use common::machine;
use idsync_connectors::targets::test::TestTarget;
use idsync_core::{
    Change, Email, Group, MemberRef, Membership, PlanOptions, Snapshot, SystemClock, User,
};
use idsync_engine::{
    Backoff, FlowEntry, FlowSpec, Mode, NoProgress, Runtime, Service, TargetEntry, Trigger,
};
use idsync_store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USERS: usize = 10_000;
const PUSHES: usize = 30;

fn user(i: usize) -> User {
    let mut u = User::new(format!("id-{i:06}"), format!("user{i}@example.com"));
    u.display_name = Some(format!("User {i}"));
    u.emails = vec![Email {
        value: format!("user{i}@example.com"),
        kind: Some("work".into()),
        primary: true,
        display: None,
    }];
    u
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("idsync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = Store::open(&dir.join("idsync.db")).await?;
    let snapshot = Snapshot {
        users: (0..USERS).map(user).collect(),
        groups: vec![Group::new("g-all", "everyone")],
        memberships: (0..USERS)
            .map(|i| Membership {
                group: "g-all".into(),
                member: MemberRef::user(format!("id-{i:06}")),
            })
            .collect(),
    };
    store
        .replace_directory("hr", "scim", &snapshot, None, 0)
        .await?;
    let target = Arc::new(TestTarget::new());
    let mut rt = Runtime::new(store, Arc::new(SystemClock));
    rt.targets
        .insert("app".into(), TargetEntry::new("app", target.clone(), 0.0));
    rt.flows.insert(
        "hr-to-app".into(),
        FlowEntry {
            spec: FlowSpec {
                name: "hr-to-app".into(),
                directory: "hr".into(),
                target: "app".into(),
                plan: PlanOptions::default(),
                concurrency: 8,
                backoff: Backoff::default(),
                deletion_threshold: idsync_core::DeletionThreshold::default(),
                mapping: idsync_core::mapping::Mapping::default(),
                scope: idsync_core::scope::Scope::default(),
                only_users: None,
                inactivity: None,
                memberships: idsync_core::scope::MembershipPolicy::default(),
                groups: idsync_core::groups::GroupRules::default(),
                nested_groups: false,
            },
            source: None,
            enabled: true,
            full_reconcile_interval: None,
        },
    );
    let rt = Arc::new(rt);
    let first = Instant::now();
    rt.run(
        "hr-to-app",
        idsync_engine::RunOptions {
            trigger: Trigger::Manual,
            mode: Mode::Full,
            dry_run: false,
        },
        false,
        &NoProgress,
    )
    .await?;
    let initial = first.elapsed();
    let svc = Service::new(rt.clone());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = svc.start(stop_rx);
    let mut latencies = Vec::new();
    for n in 0..PUSHES {
        let u = user(USERS + n);
        let started = Instant::now();
        rt.store
            .apply_changes(
                "hr",
                "scim",
                &[
                    Change::UpsertUser { user: u.clone() },
                    Change::AddMember {
                        group: "g-all".into(),
                        member: MemberRef::user(u.source_id.clone()),
                    },
                ],
                None,
                0,
            )
            .await?;
        svc.notify("hr", Trigger::Push);
        let deadline = started + Duration::from_secs(30);
        while target.users_named(&u.user_name) == 0 {
            if Instant::now() > deadline {
                return Err(format!("push {n} did not arrive within 30 s").into());
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        latencies.push(started.elapsed());
        // Let the run that carried it finish before the next push.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("machine: {}", machine());
    println!(
        "initial full sync of {USERS} users: {:.2}s",
        initial.as_secs_f64()
    );
    println!(
        "push to target with {USERS} users provisioned: median={:.1}ms p90={:.1}ms max={:.1}ms over {PUSHES} pushes",
        ms(latencies[PUSHES / 2]),
        ms(latencies[PUSHES * 9 / 10]),
        ms(latencies[PUSHES - 1])
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
