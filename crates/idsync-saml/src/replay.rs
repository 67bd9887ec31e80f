//! What the service provider remembers between messages: the requests it sent (so a response
//! answers one of them, once) and the assertions it accepted (so none is accepted twice). Traits,
//! so the server can keep them in its store; in-memory implementations with expiry and a bound.
//! Time is always a parameter.

use std::collections::HashMap;

use time::OffsetDateTime;

use crate::error::SamlError;

/// Assertion IDs already accepted, each until the assertion would have expired anyway.
pub trait ReplayCache {
    /// Records `assertion_id` as used until `expires_at`; [`SamlError::Replay`] when it was
    /// already recorded and has not expired.
    fn record(
        &mut self,
        assertion_id: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), SamlError>;
}

/// The AuthnRequests sent and not answered yet.
pub trait SentRequests {
    /// Takes the pending request `request_id` (it can be answered once): `false` when it was
    /// never sent, was already answered, or has expired.
    fn take(&mut self, request_id: &str, now: OffsetDateTime) -> bool;
}

/// A bounded map of ids to their expiry, purged of expired entries as it fills.
#[derive(Debug, Clone)]
struct ExpiringSet {
    entries: HashMap<String, OffsetDateTime>,
    capacity: usize,
}

impl ExpiringSet {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    fn live(&self, id: &str, now: OffsetDateTime) -> bool {
        self.entries.get(id).is_some_and(|expiry| *expiry > now)
    }

    /// Inserts unless full of unexpired entries.
    fn insert(&mut self, id: &str, expires_at: OffsetDateTime, now: OffsetDateTime) -> bool {
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, expiry| *expiry > now);
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(id) {
            return false;
        }
        self.entries.insert(id.to_owned(), expires_at);
        true
    }
}

/// [`ReplayCache`] in memory, holding at most `capacity` unexpired ids (a full cache refuses
/// logins rather than forget an id).
#[derive(Debug, Clone)]
pub struct MemoryReplayCache {
    set: ExpiringSet,
}

impl MemoryReplayCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            set: ExpiringSet::new(capacity),
        }
    }
}

impl ReplayCache for MemoryReplayCache {
    fn record(
        &mut self,
        assertion_id: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), SamlError> {
        if self.set.live(assertion_id, now) {
            return Err(SamlError::Replay(assertion_id.to_owned()));
        }
        if !self.set.insert(assertion_id, expires_at, now) {
            return Err(SamlError::ReplayCacheFull {
                capacity: self.set.capacity,
            });
        }
        Ok(())
    }
}

/// [`SentRequests`] in memory: each request pending until its expiry, at most `capacity` of them
/// (when full of unexpired ones, [`MemorySentRequests::insert`] answers `false`).
#[derive(Debug, Clone)]
pub struct MemorySentRequests {
    set: ExpiringSet,
}

impl MemorySentRequests {
    pub fn new(capacity: usize) -> Self {
        Self {
            set: ExpiringSet::new(capacity),
        }
    }

    /// Remembers a request sent (its ID) until `expires_at`.
    pub fn insert(
        &mut self,
        request_id: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> bool {
        self.set.insert(request_id, expires_at, now)
    }
}

impl SentRequests for MemorySentRequests {
    fn take(&mut self, request_id: &str, now: OffsetDateTime) -> bool {
        let live = self.set.live(request_id, now);
        self.set.entries.remove(request_id);
        live
    }
}
