//! The request form each target takes for each kind of change (decision 0026): learned by the
//! target from its answers (PATCH answered 501 → PUT), kept here per target name so that later
//! runs start with the form that works instead of learning it again.

use crate::{Store, StoreError};
use idsync_core::{Form, LearnedForm, OpKind};
use sqlx::Row;

impl Store {
    /// The forms remembered for `target`. A row this version cannot read (written by a newer
    /// one) is left out: the target then starts from its default and learns again.
    pub async fn target_forms(&self, target: &str) -> Result<Vec<LearnedForm>, StoreError> {
        let rows = sqlx::query(
            "SELECT op_kind, form FROM target_forms WHERE target = $1 ORDER BY op_kind",
        )
        .bind(target)
        .fetch_all(&self.reader)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let (kind, form): (String, String) = (r.get(0), r.get(1));
            match (kind.parse::<OpKind>(), form.parse::<Form>()) {
                (Ok(kind), Ok(form)) => out.push(LearnedForm {
                    kind,
                    form,
                    reason: String::new(),
                }),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(target_name = %target, error = %e, "a remembered request form is not understood: left out")
                }
            }
        }
        Ok(out)
    }

    /// Remember that `target` takes `learned.form` for `learned.kind` (replacing what was
    /// remembered for that kind).
    pub async fn remember_target_form(
        &self,
        target: &str,
        learned: &LearnedForm,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO target_forms (target, op_kind, form, reason, learned_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (target, op_kind) DO UPDATE SET form = excluded.form, reason = excluded.reason, learned_ms = excluded.learned_ms",
        )
        .bind(target)
        .bind(learned.kind.as_str())
        .bind(learned.form.as_str())
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
    async fn forms_are_kept_per_target_and_kind_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        assert!(store.target_forms("app").await.unwrap().is_empty());
        let put = |kind| LearnedForm {
            kind,
            form: Form::Put,
            reason: "PATCH /Users/1: HTTP 501".into(),
        };
        store
            .remember_target_form("app", &put(OpKind::UpdateUser), 1)
            .await
            .unwrap();
        store
            .remember_target_form(
                "app",
                &LearnedForm {
                    kind: OpKind::RemoveMembers,
                    form: Form::PatchValue,
                    reason: String::new(),
                },
                2,
            )
            .await
            .unwrap();
        store
            .remember_target_form("app", &put(OpKind::RemoveMembers), 3)
            .await
            .unwrap();
        let got: Vec<(OpKind, Form)> = store
            .target_forms("app")
            .await
            .unwrap()
            .into_iter()
            .map(|l| (l.kind, l.form))
            .collect();
        assert_eq!(
            got,
            vec![
                (OpKind::RemoveMembers, Form::Put),
                (OpKind::UpdateUser, Form::Put)
            ]
        );
        assert!(store.target_forms("other").await.unwrap().is_empty());
    }
}
