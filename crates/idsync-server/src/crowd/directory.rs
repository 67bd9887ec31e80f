//! The served directory of each crowd target: built from its flow's ledger off the async
//! threads, and kept until the ledger's version moves (every ledger write bumps it).

use idsync_core::LedgerState;
use idsync_crowd::Directory;
use idsync_store::{Store, StoreError};
use std::sync::Arc;
use tokio::sync::Mutex;

/// One target's directory, by the ledger version it was built from.
#[derive(Default)]
pub struct DirectoryCache {
    built: Mutex<Option<(i64, Arc<Directory>)>>,
}

impl DirectoryCache {
    /// The directory of `flow`'s ledger as it is now: the kept one while the ledger's version
    /// has not moved, else built again (one request builds; the others wait for it).
    pub async fn current(&self, store: &Store, flow: &str) -> Result<Arc<Directory>, StoreError> {
        let version = store.ledger_version(flow).await?;
        let mut built = self.built.lock().await;
        if let Some((v, dir)) = built.as_ref() {
            if *v == version {
                return Ok(Arc::clone(dir));
            }
        }
        let started = std::time::Instant::now();
        // Read the version with the ledger: a write in between makes the next request build
        // again, never serve a stale directory as current.
        let ledger = store.load_ledger(flow).await?;
        let dir = tokio::task::spawn_blocking(move || build(ledger))
            .await
            .map_err(|e| {
                StoreError::Invalid(format!("building the served directory failed: {e}"))
            })?;
        if !dir.conflicts().is_empty() {
            tracing::warn!(flow, conflicts = ?dir.conflicts(), "names that differ only by case: one of each is served");
        }
        tracing::info!(
            flow,
            ledger_version = version,
            users = dir.users().len(),
            groups = dir.groups().len(),
            memberships = dir.membership_count(),
            ms = started.elapsed().as_millis() as u64,
            "served crowd directory built"
        );
        let dir = Arc::new(dir);
        *built = Some((version, Arc::clone(&dir)));
        Ok(dir)
    }
}

/// The Crowd directory of a ledger: users and groups by ledger key, the flow's user
/// memberships and its group-in-group memberships (nested groups, decision 0033; a flat
/// target's ledger has none and its user memberships are the effective ones).
fn build(ledger: LedgerState) -> Directory {
    let members: Vec<(String, String)> = ledger
        .members
        .iter()
        .flat_map(|(g, users)| users.iter().map(move |u| (g.clone(), u.to_string())))
        .collect();
    let child_groups: Vec<(String, String)> = ledger
        .child_groups
        .iter()
        .flat_map(|(g, children)| children.iter().map(move |c| (g.clone(), c.clone())))
        .collect();
    let users = ledger.users.into_iter().map(|(k, u)| (k, u.user)).collect();
    let groups = ledger
        .groups
        .into_iter()
        .map(|(k, g)| (k, g.group))
        .collect();
    Directory::build(users, groups, members, child_groups)
}
