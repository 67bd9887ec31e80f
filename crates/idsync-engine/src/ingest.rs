use crate::error::EngineError;
use idsync_core::{Clock, Source, SourceRead};
use idsync_store::Store;
use serde::Serialize;

/// What one read of a source changed in its directory.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub source: String,
    pub directory: String,
    /// "full" or "delta".
    pub read: &'static str,
    pub changes: usize,
    pub last_seq: i64,
}

/// Read a source into its directory. A full read replaces the directory's contents (only what
/// differs is written and logged); a delta read applies its changes. Either way the directory,
/// its change log and the source's new cursor commit in one transaction, and a read that fails
/// changes nothing.
pub async fn ingest(
    store: &Store,
    source_name: &str,
    directory: &str,
    source: &dyn Source,
    clock: &dyn Clock,
) -> Result<IngestReport, EngineError> {
    let cursor = store.source_cursor(source_name).await?;
    let read = source
        .read(cursor.as_deref())
        .await
        .map_err(|error| EngineError::Source {
            source_name: source_name.to_string(),
            error,
        })?;
    let now = clock.now_ms();
    let (kind, summary) = match read {
        SourceRead::Full { snapshot, cursor } => (
            "full",
            store
                .replace_directory(directory, source_name, &snapshot, cursor.as_deref(), now)
                .await?,
        ),
        SourceRead::Delta { changes, cursor } => (
            "delta",
            store
                .apply_changes(directory, source_name, &changes, Some(&cursor), now)
                .await?,
        ),
    };
    tracing::info!(
        source = source_name,
        directory,
        read = kind,
        changes = summary.changes,
        last_seq = summary.last_seq,
        "source read"
    );
    Ok(IngestReport {
        source: source_name.to_string(),
        directory: directory.to_string(),
        read: kind,
        changes: summary.changes,
        last_seq: summary.last_seq,
    })
}
