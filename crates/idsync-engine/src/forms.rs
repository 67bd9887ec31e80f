//! The request forms a target learned (decision 0026), and the user attributes it found
//! refused: given to the target when a run starts, and what it learned during the run
//! remembered in the store when the run ends (failed or not: a form found to work, or an
//! attribute found refused, is true whatever else went wrong). Likewise what the target's
//! answers showed it keeps (decision 0029).

use idsync_core::Target;
use idsync_store::{Store, StoreError};

/// Give the target the forms remembered for it.
pub(crate) async fn start(
    store: &Store,
    target_name: &str,
    target: &dyn Target,
) -> Result<(), StoreError> {
    let forms = store.target_forms(target_name).await?;
    if !forms.is_empty() {
        target.use_forms(&forms);
    }
    let omitted = store.target_omissions(target_name).await?;
    if !omitted.is_empty() {
        target.use_omissions(&omitted);
    }
    let keeps = store.target_keeps(target_name).await?;
    if !keeps.is_empty() {
        target.use_keeps(&keeps);
    }
    Ok(())
}

/// Remember what the target learned during the run, and say it in the run's log.
pub(crate) async fn keep(
    store: &Store,
    target_name: &str,
    target: &dyn Target,
    now_ms: i64,
) -> Result<(), StoreError> {
    for learned in target.take_learned_forms() {
        tracing::warn!(
            target_name = %target_name,
            operation = %learned.kind,
            form = %learned.form,
            reason = %learned.reason,
            "target request form learned: {} is sent as {} from now on",
            learned.kind,
            learned.form
        );
        store
            .remember_target_form(target_name, &learned, now_ms)
            .await?;
    }
    for learned in target.take_learned_omissions() {
        tracing::warn!(
            target_name = %target_name,
            attribute = %learned.path,
            reason = %learned.reason,
            "target attribute learned: {} is refused and no longer sent",
            learned.path
        );
        store
            .remember_target_omission(target_name, &learned, now_ms)
            .await?;
    }
    for learned in target.take_learned_keeps() {
        if learned.kept {
            tracing::info!(
                target_name = %target_name,
                resource = %learned.resource,
                attribute = %learned.path,
                evidence = %learned.evidence,
                "target attribute learned: the target keeps {} of {}s (a reconcile repairs it where missing)",
                learned.path,
                learned.resource
            );
        } else {
            tracing::warn!(
                target_name = %target_name,
                resource = %learned.resource,
                attribute = %learned.path,
                evidence = %learned.evidence,
                "target attribute learned: the target does not keep {} of {}s (a reconcile does not compare it)",
                learned.path,
                learned.resource
            );
        }
        store
            .remember_target_keep(target_name, &learned, now_ms)
            .await?;
    }
    Ok(())
}
