//! The first full sync into a simulated Jira Data Center (issue 18's benchmark).
//!
//! `cargo bench -p idsync --bench jira_sync` (sizes: IDSYNC_BENCH_USERS, IDSYNC_BENCH_GROUPS,
//! IDSYNC_BENCH_MEMBERSHIPS, default 10,000 / 500 / 50,000; rounds IDSYNC_BENCH_ROUNDS,
//! default 3; the target's requests in flight IDSYNC_BENCH_CONCURRENCY, default 8).
//!
//! Each round: a CSV source and a flow into a `jira` target; `idsync sim jira` (plain HTTP on
//! loopback, no rate limiter) in its own process; `idsync sync` timed. Printed per round and as
//! medians: wall time, the requests the simulator answered (its `/_sim/stats`), requests per
//! object and per user, the CPU of `idsync sync` (its process, from this process's
//! children's times) and of the simulator (from /proc), and the floor: Jira's REST API has no
//! batch call for group members, so a first sync needs at least one request per user, per
//! group and per membership, plus one per user for the user property where properties are
//! written.

mod common;

use common::{env_usize, machine};
use std::fmt::Write as _;
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
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

struct Sizes {
    users: usize,
    groups: usize,
    memberships: usize,
}

/// users.csv, groups.csv, memberships.csv: every user has a department and a title (so the
/// user property is written), memberships spread over the groups.
fn write_source(dir: &Path, s: &Sizes) -> Result<(), String> {
    let mut users = String::with_capacity(s.users * 120);
    users.push_str("sourceId,userName,givenName,familyName,email,department,title\n");
    for i in 0..s.users {
        let _ = writeln!(
            users,
            "id-{i:06},user{i}@example.com,User,Number {i},user{i}@example.com,Dept {},Engineer",
            i % 40
        );
    }
    std::fs::write(dir.join("users.csv"), users).map_err(|e| e.to_string())?;
    let mut groups = String::from("sourceId,displayName,description\n");
    for g in 0..s.groups {
        let _ = writeln!(groups, "g-{g:05},group-{g:05},Group {g}");
    }
    std::fs::write(dir.join("groups.csv"), groups).map_err(|e| e.to_string())?;
    let per_user = s.memberships.div_ceil(s.users.max(1));
    let mut members = String::with_capacity(s.memberships * 24);
    members.push_str("group,member,kind\n");
    let mut n = 0;
    'all: for i in 0..s.users {
        for k in 0..per_user {
            if n == s.memberships {
                break 'all;
            }
            let g = (i * 7 + k * 101) % s.groups.max(1);
            let _ = writeln!(members, "g-{g:05},id-{i:06},user");
            n += 1;
        }
    }
    std::fs::write(dir.join("memberships.csv"), members).map_err(|e| e.to_string())
}

struct Round {
    secs: f64,
    requests: f64,
    idsync_cpu: f64,
    sim_cpu: f64,
    applied: String,
}

fn round(s: &Sizes, concurrency: usize) -> Result<Round, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    write_source(dir.path(), s)?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .args(["sim", "jira", "--cert-dir"])
        .arg(dir.path().join("sim"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let sim = Kill(child);
    let pid = sim.0.id().to_string();
    let mut root = String::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(rest) = line.split(" simulator on ").nth(1) {
            root = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    if root.is_empty() {
        return Err("the simulator said no address".into());
    }
    std::fs::write(
        dir.path().join("idsync.toml"),
        format!(
            "[store]\npath = \"idsync.db\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.jira]\ntype = \"jira\"\nurl = \"{root}\"\ntoken = \"sim-jira-pat\"\nconcurrency = {concurrency}\n\n[flows.hr-to-jira]\nsource = \"hr\"\ntarget = \"jira\"\nconcurrency = {concurrency}\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let http = reqwest::blocking::Client::new();
    let stats = |http: &reqwest::blocking::Client| -> Result<f64, String> {
        let v: serde_json::Value = http
            .get(format!("{root}/_sim/stats"))
            .send()
            .and_then(|r| r.json())
            .map_err(|e| e.to_string())?;
        Ok(v["requests"].as_f64().unwrap_or(0.0))
    };
    let requests_before = stats(&http)?;
    let sim_cpu_before = cpu_secs(&pid, false);
    let children_before = cpu_secs("self", true);
    let started = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .arg("--config")
        .arg(dir.path().join("idsync.toml"))
        .args(["sync", "hr-to-jira"])
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    if !o.status.success() || !out.contains(" 0 failed") {
        return Err(format!(
            "idsync sync: {:?}: {out}{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let idsync_cpu = cpu_secs("self", true) - children_before;
    let sim_cpu = cpu_secs(&pid, false) - sim_cpu_before;
    // The stats request itself is not the sync's.
    let requests = stats(&http)? - requests_before - 1.0;
    drop(sim);
    Ok(Round {
        secs,
        requests,
        idsync_cpu,
        sim_cpu,
        applied: out.lines().next().unwrap_or_default().to_string(),
    })
}

fn main() -> Result<(), String> {
    let s = Sizes {
        users: env_usize("IDSYNC_BENCH_USERS", 10_000),
        groups: env_usize("IDSYNC_BENCH_GROUPS", 500),
        memberships: env_usize("IDSYNC_BENCH_MEMBERSHIPS", 50_000),
    };
    let rounds = env_usize("IDSYNC_BENCH_ROUNDS", 3).max(1);
    let concurrency = env_usize("IDSYNC_BENCH_CONCURRENCY", 8);
    println!("machine: {}", machine());
    println!(
        "first sync into the simulated Jira: {} users, {} groups, {} memberships; {concurrency} requests in flight; {rounds} rounds",
        s.users, s.groups, s.memberships
    );
    let objects = (s.users + s.groups + s.memberships) as f64;
    let floor = (s.users + s.groups + s.memberships) as f64;
    let floor_props = floor + s.users as f64;
    let mut all = Vec::new();
    for i in 0..rounds {
        let r = round(&s, concurrency)?;
        println!(
            "round {}: {:.1} s, {} requests ({:.2} per object, {:.0} req/s); idsync sync CPU {:.1} s, simulator CPU {:.1} s; {}",
            i + 1,
            r.secs,
            r.requests,
            r.requests / objects,
            r.requests / r.secs.max(1e-9),
            r.idsync_cpu,
            r.sim_cpu,
            r.applied
        );
        all.push(r);
    }
    let m = |f: fn(&Round) -> f64| median(all.iter().map(f).collect());
    let requests = m(|r| r.requests);
    println!(
        "median: {:.1} s, {requests} requests ({:.2} per object; {:.2} per user beyond the floor's), {:.0} req/s; idsync sync CPU {:.1} s, simulator CPU {:.1} s",
        m(|r| r.secs),
        requests / objects,
        (requests - floor_props) / s.users.max(1) as f64,
        requests / m(|r| r.secs).max(1e-9),
        m(|r| r.idsync_cpu),
        m(|r| r.sim_cpu),
    );
    println!(
        "floor (no batch membership call in Jira): {floor} requests (1 per user, group and membership), {floor_props} with the user property: idsync sends {:.2}x the latter",
        requests / floor_props
    );
    Ok(())
}
