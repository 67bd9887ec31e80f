//! What a hostile client cannot do to the broker: start sign-ins in a loop (a token bucket per
//! address, `[sso] sign_in_rate` and `sign_in_burst`), fill the store with sign-ins in progress
//! (`max_pending_sign_ins`, counted by a bounded query at most every [`COUNT_REFRESH_MS`] and
//! kept in memory between), or guess a product's client secret at the token endpoint (failures
//! counted per address and per client id; over them, refused before the secret is checked).

use super::respond::SsoError;
use crate::limits::{RateLimit, RateLimiter};
use idsync_config::SsoConfig;
use idsync_core::Clock;
use idsync_store::Store;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// How long the count of sign-ins in progress is taken from memory before it is read again.
pub(crate) const COUNT_REFRESH_MS: i64 = 5_000;
/// The wait a refused start is told when the store is full.
pub(crate) const FULL_RETRY_AFTER_S: u64 = 60;
/// Failed client authentications an address may make at once, and per minute after.
pub(crate) const TOKEN_FAILURES_PER_ADDRESS: RateLimit = RateLimit {
    per_second: 10.0 / 60.0,
    burst: 10,
};
/// Failed authentications of one client id (from any address) at once, and per minute after:
/// more than an address's, so a guesser on one address does not lock the product out.
pub(crate) const TOKEN_FAILURES_PER_CLIENT: RateLimit = RateLimit {
    per_second: 30.0 / 60.0,
    burst: 50,
};

pub(crate) struct SignInLimits {
    /// Sign-ins started per address (None: `sign_in_rate = 0`).
    starts: Option<RateLimiter>,
    max_pending: u64,
    /// Sign-ins in progress as last counted, plus those started since.
    pending: AtomicU64,
    /// When `pending` was last read from the store (`i64::MIN`: never).
    counted_ms: AtomicI64,
    token_by_address: Option<RateLimiter>,
    token_by_client: Option<RateLimiter>,
    clock: Arc<dyn Clock>,
}

impl SignInLimits {
    pub(crate) fn new(config: &SsoConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            starts: RateLimiter::new(
                RateLimit {
                    per_second: config.sign_in_rate,
                    burst: config.sign_in_burst,
                },
                Arc::clone(&clock),
            ),
            max_pending: config.max_pending_sign_ins,
            pending: AtomicU64::new(0),
            counted_ms: AtomicI64::new(i64::MIN),
            token_by_address: RateLimiter::new(TOKEN_FAILURES_PER_ADDRESS, Arc::clone(&clock)),
            token_by_client: RateLimiter::new(TOKEN_FAILURES_PER_CLIENT, Arc::clone(&clock)),
            clock,
        }
    }

    /// Whether `peer` may start a sign-in now and the store has room for it (counted against
    /// the address's rate either way). Nothing is stored when refused.
    pub(crate) async fn admit_start(
        &self,
        store: &Store,
        peer: Option<IpAddr>,
    ) -> Result<(), SsoError> {
        if let (Some(limiter), Some(ip)) = (&self.starts, peer) {
            if let Err(retry_after_s) = limiter.take(ip.to_canonical()) {
                return Err(SsoError::TooManySignIns {
                    retry_after_s,
                    per_second: limiter.limit.per_second,
                    burst: limiter.limit.burst,
                });
            }
        }
        let now = self.clock.now_ms();
        let last = self.counted_ms.load(Ordering::Relaxed);
        let stale = last == i64::MIN || now.saturating_sub(last) >= COUNT_REFRESH_MS;
        // One request reads the count again; the others go on with the one in memory.
        if stale
            && self
                .counted_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            match store.count_sso_pending(now, self.max_pending).await {
                Ok(n) => self.pending.store(n, Ordering::Relaxed),
                Err(e) => {
                    self.counted_ms.store(last, Ordering::Relaxed);
                    return Err(e.into());
                }
            }
        }
        if self.pending.load(Ordering::Relaxed) >= self.max_pending {
            return Err(SsoError::TooManyPending {
                retry_after_s: FULL_RETRY_AFTER_S,
                max: self.max_pending,
            });
        }
        Ok(())
    }

    /// A sign-in was stored.
    pub(crate) fn started(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// When the address or the client has no failed authentications left: the seconds to
    /// wait. Takes nothing: only failures count.
    pub(crate) fn token_throttled(
        &self,
        peer: Option<IpAddr>,
        client: Option<&str>,
    ) -> Option<u64> {
        let by_address = match (&self.token_by_address, peer) {
            (Some(l), Some(ip)) => l.peek(ip.to_canonical()).err(),
            _ => None,
        };
        let by_client = match (&self.token_by_client, client) {
            (Some(l), Some(c)) => l.peek(c).err(),
            _ => None,
        };
        by_address.max(by_client)
    }

    /// A client failed to authenticate at the token endpoint.
    pub(crate) fn token_failed(&self, peer: Option<IpAddr>, client: Option<&str>) {
        if let (Some(l), Some(ip)) = (&self.token_by_address, peer) {
            let _ = l.take(ip.to_canonical());
        }
        if let (Some(l), Some(c)) = (&self.token_by_client, client) {
            let _ = l.take(c);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use idsync_core::ManualClock;

    fn limits() -> (SignInLimits, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let mut c = crate::sso::saml_keys::tests::config();
        c.sign_in_rate = 1.0;
        c.sign_in_burst = 2;
        (SignInLimits::new(&c, clock.clone()), clock)
    }

    #[tokio::test]
    async fn starts_are_limited_per_address_and_the_store_has_room_for_so_many() {
        let (mut l, clock) = limits();
        l.max_pending = 3;
        let store = Store::open_in_memory().await.unwrap();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let now = clock.now_ms();
        assert!(l.admit_start(&store, Some(a)).await.is_ok());
        assert!(l.admit_start(&store, Some(a)).await.is_ok());
        match l.admit_start(&store, Some(a)).await {
            Err(SsoError::TooManySignIns { retry_after_s, .. }) => assert_eq!(retry_after_s, 1),
            other => panic!("{other:?}"),
        }
        assert!(
            l.admit_start(&store, Some(b)).await.is_ok(),
            "another address"
        );
        // The store's count is read at most every few seconds; starts count in between.
        store
            .put_sso_pending("s1", "idp", "{}", now + 60_000)
            .await
            .unwrap();
        store
            .put_sso_pending("s2", "idp", "{}", now + 60_000)
            .await
            .unwrap();
        store
            .put_sso_pending("old", "idp", "{}", now - 1)
            .await
            .unwrap();
        clock.advance(COUNT_REFRESH_MS);
        assert!(
            l.admit_start(&store, Some(b)).await.is_ok(),
            "2 of 3, the expired not counted"
        );
        l.started();
        match l.admit_start(&store, Some(a)).await {
            Err(SsoError::TooManyPending { retry_after_s, max }) => {
                assert_eq!((retry_after_s, max), (FULL_RETRY_AFTER_S, 3))
            }
            other => panic!("{other:?}"),
        }
        store.take_sso_pending("s1", clock.now_ms()).await.unwrap();
        clock.advance(COUNT_REFRESH_MS);
        assert!(
            l.admit_start(&store, Some(b)).await.is_ok(),
            "room again once counted"
        );
    }

    #[test]
    fn token_failures_are_limited_per_address_and_per_client() {
        let (l, clock) = limits();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        for _ in 0..TOKEN_FAILURES_PER_ADDRESS.burst {
            assert_eq!(l.token_throttled(Some(a), Some("jira")), None);
            l.token_failed(Some(a), Some("jira"));
        }
        assert_eq!(
            l.token_throttled(Some(a), Some("jira")),
            Some(6),
            "10 a minute"
        );
        assert_eq!(
            l.token_throttled(Some(a), Some("confluence")),
            Some(6),
            "the address, whatever client it names"
        );
        assert_eq!(
            l.token_throttled(Some(b), Some("jira")),
            None,
            "another address"
        );
        // The client's own failures, from many addresses.
        for i in 0..(TOKEN_FAILURES_PER_CLIENT.burst - TOKEN_FAILURES_PER_ADDRESS.burst) {
            let ip: IpAddr = [198, 51, 100, (i % 250) as u8].into();
            l.token_failed(Some(ip), Some("jira"));
        }
        assert_eq!(
            l.token_throttled(Some(b), Some("jira")),
            Some(2),
            "30 a minute"
        );
        assert_eq!(l.token_throttled(Some(b), Some("confluence")), None);
        clock.advance(6_000);
        assert_eq!(
            l.token_throttled(Some(a), Some("confluence")),
            None,
            "refilled"
        );
    }
}
