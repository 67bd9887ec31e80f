//! The first sync into Bitbucket Data Center (issue 18, "Benchmark").
//!
//! `cargo bench -p idsync --bench bitbucket_sync` (sizes: IDSYNC_BENCH_USERS, IDSYNC_BENCH_GROUPS,
//! IDSYNC_BENCH_MEMBERSHIPS, default 10,000 / 500 / 50,000; runs: IDSYNC_BENCH_RUNS, default 3).
//!
//! Each run starts `idsync sim bitbucket` in its own process, writes the source as CSV files and
//! times `idsync sync` (its own process, the `bitbucket` target with its default concurrency)
//! from start to exit. Printed: the machine; per run the time, the requests the simulator
//! answered and the CPU of `idsync sync` (its process, from this process's children's times)
//! and of the simulator (from /proc); the medians; requests by resource; requests per object;
//! and the aim (at most one request per user and per group plus one per batch of
//! memberships) against what was sent. Build with `--release` (`cargo bench` does).

mod common;

use common::{env_usize, machine};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Clock ticks per second of /proc's times (100 on Linux).
const TICKS: f64 = 100.0;

/// utime + stime of a process, or cutime + cstime (its waited-for children), in seconds.
fn cpu_secs(pid: &str, children: bool) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime is field 14, stime 15, cutime 16, cstime 17 (1-based); `rest` starts at field 3.
    let at = if children { 13 } else { 11 };
    (f.get(at).copied().unwrap_or(0.0) + f.get(at + 1).copied().unwrap_or(0.0)) / TICKS
}

fn start_sim() -> Result<(Kill, String), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args(["sim", "bitbucket"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let kill = Kill(child);
    let mut root = String::new();
    for line in std::io::BufReader::new(out).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(rest) = line.split(" simulator on ").nth(1) {
            root = rest.split_whitespace().next().unwrap_or("").to_string();
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    if root.is_empty() {
        return Err("the simulator did not start".into());
    }
    Ok((kill, root))
}

/// `users` users, `groups` groups, `memberships` user memberships spread evenly (each user in
/// memberships/users groups, consecutive modulo the group count).
fn write_source(dir: &Path, users: usize, groups: usize, memberships: usize) -> Result<(), String> {
    let per_user = memberships.div_ceil(users.max(1));
    let mut left = memberships;
    let mut u = String::from("sourceId,userName,givenName,familyName,email,groups\n");
    for i in 0..users {
        let n = per_user.min(left);
        left -= n;
        let gs: Vec<String> = (0..n)
            .map(|k| format!("g-{}", (i + k * 7) % groups.max(1)))
            .collect();
        u.push_str(&format!(
            "id-{i:06},user{i}@example.com,User,Number {i},user{i}@example.com,{}\n",
            gs.join(";")
        ));
    }
    let mut g = String::from("sourceId,displayName,description\n");
    for j in 0..groups {
        g.push_str(&format!("g-{j},group-{j},\n"));
    }
    let w = |f: &str, s: &str| std::fs::write(dir.join(f), s).map_err(|e| e.to_string());
    w("users.csv", &u)?;
    w("groups.csv", &g)?;
    w("memberships.csv", "group,member,kind\n")
}

struct Run {
    secs: f64,
    requests: u64,
    by_resource: BTreeMap<String, u64>,
    idsync_cpu: f64,
    sim_cpu: f64,
}

fn stats(root: &str) -> Result<Value, String> {
    reqwest::blocking::get(format!("{root}/_sim/stats"))
        .and_then(|r| r.json())
        .map_err(|e| e.to_string())
}

fn one_run(users: usize, groups: usize, memberships: usize) -> Result<Run, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    write_source(dir.path(), users, groups, memberships)?;
    let (sim, root) = start_sim()?;
    let pid = sim.0.id().to_string();
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!("[store]\npath = \"idsync.db\"\n[log]\nlevel = \"warn\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.bitbucket]\ntype = \"bitbucket\"\nurl = \"{root}\"\ntoken = \"sim-bitbucket-pat\"\n\n[flows.hr-to-bitbucket]\nsource = \"hr\"\ntarget = \"bitbucket\"\n"),
    )
    .map_err(|e| e.to_string())?;
    let before = stats(&root)?;
    let sim_cpu_before = cpu_secs(&pid, false);
    let children_before = cpu_secs("self", true);
    let t0 = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .arg("--config")
        .arg(dir.path().join("idsync.toml"))
        .args(["sync", "hr-to-bitbucket"])
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| e.to_string())?;
    let secs = t0.elapsed().as_secs_f64();
    let idsync_cpu = cpu_secs("self", true) - children_before;
    let sim_cpu = cpu_secs(&pid, false) - sim_cpu_before;
    let out = String::from_utf8_lossy(&o.stdout);
    if !o.status.success() || !out.contains(" 0 failed") {
        return Err(format!(
            "idsync sync failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let after = stats(&root)?;
    // What the sync sent: the counts after, less those before (the simulator counts only its
    // REST API's requests, not `/_sim`'s).
    let count = |v: &Value, k: &str| v["by_resource"][k].as_u64().unwrap_or(0);
    let by_resource: BTreeMap<String, u64> = after["by_resource"]
        .as_object()
        .map(|m| {
            m.keys()
                .map(|k| (k.clone(), count(&after, k) - count(&before, k)))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default();
    drop(sim);
    Ok(Run {
        secs,
        requests: by_resource.values().sum(),
        by_resource,
        idsync_cpu,
        sim_cpu,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let users = env_usize("IDSYNC_BENCH_USERS", 10_000);
    let groups = env_usize("IDSYNC_BENCH_GROUPS", 500);
    let memberships = env_usize("IDSYNC_BENCH_MEMBERSHIPS", 50_000);
    let runs = env_usize("IDSYNC_BENCH_RUNS", 3).max(1);
    println!("machine: {}", machine());
    println!(
        "first sync into the simulated Bitbucket: {users} users, {groups} groups, {memberships} memberships; {runs} runs"
    );
    let mut all = Vec::new();
    for i in 0..runs {
        match one_run(users, groups, memberships) {
            Ok(r) => {
                println!(
                    "run {}: {:.2} s, {} requests ({:.2} per user and group); idsync sync CPU {:.1} s, simulator CPU {:.1} s",
                    i + 1,
                    r.secs,
                    r.requests,
                    r.requests as f64 / (users + groups).max(1) as f64,
                    r.idsync_cpu,
                    r.sim_cpu
                );
                all.push(r);
            }
            Err(e) => {
                eprintln!("run {}: {e}", i + 1);
                std::process::exit(1);
            }
        }
    }
    let secs = median(all.iter().map(|r| r.secs).collect());
    let requests = median(all.iter().map(|r| r.requests as f64).collect());
    let idsync_cpu = median(all.iter().map(|r| r.idsync_cpu).collect());
    let sim_cpu = median(all.iter().map(|r| r.sim_cpu).collect());
    println!(
        "median: {secs:.2} s, {requests:.0} requests; CPU: idsync sync {idsync_cpu:.1} s, simulator {sim_cpu:.1} s ({})",
        if sim_cpu >= idsync_cpu {
            "the simulator's is the larger"
        } else {
            "idsync's is the larger"
        }
    );
    if let Some(r) = all.first() {
        println!("requests by resource (run 1):");
        for (k, v) in &r.by_resource {
            println!("  {v:>8}  {k}");
        }
        let batches = r
            .by_resource
            .get("POST admin/groups/add-users")
            .copied()
            .unwrap_or(0);
        let objects = (users + groups) as f64;
        let aim = (users + groups) as u64 + batches;
        println!(
            "requests per object (users + groups): {:.2}; per object and membership: {:.3}",
            requests / objects,
            requests / (objects + memberships as f64)
        );
        println!(
            "aim (one per user and per group + one per membership batch): {aim}; sent {} ({:+.2}%): {}",
            r.requests,
            (r.requests as f64 / aim as f64 - 1.0) * 100.0,
            if r.requests <= aim + 10 {
                "met (within a few requests for the run itself)"
            } else {
                "NOT met"
            }
        );
        println!(
            "objects per second: {:.0}",
            (objects + memberships as f64) / secs
        );
    }
}
