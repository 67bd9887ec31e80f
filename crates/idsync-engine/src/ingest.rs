use crate::error::EngineError;
use idsync_core::{Clock, ReadStats, Source, SourceRead};
use idsync_store::{NewRun, RunCounts, RunStatus, Store};
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
    /// What the read cost (remote sources).
    pub cost: Option<ReadStats>,
    /// Time reading the source, and writing the directory.
    pub read_ms: u64,
    pub write_ms: u64,
}

/// Source reads are recorded in the run history under this name (`idsync runs` lists them
/// with their cost: requests, retries, throttling, resource units).
pub fn read_run_name(source: &str) -> String {
    format!("source:{source}")
}

fn cost_counts(changes: Option<usize>, cost: Option<ReadStats>) -> RunCounts {
    let mut c = std::collections::BTreeMap::new();
    if let Some(n) = changes {
        c.insert("changes".to_string(), i64::try_from(n).unwrap_or(i64::MAX));
    }
    if let Some(s) = cost {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        c.insert("requests".into(), n(s.requests));
        c.insert("retries".into(), n(s.retries));
        c.insert("throttled".into(), n(s.throttled));
        c.insert("resource_units".into(), n(s.resource_units));
    }
    RunCounts(c)
}

/// Users who logged in after a full read started keep what their login wrote: the read may
/// have fetched them before it, and a login is newer than anything such a read saw (the
/// source's next read brings what changed since; decision 0042). A delta read is applied as
/// read: it returns each changed object's state when it was asked, in seconds, not minutes.
async fn keep_logins(
    store: &Store,
    directory: &str,
    snapshot: &mut idsync_core::Snapshot,
    started_ms: i64,
) -> Result<(), EngineError> {
    let fresh = store.logins_since(directory, started_ms).await?;
    if fresh.is_empty() {
        return Ok(());
    }
    snapshot.users.retain(|u| !fresh.contains(&u.source_id));
    snapshot.memberships.retain(|m| {
        !(m.member.kind == idsync_core::MemberKind::User && fresh.contains(&m.member.id))
    });
    let groups: std::collections::HashSet<String> = snapshot
        .groups
        .iter()
        .map(|g| g.source_id.clone())
        .collect();
    for key in &fresh {
        let Some(stored) = store.get_user(directory, key).await? else {
            continue;
        };
        snapshot.users.push(stored.user);
        for (group, _) in store.member_of(directory, key).await? {
            if groups.contains(&group) {
                snapshot.memberships.push(idsync_core::Membership {
                    group,
                    member: idsync_core::MemberRef::user(key.clone()),
                });
            }
        }
    }
    tracing::info!(
        directory,
        users = fresh.len(),
        "users who logged in during the read keep what their login wrote"
    );
    Ok(())
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
    let before = source.stats();
    let started_ms = clock.now_ms();
    let cost = || match (before, source.stats()) {
        (Some(b), Some(a)) => Some(a.since(&b)),
        _ => None,
    };
    // The run is listed while it reads; what it was is said once the read knows.
    let guessed = if cursor.is_some() {
        "incremental"
    } else {
        "full"
    };
    let run = NewRun {
        id: uuid::Uuid::now_v7().to_string(),
        flow: read_run_name(source_name),
        trigger: "read".into(),
        mode: guessed.into(),
        started_ms,
        dry_run: false,
    };
    store.start_run(&run).await?;
    let started = std::time::Instant::now();
    let read = source.read(cursor.as_deref()).await;
    // A delta read that had to fall back to a full read (an expired or reset delta link) is
    // listed as `full`.
    if cursor.is_some() && matches!(read, Ok(SourceRead::Full { .. })) {
        store.set_run_mode(&run.id, "full").await?;
    }
    let read = match read {
        Ok(r) => r,
        Err(error) => {
            let message = error.to_string();
            store
                .finish_run(
                    &run.id,
                    RunStatus::Failed,
                    &cost_counts(None, cost()),
                    clock.now_ms(),
                    Some(&message),
                )
                .await?;
            return Err(EngineError::Source {
                source_name: source_name.to_string(),
                error,
            });
        }
    };
    let read_ms = started.elapsed().as_millis() as u64;
    let now = clock.now_ms();
    let (kind, written) = match read {
        SourceRead::Full {
            mut snapshot,
            cursor,
        } => {
            keep_logins(store, directory, &mut snapshot, started_ms).await?;
            (
                "full",
                store
                    .replace_directory(directory, source_name, &snapshot, cursor.as_deref(), now)
                    .await,
            )
        }
        SourceRead::Delta { changes, cursor } => (
            "delta",
            store
                .apply_changes(directory, source_name, &changes, Some(&cursor), now)
                .await,
        ),
    };
    let cost = cost();
    let write_ms = (started.elapsed().as_millis() as u64).saturating_sub(read_ms);
    let summary = match written {
        Ok(s) => s,
        Err(e) => {
            let message = e.to_string();
            store
                .finish_run(
                    &run.id,
                    RunStatus::Failed,
                    &cost_counts(None, cost),
                    clock.now_ms(),
                    Some(&message),
                )
                .await?;
            return Err(e.into());
        }
    };
    store
        .finish_run(
            &run.id,
            RunStatus::Succeeded,
            &cost_counts(Some(summary.changes), cost),
            clock.now_ms(),
            None,
        )
        .await?;
    tracing::info!(
        source = source_name,
        directory,
        read = kind,
        changes = summary.changes,
        last_seq = summary.last_seq,
        requests = cost.map(|c| c.requests),
        throttled = cost.map(|c| c.throttled),
        resource_units = cost.map(|c| c.resource_units),
        read_ms,
        write_ms,
        "source read"
    );
    Ok(IngestReport {
        source: source_name.to_string(),
        directory: directory.to_string(),
        read: kind,
        changes: summary.changes,
        last_seq: summary.last_seq,
        cost,
        read_ms,
        write_ms,
    })
}
