//! A flow's ledger keeps the target's user ids. Where a target's ids changed form between
//! versions (Bitbucket's numeric user ids became usernames, decision 0037), the ledger is
//! translated once, before the first run that needs it plans: the target maps the old ids to
//! the new ones, the store moves the ledger's users and records the form, so that nothing is
//! created twice (a user the ledger holds under an old id) and nothing is lost.

use crate::EngineError;
use idsync_core::{Target, TargetError};
use idsync_store::Store;

/// Bring the flow's ledger to the target's user id form (nothing to do when it is there).
pub(crate) async fn settle(store: &Store, flow: &str, target: &dyn Target) -> Result<(), Settle> {
    let Some(form) = target.user_id_form() else {
        return Ok(());
    };
    let recorded = store.ledger_user_id_form(flow).await?;
    if recorded.as_deref() == Some(form) {
        return Ok(());
    }
    let ids = store.ledger_user_ids(flow).await?;
    let map = if ids.is_empty() {
        Default::default()
    } else {
        target
            .translate_user_ids(recorded.as_deref(), &ids)
            .await
            .map_err(Settle::Target)?
    };
    let moved = store.translate_ledger_user_ids(flow, &map, form).await?;
    if !ids.is_empty() {
        tracing::warn!(
            flow = %flow,
            from = recorded.as_deref().unwrap_or("(the earlier version's)"),
            to = form,
            users = ids.len(),
            moved,
            kept = ids.len() as u64 - moved.min(ids.len() as u64),
            "the ledger's target user ids were translated to the target's new form (once); ids the target no longer knows stay as they were"
        );
    }
    Ok(())
}

pub(crate) enum Settle {
    Engine(EngineError),
    Target(TargetError),
}

impl From<idsync_store::StoreError> for Settle {
    fn from(e: idsync_store::StoreError) -> Self {
        Settle::Engine(e.into())
    }
}
