//! Which process runs what: processes with a heartbeat, leases on names (a flow runs in one
//! process at a time), and runs left `running` by a process that is gone (marked
//! `interrupted`). Decision 0022.
//!
//! A process registers itself the first time it starts a run or takes a lease, and renews its
//! `expires_ms` every [`HEARTBEAT`] while it lives. A process is gone when its expiry passed,
//! or, on the same host, as soon as its pid no longer exists (kill -9 is seen at once). Leases
//! and runs name their process; those of a gone process are taken over or marked interrupted.

use crate::{encode, RunCounts, Store, StoreError};
use serde::Serialize;
use sqlx::Row;
use std::time::Duration;

/// How often a live process renews its expiry.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long after its last heartbeat a process counts as gone (on another host, or when its
/// pid cannot be checked).
pub const PROCESS_TTL_MS: i64 = 30_000;

/// This process, as it is registered in the store.
#[derive(Debug, Clone)]
pub(crate) struct Process {
    pub id: String,
    pub pid: u32,
    pub host: String,
}

/// A process that holds a lease, as the one that wanted it sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub pid: i64,
    pub host: String,
    /// The command line it runs (`idsync sync people`, `idsync serve`).
    pub command: String,
    /// Since when it holds the lease.
    pub since_ms: i64,
}

/// Runs found owned by no live process and marked interrupted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interrupted {
    pub run_id: String,
    pub flow: String,
    pub counts: RunCounts,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether a process with this pid exists on this host; None when that cannot be told (no
/// `/proc`: the heartbeat decides alone).
fn pid_alive(pid: i64) -> Option<bool> {
    if !std::path::Path::new("/proc/self").exists() {
        return None;
    }
    Some(std::path::Path::new(&format!("/proc/{pid}")).exists())
}

fn command_line() -> String {
    let mut args = std::env::args();
    let program = args
        .next()
        .and_then(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "idsync".into());
    let mut line = std::iter::once(program)
        .chain(args.filter(|a| !a.starts_with("--config") && !a.ends_with(".toml")))
        .collect::<Vec<_>>()
        .join(" ");
    line.truncate(200);
    line
}

impl Store {
    /// This process in the store, registered on first use; its heartbeat runs while the store
    /// is open.
    pub(crate) async fn process(&self) -> Result<&Process, StoreError> {
        self.process
            .get_or_try_init(|| async {
                let p = Process {
                    id: uuid::Uuid::new_v4().to_string(),
                    pid: std::process::id(),
                    host: host_name(),
                };
                let now = now_ms();
                sqlx::query("INSERT INTO processes (id, pid, host, command, started_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(&p.id)
                    .bind(i64::from(p.pid))
                    .bind(&p.host)
                    .bind(command_line())
                    .bind(now)
                    .bind(now + PROCESS_TTL_MS)
                    .execute(&self.writer)
                    .await?;
                tokio::spawn(heartbeat(self.writer.clone(), p.id.clone()));
                Ok(p)
            })
            .await
    }

    /// Forget this process and its leases (the store is closing).
    pub(crate) async fn unregister(&self) {
        if let Some(p) = self.process.get() {
            let _ = sqlx::query("DELETE FROM leases WHERE holder = $1")
                .bind(&p.id)
                .execute(&self.writer)
                .await;
            let _ = sqlx::query("DELETE FROM processes WHERE id = $1")
                .bind(&p.id)
                .execute(&self.writer)
                .await;
        }
    }

    /// Remove processes that are gone (expired, or on this host with their pid gone), and
    /// mark the runs they left `running` interrupted, with what their provisioning log says
    /// was done. Runs from before processes were recorded (no owner) count as gone too.
    pub async fn reap(&self, now_ms: i64) -> Result<Vec<Interrupted>, StoreError> {
        let me = self.process.get().map(|p| p.id.clone());
        let host = host_name();
        let rows = sqlx::query("SELECT id, pid, host, expires_ms FROM processes")
            .fetch_all(&self.writer)
            .await?;
        for r in rows {
            let (id, pid, on, expires): (String, i64, String, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            if Some(&id) == me.as_ref() {
                continue;
            }
            let gone = expires <= now_ms || (on == host && pid_alive(pid) == Some(false));
            if gone {
                sqlx::query("DELETE FROM processes WHERE id = $1")
                    .bind(&id)
                    .execute(&self.writer)
                    .await?;
            }
        }
        sqlx::query("DELETE FROM leases WHERE holder NOT IN (SELECT id FROM processes)")
            .execute(&self.writer)
            .await?;
        let orphans = sqlx::query(
            "SELECT id, flow, counts FROM runs WHERE status = 'running' AND (owner IS NULL OR owner NOT IN (SELECT id FROM processes))",
        )
        .fetch_all(&self.writer)
        .await?;
        let mut out = Vec::new();
        for r in orphans {
            let (run_id, flow, known): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let mut counts = RunCounts(crate::decode("run counts", &known)?);
            counts.0.extend(self.counts_from_log(&run_id).await?.0);
            let ended: Option<i64> =
                sqlx::query_scalar("SELECT MAX(at_ms) FROM run_ops WHERE run_id = $1")
                    .bind(&run_id)
                    .fetch_one(&self.writer)
                    .await?;
            let n = sqlx::query(
                "UPDATE runs SET status = 'interrupted', counts = $2, ended_ms = $3, error = $4 WHERE id = $1 AND status = 'running'",
            )
            .bind(&run_id)
            .bind(encode("run counts", &counts.0)?)
            .bind(ended.unwrap_or(now_ms))
            .bind("interrupted: the process running it stopped before the end (killed, or the disk was full); the next run carries on from what was recorded")
            .execute(&self.writer)
            .await?
            .rows_affected();
            if n > 0 {
                tracing::warn!(
                    run_id,
                    flow,
                    ?counts,
                    "run interrupted: its process is gone"
                );
                out.push(Interrupted {
                    run_id,
                    flow,
                    counts,
                });
            }
        }
        Ok(out)
    }

    /// Take the lease `name` for this process (it already holds it: fine). When another live
    /// process holds it, returns that holder and takes nothing.
    pub async fn try_lease(&self, name: &str, now_ms: i64) -> Result<Option<Holder>, StoreError> {
        let me = self.process().await?.id.clone();
        self.reap(now_ms).await?;
        sqlx::query(
            "INSERT INTO leases (name, holder, since_ms) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, since_ms = excluded.since_ms
             WHERE leases.holder NOT IN (SELECT id FROM processes)",
        )
        .bind(name)
        .bind(&me)
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        let row = sqlx::query(
            "SELECT l.holder, p.pid, p.host, p.command, l.since_ms FROM leases l LEFT JOIN processes p ON p.id = l.holder WHERE l.name = $1",
        )
        .bind(name)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.and_then(|r| {
            let holder: String = r.get(0);
            (holder != me).then(|| Holder {
                pid: r.get::<Option<i64>, _>(1).unwrap_or(0),
                host: r.get::<Option<String>, _>(2).unwrap_or_default(),
                command: r.get::<Option<String>, _>(3).unwrap_or_default(),
                since_ms: r.get(4),
            })
        }))
    }

    /// Give the lease `name` back (only if this process holds it).
    pub async fn release_lease(&self, name: &str) -> Result<(), StoreError> {
        if let Some(p) = self.process.get() {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(&p.id)
                .execute(&self.writer)
                .await?;
        }
        Ok(())
    }

    /// A run's outcome counts as its provisioning log has them: each planned operation once
    /// (by its position in the plan), `failed` if any part of it failed, else `applied` if it
    /// took effect, else `skipped`. Held operations are not counted here.
    pub async fn counts_from_log(&self, run_id: &str) -> Result<RunCounts, StoreError> {
        let rows = sqlx::query(
            "SELECT class, COUNT(*) FROM (
                SELECT seq, CASE
                    WHEN SUM(outcome IN ('failed', 'rejected', 'not_found')) > 0 THEN 'failed'
                    WHEN SUM(outcome IN ('applied', 'linked')) > 0 THEN 'applied'
                    ELSE 'skipped' END AS class
                FROM run_ops WHERE run_id = $1 AND outcome != 'held' GROUP BY seq
             ) GROUP BY class",
        )
        .bind(run_id)
        .fetch_all(&self.writer)
        .await?;
        let mut counts = RunCounts::default();
        for class in ["applied", "failed", "skipped"] {
            counts.0.insert(class.to_string(), 0);
        }
        for r in rows {
            counts.0.insert(r.get(0), r.get(1));
        }
        Ok(counts)
    }
}

/// Renew this process's expiry until the store closes. A failed renewal is said once, until
/// one succeeds again.
async fn heartbeat(pool: sqlx::SqlitePool, id: String) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        let renewed = sqlx::query("UPDATE processes SET expires_ms = $2 WHERE id = $1")
            .bind(&id)
            .bind(now_ms() + PROCESS_TTL_MS)
            .execute(&pool)
            .await;
        match renewed {
            Ok(_) => failing = false,
            Err(_) if pool.is_closed() => return,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot renew this process's heartbeat in the store");
            }
            Err(_) => {}
        }
    }
}
