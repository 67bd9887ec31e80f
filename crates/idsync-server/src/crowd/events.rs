//! The event feed of each crowd target, kept in memory as the crate's `EventLog` and brought
//! up to date from the store (where the engine writes events with the ledger).

use idsync_crowd::{Event, EventLog};
use idsync_store::{EventLogHead, Store, StoreError};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Events read from the store per query.
const PAGE: i64 = 5_000;

/// One target's feed.
#[derive(Default)]
pub struct Feed {
    kept: Mutex<Option<(EventLogHead, Arc<EventLog>)>>,
}

impl Feed {
    /// The feed as the store has it now: a restarted log (new epoch) or purged events (the
    /// first position moved) are loaded afresh; otherwise only the new events are read.
    pub async fn current(
        &self,
        store: &Store,
        target: &str,
        flow: &str,
    ) -> Result<Arc<EventLog>, StoreError> {
        let head = store.crowd_event_log(target, flow).await?;
        let mut kept = self.kept.lock().await;
        let (mut log, from) = match kept.take() {
            Some((h, log)) if h.epoch == head.epoch && h.first_seq == head.first_seq => {
                if h.last_seq == head.last_seq {
                    let out = Arc::clone(&log);
                    *kept = Some((h, log));
                    return Ok(out);
                }
                let from = h.last_seq;
                (log, from)
            }
            _ => (
                Arc::new(EventLog::new(head.epoch.clone(), head.first_seq)),
                head.first_seq - 1,
            ),
        };
        let appending = Arc::make_mut(&mut log);
        let mut after = from;
        loop {
            let page = store.crowd_events_after(target, after, PAGE).await?;
            let n = page.len();
            for (seq, data) in page {
                after = seq;
                match serde_json::from_str::<Event>(&data) {
                    Ok(e) => appending.push(seq, e),
                    Err(e) => {
                        tracing::error!(target, seq, error = %e, "an event of the feed cannot be read: skipped");
                    }
                }
            }
            if n < PAGE as usize {
                break;
            }
        }
        // Events are written with the head's position in one transaction: what was read is
        // at least what the head said.
        let head = EventLogHead {
            last_seq: after,
            ..head
        };
        let out = Arc::clone(&log);
        *kept = Some((head, log));
        Ok(out)
    }
}
