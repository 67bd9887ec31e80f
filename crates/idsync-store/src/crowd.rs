//! Crowd-compatible served directories (decision 0031): the applications that read a crowd
//! target (argon2id password hashes, remote-address allow-lists) and the target's event feed,
//! whose events are written in the transaction that changes the ledger.

use crate::{Store, StoreError, Tx};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use serde::Serialize;
use sqlx::Row;

/// An application (a product such as Jira) that reads a crowd target. Its password is never
/// stored, only its argon2id hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrowdApp {
    pub id: String,
    pub target: String,
    pub name: String,
    /// Addresses or CIDR ranges it may call from; empty: any.
    pub allow: Vec<String>,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    /// The argon2id hash (PHC string) of its password.
    #[serde(skip)]
    pub hash: String,
}

/// Where a crowd target's event feed stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLogHead {
    pub flow: String,
    /// Changes when the log restarts: tokens of an older epoch are expired.
    pub epoch: String,
    /// The first position the log still holds (earlier ones were purged).
    pub first_seq: i64,
    /// The last position written (first_seq - 1 when the log holds nothing).
    pub last_seq: i64,
}

/// Events to write with a batch of ledger changes, in the same transaction.
#[derive(Debug, Clone)]
pub struct ServedEvents<'a> {
    /// The crowd target whose feed they join.
    pub target: &'a str,
    pub at_ms: i64,
    /// Each event, serialised (JSON), in the order of the ledger changes.
    pub events: Vec<String>,
}

const APP_COLUMNS: &str =
    "SELECT id, target, name, allow, created_ms, last_used_ms, revoked_ms, hash FROM crowd_apps";

fn app_row(r: &sqlx::sqlite::SqliteRow) -> Result<CrowdApp, StoreError> {
    Ok(CrowdApp {
        id: r.get(0),
        target: r.get(1),
        name: r.get(2),
        allow: crate::decode("crowd application allow-list", r.get::<&str, _>(3))?,
        created_ms: r.get(4),
        last_used_ms: r.get(5),
        revoked_ms: r.get(6),
        hash: r.get(7),
    })
}

/// The argon2id hash of a password, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Invalid(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the argon2 `hash` (a PHC string). Costs tens of milliseconds of
/// CPU on purpose: call it off the async threads, and cache what it verified.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn new_epoch() -> String {
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Use at most once a minute is written, so that authentication costs no write per request.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

impl Store {
    /// Create an application of a crowd target; returns it with its password (shown once).
    /// A live application of that name is a conflict.
    pub async fn create_crowd_app(
        &self,
        target: &str,
        name: &str,
        allow: &[String],
        now_ms: i64,
    ) -> Result<(CrowdApp, String), StoreError> {
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let pw = password.clone();
        let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
            .await
            .map_err(|e| StoreError::Invalid(format!("cannot hash the password: {e}")))??;
        let id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.writer.begin().await?;
        let live: Option<String> = sqlx::query_scalar(
            "SELECT id FROM crowd_apps WHERE target = $1 AND name = $2 AND revoked_ms IS NULL",
        )
        .bind(target)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(other) = live {
            return Err(StoreError::Conflict(format!(
                "target {target} already has a live application named {name:?} ({other}); revoke it first"
            )));
        }
        sqlx::query("INSERT INTO crowd_apps (id, target, name, hash, allow, created_ms) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&id)
            .bind(target)
            .bind(name)
            .bind(&hash)
            .bind(crate::encode("crowd application allow-list", &allow)?)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let app = CrowdApp {
            id,
            target: target.to_string(),
            name: name.to_string(),
            allow: allow.to_vec(),
            created_ms: now_ms,
            last_used_ms: None,
            revoked_ms: None,
            hash,
        };
        Ok((app, password))
    }

    /// Applications, of one target or of all, oldest first (revoked ones included).
    pub async fn list_crowd_apps(&self, target: Option<&str>) -> Result<Vec<CrowdApp>, StoreError> {
        let rows = match target {
            Some(t) => {
                sqlx::query(&format!(
                    "{APP_COLUMNS} WHERE target = $1 ORDER BY created_ms, id"
                ))
                .bind(t)
                .fetch_all(&self.reader)
                .await?
            }
            None => {
                sqlx::query(&format!("{APP_COLUMNS} ORDER BY target, created_ms, id"))
                    .fetch_all(&self.reader)
                    .await?
            }
        };
        rows.iter().map(app_row).collect()
    }

    /// The live application of a target by name.
    pub async fn live_crowd_app(
        &self,
        target: &str,
        name: &str,
    ) -> Result<Option<CrowdApp>, StoreError> {
        sqlx::query(&format!(
            "{APP_COLUMNS} WHERE target = $1 AND name = $2 AND revoked_ms IS NULL"
        ))
        .bind(target)
        .bind(name)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(app_row)
        .transpose()
    }

    /// Revoke the live application of a target by name; returns it, or None when there is
    /// none.
    pub async fn revoke_crowd_app(
        &self,
        target: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<Option<CrowdApp>, StoreError> {
        let row = sqlx::query(
            "UPDATE crowd_apps SET revoked_ms = $3 WHERE target = $1 AND name = $2 AND revoked_ms IS NULL
             RETURNING id, target, name, allow, created_ms, last_used_ms, revoked_ms, hash",
        )
        .bind(target)
        .bind(name)
        .bind(now_ms)
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(app_row).transpose()
    }

    /// Note that an application authenticated (written at most once a minute).
    pub async fn crowd_app_used(&self, app: &CrowdApp, now_ms: i64) -> Result<(), StoreError> {
        if app
            .last_used_ms
            .is_some_and(|t| now_ms - t < LAST_USED_GRANULARITY_MS)
        {
            return Ok(());
        }
        sqlx::query("UPDATE crowd_apps SET last_used_ms = $2 WHERE id = $1")
            .bind(&app.id)
            .bind(now_ms)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Where a crowd target's event feed stands; a feed that does not exist yet is started
    /// (empty, at the current position) for `flow`.
    pub async fn crowd_event_log(
        &self,
        target: &str,
        flow: &str,
    ) -> Result<EventLogHead, StoreError> {
        if let Some(head) = read_head(&self.reader, target).await? {
            if head.flow == flow {
                return Ok(head);
            }
        }
        let mut tx = self.writer.begin().await?;
        let head = head_for(&mut tx, target, flow).await?;
        tx.commit().await?;
        Ok(head)
    }

    /// The events of a crowd target's feed after position `after`, in order (at most `limit`).
    pub async fn crowd_events_after(
        &self,
        target: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(sqlx::query(
            "SELECT seq, data FROM crowd_events WHERE target = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(target)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
    }

    /// Retention: drop a crowd target's events written before `cutoff_ms`, and all but the
    /// last `keep_last` (a token with more events after it than a product is ever answered
    /// with has expired anyway). The feed's first position moves past them, so tokens from
    /// before answer "expired". Returns how many were dropped.
    pub async fn purge_crowd_events(
        &self,
        target: &str,
        cutoff_ms: i64,
        keep_last: i64,
    ) -> Result<u64, StoreError> {
        // The notes the served directory follows the ledger by go too (when far behind).
        if let Some(head) = read_head(&self.reader, target).await? {
            self.purge_crowd_ledger_changes(&head.flow).await?;
        }
        let mut tx = self.writer.begin().await?;
        let Some(head) = read_head(&mut *tx, target).await? else {
            return Ok(0);
        };
        let old: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(seq) FROM crowd_events WHERE target = $1 AND at_ms < $2",
        )
        .bind(target)
        .bind(cutoff_ms)
        .fetch_one(&mut *tx)
        .await?;
        // Positions are in time order: everything up to the newest old one goes.
        let gone = old
            .unwrap_or(0)
            .max(head.last_seq.saturating_sub(keep_last.max(0)));
        if gone < head.first_seq {
            return Ok(0);
        }
        let n = sqlx::query("DELETE FROM crowd_events WHERE target = $1 AND seq <= $2")
            .bind(target)
            .bind(gone)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE crowd_event_logs SET first_seq = MAX(first_seq, $2 + 1) WHERE target = $1",
        )
        .bind(target)
        .bind(gone)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n)
    }
}

async fn read_head<'e, E: sqlx::Executor<'e, Database = sqlx::Sqlite>>(
    e: E,
    target: &str,
) -> Result<Option<EventLogHead>, StoreError> {
    Ok(sqlx::query(
        "SELECT flow, epoch, first_seq, last_seq FROM crowd_event_logs WHERE target = $1",
    )
    .bind(target)
    .fetch_optional(e)
    .await?
    .map(|r| EventLogHead {
        flow: r.get(0),
        epoch: r.get(1),
        first_seq: r.get(2),
        last_seq: r.get(3),
    }))
}

/// The feed's head inside a write; a feed fed by another flow before (or none) restarts under
/// a new epoch, empty, its positions going on from where they were.
async fn head_for(tx: &mut Tx<'_>, target: &str, flow: &str) -> Result<EventLogHead, StoreError> {
    match read_head(&mut **tx, target).await? {
        Some(h) if h.flow == flow => Ok(h),
        old => {
            let last_seq = old.map_or(0, |h| h.last_seq);
            let head = EventLogHead {
                flow: flow.to_string(),
                epoch: new_epoch(),
                first_seq: last_seq + 1,
                last_seq,
            };
            restart(tx, target, &head).await?;
            Ok(head)
        }
    }
}

async fn restart(tx: &mut Tx<'_>, target: &str, head: &EventLogHead) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM crowd_events WHERE target = $1")
        .bind(target)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO crowd_event_logs (target, flow, epoch, first_seq, last_seq) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (target) DO UPDATE SET flow = excluded.flow, epoch = excluded.epoch,
           first_seq = excluded.first_seq, last_seq = excluded.last_seq",
    )
    .bind(target)
    .bind(&head.flow)
    .bind(&head.epoch)
    .bind(head.first_seq)
    .bind(head.last_seq)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Append events to a crowd target's feed, inside the transaction that changes the ledger.
pub(crate) async fn append_events(
    tx: &mut Tx<'_>,
    flow: &str,
    served: &ServedEvents<'_>,
) -> Result<(), StoreError> {
    let mut head = head_for(tx, served.target, flow).await?;
    if served.events.is_empty() {
        return Ok(());
    }
    for chunk in served.events.chunks(200) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO crowd_events (target, seq, at_ms, data) ",
        );
        q.push_values(chunk, |mut b, data| {
            head.last_seq += 1;
            b.push_bind(served.target)
                .push_bind(head.last_seq)
                .push_bind(served.at_ms)
                .push_bind(data);
        });
        q.build().execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE crowd_event_logs SET last_seq = $2 WHERE target = $1")
        .bind(served.target)
        .bind(head.last_seq)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The ledger of `flow` was replaced wholesale: every feed it fed restarts under a new epoch
/// (its events no longer describe how the served directory came to be).
pub(crate) async fn ledger_replaced(tx: &mut Tx<'_>, flow: &str) -> Result<(), StoreError> {
    crate::crowd_changes::forget_changes(tx, flow).await?;
    let targets: Vec<(String, i64)> =
        sqlx::query_as("SELECT target, last_seq FROM crowd_event_logs WHERE flow = $1")
            .bind(flow)
            .fetch_all(&mut **tx)
            .await?;
    for (target, last_seq) in targets {
        let head = EventLogHead {
            flow: flow.to_string(),
            epoch: new_epoch(),
            first_seq: last_seq + 1,
            last_seq,
        };
        restart(tx, &target, &head).await?;
    }
    Ok(())
}
