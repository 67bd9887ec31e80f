//! The idsync engine: reads sources into directories, plans and applies flows, keeps the sync
//! history and provisioning log, and schedules runs (per-source intervals, manual triggers, and
//! incremental runs that follow the change log).

mod apply;
mod bamboo_target;
mod bitbucket_target;
mod confluence_target;
mod error;
mod execute;
mod forms;
mod holds;
mod id_forms;
mod inactive;
mod ingest;
mod jira_target;
mod login;
mod memory;
mod metrics;
mod notify;
mod pacing;
mod progress;
mod run;
mod runtime;
mod same_failure;
mod seats;
mod served;
mod service;
mod slice;

pub use error::EngineError;
pub use ingest::{ingest, read_run_name, IngestReport};
pub use login::{FlowLogin, FlowRun, Login, LoginDecision, LoginError, LoginOutcome, LoginSource};
pub use memory::FlowMemory;
pub use metrics::{escape as escape_label, Metrics};
pub use notify::{signature as webhook_signature, Notice, Notifier};
pub use pacing::{Backoff, RateLimiter};
pub use progress::{NoProgress, Progress};
pub use run::{run_flow, FlowSpec, Mode, RunContext, RunOptions, RunReport, Stop, Trigger};
pub use runtime::{
    graph_source, quarantine_backoff_ms, CrowdEntry, FlowEntry, Provisioned, Runtime, SourceEntry,
    TargetEntry, QUARANTINE_AFTER,
};
pub use served::ServedTarget;
pub use service::Service;
