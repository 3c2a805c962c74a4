//! A small log-linear latency histogram (microsecond values, 16 sub-buckets per power of two, so a quantile is
//! within about 6 % of the true value), cheap to update per packet and to merge across tracks and clients.

use std::time::Duration;

/// Values below this many µs get a bucket each.
const LINEAR: u64 = 32;
/// Sub-buckets per power of two above [`LINEAR`].
const SUB: u64 = 16;
/// log2(SUB).
const SUB_BITS: u32 = 4;

/// Counts of latencies, for quantiles; see the module docs for the precision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

fn bucket_of(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let exp = 63 - us.leading_zeros(); // ≥ 5
    let sub = (us >> (exp - SUB_BITS)) - SUB; // 0..16
    (LINEAR + u64::from(exp - 5) * SUB + sub) as usize
}

/// The largest value (µs) that falls in `bucket`.
fn upper_bound(bucket: usize) -> u64 {
    let b = bucket as u64;
    if b < LINEAR {
        return b;
    }
    let exp = (b - LINEAR) / SUB + 5;
    let sub = (b - LINEAR) % SUB;
    let width = 1u64 << (exp - u64::from(SUB_BITS));
    ((SUB + sub) << (exp - u64::from(SUB_BITS))) + width - 1
}

impl LatencyHistogram {
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let b = bucket_of(us);
        if self.counts.len() <= b {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The samples recorded since `earlier`, a previous copy of this histogram (the maximum stays the
    /// overall one, since it cannot be taken apart).
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        let mut counts = self.counts.clone();
        for (mine, old) in counts.iter_mut().zip(&earlier.counts) {
            *mine = mine.saturating_sub(*old);
        }
        LatencyHistogram {
            total: counts.iter().sum(),
            counts,
            max_us: self.max_us,
        }
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0.0–1.0), reported as the upper edge of its bucket (never above the maximum seen);
    /// `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_micros(upper_bound(b).min(self.max_us)));
            }
        }
        Some(Duration::from_micros(self.max_us))
    }

    /// The largest sample.
    pub fn max(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_micros(self.max_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bound_their_values() {
        let mut last = None;
        for us in (0..5000).chain([65_535, 1 << 20, 123_456_789]) {
            let b = bucket_of(us);
            assert!(upper_bound(b) >= us, "{us} in bucket {b}");
            assert!(b == 0 || upper_bound(b - 1) < us, "{us} belongs lower");
            if let Some(prev) = last {
                assert!(b >= prev, "monotonic");
            }
            last = Some(b);
        }
        // Relative error stays within 1/16.
        for us in [100u64, 999, 1500, 20_000, 3_000_000] {
            let ub = upper_bound(bucket_of(us));
            assert!((ub - us) as f64 <= us as f64 / 16.0, "{us} → {ub}");
        }
    }

    #[test]
    fn quantiles_and_merge() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).expect("samples");
        let p99 = h.quantile(0.99).expect("samples");
        assert!(
            p50 >= Duration::from_millis(50) && p50 <= Duration::from_millis(54),
            "{p50:?}"
        );
        assert!(
            p99 >= Duration::from_millis(99) && p99 <= Duration::from_millis(100),
            "{p99:?}"
        );
        assert_eq!(h.quantile(1.0), Some(Duration::from_millis(100)));
        let mut other = LatencyHistogram::default();
        other.record(Duration::from_secs(2));
        h.merge(&other);
        assert_eq!(h.count(), 101);
        let before = h.clone();
        h.record(Duration::from_millis(7));
        let recent = h.since(&before);
        assert_eq!(recent.count(), 1);
        assert_eq!(recent.quantile(0.5).map(|d| d.as_millis()), Some(7));
        assert_eq!(h.max(), Some(Duration::from_secs(2)));
        let p0 = h.quantile(0.0).expect("samples");
        assert!(
            p0 >= Duration::from_millis(1) && p0 < Duration::from_micros(1070),
            "{p0:?}"
        );
    }
}
