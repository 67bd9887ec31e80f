//! What each target's answers showed it keeps (issue 16, decision 0029): learned by the target
//! from what it answers to a create, PUT or PATCH, kept here per target name so that a
//! reconcile compares only what is kept from its first run.

use crate::{Store, StoreError};
use idsync_core::keeps::{LearnedKeep, Resource};
use sqlx::Row;

impl Store {
    /// The verdicts remembered for `target`. A row this version cannot read is left out (the
    /// target's answers show it again).
    pub async fn target_keeps(&self, target: &str) -> Result<Vec<LearnedKeep>, StoreError> {
        let rows = sqlx::query(
            "SELECT resource, path, kept FROM target_keeps WHERE target = $1 ORDER BY resource, path",
        )
        .bind(target)
        .fetch_all(&self.reader)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let (resource, path, kept): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
            match Resource::parse(&resource) {
                Some(resource) => out.push(LearnedKeep {
                    resource,
                    path,
                    kept: kept != 0,
                    evidence: String::new(),
                }),
                None => tracing::warn!(
                    target_name = %target,
                    resource = %resource,
                    "a remembered verdict on what the target keeps is not understood: left out"
                ),
            }
        }
        Ok(out)
    }

    /// Remember what `target`'s answers showed of `learned.path` (the latest answer wins: a
    /// service may change what it keeps).
    pub async fn remember_target_keep(
        &self,
        target: &str,
        learned: &LearnedKeep,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO target_keeps (target, resource, path, kept, evidence, learned_ms) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (target, resource, path) DO UPDATE SET kept = excluded.kept, evidence = excluded.evidence, learned_ms = excluded.learned_ms",
        )
        .bind(target)
        .bind(learned.resource.as_str())
        .bind(&learned.path)
        .bind(i64::from(learned.kept))
        .bind(&learned.evidence)
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
    async fn verdicts_are_kept_per_target_and_the_latest_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        assert!(store.target_keeps("app").await.unwrap().is_empty());
        let learned = |resource, path: &str, kept| LearnedKeep {
            resource,
            path: path.into(),
            kept,
            evidence: "POST /Users".into(),
        };
        for l in [
            learned(Resource::User, "title", false),
            learned(Resource::User, "department", true),
            learned(Resource::Group, "externalId", false),
            learned(Resource::User, "title", true),
        ] {
            store.remember_target_keep("app", &l, 1).await.unwrap();
        }
        store
            .remember_target_keep("other", &learned(Resource::User, "title", false), 1)
            .await
            .unwrap();
        let got: Vec<(Resource, String, bool)> = store
            .target_keeps("app")
            .await
            .unwrap()
            .into_iter()
            .map(|l| (l.resource, l.path, l.kept))
            .collect();
        assert_eq!(
            got,
            vec![
                (Resource::Group, "externalId".into(), false),
                (Resource::User, "department".into(), true),
                (Resource::User, "title".into(), true),
            ]
        );
        assert_eq!(store.target_keeps("other").await.unwrap().len(), 1);
    }
}
