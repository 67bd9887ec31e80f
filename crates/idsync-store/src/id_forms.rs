//! The form of the target user ids a flow's ledger holds (`flows.user_id_form`), and their
//! translation when a target's form changed between versions (decision 0037).

use crate::{bump_ledger_version, Store, StoreError};
use sqlx::Row;
use std::collections::HashMap;

impl Store {
    /// The form of the flow's ledger user ids as recorded (`None`: never recorded).
    pub async fn ledger_user_id_form(&self, flow: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT user_id_form FROM flows WHERE name = $1")
            .bind(flow)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.and_then(|r| r.get::<Option<String>, _>(0)))
    }

    /// The distinct target ids of the flow's ledger users.
    pub async fn ledger_user_ids(&self, flow: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT target_id FROM ledger_users WHERE flow = $1 ORDER BY target_id",
        )
        .bind(flow)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Move the flow's ledger users to their ids in `form` (`ids`: old id → new id; an id not
    /// in it stays) and record the form, in one transaction. Returns how many users moved.
    pub async fn translate_ledger_user_ids(
        &self,
        flow: &str,
        ids: &HashMap<String, String>,
        form: &str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut moved = 0;
        for (old, new) in ids {
            if old == new {
                continue;
            }
            moved += sqlx::query(
                "UPDATE ledger_users SET target_id = $3 WHERE flow = $1 AND target_id = $2",
            )
            .bind(flow)
            .bind(old)
            .bind(new)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        sqlx::query(
            "INSERT INTO flows (name, dir, user_id_form) VALUES ($1, '', $2) ON CONFLICT (name) DO UPDATE SET user_id_form = excluded.user_id_form",
        )
        .bind(flow)
        .bind(form)
        .execute(&mut *tx)
        .await?;
        if moved > 0 {
            bump_ledger_version(&mut tx, flow).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }
}
