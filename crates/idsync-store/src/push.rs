//! What a push endpoint (SCIM) needs from the store: single-object lookups, writes checked for
//! uniqueness in the same transaction, object timestamps, and bearer tokens kept as hashes.

use crate::{decode, write_changes, Store, StoreError, WriteSummary};
use idsync_core::{Change, Group, MemberKind, MemberRef, User};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

#[derive(Debug, Clone, PartialEq)]
pub struct StoredUser {
    pub user: User,
    pub created_ms: i64,
    pub modified_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredGroup {
    pub group: Group,
    pub created_ms: i64,
    pub modified_ms: i64,
}

/// A uniqueness rule checked inside a write's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unique {
    /// No other user (than `except`) has this userName, case-insensitively.
    UserName {
        name: String,
        except: Option<String>,
    },
    /// No other group (than `except`) has this displayName, case-insensitively.
    GroupName {
        name: String,
        except: Option<String>,
    },
}

/// A bearer token of a directory's push endpoint. The secret itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub directory: String,
    pub name: String,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

fn hash(secret: &str) -> String {
    format!("{:x}", Sha256::digest(secret.as_bytes()))
}

/// Write token use at most once a minute, so that authentication does not cost a write per
/// request.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

impl Store {
    pub async fn get_user(&self, dir: &str, id: &str) -> Result<Option<StoredUser>, StoreError> {
        sqlx::query(
            "SELECT data, created_ms, modified_ms FROM users WHERE dir = $1 AND source_id = $2",
        )
        .bind(dir)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?
        .map(|r| user_row(&r))
        .transpose()
    }

    /// Which of these source ids are users, and which are groups, of the directory (one query
    /// per 400 ids and kind).
    pub async fn kinds_of(
        &self,
        dir: &str,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, MemberKind>, StoreError> {
        let mut out = std::collections::HashMap::new();
        for (table, kind) in [("users", MemberKind::User), ("groups_", MemberKind::Group)] {
            for chunk in ids.chunks(400) {
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                    "SELECT source_id FROM {table} WHERE dir = "
                ));
                q.push_bind(dir).push(" AND source_id IN (");
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(*id);
                }
                sep.push_unseparated(")");
                for r in q.build().fetch_all(&self.reader).await? {
                    out.entry(r.get::<String, _>(0)).or_insert(kind);
                }
            }
        }
        Ok(out)
    }

    pub async fn get_group(&self, dir: &str, id: &str) -> Result<Option<StoredGroup>, StoreError> {
        sqlx::query(
            "SELECT data, created_ms, modified_ms FROM groups_ WHERE dir = $1 AND source_id = $2",
        )
        .bind(dir)
        .bind(id)
        .fetch_optional(&self.reader)
        .await?
        .map(|r| group_row(&r))
        .transpose()
    }

    /// Users with this externalId (exactly: externalId is case-exact), from an index.
    pub async fn find_users_by_external_id(
        &self,
        dir: &str,
        external_id: &str,
    ) -> Result<Vec<StoredUser>, StoreError> {
        sqlx::query(
            "SELECT data, created_ms, modified_ms FROM users WHERE dir = $1 AND external_id = $2",
        )
        .bind(dir)
        .bind(external_id)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(user_row)
        .collect()
    }

    /// Users with this email among their emails, case-insensitively, from an index.
    pub async fn find_users_by_email(
        &self,
        dir: &str,
        email: &str,
    ) -> Result<Vec<StoredUser>, StoreError> {
        sqlx::query("SELECT u.data, u.created_ms, u.modified_ms FROM user_emails e JOIN users u ON u.dir = e.dir AND u.source_id = e.user_id WHERE e.dir = $1 AND e.email = $2")
            .bind(dir)
            .bind(email.to_lowercase())
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(user_row)
            .collect()
    }

    /// Users whose userName equals `name`, case-insensitively (an index lookup).
    pub async fn find_users_by_name(
        &self,
        dir: &str,
        name: &str,
    ) -> Result<Vec<StoredUser>, StoreError> {
        sqlx::query("SELECT data, created_ms, modified_ms FROM users WHERE dir = $1 AND lower(user_name) = lower($2)")
            .bind(dir)
            .bind(name)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(user_row)
            .collect()
    }

    pub async fn find_groups_by_name(
        &self,
        dir: &str,
        name: &str,
    ) -> Result<Vec<StoredGroup>, StoreError> {
        sqlx::query("SELECT data, created_ms, modified_ms FROM groups_ WHERE dir = $1 AND lower(display_name) = lower($2)")
            .bind(dir)
            .bind(name)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(group_row)
            .collect()
    }

    pub async fn list_users(&self, dir: &str) -> Result<Vec<StoredUser>, StoreError> {
        sqlx::query("SELECT data, created_ms, modified_ms FROM users WHERE dir = $1 ORDER BY created_ms, source_id")
            .bind(dir)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(user_row)
            .collect()
    }

    pub async fn list_groups(&self, dir: &str) -> Result<Vec<StoredGroup>, StoreError> {
        sqlx::query("SELECT data, created_ms, modified_ms FROM groups_ WHERE dir = $1 ORDER BY created_ms, source_id")
            .bind(dir)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(group_row)
            .collect()
    }

    /// Direct members of a group.
    pub async fn group_members(
        &self,
        dir: &str,
        group: &str,
    ) -> Result<Vec<MemberRef>, StoreError> {
        sqlx::query("SELECT member_kind, member_id FROM memberships WHERE dir = $1 AND group_id = $2 ORDER BY member_kind DESC, member_id")
            .bind(dir)
            .bind(group)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| {
                let kind = match r.get::<&str, _>(0) {
                    "group" => MemberKind::Group,
                    _ => MemberKind::User,
                };
                Ok(MemberRef { kind, id: r.get(1) })
            })
            .collect()
    }

    /// The groups a user is a direct member of: (group id, displayName).
    pub async fn member_of(
        &self,
        dir: &str,
        user: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT g.source_id, g.display_name FROM memberships m JOIN groups_ g ON g.dir = m.dir AND g.source_id = m.group_id
             WHERE m.dir = $1 AND m.member_kind = 'user' AND m.member_id = $2 ORDER BY g.display_name",
        )
        .bind(dir)
        .bind(user)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Apply changes after checking uniqueness rules: either every rule holds and everything is
    /// written, or nothing is and the answer is `Conflict`. Concurrent calls are committed
    /// together (group commit): each runs in its own savepoint of a shared transaction, so one
    /// that fails leaves the others whole, and each returns only once its write is committed.
    pub async fn write_checked(
        &self,
        dir: &str,
        source: &str,
        checks: &[Unique],
        changes: &[Change],
        now_ms: i64,
    ) -> Result<WriteSummary, StoreError> {
        let queue = self
            .batcher
            .get_or_init(|| async {
                let (tx, rx) = tokio::sync::mpsc::channel(1024);
                tokio::spawn(writer_loop(self.writer.clone(), rx));
                tx
            })
            .await;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = WriteJob {
            dir: dir.to_string(),
            source: source.to_string(),
            checks: checks.to_vec(),
            changes: changes.to_vec(),
            now_ms,
            reply,
        };
        let stopped = || StoreError::NotCommitted("the store's writer has stopped".into());
        queue.send(job).await.map_err(|_| stopped())?;
        let summary = answer.await.map_err(|_| stopped())??;
        self.note_changes(summary.changes).await?;
        Ok(summary)
    }

    /// Create a token for a directory's push endpoint. The secret is returned once.
    pub async fn create_token(
        &self,
        dir: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<(TokenInfo, String), StoreError> {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let secret = format!(
            "idsync_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO scim_tokens (id, dir, name, hash, created_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(dir)
        .bind(name)
        .bind(hash(&secret))
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        let info = TokenInfo {
            id,
            directory: dir.to_string(),
            name: name.to_string(),
            created_ms: now_ms,
            last_used_ms: None,
            revoked_ms: None,
        };
        Ok((info, secret))
    }

    pub async fn list_tokens(&self, dir: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = match dir {
            Some(d) => {
                sqlx::query(&format!(
                    "{TOKEN_COLUMNS} WHERE dir = $1 ORDER BY created_ms"
                ))
                .bind(d)
                .fetch_all(&self.reader)
                .await?
            }
            None => {
                sqlx::query(&format!("{TOKEN_COLUMNS} ORDER BY dir, created_ms"))
                    .fetch_all(&self.reader)
                    .await?
            }
        };
        Ok(rows.iter().map(token_row).collect())
    }

    /// Revoke a token by id. False when there is no such live token.
    pub async fn revoke_token(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE scim_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// The live token with this secret, if any; notes its use.
    pub async fn verify_token(
        &self,
        secret: &str,
        now_ms: i64,
    ) -> Result<Option<TokenInfo>, StoreError> {
        let Some(row) = sqlx::query(&format!(
            "{TOKEN_COLUMNS} WHERE hash = $1 AND revoked_ms IS NULL"
        ))
        .bind(hash(secret))
        .fetch_optional(&self.reader)
        .await?
        else {
            return Ok(None);
        };
        let info = token_row(&row);
        if info
            .last_used_ms
            .is_none_or(|t| now_ms - t >= LAST_USED_GRANULARITY_MS)
        {
            sqlx::query("UPDATE scim_tokens SET last_used_ms = $2 WHERE id = $1")
                .bind(&info.id)
                .bind(now_ms)
                .execute(&self.writer)
                .await?;
        }
        Ok(Some(info))
    }
}

const TOKEN_COLUMNS: &str =
    "SELECT id, dir, name, created_ms, last_used_ms, revoked_ms FROM scim_tokens";

fn token_row(r: &sqlx::sqlite::SqliteRow) -> TokenInfo {
    TokenInfo {
        id: r.get(0),
        directory: r.get(1),
        name: r.get(2),
        created_ms: r.get(3),
        last_used_ms: r.get(4),
        revoked_ms: r.get(5),
    }
}

fn user_row(r: &sqlx::sqlite::SqliteRow) -> Result<StoredUser, StoreError> {
    Ok(StoredUser {
        user: decode("user", r.get::<&str, _>(0))?,
        created_ms: r.get(1),
        modified_ms: r.get(2),
    })
}

fn group_row(r: &sqlx::sqlite::SqliteRow) -> Result<StoredGroup, StoreError> {
    Ok(StoredGroup {
        group: decode("group", r.get::<&str, _>(0))?,
        created_ms: r.get(1),
        modified_ms: r.get(2),
    })
}

/// A checked write waiting for the group commit.
pub(crate) struct WriteJob {
    dir: String,
    source: String,
    checks: Vec<Unique>,
    changes: Vec<Change>,
    now_ms: i64,
    reply: tokio::sync::oneshot::Sender<Result<WriteSummary, StoreError>>,
}

impl std::fmt::Debug for WriteJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteJob")
            .field("dir", &self.dir)
            .field("changes", &self.changes.len())
            .finish()
    }
}

/// Most writes committed together.
const GROUP_COMMIT_MAX: usize = 256;

async fn writer_loop(pool: sqlx::SqlitePool, mut jobs: tokio::sync::mpsc::Receiver<WriteJob>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        commit_group(&pool, batch).await;
    }
}

async fn commit_group(pool: &sqlx::SqlitePool, batch: Vec<WriteJob>) {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            for job in batch {
                let _ = job.reply.send(Err(StoreError::NotCommitted(e.to_string())));
            }
            return;
        }
    };
    let mut results = Vec::with_capacity(batch.len());
    for job in &batch {
        results.push(one_job(&mut tx, job).await);
    }
    match tx.commit().await {
        Ok(()) => {
            for (job, result) in batch.into_iter().zip(results) {
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            for job in batch {
                let _ = job.reply.send(Err(StoreError::NotCommitted(e.to_string())));
            }
        }
    }
}

/// One job inside the shared transaction, in its own savepoint.
async fn one_job(tx: &mut crate::Tx<'_>, job: &WriteJob) -> Result<WriteSummary, StoreError> {
    sqlx::query("SAVEPOINT job").execute(&mut **tx).await?;
    let result = checked(tx, job).await;
    if result.is_err() {
        sqlx::query("ROLLBACK TO SAVEPOINT job")
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("RELEASE SAVEPOINT job")
        .execute(&mut **tx)
        .await?;
    result
}

async fn checked(tx: &mut crate::Tx<'_>, job: &WriteJob) -> Result<WriteSummary, StoreError> {
    for check in &job.checks {
        let (sql, name, except, what) = match check {
            Unique::UserName { name, except } => (
                "SELECT source_id FROM users WHERE dir = $1 AND lower(user_name) = lower($2)",
                name,
                except,
                "userName",
            ),
            Unique::GroupName { name, except } => (
                "SELECT source_id FROM groups_ WHERE dir = $1 AND lower(display_name) = lower($2)",
                name,
                except,
                "displayName",
            ),
        };
        let holders: Vec<String> = sqlx::query_scalar(sql)
            .bind(&job.dir)
            .bind(name)
            .fetch_all(&mut **tx)
            .await?;
        if holders.iter().any(|h| Some(h) != except.as_ref()) {
            return Err(StoreError::Conflict(format!(
                "{what} {name:?} is already taken"
            )));
        }
    }
    write_changes(tx, &job.dir, &job.source, &job.changes, None, job.now_ms).await
}
