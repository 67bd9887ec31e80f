//! What a push endpoint (SCIM) needs from the store: single-object lookups, writes checked for
//! uniqueness in the same transaction, object timestamps, and bearer tokens kept as hashes.

use crate::numbers::{Learned, NumberCache};
use crate::reverse::Table;
use crate::{decode, write_changes, Store, StoreError, WriteSummary};
use idsync_core::{Change, Group, MemberKind, MemberRef, User};
use sqlx::Row;

mod writer;
pub(crate) use writer::WriteJob;
use writer::*;

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
