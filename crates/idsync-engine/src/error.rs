use idsync_core::{SourceError, TargetError};
use idsync_store::StoreError;

/// Errors of a run or an ingest as a whole. Failures of single operations are not errors: they
/// are recorded per operation in the provisioning log.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("source {source_name}: {error}")]
    Source {
        source_name: String,
        #[source]
        error: SourceError,
    },
    #[error("target {target}: {error}")]
    Target {
        target: String,
        #[source]
        error: TargetError,
    },
    #[error("no flow named {0:?}")]
    UnknownFlow(String),
    #[error("no source named {0:?}")]
    UnknownSource(String),
    #[error("no run with id {0:?}")]
    UnknownRun(String),
    #[error("no user {query:?} in directory {directory} (give its userName, email or source id)")]
    UnknownUser { directory: String, query: String },
    #[error("run {run} is not waiting for approval: {why}")]
    NotHeld { run: String, why: String },
    #[error("{0}")]
    Setup(String),
}
