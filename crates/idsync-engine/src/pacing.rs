//! Rate limiting and retry backoff.

use rand::Rng;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Paces operations to at most `per_second` (0 or less: unlimited). Each caller reserves the
/// next free slot and sleeps until it, so a burst is spread evenly instead of being refused.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(per_second: f64) -> Self {
        let interval = (per_second > 0.0 && per_second.is_finite())
            .then(|| Duration::from_secs_f64(1.0 / per_second));
        Self {
            interval,
            next: Mutex::new(None),
        }
    }

    pub async fn acquire(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = match *next {
                Some(n) if n > now => n,
                _ => now,
            };
            *next = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Push every caller back until `delay` from now (the target said Retry-After).
    pub async fn pause(&self, delay: Duration) {
        let mut next = self.next.lock().await;
        let until = Instant::now() + delay;
        if next.is_none_or(|n| n < until) {
            *next = Some(until);
        }
    }
}

/// Exponential backoff with full jitter, capped; a Retry-After from the target wins when longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub max_retries: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            max_retries: 5,
            base: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1-based).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max);
        let jittered = if exp.is_zero() {
            exp
        } else {
            let nanos = u64::try_from(exp.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(rand::thread_rng().gen_range(nanos / 2..=nanos))
        };
        match retry_after {
            Some(ra) if ra > jittered => ra.min(self.max.max(ra)),
            _ => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let b = Backoff {
            max_retries: 5,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let d1 = b.delay(1, None);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d4 = b.delay(4, None);
            assert!(d4 >= Duration::from_millis(400) && d4 <= Duration::from_millis(800));
            assert!(b.delay(30, None) <= Duration::from_secs(1));
        }
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }
}
