//! A token bucket: how many messages (or bytes) a sender may send, refilled at a steady rate.
//!
//! Owns the arithmetic only; the caller supplies the clock.

use std::time::Instant;

/// Allows `rate` units per second on average and bursts of up to `burst` units.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket. A `rate` of zero means unlimited.
    pub fn new(rate: u64, burst: u64) -> Self {
        TokenBucket {
            rate: rate as f64,
            burst: burst.max(1) as f64,
            tokens: burst.max(1) as f64,
            last: None,
        }
    }

    /// Takes `n` units if there are that many; returns whether it did. A request larger than the whole burst
    /// is allowed when the bucket is full (and empties it), so a burst smaller than one message never blocks
    /// every message.
    pub fn take(&mut self, now: Instant, n: u64) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        }
        self.last = Some(now);
        let n = n as f64;
        if self.tokens >= n || self.tokens >= self.burst {
            self.tokens -= n.min(self.tokens);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 20);
        assert!((0..20).all(|_| b.take(t0, 1)));
        assert!(!b.take(t0, 1), "the burst is spent");
        // A tenth of a second refills one token.
        assert!(b.take(t0 + Duration::from_millis(100), 1));
        assert!(!b.take(t0 + Duration::from_millis(100), 1));
        // Refill never exceeds the burst.
        let later = t0 + Duration::from_secs(60);
        assert!((0..20).all(|_| b.take(later, 1)));
        assert!(!b.take(later, 1));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(0, 0);
        assert!((0..10_000).all(|_| b.take(t0, 1_000_000)));
    }

    #[test]
    fn an_oversized_request_passes_only_on_a_full_bucket() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, 100);
        assert!(
            b.take(t0, 500),
            "a full bucket lets one big request through"
        );
        assert!(!b.take(t0, 500));
        assert!(
            !b.take(t0 + Duration::from_millis(500), 500),
            "half full is not enough"
        );
        assert!(b.take(t0 + Duration::from_secs(1), 500));
    }
}
