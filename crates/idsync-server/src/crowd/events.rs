//! The event feed of each crowd target, kept in memory as the crate's `EventLog` and brought
//! up to date from the store (where the engine writes events with the ledger).

use idsync_crowd::event::MAX_EVENTS_PER_ANSWER;
use idsync_crowd::{Event, EventLog};
use idsync_store::{EventLogHead, Store, StoreError};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Events read from the store per query.
const PAGE: i64 = 5_000;
/// The events kept in memory at least.
const WINDOW: i64 = MAX_EVENTS_PER_ANSWER as i64;

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
        // Only the last MAX_EVENTS_PER_ANSWER events can answer a token (one with more events
        // after it has expired anyway): the log in memory starts there, and starts again
        // there once it holds twice as many.
        let start = head.first_seq.max(head.last_seq.saturating_sub(WINDOW) + 1);
        let (mut log, from) = match kept.take() {
            Some((h, log))
                if h.epoch == head.epoch
                    && h.first_seq == head.first_seq
                    && (log.len() as i64).saturating_add(head.last_seq - h.last_seq)
                        <= 2 * WINDOW =>
            {
                if h.last_seq == head.last_seq {
                    let out = Arc::clone(&log);
                    *kept = Some((h, log));
                    return Ok(out);
                }
                let from = h.last_seq;
                (log, from)
            }
            _ => (
                Arc::new(EventLog::new(head.epoch.clone(), start)),
                start - 1,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use idsync_store::ServedEvents;

    async fn append(store: &Store, n: usize) {
        let event = serde_json::to_string(&Event::GroupDeleted { name: "g".into() }).unwrap();
        let served = ServedEvents {
            target: "dc",
            at_ms: 1,
            events: vec![event; n],
        };
        store
            .record_ops_served("f", "r", &[], Some(&served))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_feed_keeps_the_events_a_token_can_be_answered_with() {
        let store = Store::open_in_memory().await.unwrap();
        store.register_flow("f", "d").await.unwrap();
        let feed = Feed::default();
        let log = feed.current(&store, "dc", "f").await.unwrap();
        let first = log.current_token();
        append(&store, 3).await;
        let log = feed.current(&store, "dc", "f").await.unwrap();
        assert_eq!(log.since(&first).unwrap().events.len(), 3);
        // Read again: only what is new.
        append(&store, 2).await;
        let log = feed.current(&store, "dc", "f").await.unwrap();
        assert_eq!(log.len(), 5);
        assert_eq!(log.since(&first).unwrap().events.len(), 5);

        // Many more: the log in memory stays within two answers' worth, and a token with more
        // events after it than one answer expires.
        append(&store, 2 * MAX_EVENTS_PER_ANSWER + 7).await;
        let log = feed.current(&store, "dc", "f").await.unwrap();
        assert!(log.len() <= 2 * MAX_EVENTS_PER_ANSWER, "{}", log.len());
        assert!(log.since(&first).is_err());
        let now = log.current_token();
        append(&store, 1).await;
        let log = feed.current(&store, "dc", "f").await.unwrap();
        assert_eq!(log.since(&now).unwrap().events.len(), 1);
    }
}
