//! The idsync store: directories with their change logs, flows' ledgers and cursors, runs and
//! the provisioning log.
//!
//! SQLite is the embedded default: one file, WAL journal, `synchronous=NORMAL` (a process crash
//! loses nothing committed), a single writer connection so writers queue instead of failing
//! with `SQLITE_BUSY`, and a pool of readers. Every statement uses `$n` placeholders and types
//! PostgreSQL shares, so a PostgreSQL backend can run the same queries. Every multi-row write
//! is one transaction.

mod audit;
mod crowd;
mod crowd_changes;
mod lease;
mod logins;
mod nesting;
mod numbers;
mod push;
mod reverse;
mod runs;
mod secrets;
mod target_forms;
mod target_keeps;
mod target_omissions;
mod types;

pub use audit::{AuditEntry, AuditOutcome, NewAuditEntry};
pub use crowd::{hash_password, verify_password, CrowdApp, EventLogHead, ServedEvents};
pub use crowd_changes::{LedgerDelta, KEPT_VERSIONS, MAX_FOLLOWED_CHANGES};
pub use lease::{Holder, Interrupted, HEARTBEAT, PROCESS_TTL_MS};
pub use push::{MemberPatch, StoredGroup, StoredUser, TokenInfo, Unique, TOKEN_CACHE_MS};

pub use secrets::{Keyring, RotateSummary, SealKey, SecretError, SecretInfo, SECRET_KEY_LEN};
pub use types::*;

use idsync_core::{
    Action, Change, Group, Key, LedgerGroup, LedgerState, LedgerUser, MemberKind, MemberRef,
    Membership, Refresh, Snapshot, User,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use reverse::Table;

/// Hash maps and sets of the store: foldhash (fast on the short id strings it hashes by the
/// million, seeded per map like std's).
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("conflict: {0}")]
    Conflict(String),
    /// What a write is about does not exist (a member patch's group).
    #[error("not found: {0}")]
    NotFound(String),
    /// A write names something it cannot (a member that is neither a user nor a group).
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("the write was not committed: {0}")]
    NotCommitted(String),
    #[error("corrupt {what} in the store: {message}")]
    Corrupt { what: String, message: String },
}

impl StoreError {
    /// Whether the write failed for lack of disk space (SQLite's SQLITE_FULL, or ENOSPC).
    pub fn is_disk_full(&self) -> bool {
        let db = match self {
            StoreError::Database(e) | StoreError::Open { source: e, .. } => e,
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => e,
            _ => return false,
        };
        match db {
            sqlx::Error::Database(d) => {
                // SQLITE_FULL is 13; extended codes keep it in the low byte.
                d.code()
                    .and_then(|c| c.parse::<i64>().ok())
                    .is_some_and(|c| c & 0xff == 13)
                    || d.message().contains("disk is full")
            }
            sqlx::Error::Io(io) => io.raw_os_error() == Some(28),
            _ => false,
        }
    }
}

/// The store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    reader: SqlitePool,
    writer: SqlitePool,
    /// The queue of checked writes (push endpoints), committed in groups; started on first use.
    batcher: std::sync::Arc<tokio::sync::OnceCell<tokio::sync::mpsc::Sender<push::WriteJob>>>,
    /// Changes written since the planner's statistics were last refreshed, and how many more
    /// trigger the next refresh.
    unanalyzed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    analyze_every: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Push tokens recently verified, by hash of the secret (see `Store::verify_token`).
    tokens: push::TokenCache,
    /// The connection that checkpoints the WAL in the background (files only).
    checkpointer: Option<SqlitePool>,
    /// Committed numbers of ids (decision 0015), so that writes look up only new ids.
    numbers: numbers::NumberCache,
    /// This process as the store knows it (runs and leases name it), registered on first use.
    process: std::sync::Arc<tokio::sync::OnceCell<lease::Process>>,
}

type Tx<'a> = Transaction<'a, Sqlite>;

fn decode<T: serde::de::DeserializeOwned>(what: &str, data: &str) -> Result<T, StoreError> {
    serde_json::from_str(data).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        message: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        message: e.to_string(),
    })
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Store {
    /// Open (and create, and migrate) the store in a file.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| open_err(sqlx::Error::Io(e)))?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // 64 MiB of page cache per connection (SQLite's default is 2 MiB): writing a
            // 100k-user directory touches index pages all over the file.
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory");
        // Checkpoints (copying the WAL into the database file, with its fsyncs) are taken off
        // the writer's path: a connection of their own runs them in the background, and the
        // writer checkpoints itself only if the WAL grows past 64 MiB all the same. The
        // writer's cache is smaller than the readers': each commit walks every page it caches
        // (SQLite's pcache1Truncate), and 16 MiB wrote faster than 64 MiB at 100k users.
        // Processes opening the same new file at once would each create it and race through
        // the migrations ("table ... already exists"): creating and migrating is done under an
        // exclusive lock on a file beside the database, one process after the other.
        let guard = lock_file(path).await.map_err(open_err)?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                opts.clone()
                    .pragma("wal_autocheckpoint", "16384")
                    .pragma("cache_size", "-16384"),
            )
            .await
            .map_err(open_err)?;
        MIGRATOR.run(&writer).await?;
        drop(guard);
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone().pragma("cache_size", "-2048"))
            .await
            .map_err(open_err)?;
        tokio::spawn(checkpoint_loop(checkpointer.clone()));
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await
            .map_err(open_err)?;
        let store = Store {
            reader,
            writer,
            batcher: Default::default(),
            unanalyzed: Default::default(),
            analyze_every: Default::default(),
            tokens: Default::default(),
            numbers: Default::default(),
            checkpointer: Some(checkpointer),
            process: Default::default(),
        };
        store.analyze().await?;
        Ok(store)
    }

    /// Refresh the query planner's statistics (a sample of each index: milliseconds even on
    /// millions of rows). Without them SQLite may pick a primary-key scan over the right index
    /// (a user's groups: 30 ms instead of 0.4 ms with 150k memberships).
    pub async fn analyze(&self) -> Result<(), StoreError> {
        sqlx::query("PRAGMA analysis_limit = 1000")
            .execute(&self.writer)
            .await?;
        sqlx::query("ANALYZE").execute(&self.writer).await?;
        Ok(())
    }

    /// Count written changes and refresh the statistics once enough have landed: after 5,000
    /// changes, then after twice as many each time (up to a million), so a growing directory
    /// is measured while it grows and a large one is not re-measured all the time.
    pub(crate) async fn note_changes(&self, n: usize) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let threshold = self.analyze_every.load(Ordering::Relaxed).max(5_000);
        let before = self.unanalyzed.fetch_add(n as u64, Ordering::Relaxed);
        if before + n as u64 >= threshold && before < threshold {
            self.unanalyzed.store(0, Ordering::Relaxed);
            self.analyze_every
                .store((threshold * 2).min(1_000_000), Ordering::Relaxed);
            self.analyze().await?;
        }
        Ok(())
    }

    /// A store in memory (tests): one connection serves reads and writes.
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Store {
            reader: pool.clone(),
            writer: pool,
            batcher: Default::default(),
            unanalyzed: Default::default(),
            analyze_every: Default::default(),
            tokens: Default::default(),
            numbers: Default::default(),
            checkpointer: None,
            process: Default::default(),
        })
    }

    pub async fn close(&self) {
        self.unregister().await;
        if let Some(c) = &self.checkpointer {
            c.close().await;
        }
        self.reader.close().await;
        self.writer.close().await;
    }

    // ---------------------------------------------------------------- directories

    pub async fn list_directories(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT name FROM directories ORDER BY name")
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }

    pub async fn load_directory(&self, dir: &str) -> Result<Snapshot, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let users = sqlx::query("SELECT data FROM users WHERE dir = $1 ORDER BY source_id")
            .bind(dir)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| decode::<User>("user", r.get::<&str, _>(0)))
            .collect::<Result<Vec<_>, _>>()?;
        let groups = sqlx::query("SELECT data FROM groups_ WHERE dir = $1 ORDER BY source_id")
            .bind(dir)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| decode::<Group>("group", r.get::<&str, _>(0)))
            .collect::<Result<Vec<_>, _>>()?;
        let memberships = memberships_of(&mut conn, dir).await?;
        Ok(Snapshot {
            users,
            groups,
            memberships,
        })
    }

    /// The current state of the named users and groups (`None`: not in the directory) and the
    /// direct memberships of the groups in `membership_groups`: what a [`Refresh`] of a
    /// directory image needs.
    pub async fn refresh(
        &self,
        dir: &str,
        users: &BTreeSet<String>,
        groups: &BTreeSet<String>,
        membership_groups: &BTreeSet<String>,
    ) -> Result<Refresh, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let list = |ids: &BTreeSet<String>| {
            serde_json::Value::from(ids.iter().map(String::as_str).collect::<Vec<_>>()).to_string()
        };
        let mut out = Refresh {
            users: users.iter().map(|u| (u.clone(), None)).collect(),
            ..Refresh::default()
        };
        for r in sqlx::query("SELECT data FROM users WHERE dir = $1 AND source_id IN (SELECT value FROM json_each($2))")
            .bind(dir)
            .bind(list(users))
            .fetch_all(&mut *conn)
            .await?
        {
            let u: User = decode("user", r.get::<&str, _>(0))?;
            out.users.insert(u.source_id.clone(), Some(u));
        }
        out.groups = groups.iter().map(|g| (g.clone(), None)).collect();
        for r in sqlx::query("SELECT data FROM groups_ WHERE dir = $1 AND source_id IN (SELECT value FROM json_each($2))")
            .bind(dir)
            .bind(list(groups))
            .fetch_all(&mut *conn)
            .await?
        {
            let g: Group = decode("group", r.get::<&str, _>(0))?;
            out.groups.insert(g.source_id.clone(), Some(g));
        }
        out.memberships = membership_groups
            .iter()
            .map(|g| (g.clone(), Vec::new()))
            .collect();
        for r in sqlx::query(
            "SELECT g.id, m.kind, m.id FROM numbers g
             CROSS JOIN memberships x ON x.dir = $1 AND x.g = g.n CROSS JOIN numbers m ON m.n = x.m
             WHERE g.kind = 'group' AND g.id IN (SELECT value FROM json_each($2))",
        )
        .bind(dir)
        .bind(list(membership_groups))
        .fetch_all(&mut *conn)
        .await?
        {
            let m = membership_row(r.get(0), r.get(1), r.get(2))?;
            out.memberships.entry(m.group).or_default().push(m.member);
        }
        Ok(out)
    }

    pub async fn last_seq(&self, dir: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT last_seq FROM directories WHERE name = $1")
            .bind(dir)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    pub async fn directory_counts(&self, dir: &str) -> Result<DirectoryCounts, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql).bind(dir);
        let users = count("SELECT COUNT(*) FROM users WHERE dir = $1")
            .fetch_one(&mut *conn)
            .await?;
        let groups = count("SELECT COUNT(*) FROM groups_ WHERE dir = $1")
            .fetch_one(&mut *conn)
            .await?;
        let memberships = count("SELECT COUNT(*) FROM memberships WHERE dir = $1")
            .fetch_one(&mut *conn)
            .await?;
        drop(conn);
        Ok(DirectoryCounts {
            users,
            groups,
            memberships,
            last_seq: self.last_seq(dir).await?,
        })
    }

    pub async fn source_cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT cursor FROM source_cursors WHERE source = $1")
            .bind(source)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Replace a directory's contents with a completely read snapshot: only what differs is
    /// written, each difference is logged, and the source cursor is stored, in one transaction.
    pub async fn replace_directory(
        &self,
        dir: &str,
        source: &str,
        snapshot: &Snapshot,
        source_cursor: Option<&str>,
        now_ms: i64,
    ) -> Result<WriteSummary, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut learned = self.numbers.learn();
        let mut log = ChangeWriter::start(&mut tx, &mut learned, dir).await?;

        let gone_users = upsert_all(&mut tx, &mut log, dir, &snapshot.users, now_ms).await?;
        let gone_groups = upsert_all(&mut tx, &mut log, dir, &snapshot.groups, now_ms).await?;

        // Memberships. A first read finds none stored: nothing to compare, all are added.
        let have: HashSet<Membership> = memberships_of(&mut tx, dir).await?.into_iter().collect();
        let mut removed: Vec<&Membership> = Vec::new();
        if !have.is_empty() {
            let want: HashSet<&Membership> = snapshot.memberships.iter().collect();
            removed = have.iter().filter(|m| !want.contains(m)).collect();
            removed.sort_unstable();
        }
        for m in removed {
            delete_membership(&mut tx, &mut learned, dir, m).await?;
            log.push(
                &mut tx,
                &Change::RemoveMember {
                    group: m.group.clone(),
                    member: m.member.clone(),
                },
                now_ms,
            )
            .await?;
        }
        let mut added: Vec<&Membership> = if have.is_empty() {
            snapshot.memberships.iter().collect()
        } else {
            snapshot
                .memberships
                .iter()
                .filter(|m| !have.contains(*m))
                .collect()
        };
        added.sort_unstable();
        added.dedup();
        let rows: Vec<(&str, &MemberRef)> = added
            .iter()
            .map(|m| (m.group.as_str(), &m.member))
            .collect();
        insert_memberships(&mut tx, &mut learned, dir, &rows).await?;
        for m in added {
            log.push(
                &mut tx,
                &Change::AddMember {
                    group: m.group.clone(),
                    member: m.member.clone(),
                },
                now_ms,
            )
            .await?;
        }

        for source_id in gone_users {
            delete_object(
                &mut tx,
                &mut learned,
                dir,
                MemberKind::User,
                &source_id,
                now_ms,
            )
            .await?;
            log.push(&mut tx, &Change::DeleteUser { source_id }, now_ms)
                .await?;
        }
        for source_id in gone_groups {
            delete_object(
                &mut tx,
                &mut learned,
                dir,
                MemberKind::Group,
                &source_id,
                now_ms,
            )
            .await?;
            log.push(&mut tx, &Change::DeleteGroup { source_id }, now_ms)
                .await?;
        }
        let summary = log
            .finish(&mut tx, &mut learned, source, source_cursor)
            .await?;
        tx.commit().await?;
        learned.keep();
        self.note_changes(summary.changes).await?;
        Ok(summary)
    }

    /// Apply changes (a delta read or a push) with their log entries and the source cursor in
    /// one transaction. Changes that change nothing are not logged.
    pub async fn apply_changes(
        &self,
        dir: &str,
        source: &str,
        changes: &[Change],
        source_cursor: Option<&str>,
        now_ms: i64,
    ) -> Result<WriteSummary, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut learned = self.numbers.learn();
        let summary = write_changes(
            &mut tx,
            &mut learned,
            dir,
            source,
            changes,
            source_cursor,
            now_ms,
        )
        .await?;
        tx.commit().await?;
        learned.keep();
        self.note_changes(summary.changes).await?;
        Ok(summary)
    }

    /// The first `limit` changes after position `after`, in order, each with its position.
    pub async fn changes_since(
        &self,
        dir: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<LoggedChange>, StoreError> {
        use futures_util::TryStreamExt;
        let limit = usize::try_from(limit).unwrap_or(0);
        let mut out = Vec::new();
        // A row holds one change or a group's batch of membership changes, its seq the last.
        let mut rows = sqlx::query(
            "SELECT seq, at_ms, kind, data FROM change_log WHERE dir = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(dir)
        .bind(after)
        .fetch(&self.reader);
        while out.len() < limit {
            let Some(r) = rows.try_next().await? else {
                break;
            };
            let (seq, at_ms): (i64, i64) = (r.get(0), r.get(1));
            let kind: &str = r.get(2);
            let data: &str = r.get(3);
            if kind != ADD_MEMBERS && kind != REMOVE_MEMBERS {
                out.push(LoggedChange {
                    seq,
                    at_ms,
                    change: decode("change-log entry", data)?,
                });
                continue;
            }
            let batch: MemberBatch = decode("change-log entry", data)?;
            let first = seq + 1 - batch.members.len() as i64;
            for (n, member) in (first..).zip(batch.members) {
                if n <= after || out.len() >= limit {
                    continue;
                }
                let group = batch.group.clone();
                out.push(LoggedChange {
                    seq: n,
                    at_ms,
                    change: if kind == ADD_MEMBERS {
                        Change::AddMember { group, member }
                    } else {
                        Change::RemoveMember { group, member }
                    },
                });
            }
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- flows

    pub async fn register_flow(&self, flow: &str, dir: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO flows (name, dir, cursor) VALUES ($1, $2, 0) ON CONFLICT (name) DO UPDATE SET dir = excluded.dir")
            .bind(flow)
            .bind(dir)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn flow_health(&self, flow: &str) -> Result<FlowHealth, StoreError> {
        let row = sqlx::query(
            "SELECT failures, last_failure_ms, last_failure, quarantined_ms FROM flows WHERE name = $1",
        )
        .bind(flow)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map_or_else(FlowHealth::default, |r| FlowHealth {
            failures: r.get(0),
            last_failure_ms: r.get(1),
            last_failure: r.get(2),
            quarantined_ms: r.get(3),
        }))
    }

    /// Count a bad run; the flow is quarantined once `quarantine_after` come in a row. Returns
    /// the health after it and whether the flow entered quarantine now.
    pub async fn record_flow_failure(
        &self,
        flow: &str,
        dir: &str,
        reason: &str,
        now_ms: i64,
        quarantine_after: i64,
    ) -> Result<(FlowHealth, bool), StoreError> {
        let before = self.flow_health(flow).await?;
        sqlx::query(
            "INSERT INTO flows (name, dir, cursor, failures, last_failure_ms, last_failure) VALUES ($1, $2, 0, 1, $3, $4)
             ON CONFLICT (name) DO UPDATE SET failures = failures + 1, last_failure_ms = $3, last_failure = $4,
               quarantined_ms = CASE WHEN quarantined_ms IS NULL AND failures + 1 >= $5 THEN $3 ELSE quarantined_ms END",
        )
        .bind(flow)
        .bind(dir)
        .bind(now_ms)
        .bind(reason)
        .bind(quarantine_after)
        .execute(&self.writer)
        .await?;
        let after = self.flow_health(flow).await?;
        let entered = before.quarantined_ms.is_none() && after.quarantined_ms.is_some();
        Ok((after, entered))
    }

    /// Count a good run: the count of bad ones starts again and quarantine ends. Returns the
    /// health before it.
    pub async fn record_flow_success(&self, flow: &str) -> Result<FlowHealth, StoreError> {
        let before = self.flow_health(flow).await?;
        if before.failures > 0 || before.quarantined_ms.is_some() {
            sqlx::query("UPDATE flows SET failures = 0, quarantined_ms = NULL WHERE name = $1")
                .bind(flow)
                .execute(&self.writer)
                .await?;
        }
        Ok(before)
    }

    pub async fn flow_cursor(&self, flow: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT cursor FROM flows WHERE name = $1")
            .bind(flow)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    pub async fn set_flow_cursor(&self, flow: &str, seq: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO flows (name, dir, cursor) VALUES ($1, '', $2) ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor")
            .bind(flow)
            .bind(seq)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn load_ledger(&self, flow: &str) -> Result<LedgerState, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let mut ledger = LedgerState::default();
        for r in sqlx::query(
            "SELECT key, target_id, data, disabled_ms, original FROM ledger_users WHERE flow = $1",
        )
        .bind(flow)
        .fetch_all(&mut *conn)
        .await?
        {
            let original: Option<&str> = r.get(4);
            ledger.users.insert(
                r.get(0),
                LedgerUser {
                    target_id: r.get(1),
                    user: decode("ledger user", r.get::<&str, _>(2))?,
                    disabled_ms: r.get(3),
                    original: original.map(|o| decode("ledger user", o)).transpose()?,
                },
            );
        }
        for r in sqlx::query("SELECT key, target_id, data FROM ledger_groups WHERE flow = $1")
            .bind(flow)
            .fetch_all(&mut *conn)
            .await?
        {
            ledger.groups.insert(
                r.get(0),
                LedgerGroup {
                    target_id: r.get(1),
                    group: decode("ledger group", r.get::<&str, _>(2))?,
                },
            );
        }
        // The pairs of numbers, then one lookup per number used; one allocation per key,
        // shared by all its memberships.
        let (pairs, ids) = numbers::pairs_with_ids(
            &mut conn,
            "SELECT g, json_group_array(u) FROM ledger_members WHERE flow = $1 GROUP BY g",
            flow,
        )
        .await?;
        let keys: HashMap<i64, Key> = ids
            .into_iter()
            .map(|(n, (_, id))| (n, Key::from(id)))
            .collect();
        for (g, u) in pairs {
            let (Some(group), Some(user)) = (keys.get(&g), keys.get(&u)) else {
                return Err(StoreError::Corrupt {
                    what: "ledger membership".into(),
                    message: format!("numbers {g} or {u} of flow {flow:?} are not known"),
                });
            };
            ledger
                .members
                .entry(group.to_string())
                .or_default()
                .insert(Key::clone(user));
        }
        nesting::load(&mut conn, flow, &mut ledger).await?;
        Ok(ledger)
    }

    /// The version of a flow's ledger: it grows with every write to the ledger.
    pub async fn ledger_version(&self, flow: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT ledger_version FROM flows WHERE name = $1")
            .bind(flow)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    /// Replace the ledger; returns its new version.
    pub async fn replace_ledger(
        &self,
        flow: &str,
        ledger: &LedgerState,
    ) -> Result<i64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut learned = self.numbers.learn();
        learned
            .reverse
            .scope(&mut tx, Table::LedgerMembers, flow)
            .await?
            .forget();
        for table in ["ledger_users", "ledger_groups", "ledger_members"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE flow = $1"))
                .bind(flow)
                .execute(&mut *tx)
                .await?;
        }
        for (key, u) in &ledger.users {
            upsert_ledger(
                &mut tx,
                "ledger_users",
                flow,
                key,
                &u.target_id,
                &encode("user", &u.user)?,
            )
            .await?;
            if u.disabled_ms.is_some() || u.original.is_some() {
                sqlx::query(
                    "UPDATE ledger_users SET disabled_ms = $3, original = $4 WHERE flow = $1 AND key = $2",
                )
                .bind(flow)
                .bind(key)
                .bind(u.disabled_ms)
                .bind(u.original.as_ref().map(|o| encode("user", o)).transpose()?)
                .execute(&mut *tx)
                .await?;
            }
        }
        for (key, g) in &ledger.groups {
            upsert_ledger(
                &mut tx,
                "ledger_groups",
                flow,
                key,
                &g.target_id,
                &encode("group", &g.group)?,
            )
            .await?;
        }
        for (group, users) in &ledger.members {
            let users: Vec<&str> = users.iter().map(|u| &**u).collect();
            add_ledger_members(&mut tx, &mut learned, flow, group, &users).await?;
        }
        nesting::replace(&mut tx, flow, ledger).await?;
        crowd::ledger_replaced(&mut tx, flow).await?;
        let version = bump_ledger_version(&mut tx, flow).await?;
        tx.commit().await?;
        learned.keep();
        Ok(version)
    }

    /// Record operation outcomes: op-log rows and the ledger changes of applied operations, in
    /// one transaction. Returns the ledger's new version.
    pub async fn record_ops(
        &self,
        flow: &str,
        run_id: &str,
        records: &[OpRecord],
    ) -> Result<i64, StoreError> {
        self.record_ops_served(flow, run_id, records, None).await
    }

    /// [`Store::record_ops`] for a flow whose target idsync serves: the events of the ledger
    /// changes join the target's feed in the same transaction (decision 0031).
    pub async fn record_ops_served(
        &self,
        flow: &str,
        run_id: &str,
        records: &[OpRecord],
        served: Option<&ServedEvents<'_>>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut learned = self.numbers.learn();
        // Opened first, so that a kept ledger map moves on with this write's version even if
        // no membership changes.
        learned
            .reverse
            .scope(&mut tx, Table::LedgerMembers, flow)
            .await?;
        let mut n: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(n), 0) FROM run_ops WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(&mut *tx)
                .await?;
        let rows: Vec<OpRow> = records
            .iter()
            .map(OpRow::of)
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::Corrupt {
                what: "provisioning log".into(),
                message: e.to_string(),
            })?;
        for chunk in rows.chunks(OPS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO run_ops (run_id, n, seq, key, object, action, reason, before_, after_, changed, outcome, error, duration_ms, at_ms) ",
            );
            q.push_values(chunk, |mut b, row| {
                n += 1;
                let rec = row.rec;
                b.push_bind(run_id)
                    .push_bind(n)
                    .push_bind(rec.seq)
                    .push_bind(&*rec.op.key)
                    .push_bind(&row.object)
                    .push_bind(rec.op.action.name())
                    .push_bind(&row.reason)
                    .push_bind(row.before.as_deref())
                    .push_bind(row.after.as_deref())
                    .push_bind(&row.changed)
                    .push_bind(&rec.outcome)
                    .push_bind(rec.error.as_deref())
                    .push_bind(rec.duration_ms)
                    .push_bind(rec.at_ms);
            });
            q.build().execute(&mut *tx).await?;
        }
        // The ledger follows in order; consecutive user creations (a first sync's users phase)
        // in multi-row statements.
        let applied: Vec<&OpRow> = rows.iter().filter(|r| r.rec.applied).collect();
        let mut rest = &applied[..];
        while let Some(first) = rest.first() {
            let created = rest
                .iter()
                .take_while(|r| matches!(r.rec.op.action, Action::CreateUser { .. }))
                .count();
            if created > 0 {
                ledger_created_users(&mut tx, flow, &rest[..created]).await?;
                rest = &rest[created..];
            } else {
                apply_to_ledger(&mut tx, &mut learned, flow, first).await?;
                rest = &rest[1..];
            }
        }
        if let Some(served) = served {
            crowd::append_events(&mut tx, flow, served).await?;
        }
        let version = bump_ledger_version(&mut tx, flow).await?;
        if served.is_some() {
            // What changed, for the served directory to follow (issue 17).
            let ops: Vec<&idsync_core::Operation> = applied.iter().map(|r| &r.rec.op).collect();
            crowd_changes::note_changes(&mut tx, flow, version, &ops).await?;
        }
        learned
            .reverse
            .committed_as(Table::LedgerMembers, flow, version);
        tx.commit().await?;
        learned.keep();
        Ok(version)
    }

    pub async fn record_notification(&self, n: &NotificationRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO notifications (at_ms, event, flow, run_id, channel, destination, subject, ok, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(n.at_ms)
            .bind(&n.event)
            .bind(&n.flow)
            .bind(&n.run_id)
            .bind(&n.channel)
            .bind(&n.destination)
            .bind(&n.subject)
            .bind(i64::from(n.ok))
            .bind(&n.error)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Notifications, newest first.
    pub async fn list_notifications(
        &self,
        limit: i64,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        Ok(sqlx::query("SELECT at_ms, event, flow, run_id, channel, destination, subject, ok, error FROM notifications ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| NotificationRecord {
                at_ms: r.get(0),
                event: r.get(1),
                flow: r.get(2),
                run_id: r.get(3),
                channel: r.get(4),
                destination: r.get(5),
                subject: r.get(6),
                ok: r.get::<i64, _>(7) != 0,
                error: r.get(8),
            })
            .collect())
    }

    /// Retention: runs that ended before `cutoff_ms` with their logs, and change-log entries
    /// older than that which every flow reading the directory has passed.
    pub async fn purge_before(&self, cutoff_ms: i64) -> Result<PurgeSummary, StoreError> {
        let mut tx = self.writer.begin().await?;
        let ops = sqlx::query("DELETE FROM run_ops WHERE run_id IN (SELECT id FROM runs WHERE ended_ms IS NOT NULL AND ended_ms < $1)")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let runs = sqlx::query("DELETE FROM runs WHERE ended_ms IS NOT NULL AND ended_ms < $1")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // A row whose last change a flow has not passed stays whole. Counted in changes: a
        // row of membership changes holds many.
        let changes: u64 = sqlx::query_scalar::<_, i64>(
            "DELETE FROM change_log WHERE at_ms < $1
               AND seq <= COALESCE((SELECT MIN(f.cursor) FROM flows f WHERE f.dir = change_log.dir),
                                   (SELECT d.last_seq FROM directories d WHERE d.name = change_log.dir))
             RETURNING CASE WHEN kind IN ($2, $3) THEN json_array_length(data, '$.members') ELSE 1 END",
        )
        .bind(cutoff_ms)
        .bind(ADD_MEMBERS)
        .bind(REMOVE_MEMBERS)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|n| u64::try_from(n).unwrap_or(0))
        .sum();
        tx.commit().await?;
        Ok(PurgeSummary {
            runs,
            operations: ops,
            changes,
        })
    }
}

/// How often the background checkpointer copies what the WAL holds into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Checkpoint the WAL without blocking writers or readers (PASSIVE), until the store closes.
async fn checkpoint_loop(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A checkpoint that fails (a full disk) fails again 100 ms later: said once, and again
    // only after one succeeded.
    let mut failing = false;
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            Ok(_) => failing = false,
            Err(_) if pool.is_closed() => return,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "background checkpoint failed; the writer checkpoints past 64 MiB of WAL");
            }
            Err(_) => {}
        }
    }
}

/// An exclusive lock on `<database>.lock`, held until the returned file is dropped.
async fn lock_file(db: &Path) -> Result<std::fs::File, sqlx::Error> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::path::PathBuf::from(name))?;
    tokio::task::spawn_blocking(move || {
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| sqlx::Error::Io(e.into()))?;
        Ok(file)
    })
    .await
    .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?
}

/// Apply changes and log those that change something, inside a transaction.
pub(crate) async fn write_changes(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    dir: &str,
    source: &str,
    changes: &[Change],
    source_cursor: Option<&str>,
    now_ms: i64,
) -> Result<WriteSummary, StoreError> {
    let mut log = ChangeWriter::start(tx, learned, dir).await?;
    write_segments(tx, &mut log, learned, dir, &[(changes, now_ms)]).await?;
    log.finish(tx, learned, source, source_cursor).await
}

/// Apply segments of changes in order, each at its own time, and log those that change
/// something; how many each segment logged. Consecutive upserts and member additions, also
/// across segments, are read and written together in multi-row statements.
pub(crate) async fn write_segments(
    tx: &mut Tx<'_>,
    log: &mut ChangeWriter,
    learned: &mut numbers::Learned,
    dir: &str,
    segments: &[(&[Change], i64)],
) -> Result<Vec<usize>, StoreError> {
    let mut logged = vec![0usize; segments.len()];
    // Every change with its segment and time.
    let all: Vec<(usize, &Change, i64)> = segments
        .iter()
        .enumerate()
        .flat_map(|(s, (changes, at))| changes.iter().map(move |c| (s, c, *at)))
        .collect();
    let mut i = 0;
    while i < all.len() {
        let (seg, change, at) = all[i];
        // The run of changes of the same batchable kind that starts here.
        let same = |c: &Change| {
            matches!(
                (change, c),
                (Change::UpsertUser { .. }, Change::UpsertUser { .. })
                    | (Change::UpsertGroup { .. }, Change::UpsertGroup { .. })
                    | (Change::AddMember { .. }, Change::AddMember { .. })
            )
        };
        let end = all[i..]
            .iter()
            .position(|(_, c, _)| !same(c))
            .map_or(all.len(), |p| i + p)
            .max(i + 1);
        let run = &all[i..end];
        i = end;
        let written: Vec<(usize, Change, i64)> = match change {
            Change::UpsertUser { .. } => {
                let items: Vec<(usize, &User, i64)> = run
                    .iter()
                    .filter_map(|(s, c, at)| match c {
                        Change::UpsertUser { user } => Some((*s, user, *at)),
                        _ => None,
                    })
                    .collect();
                for s in upsert_run(tx, log, dir, &items).await? {
                    logged[s] += 1;
                }
                continue;
            }
            Change::UpsertGroup { .. } => {
                let items: Vec<(usize, &Group, i64)> = run
                    .iter()
                    .filter_map(|(s, c, at)| match c {
                        Change::UpsertGroup { group } => Some((*s, group, *at)),
                        _ => None,
                    })
                    .collect();
                for s in upsert_run(tx, log, dir, &items).await? {
                    logged[s] += 1;
                }
                continue;
            }
            Change::AddMember { .. } => {
                // Inserted in multi-row statements; only the rows that were new are logged.
                let rows: Vec<(&str, &MemberRef)> = run
                    .iter()
                    .filter_map(|(_, c, _)| match c {
                        Change::AddMember { group, member } => Some((group.as_str(), member)),
                        _ => None,
                    })
                    .collect();
                let new = insert_memberships(tx, learned, dir, &rows).await?;
                run.iter()
                    .zip(new)
                    .filter(|(_, new)| *new)
                    .map(|((s, c, at), _)| (*s, (*c).clone(), *at))
                    .collect()
            }
            Change::DeleteUser { source_id } => {
                let gone = delete_object(tx, learned, dir, MemberKind::User, source_id, at).await?;
                gone.then(|| (seg, change.clone(), at))
                    .into_iter()
                    .collect()
            }
            Change::DeleteGroup { source_id } => {
                let gone =
                    delete_object(tx, learned, dir, MemberKind::Group, source_id, at).await?;
                gone.then(|| (seg, change.clone(), at))
                    .into_iter()
                    .collect()
            }
            Change::RemoveMember { group, member } => {
                let m = Membership {
                    group: group.clone(),
                    member: member.clone(),
                };
                let gone = delete_membership(tx, learned, dir, &m).await?;
                gone.then(|| (seg, change.clone(), at))
                    .into_iter()
                    .collect()
            }
        };
        for (s, c, at) in written {
            logged[s] += 1;
            log.push(tx, &c, at).await?;
        }
    }
    Ok(logged)
}

/// A directory's memberships, sorted: its pairs of numbers, then the ids of the numbers they
/// use (one lookup each, not one per membership).
async fn memberships_of(
    conn: &mut sqlx::SqliteConnection,
    dir: &str,
) -> Result<Vec<Membership>, StoreError> {
    let (pairs, ids) = numbers::pairs_with_ids(
        conn,
        "SELECT g, json_group_array(m) FROM memberships WHERE dir = $1 GROUP BY g",
        dir,
    )
    .await?;
    let mut memberships = Vec::with_capacity(pairs.len());
    for (g, m) in pairs {
        let (Some((_, group)), Some((kind, member))) = (ids.get(&g), ids.get(&m)) else {
            return Err(StoreError::Corrupt {
                what: "membership".into(),
                message: format!("numbers {g} or {m} of directory {dir:?} are not known"),
            });
        };
        memberships.push(membership_row(group.clone(), kind, member.clone())?);
    }
    memberships.sort_unstable();
    Ok(memberships)
}

fn membership_row(group: String, kind: &str, id: String) -> Result<Membership, StoreError> {
    let kind = match kind {
        "user" => MemberKind::User,
        "group" => MemberKind::Group,
        other => {
            return Err(StoreError::Corrupt {
                what: "membership".into(),
                message: format!("unknown member kind {other:?}"),
            })
        }
    };
    Ok(Membership {
        group,
        member: MemberRef { kind, id },
    })
}

/// Appends change-log entries inside a transaction and keeps the directory's sequence.
///
/// Consecutive additions to (or removals from) one group's members at one time share a row
/// (decision 0018): a full read of a million memberships writes a thousand rows, not a million.
/// Every change keeps its own sequence number; the row's `seq` is the last of its changes.
pub(crate) struct ChangeWriter {
    dir: String,
    seq: i64,
    count: usize,
    /// Rows not yet inserted. Written in multi-row INSERTs.
    pending: Vec<LogRow>,
}

/// A change-log row not yet inserted.
enum LogRow {
    One {
        seq: i64,
        at_ms: i64,
        kind: &'static str,
        key: String,
        data: String,
    },
    Members {
        last_seq: i64,
        at_ms: i64,
        add: bool,
        batch: MemberBatch,
    },
}

/// The data of a change-log row of kind `add_members` or `remove_members`.
#[derive(serde::Serialize, serde::Deserialize)]
struct MemberBatch {
    group: String,
    members: Vec<MemberRef>,
}

const ADD_MEMBERS: &str = "add_members";
const REMOVE_MEMBERS: &str = "remove_members";

/// Rows per multi-row INSERT (SQLite allows 32,766 parameters per statement).
const ROWS_PER_INSERT: usize = 400;

/// Membership changes per change-log row at most.
const MEMBERS_PER_ROW: usize = 1000;

impl ChangeWriter {
    pub(crate) async fn start(
        tx: &mut Tx<'_>,
        learned: &mut numbers::Learned,
        dir: &str,
    ) -> Result<Self, StoreError> {
        // One statement: the directory's row, made if missing, and its sequence.
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO directories (name, last_seq) VALUES ($1, 0) ON CONFLICT (name) DO UPDATE SET last_seq = directories.last_seq RETURNING last_seq",
        )
        .bind(dir)
        .fetch_one(&mut **tx)
        .await?;
        learned.reverse.starts_at(Table::Memberships, dir, seq);
        Ok(Self {
            dir: dir.to_string(),
            seq,
            count: 0,
            pending: Vec::new(),
        })
    }

    async fn push(
        &mut self,
        tx: &mut Tx<'_>,
        change: &Change,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.seq += 1;
        self.count += 1;
        let row = match change {
            Change::AddMember { group, member } | Change::RemoveMember { group, member } => {
                let add = matches!(change, Change::AddMember { .. });
                if let Some(LogRow::Members {
                    last_seq,
                    at_ms: at,
                    add: a,
                    batch,
                }) = self.pending.last_mut()
                {
                    if *a == add
                        && *at == at_ms
                        && batch.group == *group
                        && batch.members.len() < MEMBERS_PER_ROW
                    {
                        batch.members.push(member.clone());
                        *last_seq = self.seq;
                        return Ok(());
                    }
                }
                LogRow::Members {
                    last_seq: self.seq,
                    at_ms,
                    add,
                    batch: MemberBatch {
                        group: group.clone(),
                        members: vec![member.clone()],
                    },
                }
            }
            _ => LogRow::One {
                seq: self.seq,
                at_ms,
                kind: change.kind(),
                key: change.object().1.to_string(),
                data: encode("change", change)?,
            },
        };
        self.add(tx, row).await
    }

    /// Log the upsert of `item`, whose JSON `encode` wrote as `data`.
    async fn push_upsert<T: DirObject>(
        &mut self,
        tx: &mut Tx<'_>,
        item: &T,
        data: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        self.seq += 1;
        self.count += 1;
        let (kind, data) = T::change_json(data);
        let row = LogRow::One {
            seq: self.seq,
            at_ms,
            kind,
            key: item.source_id().to_string(),
            data,
        };
        self.add(tx, row).await
    }

    async fn add(&mut self, tx: &mut Tx<'_>, row: LogRow) -> Result<(), StoreError> {
        if self.pending.len() >= ROWS_PER_INSERT {
            self.flush(tx).await?;
        }
        self.pending.push(row);
        Ok(())
    }

    async fn flush(&mut self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut rows = Vec::with_capacity(self.pending.len());
        for row in self.pending.drain(..) {
            rows.push(match row {
                LogRow::One {
                    seq,
                    at_ms,
                    kind,
                    key,
                    data,
                } => (seq, at_ms, kind, key, data),
                LogRow::Members {
                    last_seq,
                    at_ms,
                    add,
                    batch,
                } => {
                    let data = encode("change", &batch)?;
                    let kind = if add { ADD_MEMBERS } else { REMOVE_MEMBERS };
                    (last_seq, at_ms, kind, batch.group, data)
                }
            });
        }
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO change_log (dir, seq, at_ms, kind, object_key, data) ",
        );
        q.push_values(rows, |mut b, (seq, at, kind, key, data)| {
            b.push_bind(self.dir.clone())
                .push_bind(seq)
                .push_bind(at)
                .push_bind(kind)
                .push_bind(key)
                .push_bind(data);
        });
        q.build().execute(&mut **tx).await?;
        Ok(())
    }

    pub(crate) async fn finish(
        mut self,
        tx: &mut Tx<'_>,
        learned: &mut numbers::Learned,
        source: &str,
        cursor: Option<&str>,
    ) -> Result<WriteSummary, StoreError> {
        self.flush(tx).await?;
        learned
            .reverse
            .committed_as(Table::Memberships, &self.dir, self.seq);
        if self.count > 0 {
            sqlx::query("UPDATE directories SET last_seq = $2 WHERE name = $1")
                .bind(&self.dir)
                .bind(self.seq)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(c) = cursor {
            sqlx::query("INSERT INTO source_cursors (source, cursor) VALUES ($1, $2) ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor")
                .bind(source)
                .bind(c)
                .execute(&mut **tx)
                .await?;
        }
        Ok(WriteSummary {
            changes: self.count,
            last_seq: self.seq,
        })
    }
}

/// Users and groups, as the directory tables hold them.
trait DirObject: Clone + serde::Serialize {
    const TABLE: &'static str;
    /// The column holding the object's name (userName, displayName), for lookups.
    const NAME_COLUMN: &'static str;
    const WHAT: &'static str;
    fn source_id(&self) -> &str;
    fn id(&self) -> &str;
    fn name(&self) -> &str;
    fn set_id(&mut self, id: String);
    /// The JSON of the object's upsert change (`Change::UpsertUser`, `Change::UpsertGroup`)
    /// around the object's own JSON `data`, and its kind: what `ChangeWriter::push` would log,
    /// without encoding the object a second time.
    fn change_json(data: &str) -> (&'static str, String);
    /// Users: the externalId and the (lowercased) emails kept in lookup indexes.
    fn lookups(&self) -> Option<(Option<&str>, Vec<String>)> {
        None
    }
}

impl DirObject for User {
    const TABLE: &'static str = "users";
    const NAME_COLUMN: &'static str = "user_name";
    const WHAT: &'static str = "user";
    fn change_json(data: &str) -> (&'static str, String) {
        let kind = "upsert_user";
        (kind, format!(r#"{{"change":"{kind}","user":{data}}}"#))
    }
    fn source_id(&self) -> &str {
        &self.source_id
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.user_name
    }
    fn set_id(&mut self, id: String) {
        self.id = id;
    }
    fn lookups(&self) -> Option<(Option<&str>, Vec<String>)> {
        let mut emails: Vec<String> = self.emails.iter().map(|e| e.value.to_lowercase()).collect();
        emails.sort();
        emails.dedup();
        Some((self.external_id.as_deref(), emails))
    }
}

impl DirObject for Group {
    const TABLE: &'static str = "groups_";
    const NAME_COLUMN: &'static str = "display_name";
    const WHAT: &'static str = "group";
    fn change_json(data: &str) -> (&'static str, String) {
        let kind = "upsert_group";
        (kind, format!(r#"{{"change":"{kind}","group":{data}}}"#))
    }
    fn source_id(&self) -> &str {
        &self.source_id
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.display_name
    }
    fn set_id(&mut self, id: String) {
        self.id = id;
    }
}

/// Insert or update a run of users or groups (keeping their internal ids): one read of what is
/// stored, multi-row writes of what differs, and each upsert logged (around the JSON written).
/// Returns the segment of each logged upsert, in order; objects already stored the same are
/// left out.
async fn upsert_run<T: DirObject>(
    tx: &mut Tx<'_>,
    log: &mut ChangeWriter,
    dir: &str,
    items: &[(usize, &T, i64)],
) -> Result<Vec<usize>, StoreError> {
    // What is stored, as (internal id, data), by source id.
    let mut stored: HashMap<String, (String, String)> = HashMap::default();
    let ids: Vec<&str> = items.iter().map(|(_, t, _)| t.source_id()).collect();
    for chunk in ids.chunks(ROWS_PER_INSERT) {
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(format!(
            "SELECT source_id, id, data FROM {} WHERE dir = ",
            T::TABLE
        ));
        q.push_bind(dir).push(" AND source_id IN (");
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(*id);
        }
        sep.push_unseparated(")");
        for r in q.build().fetch_all(&mut **tx).await? {
            stored.insert(r.get(0), (r.get(1), r.get(2)));
        }
    }
    let in_table: HashSet<String> = stored.keys().cloned().collect();
    // The rows to write, one per source id (a later write of the same object replaces an
    // earlier one of the run), and the upserts to log: (segment, object, its JSON, time).
    let mut rows: Vec<ObjectRow<T>> = Vec::new();
    let mut row_of: HashMap<String, usize> = HashMap::default();
    let mut changes = Vec::new();
    for (seg, item, at) in items {
        let mut item = (*item).clone();
        let known = stored.get(item.source_id());
        item.set_id(known.map_or_else(new_id, |(id, _)| id.clone()));
        let data = encode(T::WHAT, &item)?;
        if known.is_some_and(|(_, d)| *d == data) {
            continue;
        }
        let sid = item.source_id().to_string();
        stored.insert(sid.clone(), (item.id().to_string(), data.clone()));
        let row = ObjectRow {
            is_new: !in_table.contains(&sid),
            item: item.clone(),
            data: data.clone(),
            at_ms: *at,
        };
        match row_of.get(&sid) {
            Some(&n) => rows[n] = row,
            None => {
                row_of.insert(sid, rows.len());
                rows.push(row);
            }
        }
        changes.push((*seg, item, data, *at));
    }
    write_rows(tx, dir, &rows).await?;
    let mut logged = Vec::with_capacity(changes.len());
    for (seg, item, data, at) in changes {
        log.push_upsert(tx, &item, &data, at).await?;
        logged.push(seg);
    }
    Ok(logged)
}

/// A user or group to write, as its row.
struct ObjectRow<T> {
    item: T,
    data: String,
    at_ms: i64,
    /// Not in the table yet (a new row keeps `at_ms` as its creation time).
    is_new: bool,
}

/// Write the objects of a snapshot that differ from what is stored (keeping internal ids), log
/// each, and return the source ids stored but absent from the snapshot.
async fn upsert_all<T: DirObject>(
    tx: &mut Tx<'_>,
    log: &mut ChangeWriter,
    dir: &str,
    items: &[T],
    now_ms: i64,
) -> Result<BTreeSet<String>, StoreError> {
    let mut current: HashMap<String, (String, String)> = HashMap::default();
    for r in sqlx::query(&format!(
        "SELECT source_id, id, data FROM {} WHERE dir = $1",
        T::TABLE
    ))
    .bind(dir)
    .fetch_all(&mut **tx)
    .await?
    {
        current.insert(r.get(0), (r.get(1), r.get(2)));
    }
    let mut rows = Vec::new();
    for item in items {
        let mut item = item.clone();
        let known = current.remove(item.source_id());
        item.set_id(known.as_ref().map_or_else(new_id, |(id, _)| id.clone()));
        let data = encode(T::WHAT, &item)?;
        let is_new = known.is_none();
        if known.is_some_and(|(_, d)| d == data) {
            continue;
        }
        rows.push(ObjectRow {
            item,
            data,
            at_ms: now_ms,
            is_new,
        });
        if rows.len() == ROWS_PER_INSERT {
            write_rows(tx, dir, &rows).await?;
            for r in rows.drain(..) {
                log.push_upsert(tx, &r.item, &r.data, now_ms).await?;
            }
        }
    }
    write_rows(tx, dir, &rows).await?;
    for r in rows {
        log.push_upsert(tx, &r.item, &r.data, now_ms).await?;
    }
    Ok(current.into_keys().collect())
}

/// Insert or update rows of users or groups in multi-row statements, with the users' lookups
/// (externalId in the row, emails in user_emails).
async fn write_rows<T: DirObject>(
    tx: &mut Tx<'_>,
    dir: &str,
    rows: &[ObjectRow<T>],
) -> Result<(), StoreError> {
    let (table, name) = (T::TABLE, T::NAME_COLUMN);
    for chunk in rows.chunks(ROWS_PER_INSERT / 2) {
        let users = chunk.first().is_some_and(|r| r.item.lookups().is_some());
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(if users {
            "INSERT INTO users (dir, source_id, id, user_name, data, created_ms, modified_ms, external_id) ".to_string()
        } else {
            format!(
                "INSERT INTO {table} (dir, source_id, id, {name}, data, created_ms, modified_ms) "
            )
        });
        q.push_values(chunk, |mut b, r| {
            b.push_bind(dir)
                .push_bind(r.item.source_id())
                .push_bind(r.item.id())
                .push_bind(r.item.name())
                .push_bind(&r.data)
                .push_bind(r.at_ms)
                .push_bind(r.at_ms);
            if users {
                b.push_bind(r.item.lookups().and_then(|(x, _)| x));
            }
        });
        q.push(format!(" ON CONFLICT (dir, source_id) DO UPDATE SET {name} = excluded.{name}, data = excluded.data, modified_ms = excluded.modified_ms"));
        if users {
            q.push(", external_id = excluded.external_id");
        }
        q.build().execute(&mut **tx).await?;
        if !users {
            continue;
        }
        // The emails of users that were stored before are replaced.
        let known: Vec<&str> = chunk
            .iter()
            .filter(|r| !r.is_new)
            .map(|r| r.item.source_id())
            .collect();
        if !known.is_empty() {
            let mut q = sqlx::QueryBuilder::<Sqlite>::new("DELETE FROM user_emails WHERE dir = ");
            q.push_bind(dir).push(" AND user_id IN (");
            let mut sep = q.separated(", ");
            for id in known {
                sep.push_bind(id);
            }
            sep.push_unseparated(")");
            q.build().execute(&mut **tx).await?;
        }
        let emails: Vec<(&str, String)> = chunk
            .iter()
            .flat_map(|r| {
                let emails = r.item.lookups().map(|(_, e)| e).unwrap_or_default();
                emails.into_iter().map(|e| (r.item.source_id(), e))
            })
            .collect();
        for part in emails.chunks(ROWS_PER_INSERT) {
            let mut q =
                sqlx::QueryBuilder::<Sqlite>::new("INSERT INTO user_emails (dir, user_id, email) ");
            q.push_values(part, |mut b, (id, e)| {
                b.push_bind(dir).push_bind(*id).push_bind(e);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut **tx).await?;
        }
    }
    Ok(())
}

/// Delete a user or group and every membership that names it. True when it existed.
async fn delete_object(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    dir: &str,
    kind: MemberKind,
    source_id: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let table = match kind {
        MemberKind::User => "users",
        MemberKind::Group => "groups_",
    };
    let n = sqlx::query(&format!(
        "DELETE FROM {table} WHERE dir = $1 AND source_id = $2"
    ))
    .bind(dir)
    .bind(source_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if kind == MemberKind::User {
        sqlx::query("DELETE FROM user_emails WHERE dir = $1 AND user_id = $2")
            .bind(dir)
            .bind(source_id)
            .execute(&mut **tx)
            .await?;
    }
    // Without a number it was never in a membership.
    let Some(number) = numbers::numbers(tx, learned, [(kind.as_str(), source_id)], false)
        .await?
        .get(&(kind.as_str(), source_id))
        .copied()
    else {
        return Ok(n > 0);
    };
    // The groups it is in come from the reverse map (there is no index by member), and go
    // by primary key.
    let scope = learned.reverse.scope(tx, Table::Memberships, dir).await?;
    let groups = scope.groups_of(tx, number).await?;
    if !groups.is_empty() {
        sqlx::query(
            "DELETE FROM memberships WHERE dir = $1 AND m = $2 AND g IN (SELECT value FROM json_each($3))",
        )
        .bind(dir)
        .bind(number)
        .bind(encode("groups", &groups)?)
        .execute(&mut **tx)
        .await?;
        // Their members changed: the groups' modified time (`meta.lastModified`) moves.
        sqlx::query(
            "UPDATE groups_ SET modified_ms = max(modified_ms, $3) WHERE dir = $1 AND source_id IN
             (SELECT id FROM numbers WHERE n IN (SELECT value FROM json_each($2)))",
        )
        .bind(dir)
        .bind(encode("groups", &groups)?)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
    }
    scope.left(number);
    if kind == MemberKind::Group {
        let members: Vec<i64> =
            sqlx::query_scalar("DELETE FROM memberships WHERE dir = $1 AND g = $2 RETURNING m")
                .bind(dir)
                .bind(number)
                .fetch_all(&mut **tx)
                .await?;
        for m in members {
            scope.remove(number, m);
        }
    }
    Ok(n > 0)
}

/// Insert memberships in multi-row statements; says for each row whether it was new (a row
/// given twice is new once, the first time).
async fn insert_memberships(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    dir: &str,
    rows: &[(&str, &MemberRef)],
) -> Result<Vec<bool>, StoreError> {
    let ids = rows
        .iter()
        .flat_map(|(g, m)| [("group", *g), (m.kind.as_str(), m.id.as_str())]);
    let n = numbers::numbers(tx, learned, ids, true).await?;
    // Every id was just numbered: one without a number is a broken store, not a row to skip
    // (the answer must say something for every row).
    let pairs: Vec<(i64, i64)> = rows
        .iter()
        .map(|(g, m)| {
            match (
                n.get(&("group", *g)),
                n.get(&(m.kind.as_str(), m.id.as_str())),
            ) {
                (Some(g), Some(m)) => Ok((*g, *m)),
                _ => Err(StoreError::NotCommitted(format!(
                    "no number for group {g:?} or member {:?}",
                    m.id
                ))),
            }
        })
        .collect::<Result<_, _>>()?;
    // Two statements whatever the number of rows (their texts never change): which pairs are
    // there already (by primary key; usually none, so hardly a row comes back, where the
    // inserted rows would all come back one by one through `RETURNING`), then the insert.
    let list = numbers::packed(&pairs)?;
    let mut present: HashSet<(i64, i64)> = sqlx::query(
        "SELECT x.g, x.m FROM json_each($2) j CROSS JOIN memberships x
         ON x.dir = $1 AND x.g = j.value >> 32 AND x.m = j.value & 4294967295",
    )
    .bind(dir)
    .bind(&list)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    sqlx::query(
        "INSERT OR IGNORE INTO memberships (dir, g, m)
         SELECT $1, value >> 32, value & 4294967295 FROM json_each($2)",
    )
    .bind(dir)
    .bind(&list)
    .execute(&mut **tx)
    .await?;
    // A row is new if it was not there and not named earlier in the list.
    let new: Vec<bool> = pairs.iter().map(|p| present.insert(*p)).collect();
    let scope = learned.reverse.scope(tx, Table::Memberships, dir).await?;
    for ((g, m), _) in pairs.iter().zip(&new).filter(|(_, new)| **new) {
        scope.add(*g, *m);
    }
    Ok(new)
}

/// Add users to a group of a flow's ledger: numbers are given and looked up inside SQLite,
/// no row comes back to this side. `OR IGNORE` (not `ON CONFLICT DO NOTHING`) lets SQLite skip
/// the statement journal: every page an insert touches would otherwise be copied first.
async fn add_ledger_members(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    flow: &str,
    group: &str,
    users: &[&str],
) -> Result<(), StoreError> {
    // The users as one JSON array: the statements' text never changes, so they are prepared
    // once, and one parameter is bound instead of one per user. CROSS JOIN fixes the order
    // (the group, then each listed user by the index), whatever the statistics say.
    let users = encode("ledger members", &users)?;
    sqlx::query(
        "INSERT OR IGNORE INTO numbers (kind, id)
         SELECT 'group', $1 UNION ALL SELECT 'user', value FROM json_each($2)",
    )
    .bind(group)
    .bind(&users)
    .execute(&mut **tx)
    .await?;
    const INSERT: &str = "INSERT OR IGNORE INTO ledger_members (flow, g, u)
         SELECT $1, g.n, u.n FROM numbers g CROSS JOIN json_each($3) j
         CROSS JOIN numbers u ON u.kind = 'user' AND u.id = j.value
         WHERE g.kind = 'group' AND g.id = $2";
    let scope = learned
        .reverse
        .scope(tx, Table::LedgerMembers, flow)
        .await?;
    // The new rows come back only when a reverse map follows the ledger's changes.
    if scope.follows() {
        let added: Vec<(i64, i64)> = sqlx::query_as(&format!("{INSERT} RETURNING g, u"))
            .bind(flow)
            .bind(group)
            .bind(&users)
            .fetch_all(&mut **tx)
            .await?;
        for (g, u) in added {
            scope.add(g, u);
        }
    } else {
        sqlx::query(INSERT)
            .bind(flow)
            .bind(group)
            .bind(&users)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Delete ledger memberships by `sql` (binding the flow and one key), following what went.
async fn delete_ledger_members(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    flow: &str,
    sql: &str,
    key: &str,
) -> Result<(), StoreError> {
    let gone: Vec<(i64, i64)> = sqlx::query_as(sql)
        .bind(flow)
        .bind(key)
        .fetch_all(&mut **tx)
        .await?;
    left_ledger(tx, learned, flow, gone).await
}

/// Ledger memberships a statement deleted (returned as pairs of numbers): the flow's reverse
/// map follows.
async fn left_ledger(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    flow: &str,
    gone: Vec<(i64, i64)>,
) -> Result<(), StoreError> {
    let scope = learned
        .reverse
        .scope(tx, Table::LedgerMembers, flow)
        .await?;
    for (g, u) in gone {
        scope.remove(g, u);
    }
    Ok(())
}

async fn delete_membership(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    dir: &str,
    m: &Membership,
) -> Result<bool, StoreError> {
    let gone: Option<(i64, i64)> = sqlx::query_as(
        "DELETE FROM memberships WHERE dir = $1
         AND g = (SELECT n FROM numbers WHERE kind = 'group' AND id = $2)
         AND m = (SELECT n FROM numbers WHERE kind = $3 AND id = $4)
         RETURNING g, m",
    )
    .bind(dir)
    .bind(&m.group)
    .bind(m.member.kind.as_str())
    .bind(&m.member.id)
    .fetch_optional(&mut **tx)
    .await?;
    let n = u64::from(gone.is_some());
    if let Some((g, m)) = gone {
        learned
            .reverse
            .scope(tx, Table::Memberships, dir)
            .await?
            .remove(g, m);
    }
    Ok(n > 0)
}

async fn upsert_ledger(
    tx: &mut Tx<'_>,
    table: &str,
    flow: &str,
    key: &str,
    target_id: &str,
    data: &str,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO {table} (flow, key, target_id, data) VALUES ($1, $2, $3, $4)
         ON CONFLICT (flow, key) DO UPDATE SET target_id = excluded.target_id, data = excluded.data"
    ))
    .bind(flow)
    .bind(key)
    .bind(target_id)
    .bind(data)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A group's ledger memberships (bound: the flow and the group's key).
const GROUP_LEDGER_MEMBERS: &str = "DELETE FROM ledger_members WHERE flow = $1
     AND g = (SELECT n FROM numbers WHERE kind = 'group' AND id = $2) RETURNING g, u";

async fn bump_ledger_version(tx: &mut Tx<'_>, flow: &str) -> Result<i64, StoreError> {
    let v: Option<i64> = sqlx::query_scalar(
        "UPDATE flows SET ledger_version = ledger_version + 1 WHERE name = $1 RETURNING ledger_version",
    )
    .bind(flow)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(v.unwrap_or(0))
}

async fn update_ledger_data(
    tx: &mut Tx<'_>,
    table: &str,
    flow: &str,
    key: &str,
    data: &str,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "UPDATE {table} SET data = $3 WHERE flow = $1 AND key = $2"
    ))
    .bind(flow)
    .bind(key)
    .bind(data)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A ledger user is no longer disabled: no disable time, no anonymized real values.
async fn forget_disable(tx: &mut Tx<'_>, flow: &str, key: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE ledger_users SET disabled_ms = NULL, original = NULL WHERE flow = $1 AND key = $2",
    )
    .bind(flow)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The ledger side of `LedgerState::record`, in SQL.
/// Provisioning-log rows per multi-row INSERT (14 parameters each).
const OPS_PER_INSERT: usize = 500;

/// Users the target created, into the ledger: their target ids and values (a created user's
/// logged `after` is its JSON), and any earlier disabling forgotten (as `forget_disable`).
async fn ledger_created_users(
    tx: &mut Tx<'_>,
    flow: &str,
    rows: &[&OpRow<'_>],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO ledger_users (flow, key, target_id, data) ",
        );
        q.push_values(chunk, |mut b, row| {
            b.push_bind(flow)
                .push_bind(&*row.rec.op.key)
                .push_bind(row.rec.target_id.as_deref().unwrap_or_default())
                .push_bind(row.after.as_deref().unwrap_or_default());
        });
        q.push(" ON CONFLICT (flow, key) DO UPDATE SET target_id = excluded.target_id, data = excluded.data, disabled_ms = NULL, original = NULL");
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn apply_to_ledger(
    tx: &mut Tx<'_>,
    learned: &mut numbers::Learned,
    flow: &str,
    row: &OpRow<'_>,
) -> Result<(), StoreError> {
    let rec = row.rec;
    let key = rec.op.key.as_str();
    let target_id = rec.target_id.as_deref().unwrap_or_default();
    match &rec.op.action {
        Action::CreateUser { .. } => ledger_created_users(tx, flow, &[row]).await?,
        Action::UpdateUser { after, .. } => {
            update_ledger_data(tx, "ledger_users", flow, key, &encode("user", after)?).await?;
            // An update that moved the user to a new id (as `LedgerState::record`).
            if !target_id.is_empty() {
                sqlx::query("UPDATE ledger_users SET target_id = $3 WHERE flow = $1 AND key = $2")
                    .bind(flow)
                    .bind(key)
                    .bind(target_id)
                    .execute(&mut **tx)
                    .await?;
            }
            if after.active {
                forget_disable(tx, flow, key).await?;
            }
        }
        Action::DisableUser { before, after } => {
            update_ledger_data(tx, "ledger_users", flow, key, &encode("user", after)?).await?;
            if !target_id.is_empty() {
                sqlx::query("UPDATE ledger_users SET target_id = $3 WHERE flow = $1 AND key = $2")
                    .bind(flow)
                    .bind(key)
                    .bind(target_id)
                    .execute(&mut **tx)
                    .await?;
            }
            // As `LedgerState::record`: the first disable's time, and the real values of an
            // anonymized copy (once).
            let original = (before.user_name != after.user_name)
                .then(|| encode("user", before))
                .transpose()?;
            sqlx::query("UPDATE ledger_users SET disabled_ms = COALESCE(disabled_ms, $3), original = COALESCE(original, $4) WHERE flow = $1 AND key = $2")
                .bind(flow)
                .bind(key)
                .bind(rec.at_ms)
                .bind(original)
                .execute(&mut **tx)
                .await?;
        }
        Action::DeleteUser { .. } => {
            sqlx::query("DELETE FROM ledger_users WHERE flow = $1 AND key = $2")
                .bind(flow)
                .bind(key)
                .execute(&mut **tx)
                .await?;
            // The user's groups from the reverse map (no index by user), then by primary key.
            let number = numbers::numbers(tx, learned, [("user", key)], false)
                .await?
                .get(&("user", key))
                .copied();
            if let Some(u) = number {
                let scope = learned
                    .reverse
                    .scope(tx, Table::LedgerMembers, flow)
                    .await?;
                let groups = scope.groups_of(tx, u).await?;
                if !groups.is_empty() {
                    sqlx::query("DELETE FROM ledger_members WHERE flow = $1 AND u = $2 AND g IN (SELECT value FROM json_each($3))")
                        .bind(flow)
                        .bind(u)
                        .bind(encode("groups", &groups)?)
                        .execute(&mut **tx)
                        .await?;
                }
                scope.left(u);
            }
        }
        Action::CreateGroup { group, members } => {
            // A new group starts without members, also when it replaces one, or with those
            // it was created with.
            delete_ledger_members(tx, learned, flow, GROUP_LEDGER_MEMBERS, key).await?;
            nesting::created(tx, flow, key).await?;
            upsert_ledger(
                tx,
                "ledger_groups",
                flow,
                key,
                target_id,
                &encode("group", group)?,
            )
            .await?;
            if !members.is_empty() {
                let users: Vec<&str> = members.iter().map(|u| &**u).collect();
                add_ledger_members(tx, learned, flow, key, &users).await?;
            }
        }
        Action::UpdateGroup { after, .. } => {
            update_ledger_data(tx, "ledger_groups", flow, key, &encode("group", after)?).await?
        }
        Action::DeleteGroup { .. } => {
            sqlx::query("DELETE FROM ledger_groups WHERE flow = $1 AND key = $2")
                .bind(flow)
                .bind(key)
                .execute(&mut **tx)
                .await?;
            delete_ledger_members(tx, learned, flow, GROUP_LEDGER_MEMBERS, key).await?;
            nesting::deleted(tx, flow, key).await?;
        }
        Action::AddMembers { users, .. } => {
            let users: Vec<&str> = users.iter().map(|u| &**u).collect();
            add_ledger_members(tx, learned, flow, key, &users).await?;
        }
        Action::RemoveMembers { users, .. } => {
            // One statement, the users as one JSON array (as `add_ledger_members`).
            let users: Vec<&str> = users.iter().map(|u| &**u).collect();
            let gone: Vec<(i64, i64)> = sqlx::query_as(
                "DELETE FROM ledger_members WHERE flow = $1
                 AND g = (SELECT n FROM numbers WHERE kind = 'group' AND id = $2)
                 AND u IN (SELECT n FROM numbers WHERE kind = 'user' AND id IN (SELECT value FROM json_each($3)))
                 RETURNING g, u",
            )
            .bind(flow)
            .bind(key)
            .bind(encode("ledger members", &users)?)
            .fetch_all(&mut **tx)
            .await?;
            left_ledger(tx, learned, flow, gone).await?;
        }
        Action::AddChildGroups { groups, .. } => nesting::add(tx, flow, key, groups).await?,
        Action::RemoveChildGroups { groups, .. } => nesting::remove(tx, flow, key, groups).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use idsync_core::{Email, Name};

    /// An upsert logged around the object's stored JSON is the change `push` would log.
    #[test]
    fn an_upsert_logged_around_the_objects_json_is_the_change_itself() {
        let mut user = User::new("u1", "ada@contoso.com");
        user.id = "i1".into();
        user.name = Name {
            given_name: Some("Ada".into()),
            family_name: Some("Lovelace \"A\"".into()),
            ..Name::default()
        };
        user.emails = vec![Email {
            value: "ada@contoso.com".into(),
            kind: Some("work".into()),
            primary: true,
            display: None,
        }];
        let (kind, text) = User::change_json(&encode("user", &user).unwrap());
        let change = Change::UpsertUser { user };
        assert_eq!(
            (kind, text),
            (change.kind(), encode("change", &change).unwrap())
        );
        let mut group = Group::new("g1", "eng");
        group.description = Some("the engineers".into());
        let (kind, text) = Group::change_json(&encode("group", &group).unwrap());
        let change = Change::UpsertGroup { group };
        assert_eq!(
            (kind, text),
            (change.kind(), encode("change", &change).unwrap())
        );
    }
}
