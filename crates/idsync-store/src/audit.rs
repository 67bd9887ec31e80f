//! The audit log: who did what to idsync, when, and how it ended. Admin actions only (token
//! create and revoke, approve and reject, quarantine reset, syncs and source reads started by
//! hand, secret rotation), from the command line or the admin API; scheduled work is in the
//! run history instead. An entry is written when the action starts (`started`) and completed
//! when it ends, so an action cut short by a crash still shows who started it. Entries are
//! kept: retention does not purge them. See `docs/decisions/0024-audit-log.md`.

use crate::{Store, StoreError};
use sqlx::Row;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Begun and not (yet) ended: still running, or its process died.
    Started,
    /// Done.
    Ok,
    /// Not done: not allowed, or nothing to act on (a run that is not waiting, an unknown
    /// flow or token).
    Refused,
    /// Tried and failed (the source or target could not be reached, a store error).
    Failed,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Started => "started",
            AuditOutcome::Ok => "ok",
            AuditOutcome::Refused => "refused",
            AuditOutcome::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "started" => AuditOutcome::Started,
            "ok" => AuditOutcome::Ok,
            "refused" => AuditOutcome::Refused,
            "failed" => AuditOutcome::Failed,
            other => {
                return Err(StoreError::Corrupt {
                    what: "audit outcome".into(),
                    message: format!("{other:?}"),
                })
            }
        })
    }
}

/// An action about to be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    pub at_ms: i64,
    /// Who: `cli:<OS user>`, `admin-token` (the admin API's token), or `anonymous` (the admin
    /// API without a token configured).
    pub actor: String,
    /// `cli` or `api`.
    pub via: String,
    /// What, such as `run.approve`, `flow.sync`, `token.create`.
    pub action: String,
    /// What it is about: a flow, a run id, a token id or directory, a source.
    pub object: String,
}

/// An entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub via: String,
    pub action: String,
    pub object: String,
    pub outcome: AuditOutcome,
    /// The run it started, the token it made, or why it was refused or failed.
    pub detail: Option<String>,
    pub ended_ms: Option<i64>,
}

impl Store {
    /// Record that an action starts; its id completes it with [`Store::audit_end`].
    pub async fn audit_begin(&self, e: &NewAuditEntry) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO audit_log (at_ms, actor, via, action, object, outcome) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(e.at_ms)
        .bind(&e.actor)
        .bind(&e.via)
        .bind(&e.action)
        .bind(&e.object)
        .bind(AuditOutcome::Started.as_str())
        .fetch_one(&self.writer)
        .await?)
    }

    /// Record how an action ended.
    pub async fn audit_end(
        &self,
        id: i64,
        outcome: AuditOutcome,
        detail: Option<&str>,
        ended_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE audit_log SET outcome = $2, detail = $3, ended_ms = $4 WHERE id = $1")
            .bind(id)
            .bind(outcome.as_str())
            .bind(detail)
            .bind(ended_ms)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The audit log, newest first.
    pub async fn list_audit(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        sqlx::query(
            "SELECT id, at_ms, actor, via, action, object, outcome, detail, ended_ms FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.get(0),
                at_ms: r.get(1),
                actor: r.get(2),
                via: r.get(3),
                action: r.get(4),
                object: r.get(5),
                outcome: AuditOutcome::parse(r.get(6))?,
                detail: r.get(7),
                ended_ms: r.get(8),
            })
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[tokio::test]
    async fn entries_begin_end_and_list_newest_first() {
        let store = Store::open_in_memory().await.unwrap();
        let entry = |action: &str, at_ms| NewAuditEntry {
            at_ms,
            actor: "cli:alice".into(),
            via: "cli".into(),
            action: action.into(),
            object: "hr-to-app".into(),
        };
        let a = store.audit_begin(&entry("flow.sync", 10)).await.unwrap();
        let b = store.audit_begin(&entry("run.approve", 20)).await.unwrap();
        store
            .audit_end(b, AuditOutcome::Refused, Some("not waiting"), 21)
            .await
            .unwrap();
        let log = store.list_audit(10).await.unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].id, b);
        assert_eq!(log[0].outcome, AuditOutcome::Refused);
        assert_eq!(log[0].detail.as_deref(), Some("not waiting"));
        assert_eq!(log[0].ended_ms, Some(21));
        assert_eq!(log[1].id, a);
        assert_eq!(log[1].outcome, AuditOutcome::Started);
        assert_eq!(log[1].ended_ms, None);
        assert_eq!(store.list_audit(1).await.unwrap().len(), 1);
    }
}
