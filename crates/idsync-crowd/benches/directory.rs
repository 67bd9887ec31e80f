//! The served directory at the size: 100,000 users, 10,000 groups, 1,000,000
//! memberships. Prints how long building the directory takes and what a full synchronisation
//! as the Crowd connector performs it costs in the handler (paged searches of users and groups
//! with `expand`, then `group/membership`), an incremental one after 100 changes, and
//! applying 100 changes of the ledger to the directory in place.
//!
//! `cargo bench -p idsync-crowd --bench directory` (no harness: it prints its figures).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use idsync_core::{Email, Group, User};
use idsync_crowd::directory::Change;
use idsync_crowd::{handle, Directory, Event, EventLog, Format, Request};
use std::time::Instant;

const USERS: usize = 100_000;
const GROUPS: usize = 10_000;
const PER_USER: usize = 10;
const PAGE: usize = 1000;

fn peak_rss_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn request<'a>(
    method: &'a str,
    path: &'a str,
    query: &'a [(String, String)],
    body: &'a [u8],
) -> Request<'a> {
    Request {
        method,
        path,
        query,
        base_url: "http://127.0.0.1:8095/crowd/bench/rest/usermanagement/1",
        accept: Format::Xml,
        content_type: Format::Xml,
        body,
    }
}

fn q(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn main() {
    let users: Vec<(String, User)> = (0..USERS)
        .map(|i| {
            let mut u = User::new(format!("u{i}"), format!("user{i:06}"));
            u.name.given_name = Some(format!("First{i}"));
            u.name.family_name = Some(format!("Last{i}"));
            u.display_name = Some(format!("First{i} Last{i}"));
            u.department = Some(format!("Dept {}", i % 50));
            u.title = Some("Engineer".into());
            u.emails.push(Email {
                value: format!("user{i}@example.com"),
                kind: Some("work".into()),
                primary: true,
                display: None,
            });
            (format!("u{i}"), u)
        })
        .collect();
    let groups: Vec<(String, Group)> = (0..GROUPS)
        .map(|g| {
            (
                format!("g{g}"),
                Group::new(format!("g{g}"), format!("group-{g:05}")),
            )
        })
        .collect();
    let members: Vec<(String, String)> = (0..USERS)
        .flat_map(|i| {
            (0..PER_USER)
                .map(move |k| (format!("g{}", (i * 7 + k * 1009) % GROUPS), format!("u{i}")))
        })
        .collect();

    let t = Instant::now();
    let dir = Directory::build(users, groups, members, Vec::new());
    let build = t.elapsed();
    println!(
        "build: {} users, {} groups, {} memberships in {:.3} s",
        dir.users().len(),
        dir.groups().len(),
        dir.membership_count(),
        build.as_secs_f64()
    );

    let events = EventLog::new("bench".into(), 1);
    let null = b"<null-search-restriction/>";
    let t = Instant::now();
    let mut bytes = 0usize;
    let mut requests = 0usize;
    for (entity, expand, total) in [
        ("user", "user,attributes", USERS),
        ("group", "group,attributes", GROUPS),
    ] {
        let mut start = 0;
        loop {
            let query = q(&[
                ("entity-type", entity.to_string()),
                ("start-index", start.to_string()),
                ("max-results", PAGE.to_string()),
                ("expand", expand.to_string()),
            ]);
            let r = handle(&request("POST", "search", &query, null), &dir, &events);
            assert_eq!(r.status, 200);
            bytes += r.body.len();
            requests += 1;
            start += PAGE;
            if start >= total + PAGE {
                break;
            }
        }
    }
    let r = handle(&request("GET", "group/membership", &[], b""), &dir, &events);
    assert_eq!(r.status, 200);
    bytes += r.body.len();
    requests += 1;
    let full = t.elapsed();
    println!(
        "full synchronisation in the handler: {requests} requests, {:.1} MB, {:.3} s",
        bytes as f64 / 1e6,
        full.as_secs_f64()
    );

    let mut log = EventLog::new("bench".into(), 1);
    let token = log.current_token();
    for i in 0..100 {
        let (_, u) = (
            format!("u{i}"),
            User::new(format!("u{i}"), format!("user{i:06}")),
        );
        let g = Group::new("g1", "group-00001");
        log.push(i + 1, Event::membership_created(&g, &u));
    }
    let t = Instant::now();
    let path = format!("event/{token}");
    let r = handle(&request("GET", &path, &[], b""), &dir, &log);
    assert_eq!(r.status, 200);
    println!(
        "incremental synchronisation (100 events): {} bytes in {:.3} ms",
        r.body.len(),
        t.elapsed().as_secs_f64() * 1e3
    );

    // The directory following the ledger in place: 100 users changed (a new title), then the
    // same with a user created (and made a member), one renamed and one deleted (these move
    // entries: one pass over the index lists).
    let mut dir = dir;
    let changed = |title: &str| -> Vec<Change> {
        (0..100)
            .map(|i| {
                let mut u = User::new(format!("u{i}"), format!("user{i:06}"));
                u.title = Some(title.into());
                Change::User {
                    key: format!("u{i}"),
                    user: Some(u),
                    restarted: false,
                }
            })
            .collect()
    };
    let t = Instant::now();
    dir.apply(changed("Principal engineer")).unwrap();
    println!(
        "100 users changed, applied in place: {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut changes = changed("Staff engineer");
    changes.extend([
        Change::User {
            key: "u-new".into(),
            user: Some(User::new("u-new", "user-new")),
            restarted: false,
        },
        Change::User {
            key: "u500".into(),
            user: Some(User::new("u500", "zz-renamed")),
            restarted: false,
        },
        Change::User {
            key: "u501".into(),
            user: None,
            restarted: true,
        },
        Change::Member {
            group: "g1".into(),
            user: "u-new".into(),
            member: true,
        },
    ]);
    let t = Instant::now();
    dir.apply(changes).unwrap();
    println!(
        "the same with a user created, one renamed, one deleted: {:.3} ms ({} users)",
        t.elapsed().as_secs_f64() * 1e3,
        dir.users().len()
    );
    println!("peak memory (VmHWM): {}", peak_rss_mib());
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::env::consts::ARCH
    );
}
