//! User attributes each target refused and is no longer sent (issue 16, item 4): learned by
//! the target from a `400` naming an attribute it was sent, kept here per target name so that
//! later runs leave them out from the start.

use crate::{Store, StoreError};
use idsync_core::LearnedOmission;
use sqlx::Row;

impl Store {
    /// The attribute paths remembered as refused by `target`.
    pub async fn target_omissions(&self, target: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT path FROM target_omissions WHERE target = $1 ORDER BY path")
            .bind(target)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.into_iter().map(|r| r.get::<String, _>(0)).collect())
    }

    /// Remember that `target` refuses `learned.path`.
    pub async fn remember_target_omission(
        &self,
        target: &str,
        learned: &LearnedOmission,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO target_omissions (target, path, reason, learned_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (target, path) DO UPDATE SET reason = excluded.reason, learned_ms = excluded.learned_ms",
        )
        .bind(target)
        .bind(&learned.path)
        .bind(&learned.reason)
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn omissions_are_kept_per_target() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        assert!(store.target_omissions("app").await.unwrap().is_empty());
        let learned = |path: &str| LearnedOmission {
            path: path.into(),
            reason: "POST /Users: HTTP 400".into(),
        };
        for p in ["emails.primary", "title", "emails.primary"] {
            store
                .remember_target_omission("app", &learned(p), 1)
                .await
                .unwrap();
        }
        store
            .remember_target_omission("other", &learned("title"), 1)
            .await
            .unwrap();
        assert_eq!(
            store.target_omissions("app").await.unwrap(),
            vec!["emails.primary".to_string(), "title".to_string()]
        );
        assert_eq!(
            store.target_omissions("other").await.unwrap(),
            vec!["title"]
        );
    }
}
