//! The first sync into Bitbucket Data Center (issue 18, "Benchmark").
//!
//! `cargo bench -p idsync --bench bitbucket_sync` (sizes: IDSYNC_BENCH_USERS, IDSYNC_BENCH_GROUPS,
//! IDSYNC_BENCH_MEMBERSHIPS, default 10,000 / 500 / 50,000; runs: IDSYNC_BENCH_RUNS, default 3).
//!
//! Each run starts `idsync sim bitbucket` in its own process, writes the source as CSV files and
//! times `idsync sync` (its own process, the `bitbucket` target with its default concurrency)
//! from start to exit. Printed: the machine; per run the time and the requests the simulator
//! answered, by resource; the medians; requests per object; and the aim (at most one
//! request per user and per group plus one per batch of memberships) against what was sent.

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
}

fn one_run(users: usize, groups: usize, memberships: usize) -> Result<Run, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    write_source(dir.path(), users, groups, memberships)?;
    let (_sim, root) = start_sim()?;
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!("[store]\npath = \"idsync.db\"\n[log]\nlevel = \"warn\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.bitbucket]\ntype = \"bitbucket\"\nurl = \"{root}\"\ntoken = \"sim-bitbucket-pat\"\n\n[flows.hr-to-bitbucket]\nsource = \"hr\"\ntarget = \"bitbucket\"\n"),
    )
    .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .arg("--config")
        .arg(dir.path().join("idsync.toml"))
        .args(["sync", "hr-to-bitbucket"])
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| e.to_string())?;
    let secs = t0.elapsed().as_secs_f64();
    if !o.status.success() {
        return Err(format!(
            "idsync sync failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let stats: Value = reqwest::blocking::get(format!("{root}/_sim/stats"))
        .and_then(|r| r.json())
        .map_err(|e| e.to_string())?;
    let by_resource: BTreeMap<String, u64> = stats["by_resource"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Run {
        secs,
        requests: stats["requests"].as_u64().unwrap_or(0),
        by_resource,
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
                println!("run {}: {:.2} s, {} requests", i + 1, r.secs, r.requests);
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
    println!("median: {secs:.2} s, {requests:.0} requests");
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
            "aim (one per user and per group + one per membership batch): {aim}; sent {} ({:+.0}%)",
            r.requests,
            (r.requests as f64 / aim as f64 - 1.0) * 100.0
        );
        println!(
            "objects per second: {:.0}",
            (objects + memberships as f64) / secs
        );
    }
}
