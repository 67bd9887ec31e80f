//! Plan benchmark: 100,000 users, 10,000 groups, 1,000,000 memberships (nesting three levels
//! deep), planned
//! against an empty ledger and against a ledger where 1% of the objects changed.
//!
//! The `nested` scenario plans for a target that serves nested groups (a crowd target): the
//! flat desired state turned into direct members and child groups (`nesting::nest`) too.
//!
//! `cargo bench -p idsync-core --bench plan` prints, per scenario, the median wall time of the
//! plan (desired state + diff) over several iterations and the peak resident memory of a
//! process that ran only that scenario, plus the machine it ran on.

use idsync_core::{
    desired_state, plan, Email, Group, LedgerState, MemberRef, Membership, PlanOptions, Snapshot,
    User,
};
use std::time::Instant;

const USERS: usize = 100_000;
const GROUPS: usize = 10_000;
const MEMBERSHIPS: usize = 1_000_000;
const ITERATIONS: usize = 5;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn directory() -> Snapshot {
    let mut rng = Lcg(42);
    let users = (0..USERS)
        .map(|i| {
            let mut u = User::new(
                format!("{i:08x}-0000-4000-8000-{i:012x}"),
                format!("user{i}@example.com"),
            );
            u.display_name = Some(format!("User Number {i}"));
            u.name.given_name = Some("User".into());
            u.name.family_name = Some(format!("Number {i}"));
            u.emails = vec![Email {
                value: format!("user{i}@example.com"),
                kind: Some("work".into()),
                primary: true,
                display: None,
            }];
            u.department = Some(format!("Department {}", i % 50));
            u.title = Some("Engineer".into());
            u
        })
        .collect::<Vec<_>>();
    let groups = (0..GROUPS)
        .map(|g| Group::new(format!("group-{g:06}"), format!("Group {g}")))
        .collect::<Vec<_>>();
    let mut memberships = Vec::with_capacity(MEMBERSHIPS);
    // Nesting as organisations have it: groups 1..=1110 form a tree three levels deep under
    // group 0 (10 divisions, 100 departments, 1,000 teams); the rest of the memberships put
    // random users into random groups.
    for g in 1..=1110usize {
        memberships.push(Membership {
            group: format!("group-{:06}", (g - 1) / 10),
            member: MemberRef::group(format!("group-{g:06}")),
        });
    }
    while memberships.len() < MEMBERSHIPS {
        let g = rng.below(GROUPS);
        memberships.push(Membership {
            group: format!("group-{g:06}"),
            member: MemberRef::user(users[rng.below(USERS)].source_id.clone()),
        });
    }
    Snapshot {
        users,
        groups,
        memberships,
    }
}

fn ledger_of(s: &Snapshot) -> LedgerState {
    let desired = desired_state(s);
    let mut ledger = LedgerState::default();
    let p = plan(&desired, &ledger, &PlanOptions::default());
    for op in &p.operations {
        ledger.record(op, Some(&op.key), 0);
    }
    ledger
}

fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn run(scenario: &str) {
    let mut snapshot = directory();
    let ledger = if scenario == "changed-1pct" {
        let ledger = ledger_of(&snapshot);
        // 1% of the users and groups change, 1% of the memberships move.
        let mut rng = Lcg(7);
        for _ in 0..USERS / 100 {
            let i = rng.below(USERS);
            snapshot.users[i].department = Some("Moved".into());
        }
        for _ in 0..GROUPS / 100 {
            let g = rng.below(GROUPS);
            snapshot.groups[g].description = Some("changed".into());
        }
        for _ in 0..MEMBERSHIPS / 100 {
            let m = rng.below(MEMBERSHIPS);
            snapshot.memberships[m].member =
                MemberRef::user(snapshot.users[rng.below(USERS)].source_id.clone());
        }
        ledger
    } else {
        LedgerState::default()
    };
    // What the inputs alone take, so the plan's own memory can be told apart.
    let inputs_mb = status_mb("VmRSS:");
    let mut times = Vec::new();
    let mut ops = 0;
    for _ in 0..ITERATIONS {
        let start = Instant::now();
        let mut desired = desired_state(&snapshot);
        if scenario == "nested" {
            idsync_core::nesting::nest(
                &mut desired,
                &snapshot,
                &idsync_core::groups::GroupRules::default(),
                &ledger,
            );
        }
        let p = plan(&desired, &ledger, &PlanOptions::default());
        times.push(start.elapsed().as_secs_f64());
        ops = p.len();
        drop(p);
        drop(desired);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "plan {scenario:<13} users={USERS} groups={GROUPS} memberships={MEMBERSHIPS} operations={ops} median={:.3}s min={:.3}s max={:.3}s peak_rss={:.0}MB of which inputs={:.0}MB (the directory{})",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        status_mb("VmHWM:"),
        inputs_mb,
        if scenario == "changed-1pct" { " and the ledger" } else { "" },
    );
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cpu}, {cores} cores, {mem:.0} GiB")
}

fn main() {
    // Each scenario runs in its own process so that its peak memory is its own.
    if let Ok(scenario) = std::env::var("IDSYNC_BENCH_SCENARIO") {
        run(&scenario);
        return;
    }
    println!("machine: {}", machine());
    let Ok(exe) = std::env::current_exe() else {
        eprintln!("cannot find the bench executable");
        return;
    };
    for scenario in ["empty-ledger", "changed-1pct", "nested"] {
        let status = std::process::Command::new(&exe)
            .env("IDSYNC_BENCH_SCENARIO", scenario)
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!("scenario {scenario} failed: {status:?}");
        }
    }
}
