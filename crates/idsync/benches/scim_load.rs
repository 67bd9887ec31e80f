//! Load on the SCIM endpoint with 100,000 users and 5,000 groups stored, beside the same load
//! on scim2-server (PyPI) in the same run: GET by `userName eq`, POST of new users, PATCH adding
//! a member to a group. Prints requests per second and p50/p99 latency per server (the median of
//! three rounds of each load), the CPU time the server process spent per request (the median
//! round; unlike throughput it does not depend on how the load generator shares the cores),
//! and the ratios.
//!
//! `cargo bench -p idsync --bench scim_load` (IDSYNC_BENCH_USERS / IDSYNC_BENCH_GROUPS to
//! change the sizes). Both servers persist as they do in use: idsync to its SQLite file,
//! scim2-server in memory.

mod common;

use common::{env_usize, machine};
use futures::stream::{self, StreamExt};
use idsync_connectors::testkit::peers::{free_port, scim2_server, wait_until, Peer};
use rand::Rng;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONCURRENCY: usize = 16;
/// Rounds of each load (the median round is reported).
const ROUNDS: usize = 3;

struct Stats {
    rps: f64,
    p50: f64,
    p99: f64,
    errors: usize,
    /// CPU time the server process spent per request, in ms (user + system).
    cpu_ms: f64,
}

/// CPU time (user + system) a process has spent so far, in ms; 0 where /proc cannot say.
fn cpu_ms(pid: u32) -> f64 {
    // Fields 14 and 15 of /proc/PID/stat, counted after the command name's closing bracket.
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .unwrap_or(0.0);
    // /proc counts in USER_HZ ticks, 100 per second on Linux.
    ticks * 10.0
}

async fn load<F, Fut>(n: usize, pid: u32, concurrency: usize, f: F) -> Stats
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let cpu_before = cpu_ms(pid);
    let start = Instant::now();
    let results: Vec<(Duration, bool)> = stream::iter(0..n)
        .map(|i| {
            let fut = f(i);
            async move {
                let t = Instant::now();
                let ok = fut.await;
                (t.elapsed(), ok)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_ms(pid) - cpu_before;
    let mut lat: Vec<f64> = results
        .iter()
        .map(|(d, _)| d.as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    Stats {
        rps: n as f64 / wall,
        p50: lat[lat.len() / 2],
        p99: lat[(lat.len() * 99 / 100).min(lat.len() - 1)],
        errors: results.iter().filter(|(_, ok)| !ok).count(),
        cpu_ms: cpu / n as f64,
    }
}

struct Server {
    name: &'static str,
    /// Requests in flight. scim2-server serves each connection in a thread, but its listen
    /// backlog is 5 (Python's socketserver default): beyond that, connections wait for SYN
    /// retransmits (1 s, 3 s, ...) and its throughput collapses, so it gets 4.
    concurrency: usize,
    base: String,
    token: String,
    /// The server's process.
    pid: u32,
    /// What keeps the server running (dropped: stopped).
    #[allow(dead_code)]
    keep: Box<dyn std::any::Any>,
}

fn start_idsync() -> Result<Server, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = free_port();
    std::fs::write(dir.path().join("idsync.toml"), format!("[server]\nlisten = \"127.0.0.1:{port}\"\nscim_rate = 0\n[log]\nlevel = \"warn\"\n\n[sources.bench]\ntype = \"scim\"\n")).map_err(|e| e.to_string())?;
    let bin = env!("CARGO_BIN_EXE_idsync");
    let out = Command::new(bin)
        .arg("-c")
        .arg(dir.path().join("idsync.toml"))
        .args(["token", "create", "bench"])
        .output()
        .map_err(|e| e.to_string())?;
    let token = String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string();
    let child = Command::new(bin)
        .arg("-c")
        .arg(dir.path().join("idsync.toml"))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    /// The server process and the folder of its store, both gone when dropped.
    struct Kill(std::process::Child, #[allow(dead_code)] tempfile::TempDir);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let keep = Kill(child, dir);
    wait_until("idsync serve", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    Ok(Server {
        name: "idsync",
        concurrency: CONCURRENCY,
        base: format!("http://127.0.0.1:{port}/scim/v2/bench"),
        token,
        pid,
        keep: Box::new(keep),
    })
}

fn start_scim2_server() -> Result<Server, String> {
    let peer: Peer = scim2_server("bench-token")?;
    Ok(Server {
        name: "scim2-server",
        concurrency: 4,
        base: peer.url.clone(),
        token: "bench-token".into(),
        pid: peer.pid(),
        keep: Box::new(peer),
    })
}

async fn post(http: &reqwest::Client, s: &Server, path: &str, body: Value) -> Option<String> {
    let r = http
        .post(format!("{}{path}", s.base))
        .bearer_auth(&s.token)
        .header("Content-Type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v: Value = r.json().await.ok()?;
    v["id"].as_str().map(str::to_string)
}

fn user(i: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("user{i}@example.com"),
        "name": {"givenName": "User", "familyName": format!("Number {i}")},
        "emails": [{"value": format!("user{i}@example.com"), "type": "work", "primary": true}],
        "active": true
    })
}

async fn run(
    s: &Server,
    users: usize,
    groups: usize,
    measured: usize,
) -> Result<[Stats; 3], String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(s.concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    let seed = Instant::now();
    let user_ids: Vec<Option<String>> = stream::iter(0..users)
        .map(|i| {
            let http = &http;
            async move { post(http, s, "/Users", user(i)).await }
        })
        .buffered(s.concurrency)
        .collect()
        .await;
    let user_ids: Vec<String> = user_ids.into_iter().flatten().collect();
    let group_ids: Vec<Option<String>> = stream::iter(0..groups)
        .map(|i| { let http = &http; async move { post(http, s, "/Groups", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("group-{i}")})).await } })
        .buffered(s.concurrency)
        .collect()
        .await;
    let group_ids: Vec<String> = group_ids.into_iter().flatten().collect();
    if user_ids.len() != users || group_ids.len() != groups {
        return Err(format!(
            "{}: seeded only {} users and {} groups",
            s.name,
            user_ids.len(),
            group_ids.len()
        ));
    }
    eprintln!(
        "{}: seeded {users} users and {groups} groups in {:.0}s",
        s.name,
        seed.elapsed().as_secs_f64()
    );
    // Each load runs ROUNDS times, interleaved; the round with the median throughput is
    // reported, with its latencies.
    let mut rounds: [Vec<Stats>; 3] = Default::default();
    for round in 0..ROUNDS {
        let get = load(measured, s.pid, s.concurrency, |_| {
            let i = rand::thread_rng().gen_range(0..users);
            let http = &http;
            async move {
                let url = format!(
                    "{}/Users?filter=userName%20eq%20%22user{i}%40example.com%22",
                    s.base
                );
                match http.get(url).bearer_auth(&s.token).send().await {
                    Ok(r) if r.status().is_success() => r
                        .json::<Value>()
                        .await
                        .map(|v| v["totalResults"] == 1)
                        .unwrap_or(false),
                    _ => false,
                }
            }
        })
        .await;
        let posts = load(measured, s.pid, s.concurrency, |n| {
            let http = &http;
            async move {
                post(http, s, "/Users", user(users + 1 + round * measured + n))
                    .await
                    .is_some()
            }
        })
        .await;
        let patch = load(measured, s.pid, s.concurrency, |_| {
            let (g, u) = { let mut r = rand::thread_rng(); (group_ids[r.gen_range(0..group_ids.len())].clone(), user_ids[r.gen_range(0..user_ids.len())].clone()) };
            let http = &http;
            async move {
                let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": [{"value": u}]}]});
                http.patch(format!("{}/Groups/{g}", s.base)).bearer_auth(&s.token).header("Content-Type", "application/scim+json").body(body.to_string()).send().await.map(|r| r.status().is_success()).unwrap_or(false)
            }
        })
        .await;
        for (all, st) in rounds.iter_mut().zip([get, posts, patch]) {
            all.push(st);
        }
    }
    Ok(rounds.map(|mut all| {
        let errors = all.iter().map(|s| s.errors).sum();
        let mut cpu: Vec<f64> = all.iter().map(|s| s.cpu_ms).collect();
        cpu.sort_by(f64::total_cmp);
        let cpu_ms = cpu[cpu.len() / 2];
        all.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        let mid = all.swap_remove(all.len() / 2);
        Stats {
            errors,
            cpu_ms,
            ..mid
        }
    }))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let users = env_usize("IDSYNC_BENCH_USERS", 100_000);
    let groups = env_usize("IDSYNC_BENCH_GROUPS", 5_000);
    println!(
        "machine: {} (load generator on the same machine; requests in flight: idsync {CONCURRENCY}, scim2-server 4)",
        machine()
    );
    // Both servers hold the same store unless IDSYNC_BENCH_PEER_USERS / _GROUPS say otherwise.
    let peer_users = env_usize("IDSYNC_BENCH_PEER_USERS", users);
    let peer_groups = env_usize("IDSYNC_BENCH_PEER_GROUPS", groups);
    type Start = fn() -> Result<Server, String>;
    let runs: [(Start, usize, usize, usize); 2] = [
        (start_idsync, users, groups, 10_000),
        (start_scim2_server, peer_users, peer_groups, 1_000),
    ];
    let mut all = Vec::new();
    for (start, users, groups, measured) in runs {
        let s = start()?;
        let stats = run(&s, users, groups, measured).await?;
        for (what, st) in ["GET userName eq", "POST /Users", "PATCH group member"]
            .iter()
            .zip(&stats)
        {
            println!(
                "{:<13} {what:<18} {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  server CPU {:>6.3} ms/req  errors {}  ({users} users, {groups} groups stored; median of {ROUNDS} rounds of {measured} requests)",
                s.name, st.rps, st.p50, st.p99, st.cpu_ms, st.errors
            );
        }
        all.push(stats);
    }
    for (i, what) in ["GET userName eq", "POST /Users", "PATCH group member"]
        .iter()
        .enumerate()
    {
        println!(
            "ratio idsync/scim2-server {what:<18} {:.1}x throughput, {:.1}x less server CPU per request",
            all[0][i].rps / all[1][i].rps,
            all[1][i].cpu_ms / all[0][i].cpu_ms
        );
    }
    Ok(())
}
