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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use idsync_core::{LedgerState, LedgerUser, User};

    #[tokio::test]
    async fn a_translation_moves_the_ledger_users_and_records_the_form_once() {
        let s = Store::open_in_memory().await.unwrap();
        s.register_flow("f", "d").await.unwrap();
        let mut l = LedgerState::default();
        for (key, id) in [("s1", "17"), ("s2", "18"), ("s3", "19")] {
            l.users
                .insert(key.into(), LedgerUser::new(id, User::new(key, key)));
        }
        s.replace_ledger("f", &l).await.unwrap();
        assert_eq!(s.ledger_user_id_form("f").await.unwrap(), None);
        assert_eq!(s.ledger_user_ids("f").await.unwrap(), ["17", "18", "19"]);
        let version = s.ledger_version("f").await.unwrap();
        let map: HashMap<String, String> = [("17", "Ann"), ("18", "bob")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let moved = s
            .translate_ledger_user_ids("f", &map, "names")
            .await
            .unwrap();
        assert_eq!(moved, 2);
        let l = s.load_ledger("f").await.unwrap();
        assert_eq!(l.users["s1"].target_id, "Ann");
        assert_eq!(l.users["s2"].target_id, "bob");
        assert_eq!(l.users["s3"].target_id, "19", "an id not translated stays");
        assert_eq!(
            s.ledger_user_id_form("f").await.unwrap().as_deref(),
            Some("names")
        );
        assert!(
            s.ledger_version("f").await.unwrap() > version,
            "a ledger held in memory is read again"
        );
        // A flow the store has not seen yet gets its form recorded all the same.
        s.translate_ledger_user_ids("new", &HashMap::new(), "names")
            .await
            .unwrap();
        assert_eq!(
            s.ledger_user_id_form("new").await.unwrap().as_deref(),
            Some("names")
        );
    }
}
