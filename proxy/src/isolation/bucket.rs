//! The token bucket of a local rate limit: `max_tokens` to start with, `tokens_per_fill` more
//! every `fill_interval`, never above `max_tokens`; a request takes one token or is refused.
//! Time is an argument, so the arithmetic is tested without clocks.

use std::time::{Duration, Instant};

/// What a bucket is: size and refill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct BucketSpec {
    /// Size, and the initial content.
    pub max_tokens: u32,
    /// Tokens added per interval.
    pub tokens_per_fill: u32,
    /// The refill interval (at least 1 ms, as the rules validate).
    pub fill_interval: Duration,
}

/// A bucket's content.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    spec: BucketSpec,
    tokens: u64,
    /// When the last whole interval ended: partial intervals carry over, so a steady caller
    /// gets exactly the configured rate.
    filled_at: Instant,
}

// === impl TokenBucket ===

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(spec: BucketSpec, now: Instant) -> Self {
        Self {
            spec,
            tokens: u64::from(spec.max_tokens),
            filled_at: now,
        }
    }

    /// The bucket's spec.
    pub fn spec(&self) -> BucketSpec {
        self.spec
    }

    /// Takes a token if there is one at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    fn refill(&mut self, now: Instant) {
        let interval = self.spec.fill_interval.max(Duration::from_nanos(1));
        let elapsed = now.saturating_duration_since(self.filled_at);
        let intervals = elapsed.as_nanos() / interval.as_nanos();
        if intervals == 0 {
            return;
        }
        let max = u64::from(self.spec.max_tokens);
        let added = intervals.saturating_mul(u128::from(self.spec.tokens_per_fill));
        self.tokens = u64::try_from(u128::from(self.tokens).saturating_add(added))
            .unwrap_or(u64::MAX)
            .min(max);
        if self.tokens == max {
            // Full: time spent full earns nothing, so restart the interval now.
            self.filled_at = now;
        } else {
            // `intervals` × `interval` ≤ `elapsed`, so it fits a Duration.
            let whole =
                u64::try_from(intervals.saturating_mul(interval.as_nanos())).unwrap_or(u64::MAX);
            self.filled_at += Duration::from_nanos(whole);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(max_tokens: u32, tokens_per_fill: u32, millis: u64) -> BucketSpec {
        BucketSpec {
            max_tokens,
            tokens_per_fill,
            fill_interval: Duration::from_millis(millis),
        }
    }

    #[test]
    fn starts_full_and_refuses_when_empty() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(spec(3, 1, 1000), t0);
        assert!((0..3).all(|_| bucket.try_take(t0)));
        assert!(!bucket.try_take(t0));
        assert!(!bucket.try_take(t0 + Duration::from_millis(999)));
        assert!(bucket.try_take(t0 + Duration::from_millis(1000)));
        assert!(!bucket.try_take(t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn refills_per_interval_up_to_the_size() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(spec(10, 4, 100), t0);
        assert!((0..10).all(|_| bucket.try_take(t0)));
        // Two and a half intervals: 8 tokens, the half interval carries over.
        let t1 = t0 + Duration::from_millis(250);
        assert_eq!((0..20).filter(|_| bucket.try_take(t1)).count(), 8);
        let t2 = t0 + Duration::from_millis(300);
        assert_eq!((0..20).filter(|_| bucket.try_take(t2)).count(), 4);
        // A long pause fills it to the size only.
        let t3 = t2 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| bucket.try_take(t3)).count(), 10);
    }

    #[test]
    fn a_steady_caller_gets_the_configured_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(spec(1, 1, 10), t0);
        // One attempt per millisecond for a second: 1 initial token + 100 refills.
        let granted = (0..1000)
            .filter(|ms| bucket.try_take(t0 + Duration::from_millis(*ms)))
            .count();
        assert_eq!(granted, 100);
    }
}
