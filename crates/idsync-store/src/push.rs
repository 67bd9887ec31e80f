//! What a push endpoint (SCIM) needs from the store: single-object lookups, writes checked for
//! uniqueness in the same transaction, object timestamps, and bearer tokens kept as hashes.

use crate::numbers::{Learned, NumberCache};
use crate::reverse::Table;
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

impl Unique {
    /// What the rule is about: the kind of object, the name, and the one object (if any)
    /// allowed to hold it.
    fn parts(&self) -> (MemberKind, &str, Option<&str>) {
        match self {
            Unique::UserName { name, except } => (MemberKind::User, name, except.as_deref()),
            Unique::GroupName { name, except } => (MemberKind::Group, name, except.as_deref()),
        }
    }

    /// Whether some object other than the allowed one holds the name.
    fn broken_by<'a>(&self, mut holders: impl Iterator<Item = &'a String>) -> bool {
        let (_, _, except) = self.parts();
        holders.any(|h| Some(h.as_str()) != except)
    }

    /// The answer to a write that breaks the rule.
    fn conflict(&self) -> StoreError {
        let (kind, name, _) = self.parts();
        let what = match kind {
            MemberKind::User => "userName",
            MemberKind::Group => "displayName",
        };
        StoreError::Conflict(format!("{what} {name:?} is already taken"))
    }
}

/// A change of a group's members that names them by id only, as SCIM's `members` values do.
/// Whether each added id is a user or a group of the directory is decided by the writer, in
/// the transaction that writes the change: nothing is read before the write, and nothing read
/// can have changed by the time it lands (a member deleted meanwhile is refused, not linked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberPatch {
    /// The group's id.
    pub group: String,
    /// Members added (`true`) and removed (`false`), in the order asked.
    pub ops: Vec<(bool, String)>,
}

/// Which of a list of ids (a JSON array, `$2`) are not users of the directory `$1`, or are
/// groups of it: rows of (id, is a user, is a group). Every other id is a user and not a
/// group. Most ids a member patch names are users, so hardly a row comes back.
const NOT_JUST_USERS_SQL: &str = "SELECT j.value,
        EXISTS (SELECT 1 FROM users u WHERE u.dir = $1 AND u.source_id = j.value),
        EXISTS (SELECT 1 FROM groups_ g WHERE g.dir = $1 AND g.source_id = j.value)
     FROM json_each($2) j
     WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.dir = $1 AND u.source_id = j.value)
        OR EXISTS (SELECT 1 FROM groups_ g WHERE g.dir = $1 AND g.source_id = j.value)";

/// The table of a kind of directory object and its name column.
fn name_column(kind: MemberKind) -> (&'static str, &'static str) {
    match kind {
        MemberKind::User => ("users", "user_name"),
        MemberKind::Group => ("groups_", "display_name"),
    }
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

    /// Which of these source ids are users, and which are groups, of the directory (one
    /// query). An id that names both is a user; one that names neither is left out.
    pub async fn kinds_of(
        &self,
        dir: &str,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, MemberKind>, StoreError> {
        let mut conn = self.reader.acquire().await?;
        let named = what_ids_name(&mut conn, dir, ids.iter().copied()).await?;
        Ok(named
            .into_iter()
            .filter_map(|(id, n)| {
                let kind = match n {
                    Named { user: true, .. } => MemberKind::User,
                    Named { group: true, .. } => MemberKind::Group,
                    _ => return None,
                };
                Some((id.to_string(), kind))
            })
            .collect())
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
        sqlx::query(
            "SELECT m.kind, m.id FROM memberships x JOIN numbers m ON m.n = x.m
             WHERE x.dir = $1 AND x.g = (SELECT n FROM numbers WHERE kind = 'group' AND id = $2)
             ORDER BY m.kind DESC, m.id",
        )
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
        // The directory's version and the user's number in one snapshot; then the user's
        // groups from the reverse map at that version or later (there is no index by member;
        // building the map takes the writer's connection, so no reader transaction is held
        // meanwhile: in memory both are one connection), and their names.
        let mut tx = self.reader.begin().await?;
        let version = Table::Memberships.version(&mut tx, dir).await?;
        let number: Option<i64> =
            sqlx::query_scalar("SELECT n FROM numbers WHERE kind = 'user' AND id = $1")
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        let (Some(version), Some(number)) = (version, number) else {
            return Ok(Vec::new());
        };
        let groups = self
            .numbers
            .reverse
            .groups_of(&self.writer, Table::Memberships, dir, version, number)
            .await?;
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT g.source_id, g.display_name FROM json_each($2) j
             CROSS JOIN numbers gn ON gn.n = j.value
             CROSS JOIN groups_ g ON g.dir = $1 AND g.source_id = gn.id
             ORDER BY g.display_name",
        )
        .bind(dir)
        .bind(crate::encode("groups", &groups)?)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Apply changes after checking uniqueness rules: either every rule holds and everything is
    /// written, or nothing is and the answer is `Conflict`. Concurrent calls are committed
    /// together (group commit, decision 0013): one that breaks a rule or fails leaves the others
    /// whole, and each returns only once its write is committed.
    pub async fn write_checked(
        &self,
        dir: &str,
        source: &str,
        checks: &[Unique],
        changes: &[Change],
        now_ms: i64,
    ) -> Result<WriteSummary, StoreError> {
        self.submit(dir, source, checks.to_vec(), changes.to_vec(), None, now_ms)
            .await
    }

    /// Add and remove a group's members, named by id only (see [`MemberPatch`]); committed
    /// together with concurrent writes like [`Store::write_checked`]. Fails with `NotFound`
    /// if the group does not exist and `Invalid` if an added id is neither a user nor a group
    /// of the directory (or is the group itself); then nothing is written.
    pub async fn patch_members(
        &self,
        dir: &str,
        source: &str,
        patch: MemberPatch,
        now_ms: i64,
    ) -> Result<WriteSummary, StoreError> {
        self.submit(dir, source, Vec::new(), Vec::new(), Some(patch), now_ms)
            .await
    }

    /// Queue a write for the group commit and wait for its answer.
    async fn submit(
        &self,
        dir: &str,
        source: &str,
        checks: Vec<Unique>,
        changes: Vec<Change>,
        members: Option<MemberPatch>,
        now_ms: i64,
    ) -> Result<WriteSummary, StoreError> {
        let queue = self
            .batcher
            .get_or_init(|| async {
                let (tx, rx) = tokio::sync::mpsc::channel(1024);
                tokio::spawn(writer_loop(self.writer.clone(), self.numbers.clone(), rx));
                tx
            })
            .await;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = WriteJob {
            dir: dir.to_string(),
            source: source.to_string(),
            checks,
            changes,
            members,
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

    /// Revoke a token by id. False when there is no such live token. This process stops
    /// accepting it at once; another process serving the same store within
    /// `TOKEN_CACHE_MS`.
    pub async fn revoke_token(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE scim_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
        )
        .bind(id)
        .bind(now_ms)
        .execute(&self.writer)
        .await?
        .rows_affected();
        self.tokens.lock().retain(|_, (info, _)| info.id != id);
        Ok(n > 0)
    }

    /// The live token with this secret, if any; notes its use. A token found is remembered for
    /// `TOKEN_CACHE_MS`, so that a busy endpoint does not read the store on every request.
    pub async fn verify_token(
        &self,
        secret: &str,
        now_ms: i64,
    ) -> Result<Option<TokenInfo>, StoreError> {
        let hash = hash(secret);
        let cached = self
            .tokens
            .lock()
            .get(&hash)
            .filter(|(_, at)| (0..TOKEN_CACHE_MS).contains(&(now_ms - at)))
            .map(|(info, _)| info.clone());
        let mut info = match cached {
            Some(info) => info,
            None => {
                let Some(row) = sqlx::query(&format!(
                    "{TOKEN_COLUMNS} WHERE hash = $1 AND revoked_ms IS NULL"
                ))
                .bind(&hash)
                .fetch_optional(&self.reader)
                .await?
                else {
                    return Ok(None);
                };
                let info = token_row(&row);
                self.tokens
                    .lock()
                    .insert(hash.clone(), (info.clone(), now_ms));
                info
            }
        };
        if info
            .last_used_ms
            .is_none_or(|t| now_ms - t >= LAST_USED_GRANULARITY_MS)
        {
            sqlx::query("UPDATE scim_tokens SET last_used_ms = $2 WHERE id = $1")
                .bind(&info.id)
                .bind(now_ms)
                .execute(&self.writer)
                .await?;
            info.last_used_ms = Some(now_ms);
            if let Some((kept, _)) = self.tokens.lock().get_mut(&hash) {
                kept.last_used_ms = Some(now_ms);
            }
        }
        Ok(Some(info))
    }
}

/// How long a verified token is taken on trust before the store is read again.
pub const TOKEN_CACHE_MS: i64 = 5_000;

/// Verified tokens by hash, with when they were read from the store.
#[derive(Debug, Default, Clone)]
pub(crate) struct TokenCache(
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (TokenInfo, i64)>>>,
);

impl TokenCache {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (TokenInfo, i64)>> {
        // The map holds no invariant a panicking holder could break: a poisoned lock is used.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    /// Member changes whose kinds the writer decides (then `changes` is empty).
    members: Option<MemberPatch>,
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

async fn writer_loop(
    pool: sqlx::SqlitePool,
    numbers: NumberCache,
    mut jobs: tokio::sync::mpsc::Receiver<WriteJob>,
) {
    while let Some(first) = jobs.recv().await {
        // Requests being handled right now are let through to the queue first: one commit
        // for more of them.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < GROUP_COMMIT_MAX {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        commit_group(&pool, &numbers, batch).await;
    }
}

async fn commit_group(pool: &sqlx::SqlitePool, numbers: &NumberCache, batch: Vec<WriteJob>) {
    match commit_together(pool, numbers, &batch).await {
        Ok(results) => {
            for (job, result) in batch.into_iter().zip(results) {
                let _ = job.reply.send(result);
            }
        }
        Err(_) => {
            // A statement failed and nothing of the group was committed: each write is tried
            // again in its own transaction, so a bad one fails alone.
            for job in batch {
                let result = commit_alone(pool, numbers, &job).await;
                let _ = job.reply.send(result);
            }
        }
    }
}

/// Commit a group of writes in one transaction: their uniqueness rules decided together (a
/// write that breaks one is answered `Conflict` and writes nothing), then the changes of the
/// others, directory by directory, in multi-row statements.
async fn commit_together(
    pool: &sqlx::SqlitePool,
    numbers: &NumberCache,
    batch: &[WriteJob],
) -> Result<Vec<Result<WriteSummary, StoreError>>, StoreError> {
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    let mut learned = numbers.learn();
    let mut verdicts = check_together(&mut tx, batch).await?;
    let resolved = resolve_members(&mut tx, batch, &mut verdicts).await?;
    let changes_of = |n: usize| resolved[n].as_deref().unwrap_or(&batch[n].changes);
    let checked_at = started.elapsed();
    let mut results: Vec<Result<WriteSummary, StoreError>> = Vec::with_capacity(batch.len());
    let mut dirs: Vec<&str> = Vec::new();
    for (job, verdict) in batch.iter().zip(verdicts) {
        if !dirs.contains(&job.dir.as_str()) {
            dirs.push(&job.dir);
        }
        results.push(verdict.map(|()| WriteSummary::default()));
    }
    for dir in dirs {
        let accepted: Vec<usize> = (0..batch.len())
            .filter(|&n| batch[n].dir == dir && results[n].is_ok())
            .collect();
        let segments: Vec<(&[Change], i64)> = accepted
            .iter()
            .map(|&n| (changes_of(n), batch[n].now_ms))
            .collect();
        let mut log = crate::ChangeWriter::start(&mut tx, &mut learned, dir).await?;
        let logged = crate::write_segments(&mut tx, &mut log, &mut learned, dir, &segments).await?;
        let summary = log.finish(&mut tx, &mut learned, "", None).await?;
        for (n, changes) in accepted.into_iter().zip(logged) {
            if changes > 0 {
                touch_groups(&mut tx, dir, changes_of(n), batch[n].now_ms).await?;
            }
            results[n] = Ok(WriteSummary {
                changes,
                last_seq: summary.last_seq,
            });
        }
    }
    let written_at = started.elapsed();
    tx.commit().await?;
    learned.keep();
    tracing::debug!(
        writes = batch.len(),
        changes = (0..batch.len()).map(|n| changes_of(n).len()).sum::<usize>(),
        check_us = checked_at.as_micros() as u64,
        write_us = (written_at - checked_at).as_micros() as u64,
        commit_us = (started.elapsed() - written_at).as_micros() as u64,
        "writes committed together"
    );
    Ok(results)
}

/// One write in its own transaction, its rules checked by queries.
async fn commit_alone(
    pool: &sqlx::SqlitePool,
    numbers: &NumberCache,
    job: &WriteJob,
) -> Result<WriteSummary, StoreError> {
    let mut tx = pool
        .begin()
        .await
        .map_err(|e| StoreError::NotCommitted(e.to_string()))?;
    let mut learned = numbers.learn();
    let summary = checked(&mut tx, &mut learned, job).await?;
    tx.commit()
        .await
        .map_err(|e| StoreError::NotCommitted(e.to_string()))?;
    learned.keep();
    Ok(summary)
}

/// A name as SQLite's `lower()` folds it (ASCII only), so that names compare here as they do
/// in the store's queries and indexes.
fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Which users and groups hold names, by directory, kind and folded name.
type NameKey = (String, MemberKind, String);

/// Decide the uniqueness rules of a group of writes, in order: one query per directory and
/// kind for who holds the names the rules test; then each write that passes has its renames,
/// creations and deletions applied to what the later writes of the group see.
async fn check_together(
    tx: &mut crate::Tx<'_>,
    batch: &[WriteJob],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    // The tested names, by directory and kind.
    let mut tested: std::collections::BTreeMap<(&str, MemberKind), Vec<String>> =
        Default::default();
    for job in batch {
        for check in &job.checks {
            let (kind, name, _) = check.parts();
            tested
                .entry((job.dir.as_str(), kind))
                .or_default()
                .push(fold(name));
        }
    }
    // Holders of the tested names, and the (folded) name each of them holds.
    let mut holders: std::collections::HashMap<NameKey, std::collections::BTreeSet<String>> =
        Default::default();
    let mut held: std::collections::HashMap<NameKey, String> = Default::default();
    for ((dir, kind), names) in &tested {
        let (table, column) = name_column(*kind);
        for chunk in names.chunks(400) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                "SELECT source_id, lower({column}) FROM {table} WHERE dir = "
            ));
            q.push_bind(*dir).push(format!(" AND lower({column}) IN ("));
            let mut sep = q.separated(", ");
            for name in chunk {
                sep.push_bind(name.as_str());
            }
            sep.push_unseparated(")");
            for r in q.build().fetch_all(&mut **tx).await? {
                let (id, name): (String, String) = (r.get(0), r.get(1));
                held.insert((dir.to_string(), *kind, id.clone()), name.clone());
                holders
                    .entry((dir.to_string(), *kind, name))
                    .or_default()
                    .insert(id);
            }
        }
    }
    let mut verdicts = Vec::with_capacity(batch.len());
    for job in batch {
        let broken = job.checks.iter().find(|check| {
            let (kind, name, _) = check.parts();
            holders
                .get(&(job.dir.clone(), kind, fold(name)))
                .is_some_and(|h| check.broken_by(h.iter()))
        });
        if let Some(check) = broken {
            verdicts.push(Err(check.conflict()));
            continue;
        }
        verdicts.push(Ok(()));
        // What later writes of the group see: this write's names.
        for change in &job.changes {
            let (kind, id, name) = match change {
                Change::UpsertUser { user } => (
                    MemberKind::User,
                    &user.source_id,
                    Some(fold(&user.user_name)),
                ),
                Change::UpsertGroup { group } => (
                    MemberKind::Group,
                    &group.source_id,
                    Some(fold(&group.display_name)),
                ),
                Change::DeleteUser { source_id } => (MemberKind::User, source_id, None),
                Change::DeleteGroup { source_id } => (MemberKind::Group, source_id, None),
                Change::AddMember { .. } | Change::RemoveMember { .. } => continue,
            };
            let key = (job.dir.clone(), kind, id.clone());
            if let Some(old) = held.remove(&key) {
                if let Some(h) = holders.get_mut(&(job.dir.clone(), kind, old)) {
                    h.remove(id);
                }
            }
            if let Some(name) = name {
                holders
                    .entry((job.dir.clone(), kind, name.clone()))
                    .or_default()
                    .insert(id.clone());
                held.insert(key, name);
            }
        }
    }
    Ok(verdicts)
}

async fn checked(
    tx: &mut crate::Tx<'_>,
    learned: &mut Learned,
    job: &WriteJob,
) -> Result<WriteSummary, StoreError> {
    for check in &job.checks {
        let (kind, name, _) = check.parts();
        let (table, column) = name_column(kind);
        let holders: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT source_id FROM {table} WHERE dir = $1 AND lower({column}) = lower($2)"
        ))
        .bind(&job.dir)
        .bind(name)
        .fetch_all(&mut **tx)
        .await?;
        if check.broken_by(holders.iter()) {
            return Err(check.conflict());
        }
    }
    let mut verdict = [Ok(())];
    let resolved = resolve_members(tx, std::slice::from_ref(job), &mut verdict).await?;
    let [verdict] = verdict;
    verdict?;
    let changes = resolved[0].as_deref().unwrap_or(&job.changes);
    let summary = write_changes(
        tx,
        learned,
        &job.dir,
        &job.source,
        changes,
        None,
        job.now_ms,
    )
    .await?;
    if summary.changes > 0 {
        touch_groups(tx, &job.dir, changes, job.now_ms).await?;
    }
    Ok(summary)
}

/// A pushed write that changed members changed their groups: each group's `modified_ms` (what
/// the SCIM endpoint serves as `meta.lastModified`) moves to the write's time, as an upsert
/// of the group itself would move it.
async fn touch_groups(
    tx: &mut crate::Tx<'_>,
    dir: &str,
    changes: &[Change],
    now_ms: i64,
) -> Result<(), StoreError> {
    let groups: std::collections::BTreeSet<&str> = changes
        .iter()
        .filter_map(|c| match c {
            Change::AddMember { group, .. } | Change::RemoveMember { group, .. } => {
                Some(group.as_str())
            }
            _ => None,
        })
        .collect();
    if groups.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE groups_ SET modified_ms = max(modified_ms, $3)
         WHERE dir = $1 AND source_id IN (SELECT value FROM json_each($2))",
    )
    .bind(dir)
    .bind(crate::encode("groups", &groups)?)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether an id names a user, and whether it names a group, of a directory.
#[derive(Debug, Default, Clone, Copy)]
struct Named {
    user: bool,
    group: bool,
}

/// What each of `ids` names in the directory, in one query (`NOT_JUST_USERS_SQL`).
async fn what_ids_name<'a>(
    conn: &mut sqlx::SqliteConnection,
    dir: &str,
    ids: impl Iterator<Item = &'a str>,
) -> Result<std::collections::HashMap<&'a str, Named>, StoreError> {
    let mut named: std::collections::HashMap<&'a str, Named> = ids
        .map(|id| {
            let user_only = Named {
                user: true,
                group: false,
            };
            (id, user_only)
        })
        .collect();
    let list: Vec<&str> = named.keys().copied().collect();
    let rows = sqlx::query(NOT_JUST_USERS_SQL)
        .bind(dir)
        .bind(crate::encode("ids", &list)?)
        .fetch_all(&mut *conn)
        .await?;
    for r in rows {
        let id: String = r.get(0);
        if let Some(n) = named.get_mut(id.as_str()) {
            n.user = r.get(1);
            n.group = r.get(2);
        }
    }
    Ok(named)
}

/// Turn the member patches of a group of writes into changes. One query per directory says
/// what the ids they name are; then, in order, each patch sees the users and groups that the
/// accepted writes before it created and deleted. A patch that fails (see
/// [`Store::patch_members`]) has its verdict set and no changes.
async fn resolve_members(
    tx: &mut crate::Tx<'_>,
    batch: &[WriteJob],
    verdicts: &mut [Result<(), StoreError>],
) -> Result<Vec<Option<Vec<Change>>>, StoreError> {
    let mut resolved = vec![None; batch.len()];
    // The ids the patches name, by directory.
    let mut named: std::collections::HashMap<&str, std::collections::HashMap<&str, Named>> =
        Default::default();
    for (job, verdict) in batch.iter().zip(verdicts.iter()) {
        if let (Some(patch), Ok(())) = (&job.members, verdict) {
            let ids = named.entry(job.dir.as_str()).or_default();
            ids.entry(patch.group.as_str()).or_default();
            for (_, id) in patch.ops.iter().filter(|(add, _)| *add) {
                ids.entry(id.as_str()).or_default();
            }
        }
    }
    for (dir, ids) in &mut named {
        *ids = what_ids_name(tx, dir, ids.keys().copied()).await?;
    }
    for (n, job) in batch.iter().enumerate() {
        if verdicts[n].is_err() {
            continue;
        }
        let Some(ids) = named.get_mut(job.dir.as_str()) else {
            continue;
        };
        if let Some(patch) = &job.members {
            match member_changes(ids, patch) {
                Ok(changes) => resolved[n] = Some(changes),
                Err(e) => verdicts[n] = Err(e),
            }
            continue;
        }
        // What later patches see of this write.
        for change in &job.changes {
            let (id, user, exists) = match change {
                Change::UpsertUser { user } => (&user.source_id, true, true),
                Change::UpsertGroup { group } => (&group.source_id, false, true),
                Change::DeleteUser { source_id } => (source_id, true, false),
                Change::DeleteGroup { source_id } => (source_id, false, false),
                Change::AddMember { .. } | Change::RemoveMember { .. } => continue,
            };
            if let Some(n) = ids.get_mut(id.as_str()) {
                if user {
                    n.user = exists;
                } else {
                    n.group = exists;
                }
            }
        }
    }
    Ok(resolved)
}

/// The changes of a member patch, given what its ids name. An id that names both a user and
/// a group is taken as the user.
fn member_changes(
    ids: &std::collections::HashMap<&str, Named>,
    patch: &MemberPatch,
) -> Result<Vec<Change>, StoreError> {
    let named = |id: &str| ids.get(id).copied().unwrap_or_default();
    if !named(&patch.group).group {
        return Err(StoreError::NotFound(format!(
            "no group with id {}",
            patch.group
        )));
    }
    let mut changes = Vec::with_capacity(patch.ops.len());
    for (add, id) in &patch.ops {
        let kinds: &[MemberKind] = if !*add {
            // A member named for removal may be a user or a group; removing what is not
            // there changes nothing.
            &[MemberKind::User, MemberKind::Group]
        } else if *id == patch.group {
            return Err(StoreError::Invalid(format!(
                "members: group {id} cannot be a member of itself"
            )));
        } else {
            match named(id) {
                Named { user: true, .. } => &[MemberKind::User],
                Named { group: true, .. } => &[MemberKind::Group],
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "members: no user or group with id {id}"
                    )))
                }
            }
        };
        for kind in kinds {
            let member = MemberRef {
                kind: *kind,
                id: id.clone(),
            };
            let group = patch.group.clone();
            changes.push(if *add {
                Change::AddMember { group, member }
            } else {
                Change::RemoveMember { group, member }
            });
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use idsync_core::User;

    /// A store in memory whose directory `d` holds what these changes write.
    async fn store_holding(changes: &[Change]) -> Store {
        let store = Store::open_in_memory().await.unwrap();
        store
            .apply_changes("d", "scim", changes, None, 1)
            .await
            .unwrap();
        store
    }

    fn job(checks: Vec<Unique>, changes: Vec<Change>) -> WriteJob {
        WriteJob {
            dir: "d".into(),
            source: "scim".into(),
            checks,
            changes,
            members: None,
            now_ms: 1,
            reply: tokio::sync::oneshot::channel().0,
        }
    }

    fn create(id: &str, name: &str) -> WriteJob {
        job(
            vec![Unique::UserName {
                name: name.into(),
                except: None,
            }],
            vec![Change::UpsertUser {
                user: User::new(id, name),
            }],
        )
    }

    fn rename(id: &str, name: &str) -> WriteJob {
        job(
            vec![Unique::UserName {
                name: name.into(),
                except: Some(id.into()),
            }],
            vec![Change::UpsertUser {
                user: User::new(id, name),
            }],
        )
    }

    /// Writes committed together see what the earlier ones of their group did: a name freed
    /// by a rename or a deletion is free, a name taken by a creation or a rename is taken.
    #[tokio::test]
    async fn writes_of_a_group_see_the_names_the_earlier_ones_took_and_freed() {
        let store = store_holding(&[
            Change::UpsertUser {
                user: User::new("u1", "Ada"),
            },
            Change::UpsertUser {
                user: User::new("u2", "grace"),
            },
        ])
        .await;
        let batch = vec![
            create("n1", "ADA"),          // taken by u1
            rename("u1", "ada.lovelace"), // frees "ada"
            create("n2", "ada"),          // now free
            create("n3", "Ada.Lovelace"), // taken by the rename
            job(
                vec![],
                vec![Change::DeleteUser {
                    source_id: "u2".into(),
                }],
            ), // frees "grace"
            create("n4", "Grace"),        // free
            rename("n2", "grace"),        // taken by n4
            rename("u1", "ada.lovelace"), // its own name: fine
        ];
        let mut tx = store.writer.begin().await.unwrap();
        let verdicts: Vec<bool> = check_together(&mut tx, &batch)
            .await
            .unwrap()
            .iter()
            .map(Result::is_ok)
            .collect();
        assert_eq!(
            verdicts,
            [false, true, true, false, true, true, false, true]
        );
    }

    fn members(group: &str, ops: &[(bool, &str)]) -> WriteJob {
        let mut j = job(vec![], vec![]);
        j.members = Some(MemberPatch {
            group: group.into(),
            ops: ops.iter().map(|(add, id)| (*add, id.to_string())).collect(),
        });
        j
    }

    /// Member patches committed together are decided by the writer against what the store
    /// holds and what the writes before them in the group did: a user created earlier in the
    /// group can be added, one deleted earlier cannot, a group member is a group, a group
    /// cannot hold itself, a patch of a missing group is NotFound.
    #[tokio::test]
    async fn member_patches_see_what_the_writes_before_them_did() {
        let store = store_holding(&[
            Change::UpsertUser {
                user: User::new("u1", "ada"),
            },
            Change::UpsertUser {
                user: User::new("u2", "grace"),
            },
            Change::UpsertGroup {
                group: idsync_core::Group::new("g1", "Engineering"),
            },
            Change::UpsertGroup {
                group: idsync_core::Group::new("g2", "Ops"),
            },
        ])
        .await;
        let delete_u2 = job(
            vec![],
            vec![Change::DeleteUser {
                source_id: "u2".into(),
            }],
        );
        let batch = vec![
            members("g1", &[(true, "u3")]), // u3 is not created yet
            create("u3", "linus"),
            members("g1", &[(true, "u3"), (true, "g2"), (false, "u9")]),
            delete_u2,
            members("g1", &[(true, "u1"), (true, "u2")]), // u2 was just deleted
            members("g2", &[(true, "g2")]),               // itself
            members("g9", &[(false, "u1")]),              // no such group
        ];
        let mut tx = store.writer.begin().await.unwrap();
        let mut verdicts = check_together(&mut tx, &batch).await.unwrap();
        let resolved = resolve_members(&mut tx, &batch, &mut verdicts)
            .await
            .unwrap();
        let outcome: Vec<&str> = verdicts
            .iter()
            .map(|v| match v {
                Ok(()) => "ok",
                Err(StoreError::Invalid(_)) => "invalid",
                Err(StoreError::NotFound(_)) => "not found",
                Err(_) => "other",
            })
            .collect();
        assert_eq!(
            outcome,
            [
                "invalid",
                "ok",
                "ok",
                "ok",
                "invalid",
                "invalid",
                "not found"
            ]
        );
        let add = |kind, id: &str| Change::AddMember {
            group: "g1".into(),
            member: MemberRef {
                kind,
                id: id.into(),
            },
        };
        let remove = |kind, id: &str| Change::RemoveMember {
            group: "g1".into(),
            member: MemberRef {
                kind,
                id: id.into(),
            },
        };
        assert_eq!(
            resolved[2].as_deref(),
            Some(
                &[
                    add(MemberKind::User, "u3"),
                    add(MemberKind::Group, "g2"),
                    remove(MemberKind::User, "u9"),
                    remove(MemberKind::Group, "u9"),
                ][..]
            )
        );
        assert!(resolved
            .iter()
            .enumerate()
            .all(|(n, r)| r.is_some() == (n == 2)));
    }
}
