//! Rate limiting and retry backoff.

use rand::Rng;
use std::time::Duration;
use tokio::time::Instant;

/// Paces the operations sent to one target (shared by every flow that writes to it): at most
/// `max_rate` per second when one is set, and slower while the target says "slow down".
///
/// Each caller reserves the next free slot and sleeps until it, so a burst is spread evenly
/// instead of being refused. A throttled answer (429 or 503 with `Retry-After`) holds every
/// caller back until the target's time, and halves the pace from what was being sent (once per
/// burst of such answers). Each operation that goes through then raises it: by 10 % while far
/// below the pace the target last refused, by 1 % close to it, back up to `max_rate` (or to no
/// limit). So a target that throttles at N requests per second is sent close to N, instead of
/// everything at once and then a second of nothing after each refusal.
#[derive(Debug)]
pub struct RateLimiter {
    /// The configured ceiling (`max_rate`), if any.
    ceiling: Option<f64>,
    pace: std::sync::Mutex<Pace>,
}

#[derive(Debug)]
struct Pace {
    /// The rate in force: the ceiling, or lower after the target throttled. None: no limit.
    rate: Option<f64>,
    /// The next free slot.
    next: Option<Instant>,
    /// Requests started in the current second and in the one before (what was being sent
    /// when the target said "slow down").
    window: Option<Instant>,
    in_window: u32,
    last_window: u32,
    /// Throttled answers until then belong to the same burst: the pace is halved once.
    calm_at: Option<Instant>,
    /// The pace the target last refused, when it was known (a paced run, not a first burst).
    refused_at: Option<f64>,
}

/// The slowest pace a throttling target brings a run down to.
const MIN_RATE: f64 = 0.5;
/// Without `max_rate`, past this pace the limit is lifted again.
const UNLIMITED_ABOVE: f64 = 2_000.0;
/// How much each operation that goes through raises the pace: far below the pace the target
/// last refused (under 3/4 of it, or when none is known), and close to it.
const GROWTH_FAR: f64 = 1.10;
const GROWTH_NEAR: f64 = 1.01;

impl Pace {
    fn count(&mut self, now: Instant) {
        match self.window {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {}
            Some(start) => {
                self.last_window = if now.duration_since(start) < Duration::from_secs(2) {
                    self.in_window
                } else {
                    0
                };
                self.window = Some(now);
                self.in_window = 0;
            }
            None => self.window = Some(now),
        }
        self.in_window = self.in_window.saturating_add(1);
    }

    /// Requests per second sent lately.
    fn sent(&self) -> f64 {
        f64::from(self.last_window.max(self.in_window))
    }
}

impl RateLimiter {
    pub fn new(per_second: f64) -> Self {
        let ceiling = (per_second > 0.0 && per_second.is_finite()).then_some(per_second);
        Self {
            ceiling,
            pace: std::sync::Mutex::new(Pace {
                rate: ceiling,
                next: None,
                window: None,
                in_window: 0,
                last_window: 0,
                calm_at: None,
                refused_at: None,
            }),
        }
    }

    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The pace in force (requests per second), None when there is no limit.
    pub fn rate(&self) -> Option<f64> {
        self.pace().rate
    }

    pub async fn acquire(&self) {
        let (slot, now) = {
            let mut p = self.pace();
            let now = Instant::now();
            p.count(now);
            let slot = match p.next {
                Some(n) if n > now => n,
                _ => now,
            };
            // Without a rate only a pause moves the next slot.
            if let Some(rate) = p.rate {
                p.next = Some(slot + Duration::from_secs_f64(1.0 / rate));
            }
            (slot, now)
        };
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
    }

    /// Push every caller back until `delay` from now (the target said Retry-After).
    pub fn pause(&self, delay: Duration) {
        let mut p = self.pace();
        let until = Instant::now() + delay;
        if p.next.is_none_or(|n| n < until) {
            p.next = Some(until);
        }
    }

    /// The target asked to slow down for `delay`: every caller waits that long, and the pace
    /// is halved from what was being sent (once per burst of throttled answers).
    pub fn throttled(&self, delay: Duration) {
        self.pause(delay);
        let mut p = self.pace();
        let now = Instant::now();
        if p.calm_at.is_some_and(|c| now < c) {
            return;
        }
        let sending = p.rate.unwrap_or(f64::INFINITY).min(p.sent().max(MIN_RATE));
        // A first burst says little of the target's pace; a paced run says what it refused.
        p.refused_at = p.rate.map(|_| sending);
        let rate = (sending / 2.0).max(MIN_RATE);
        p.rate = Some(rate);
        p.calm_at = Some(now + delay);
        tracing::info!(
            rate_per_s = rate,
            retry_after_ms = delay.as_millis() as u64,
            "the target asks to slow down: pacing operations at a lower rate"
        );
    }

    /// An operation went through: the pace grows back towards the ceiling (or no limit).
    pub fn succeeded(&self) {
        let ceiling = self.ceiling;
        let mut p = self.pace();
        let Some(rate) = p.rate else {
            return;
        };
        let near = p.refused_at.is_some_and(|r| rate >= 0.75 * r && rate < r);
        let grown = rate * if near { GROWTH_NEAR } else { GROWTH_FAR };
        if p.refused_at.is_some_and(|r| grown >= r) && !near {
            p.refused_at = None;
        }
        p.rate = match ceiling {
            Some(c) => Some(grown.min(c)),
            None if grown > UNLIMITED_ABOVE => None,
            None => Some(grown),
        };
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

    #[tokio::test]
    async fn a_throttling_target_halves_the_pace_once_per_burst_and_it_grows_back() {
        let l = RateLimiter::new(0.0);
        assert_eq!(l.rate(), None);
        for _ in 0..8 {
            l.acquire().await;
        }
        l.throttled(Duration::from_secs(1));
        assert_eq!(l.rate(), Some(4.0), "half of what was being sent");
        l.throttled(Duration::from_secs(1));
        assert_eq!(l.rate(), Some(4.0), "the same burst halves once");
        for _ in 0..200 {
            l.succeeded();
        }
        assert_eq!(l.rate(), None, "grown back to no limit");

        // With max_rate: never above it, and back to it after a refusal.
        let capped = RateLimiter::new(10.0);
        for _ in 0..3 {
            capped.acquire().await;
        }
        capped.throttled(Duration::ZERO);
        assert_eq!(capped.rate(), Some(1.5), "half of the 3 sent");
        for _ in 0..500 {
            capped.succeeded();
        }
        assert_eq!(capped.rate(), Some(10.0));
    }

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
