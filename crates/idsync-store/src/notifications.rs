//! Notifications sent, and the purge of old runs, operations and change-log entries.

use super::*;

impl Store {
    pub async fn record_notification(&self, n: &NotificationRecord) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO notifications (at_ms, event, flow, run_id, channel, destination, subject, ok, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(n.at_ms)
            .bind(&n.event)
            .bind(&n.flow)
            .bind(&n.run_id)
            .bind(&n.channel)
            .bind(&n.destination)
            .bind(&n.subject)
            .bind(i64::from(n.ok))
            .bind(&n.error)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Notifications, newest first.
    pub async fn list_notifications(
        &self,
        limit: i64,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        Ok(sqlx::query("SELECT at_ms, event, flow, run_id, channel, destination, subject, ok, error FROM notifications ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| NotificationRecord {
                at_ms: r.get(0),
                event: r.get(1),
                flow: r.get(2),
                run_id: r.get(3),
                channel: r.get(4),
                destination: r.get(5),
                subject: r.get(6),
                ok: r.get::<i64, _>(7) != 0,
                error: r.get(8),
            })
            .collect())
    }

    /// Retention: runs that ended before `cutoff_ms` with their logs, and change-log entries
    /// older than that which every flow reading the directory has passed.
    pub async fn purge_before(&self, cutoff_ms: i64) -> Result<PurgeSummary, StoreError> {
        let mut tx = self.writer.begin().await?;
        let ops = sqlx::query("DELETE FROM run_ops WHERE run_id IN (SELECT id FROM runs WHERE ended_ms IS NOT NULL AND ended_ms < $1)")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let runs = sqlx::query("DELETE FROM runs WHERE ended_ms IS NOT NULL AND ended_ms < $1")
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // A row whose last change a flow has not passed stays whole. Counted in changes: a
        // row of membership changes holds many.
        let changes: u64 = sqlx::query_scalar::<_, i64>(
            "DELETE FROM change_log WHERE at_ms < $1
               AND seq <= COALESCE((SELECT MIN(f.cursor) FROM flows f WHERE f.dir = change_log.dir),
                                   (SELECT d.last_seq FROM directories d WHERE d.name = change_log.dir))
             RETURNING CASE WHEN kind IN ($2, $3) THEN json_array_length(data, '$.members') ELSE 1 END",
        )
        .bind(cutoff_ms)
        .bind(ADD_MEMBERS)
        .bind(REMOVE_MEMBERS)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|n| u64::try_from(n).unwrap_or(0))
        .sum();
        tx.commit().await?;
        Ok(PurgeSummary {
            runs,
            operations: ops,
            changes,
        })
    }
}
