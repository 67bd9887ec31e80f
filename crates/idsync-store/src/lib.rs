//! The idsync store: directories with their change logs, flows' ledgers and cursors, runs and
//! the provisioning log.
//!
//! SQLite is the embedded default: one file, WAL journal, `synchronous=NORMAL` (a process crash
//! loses nothing committed), a single writer connection so writers queue instead of failing
//! with `SQLITE_BUSY`, and a pool of readers. Every statement uses `$n` placeholders and types
//! PostgreSQL shares, so a PostgreSQL backend can run the same queries. Every multi-row write
//! is one transaction.

mod audit;
mod change_log;
mod crowd;
mod crowd_changes;
mod directory;
mod directory_rows;
mod id_forms;
mod lease;
mod ledger;
mod logins;
mod nesting;
mod notifications;
mod numbers;
mod push;
mod reverse;
mod runs;
mod secrets;
mod slices;
mod sso;
mod target_forms;
mod target_keeps;
mod target_omissions;
mod tokens;
mod types;

pub use audit::{AuditEntry, AuditOutcome, NewAuditEntry};
pub use crowd::{hash_password, verify_password, CrowdApp, EventLogHead, ServedEvents};
pub use crowd_changes::{LedgerDelta, KEPT_VERSIONS, MAX_FOLLOWED_CHANGES};
pub use lease::{Holder, Interrupted, HEARTBEAT, PROCESS_TTL_MS};
pub use push::{MemberPatch, StoredGroup, StoredUser, Unique};
pub use tokens::{TokenInfo, TOKEN_CACHE_MS};

pub use secrets::{Keyring, RotateSummary, SealKey, SecretError, SecretInfo, SECRET_KEY_LEN};
pub use sso::{secret_hash, SsoPurged, SsoStore, SSO_KEYS_SECRET};
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

use change_log::*;
use directory::*;
use directory_rows::*;
use ledger::*;
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
    tokens: tokens::TokenCache,
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
