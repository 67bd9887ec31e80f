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
    /// A reconcile of a flow whose target idsync serves: there is no remote state to compare
    /// the ledger with (the ledger is what the products read).
    #[error("flow {flow}: target {target} is served by idsync (type crowd): there is nothing remote to reconcile against (its ledger is the served directory); run the flow without --full")]
    NothingToReconcile { flow: String, target: String },
    /// A stop was requested (SIGTERM, Ctrl-C): the run ended after the operations in flight.
    #[error("run {run} of flow {flow} was interrupted: it stopped after the operations in flight (the next run carries on)")]
    Interrupted { flow: String, run: String },
    /// Another process runs the flow (it holds the flow's lease).
    #[error("flow {flow} is being run by another process: pid {} on host {} ({}), since {since}; this process does not run it too (wait for that run to end, or stop that process)", holder.pid, holder.host, holder.command)]
    Busy {
        flow: String,
        holder: idsync_store::Holder,
        /// When the holder took the lease, for people (UTC).
        since: String,
    },
}

impl EngineError {
    /// Whether the store could not write for lack of disk space.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, EngineError::Store(e) if e.is_disk_full())
    }
}
