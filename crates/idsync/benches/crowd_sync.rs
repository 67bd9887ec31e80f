//! A Data Center product synchronising from idsync's Crowd directory, at scale.
//!
//! `cargo bench -p idsync --bench crowd_sync` (sizes: IDSYNC_BENCH_USERS, IDSYNC_BENCH_GROUPS,
//! IDSYNC_BENCH_MEMBERSHIPS, default 100,000 / 10,000 / 1,000,000; the connector's page size
//! IDSYNC_BENCH_PAGE, default 1,000; rounds IDSYNC_BENCH_ROUNDS, default 3).
//!
//! A CSV source feeds a flow into a `crowd` target (`idsync sync`, timed as set-up); `idsync
//! serve` serves it in its own process, so its peak memory (VmHWM) is the server's alone. The
//! client here sends what the products' connector (Atlassian's `RestCrowdClient`) sends, in XML:
//! 1. a full synchronisation: `GET event`, users paged by `POST search?entity-type=user&...&
//!    expand=user,attributes` with `<null-search-restriction/>`, groups the same way, then
//!    `GET group/membership`: time, bytes, what was read, per round (the first builds the
//!    server's directory from the ledger);
//! 2. an incremental one after 100 users changed in the source (`idsync sync`): `GET
//!    event/{token}`: time and bytes, median of 10.
//!
//! Printed with the machine; medians over the rounds.

mod common;

use common::{env_usize, machine};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Peak resident memory of a process, in MB.
fn peak_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

struct Sizes {
    users: usize,
    groups: usize,
    memberships: usize,
}

/// users.csv (`changed`: the first 100 users get a new title), groups.csv, memberships.csv.
fn write_source(dir: &Path, s: &Sizes, changed: bool) -> Result<(), String> {
    let mut users = String::with_capacity(s.users * 140);
    users.push_str(
        "sourceId,userName,givenName,familyName,email,department,title,employeeId,manager,active\n",
    );
    for i in 0..s.users {
        let title = if changed && i < 100 {
            "Principal engineer"
        } else {
            "Engineer"
        };
        let manager = if i >= 10 {
            format!("id-{:06}", i / 10)
        } else {
            String::new()
        };
        let _ = writeln!(
            users,
            "id-{i:06},user{i}@example.com,User,Number {i},user{i}@example.com,Dept {},{title},E{i:06},{manager},{}",
            i % 40,
            i % 50 != 7
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
            let g = (i * 7 + k * 1009) % s.groups.max(1);
            let _ = writeln!(members, "g-{g:05},id-{i:06},user");
            n += 1;
        }
    }
    std::fs::write(dir.join("memberships.csv"), members).map_err(|e| e.to_string())
}

fn idsync(dir: &Path, args: &[&str]) -> Result<String, String> {
    let o = Command::new(env!("CARGO_BIN_EXE_idsync"))
        .arg("--config")
        .arg(dir.join("idsync.toml"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| e.to_string())?;
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    if !o.status.success() {
        return Err(format!(
            "idsync {args:?}: {:?}: {out}{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(out)
}

/// The connector's HTTP: Basic auth, Accept XML, XML bodies.
struct Connector {
    http: reqwest::blocking::Client,
    base: String,
    app: String,
    password: String,
    bytes: usize,
}

impl Connector {
    fn send(&mut self, method: &str, path: &str, body: Option<&str>) -> Result<String, String> {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.http.post(&url),
            _ => self.http.get(&url),
        }
        .basic_auth(&self.app, Some(&self.password))
        .header("Accept", "application/xml");
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/xml; charset=UTF-8")
                .body(format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>{b}"
                ));
        }
        let r = req.send().map_err(|e| format!("{method} {path}: {e}"))?;
        let status = r.status();
        let text = r.text().map_err(|e| format!("{method} {path}: {e}"))?;
        self.bytes += text.len();
        if !status.is_success() {
            return Err(format!("{method} {path}: {status}: {text}"));
        }
        Ok(text)
    }

    /// Paged search of every user or group with attributes; how many were read.
    fn search_all(&mut self, entity: &str, page: usize) -> Result<usize, String> {
        let mut start = 0;
        let mut total = 0;
        let open = format!("<{entity} name=");
        loop {
            let xml = self.send(
                "POST",
                &format!("/search?entity-type={entity}&start-index={start}&max-results={page}&expand={entity},attributes"),
                Some("<null-search-restriction/>"),
            )?;
            let n = xml.matches(&open).count();
            total += n;
            if n < page {
                return Ok(total);
            }
            start += page;
        }
    }
}

fn token_of(xml: &str) -> Option<String> {
    let at = xml.find("newEventToken=\"")? + "newEventToken=\"".len();
    let end = xml[at..].find('"')?;
    Some(xml[at..at + end].to_string())
}

struct Full {
    secs: f64,
    bytes: usize,
    users: usize,
    groups: usize,
    memberships: usize,
    token: String,
}

fn full_sync(c: &mut Connector, page: usize) -> Result<Full, String> {
    c.bytes = 0;
    let t0 = Instant::now();
    let events = c.send("GET", "/event", None)?;
    let token = token_of(&events).ok_or_else(|| format!("no event token in {events}"))?;
    let users = c.search_all("user", page)?;
    let groups = c.search_all("group", page)?;
    let m = c.send("GET", "/group/membership", None)?;
    let memberships = m.matches("<user name=").count();
    Ok(Full {
        secs: t0.elapsed().as_secs_f64(),
        bytes: c.bytes,
        users,
        groups,
        memberships,
        token,
    })
}

fn main() -> Result<(), String> {
    let sizes = Sizes {
        users: env_usize("IDSYNC_BENCH_USERS", 100_000),
        groups: env_usize("IDSYNC_BENCH_GROUPS", 10_000),
        memberships: env_usize("IDSYNC_BENCH_MEMBERSHIPS", 1_000_000),
    };
    let page = env_usize("IDSYNC_BENCH_PAGE", 1000).max(1);
    let rounds = env_usize("IDSYNC_BENCH_ROUNDS", 3).max(1);
    println!("machine: {}", machine());
    println!(
        "directory: {} users, {} groups, {} memberships; connector pages of {page}",
        sizes.users, sizes.groups, sizes.memberships
    );
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let d = dir.path();
    write_source(d, &sizes, false)?;
    let port = free_port()?;
    std::fs::write(
        d.join("idsync.toml"),
        format!(
            "[store]\npath = \"idsync.db\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n\n[log]\nlevel = \"warn\"\n\n[sources.hr]\ntype = \"file\"\nformat = \"csv\"\nusers = \"users.csv\"\ngroups = \"groups.csv\"\nmemberships = \"memberships.csv\"\n\n[targets.dc]\ntype = \"crowd\"\n\n[flows.hr-to-dc]\nsource = \"hr\"\ntarget = \"dc\"\n"
        ),
    )
    .map_err(|e| e.to_string())?;

    let t0 = Instant::now();
    idsync(d, &["sync", "hr-to-dc"])?;
    println!(
        "set-up: source read and flowed into the crowd target in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let created = idsync(
        d,
        &[
            "crowd", "app", "create", "--target", "dc", "--name", "bench",
        ],
    )?;
    let password = created
        .lines()
        .skip_while(|l| !l.starts_with("application "))
        .nth(1)
        .ok_or_else(|| format!("no password in: {created}"))?
        .trim()
        .to_string();

    let server = Kill(
        Command::new(env!("CARGO_BIN_EXE_idsync"))
            .arg("--config")
            .arg(d.join("idsync.toml"))
            .args(["serve"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .map_or(true, |r| !r.status().is_success())
    {
        if Instant::now() > deadline {
            return Err("idsync serve did not answer /healthz within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = Connector {
        http,
        base: format!("http://127.0.0.1:{port}/crowd/dc/rest/usermanagement/1"),
        app: "bench".into(),
        password,
        bytes: 0,
    };

    let mut times = Vec::new();
    let mut token = String::new();
    for round in 1..=rounds {
        let f = full_sync(&mut c, page)?;
        println!(
            "full sync, round {round}: {:.2}s, {:.1} MB, {} users, {} groups, {} memberships read",
            f.secs,
            f.bytes as f64 / 1e6,
            f.users,
            f.groups,
            f.memberships
        );
        if f.users != sizes.users || f.groups != sizes.groups {
            return Err(format!(
                "read {} users and {} groups, served {} and {}",
                f.users, f.groups, sizes.users, sizes.groups
            ));
        }
        times.push(f.secs);
        token = f.token;
    }
    println!(
        "full sync: median {:.2}s (aim: under 10 s); server peak RSS {:.0} MB",
        median(times),
        peak_mb(server.0.id())
    );

    write_source(d, &sizes, true)?;
    let t0 = Instant::now();
    idsync(d, &["sync", "hr-to-dc"])?;
    println!(
        "100 users changed in the source: idsync sync {:.2}s",
        t0.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = Instant::now();
        let xml = c.send("GET", &format!("/event/{token}"), None)?;
        if xml.matches("<userEvent>").count() >= 100 {
            println!(
                "first read of the feed showing them: {:.1} ms",
                t.elapsed().as_secs_f64() * 1000.0
            );
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the 100 changes never reached the feed: {xml:.2000}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first read that needs the directory brings it up to the ledger (in place).
    let t = Instant::now();
    let user = c.send(
        "GET",
        "/user?username=user0@example.com&expand=attributes",
        None,
    )?;
    if !user.contains("Principal engineer") {
        return Err(format!("the change is not served: {user:.2000}"));
    }
    println!(
        "first directory read after the change (user0, showing it): {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let mut inc = Vec::new();
    let mut bytes = 0;
    let mut events = 0;
    for _ in 0..10 {
        c.bytes = 0;
        let t = Instant::now();
        let xml = c.send("GET", &format!("/event/{token}"), None)?;
        inc.push(t.elapsed().as_secs_f64() * 1000.0);
        bytes = c.bytes;
        events = xml.matches("<operation>").count();
    }
    println!(
        "incremental sync after 100 changes: median {:.1} ms (aim: under 100 ms), {events} events, {:.1} KB",
        median(inc),
        bytes as f64 / 1e3
    );
    println!("server peak RSS {:.0} MB", peak_mb(server.0.id()));
    Ok(())
}
