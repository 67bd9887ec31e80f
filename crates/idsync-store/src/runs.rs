//! Runs and the provisioning log: a run's row (trigger, mode, status, counts, the process
//! that owns it), holds waiting for an answer, and each operation's outcome.

use crate::{decode, encode, NewRun, OpLog, Run, RunCounts, RunStatus, Store, StoreError};
use sqlx::Row;
use std::collections::BTreeSet;

impl Store {
    /// Record a run as started by this process (its owner: a run whose process is gone is
    /// marked interrupted by [`Store::reap`]).
    pub async fn start_run(&self, run: &NewRun) -> Result<(), StoreError> {
        let owner = self.process().await?.id.clone();
        sqlx::query("INSERT INTO runs (id, flow, trigger, mode, started_ms, status, counts, dry_run, owner) VALUES ($1, $2, $3, $4, $5, $6, '{}', $7, $8)")
            .bind(&run.id)
            .bind(&run.flow)
            .bind(&run.trigger)
            .bind(&run.mode)
            .bind(run.started_ms)
            .bind(RunStatus::Running.as_str())
            .bind(i64::from(run.dry_run))
            .bind(owner)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Say what a run turned out to be (a source read started as incremental whose delta
    /// link had expired read everything: `full`).
    pub async fn set_run_mode(&self, id: &str, mode: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE runs SET mode = $2 WHERE id = $1")
            .bind(id)
            .bind(mode)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn finish_run(
        &self,
        id: &str,
        status: RunStatus,
        counts: &RunCounts,
        ended_ms: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET status = $2, counts = $3, ended_ms = $4, error = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(encode("run counts", &counts.0)?)
        .bind(ended_ms)
        .bind(error)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn get_run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        sqlx::query(&format!("{RUN_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .map(|r| run_row(&r))
            .transpose()
    }

    /// The flow's run waiting for approval of its held deprovisions: the latest held run with no
    /// answer yet (a later hold supersedes earlier ones).
    pub async fn pending_hold(&self, flow: &str) -> Result<Option<Run>, StoreError> {
        sqlx::query(&format!(
            "{RUN_COLUMNS} WHERE flow = $1 AND status = 'held' AND resolution IS NULL ORDER BY started_ms DESC, id DESC LIMIT 1"
        ))
        .bind(flow)
        .fetch_optional(&self.writer)
        .await?
        .map(|r| run_row(&r))
        .transpose()
    }

    /// Answer a held run (`approved` or `rejected`); a later hold of the same flow answers the
    /// earlier ones with `superseded`. Returns false when the run was not waiting.
    pub async fn resolve_hold(
        &self,
        run_id: &str,
        resolution: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE runs SET resolution = $2, resolved_ms = $3 WHERE id = $1 AND status = 'held' AND resolution IS NULL",
        )
        .bind(run_id)
        .bind(resolution)
        .bind(now_ms)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Mark every earlier unanswered hold of the flow superseded by `run_id`.
    pub async fn supersede_holds(
        &self,
        flow: &str,
        run_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE runs SET resolution = 'superseded', resolved_ms = $3 WHERE flow = $1 AND id != $2 AND status = 'held' AND resolution IS NULL",
        )
        .bind(flow)
        .bind(run_id)
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// What a run held over the target's licence seats: its held creations, enablings and
    /// memberships (the users an approval lets through), in order.
    pub async fn held_grant_ops(&self, run_id: &str) -> Result<Vec<OpLog>, StoreError> {
        self.ops_where(
            run_id,
            "AND outcome = 'held' AND action IN ('create_user', 'update_user', 'add_members')",
        )
        .await
    }

    /// The users whose deprovisioning a run held.
    pub async fn held_keys(&self, run_id: &str) -> Result<BTreeSet<String>, StoreError> {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT DISTINCT key FROM run_ops WHERE run_id = $1 AND outcome = 'held' AND action IN ('disable_user', 'delete_user')",
        )
        .bind(run_id)
        .fetch_all(&self.writer)
        .await?
        .into_iter()
        .collect())
    }

    /// Runs newest first: of one flow (or, as `source:<name>`, the reads of one source), or
    /// without a name every flow's runs (source reads are listed only by name).
    pub async fn list_runs(&self, flow: Option<&str>, limit: i64) -> Result<Vec<Run>, StoreError> {
        let rows = match flow {
            Some(f) => {
                sqlx::query(&format!(
                    "{RUN_COLUMNS} WHERE flow = $1 ORDER BY started_ms DESC, id DESC LIMIT $2"
                ))
                .bind(f)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "{RUN_COLUMNS} WHERE flow NOT LIKE 'source:%' ORDER BY started_ms DESC, id DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.reader)
                .await?
            }
        };
        rows.iter().map(run_row).collect()
    }

    pub async fn run_ops(&self, run_id: &str) -> Result<Vec<OpLog>, StoreError> {
        self.ops_where(run_id, "").await
    }

    /// A run's operations that also meet `and` (a fixed SQL condition, or empty).
    async fn ops_where(&self, run_id: &str, and: &str) -> Result<Vec<OpLog>, StoreError> {
        sqlx::query(&format!(
            "SELECT run_id, seq, key, object, action, reason, before_, after_, changed, outcome, error, duration_ms, at_ms
             FROM run_ops WHERE run_id = $1 {and} ORDER BY seq, n",
        ))
        .bind(run_id)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| {
            let json = |i: usize| -> Result<Option<serde_json::Value>, StoreError> {
                r.get::<Option<&str>, _>(i).map(|s| decode("op log", s)).transpose()
            };
            Ok(OpLog {
                run_id: r.get(0),
                seq: r.get(1),
                key: r.get(2),
                object: r.get(3),
                action: r.get(4),
                reason: r.get(5),
                before: json(6)?,
                after: json(7)?,
                changed: decode("op log", r.get::<&str, _>(8))?,
                outcome: r.get(9),
                error: r.get(10),
                duration_ms: r.get(11),
                at_ms: r.get(12),
            })
        })
        .collect()
    }
}

const RUN_COLUMNS: &str = "SELECT id, flow, trigger, mode, started_ms, ended_ms, status, counts, error, dry_run, resolution, resolved_ms FROM runs";

pub(crate) fn run_row(r: &sqlx::sqlite::SqliteRow) -> Result<Run, StoreError> {
    let status: &str = r.get(6);
    Ok(Run {
        id: r.get(0),
        flow: r.get(1),
        trigger: r.get(2),
        mode: r.get(3),
        started_ms: r.get(4),
        ended_ms: r.get(5),
        status: status.parse().map_err(|_| StoreError::Corrupt {
            what: "run status".into(),
            message: status.to_string(),
        })?,
        counts: RunCounts(decode("run counts", r.get::<&str, _>(7))?),
        error: r.get(8),
        dry_run: r.get::<i64, _>(9) != 0,
        resolution: r.get(10),
        resolved_ms: r.get(11),
    })
}
