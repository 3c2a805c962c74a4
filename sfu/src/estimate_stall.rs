//! Noticing a downlink estimate that stopped growing while the subscriber wants more, so that the worker can
//! restart the estimator's probing ([`str0m::bwe::Bwe::reset`] from the current estimate).
//!
//! str0m grows an estimate mostly by probing. Its probe controller drops a probe it cannot send at that moment
//! (while the delay-based detector or the loss controller holds the estimate) and never replays it. A
//! subscriber that asked for a higher layer then stays on the low one: seen in the browser simulcast test, where
//! the estimate sat at the allocator's 300 kbit/s floor for 30 s after the viewer asked for high quality. A reset
//! starts estimation again from the current estimate (so the rate does not jump) with the startup probes at 3×
//! and 6× of it, which find the capacity within a second or two when it is there, and cost a few packets when
//! it is not.

use std::time::{Duration, Instant};

/// How long the estimate may stay without growing while the subscriber wants more, before probing restarts.
pub const STALL_AFTER: Duration = Duration::from_secs(4);

/// The least time between two restarts for one subscriber (a link that is really full gets a few probes a
/// minute, as libwebrtc's periodic probing would send).
pub const RESTART_EVERY: Duration = Duration::from_secs(10);

/// Growth that counts as progress: the estimate rose by this fraction since the stall began.
const PROGRESS: f64 = 0.10;

/// One subscriber connection's view of its estimate's progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct EstimateStall {
    /// Since when the subscriber has wanted more than the estimate allows, and the estimate then.
    since: Option<(Instant, u64)>,
    last_restart: Option<Instant>,
}

impl EstimateStall {
    /// Called on each allocation: whether probing should restart now. `estimate` is the raw estimate (None
    /// without congestion feedback); `short` is whether the allocation falls short of what is wanted.
    pub fn check(&mut self, now: Instant, estimate: Option<u64>, short: bool) -> bool {
        let Some(estimate) = estimate.filter(|_| short) else {
            self.since = None;
            return false;
        };
        let (since, at) = *self.since.get_or_insert((now, estimate));
        if estimate as f64 >= at as f64 * (1.0 + PROGRESS) {
            // Growing: the estimator is finding capacity by itself; measure the stall from here.
            self.since = Some((now, estimate));
            return false;
        }
        let stalled = now.saturating_duration_since(since) >= STALL_AFTER;
        let allowed = self
            .last_restart
            .is_none_or(|t| now.saturating_duration_since(t) >= RESTART_EVERY);
        if stalled && allowed {
            self.last_restart = Some(now);
            self.since = Some((now, estimate));
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn a_flat_estimate_with_unmet_demand_restarts_after_the_stall_time_then_at_most_every_interval()
    {
        let t0 = Instant::now();
        let mut s = EstimateStall::default();
        assert!(!s.check(t0, Some(250_000), true));
        assert!(!s.check(at(t0, 3_999), Some(240_000), true));
        assert!(
            s.check(at(t0, 4_000), Some(250_000), true),
            "stalled for 4 s"
        );
        // Still flat: not again before the interval, and again after it.
        assert!(!s.check(at(t0, 8_000), Some(250_000), true));
        assert!(!s.check(at(t0, 13_999), Some(250_000), true));
        assert!(s.check(at(t0, 14_000), Some(250_000), true));
    }

    #[test]
    fn a_growing_estimate_or_met_demand_is_no_stall() {
        let t0 = Instant::now();
        let mut s = EstimateStall::default();
        assert!(!s.check(t0, Some(250_000), true));
        // +10 % every 3 s: progress, never a restart.
        let mut e = 250_000.0;
        for step in 1..=5 {
            e *= 1.1;
            assert!(!s.check(at(t0, step * 3_000), Some(e as u64), true));
        }
        // Demand met for a moment: the stall starts over.
        let mut s = EstimateStall::default();
        assert!(!s.check(t0, Some(250_000), true));
        assert!(!s.check(at(t0, 3_000), Some(250_000), false));
        assert!(!s.check(at(t0, 6_000), Some(250_000), true));
        assert!(!s.check(at(t0, 9_999), Some(250_000), true));
        assert!(s.check(at(t0, 10_000), Some(250_000), true));
    }

    #[test]
    fn without_an_estimate_nothing_restarts() {
        let t0 = Instant::now();
        let mut s = EstimateStall::default();
        for ms in [0, 5_000, 20_000] {
            assert!(!s.check(at(t0, ms), None, true));
        }
    }
}
