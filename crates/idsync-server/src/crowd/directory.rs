//! The served directory of each crowd target: built once from its flow's ledger off the async
//! threads, then following the ledger in place (issue 17): what changed since the version it
//! was built at (the store's notes, written with the ledger) is applied to it, in time
//! proportional to the change. It is built again, the old one dropped first so that two are
//! never held at once, only when the notes cannot say (first build, ledger replaced, a write
//! too large to follow, names that differ only by case).

use idsync_core::LedgerState;
use idsync_crowd::directory::Change;
use idsync_crowd::Directory;
use idsync_store::{LedgerDelta, Store, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedRwLockReadGuard, RwLock};

/// A directory and the ledger version it answers for.
pub struct Built {
    pub version: i64,
    pub dir: Directory,
}

/// A read of the served directory (none while it is first built or built again).
pub type Reading = OwnedRwLockReadGuard<Option<Built>>;

/// One target's directory.
#[derive(Default)]
pub struct DirectoryCache {
    served: Arc<RwLock<Option<Built>>>,
    /// One update at a time.
    updating: Mutex<()>,
    /// Set while the directory is built from the whole ledger.
    rebuilding: AtomicBool,
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("updating the served directory failed: {e}"))
}

impl DirectoryCache {
    /// The directory of `flow`'s ledger as it is now: the served one, brought up to the
    /// ledger's version first when the ledger moved (one request updates; the others wait).
    pub async fn current(&self, store: &Store, flow: &str) -> Result<Reading, StoreError> {
        let version = store.ledger_version(flow).await?;
        {
            let r = Arc::clone(&self.served).read_owned().await;
            if r.as_ref().is_some_and(|b| b.version >= version) {
                return Ok(r);
            }
        }
        let _one = self.updating.lock().await;
        let built = self.served.read().await.as_ref().map(|b| b.version);
        match built {
            Some(v) if v >= version => {}
            Some(v) => self.follow(store, flow, v).await?,
            None => self.rebuild(store, flow, "first build").await?,
        }
        Ok(Arc::clone(&self.served).read_owned().await)
    }

    /// The served directory as it is, without bringing it up to date and without waiting
    /// for a build (None then): for answers that need no directory, or only to name
    /// managers (`event/{token}`).
    pub async fn as_is(&self) -> Option<Reading> {
        if self.rebuilding.load(Ordering::Acquire) {
            return None;
        }
        // An update in place holds the lock for milliseconds; a build sets `rebuilding` first.
        match Arc::clone(&self.served).try_read_owned() {
            Ok(r) => Some(r),
            Err(_) if !self.rebuilding.load(Ordering::Acquire) => {
                Some(Arc::clone(&self.served).read_owned().await)
            }
            Err(_) => None,
        }
    }

    /// Apply what changed since version `since` in place, or build again when the notes
    /// cannot say.
    async fn follow(&self, store: &Store, flow: &str, since: i64) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let Some(delta) = store.crowd_ledger_delta(flow, since).await? else {
            return self
                .rebuild(store, flow, "the ledger's notes cannot say what changed")
                .await;
        };
        let version = delta.version;
        let n = delta.len();
        let changes = changes_of(delta);
        let w = Arc::clone(&self.served).write_owned().await;
        let (w, applied) = tokio::task::spawn_blocking(move || {
            let mut w = w;
            let applied = match w.as_mut() {
                Some(b) => b.dir.apply(changes).map(|()| b.version = version),
                None => Err(idsync_crowd::directory::NeedsRebuild(
                    "nothing is built".into(),
                )),
            };
            (w, applied)
        })
        .await
        .map_err(failed)?;
        match applied {
            Ok(()) => {
                tracing::info!(
                    flow,
                    ledger_version = version,
                    changes = n,
                    ms = started.elapsed().as_millis() as u64,
                    "served crowd directory updated in place"
                );
                Ok(())
            }
            Err(e) => {
                // Let the reads queued behind the update through first.
                drop(w);
                self.rebuild(store, flow, &e.0).await
            }
        }
    }

    /// Build the directory from the whole ledger; the old one is dropped first.
    async fn rebuild(&self, store: &Store, flow: &str, why: &str) -> Result<(), StoreError> {
        // Said before the lock is asked for: reads that can do without the directory do not
        // queue behind the build.
        self.rebuilding.store(true, Ordering::Release);
        let built = async {
            let mut w = Arc::clone(&self.served).write_owned().await;
            *w = None;
            let started = std::time::Instant::now();
            // The version first: a write in between is applied again by the next update
            // (applying a change twice is harmless), never missed.
            let version = store.ledger_version(flow).await?;
            let ledger = store.load_ledger(flow).await?;
            let dir = tokio::task::spawn_blocking(move || build(ledger))
                .await
                .map_err(failed)?;
            if !dir.conflicts().is_empty() {
                tracing::warn!(flow, conflicts = ?dir.conflicts(), "names that differ only by case: one of each is served");
            }
            tracing::info!(
                flow,
                ledger_version = version,
                why,
                users = dir.users().len(),
                groups = dir.groups().len(),
                memberships = dir.membership_count(),
                ms = started.elapsed().as_millis() as u64,
                "served crowd directory built"
            );
            *w = Some(Built { version, dir });
            Ok(())
        }
        .await;
        self.rebuilding.store(false, Ordering::Release);
        built
    }
}

/// The store's delta as the directory's changes.
fn changes_of(delta: LedgerDelta) -> Vec<Change> {
    let mut out = Vec::with_capacity(delta.len());
    for (key, user, restarted) in delta.users {
        out.push(Change::User {
            key,
            user,
            restarted,
        });
    }
    for (key, group, restarted) in delta.groups {
        out.push(Change::Group {
            key,
            group,
            restarted,
        });
    }
    for (group, user, member) in delta.members {
        out.push(Change::Member {
            group,
            user,
            member,
        });
    }
    out
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
