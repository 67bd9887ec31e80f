//! Logins: a login's directory write with the record of the login, in one transaction; the
//! last login (and first count) of each user, for a flow's `inactive_after`; the users who
//! logged in since a time, for a source read that started before them (decisions 0042, 0043).

use crate::{write_changes, Store, StoreError, WriteSummary};
use idsync_core::inactivity::Activity;
use idsync_core::Change;
use sqlx::Row;
use std::collections::{BTreeSet, HashMap};

impl Store {
    /// Apply a login's changes to the directory (each logged in the change log) and record the
    /// login of `user`, in one transaction.
    pub async fn record_login(
        &self,
        dir: &str,
        source: &str,
        user: &str,
        changes: &[Change],
        now_ms: i64,
    ) -> Result<WriteSummary, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut learned = self.numbers.learn();
        let summary =
            write_changes(&mut tx, &mut learned, dir, source, changes, None, now_ms).await?;
        sqlx::query(
            "INSERT INTO user_logins (dir, user_key, first_seen_ms, last_login_ms) VALUES ($1, $2, $3, $3)
             ON CONFLICT (dir, user_key) DO UPDATE SET last_login_ms = MAX(COALESCE(user_logins.last_login_ms, 0), excluded.last_login_ms)",
        )
        .bind(dir)
        .bind(user)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        learned.keep();
        self.note_changes(summary.changes).await?;
        Ok(summary)
    }

    /// What is known of the logins of a directory's users (users never counted are absent).
    pub async fn activity(&self, dir: &str) -> Result<HashMap<String, Activity>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_key, first_seen_ms, last_login_ms FROM user_logins WHERE dir = $1",
        )
        .bind(dir)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    Activity {
                        first_seen_ms: r.get(1),
                        last_login_ms: r.get(2),
                    },
                )
            })
            .collect())
    }

    /// One user's logins, if counted.
    pub async fn user_activity(
        &self,
        dir: &str,
        user: &str,
    ) -> Result<Option<Activity>, StoreError> {
        let row = sqlx::query(
            "SELECT first_seen_ms, last_login_ms FROM user_logins WHERE dir = $1 AND user_key = $2",
        )
        .bind(dir)
        .bind(user)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|r| Activity {
            first_seen_ms: r.get(0),
            last_login_ms: r.get(1),
        }))
    }

    /// Start counting these users from `now_ms` (those already counted keep their dates).
    pub async fn count_users(
        &self,
        dir: &str,
        users: &[&str],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if users.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for chunk in users.chunks(10_000) {
            sqlx::query(
                "INSERT INTO user_logins (dir, user_key, first_seen_ms)
                 SELECT $1, value, $3 FROM json_each($2) WHERE true
                 ON CONFLICT (dir, user_key) DO NOTHING",
            )
            .bind(dir)
            .bind(crate::encode("users", &chunk)?)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The users of a directory who logged in at or after `since_ms`.
    pub async fn logins_since(
        &self,
        dir: &str,
        since_ms: i64,
    ) -> Result<BTreeSet<String>, StoreError> {
        let rows =
            sqlx::query("SELECT user_key FROM user_logins WHERE dir = $1 AND last_login_ms >= $2")
                .bind(dir)
                .bind(since_ms)
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }
}
