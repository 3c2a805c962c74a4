//! Fixed-bucket histograms a worker counts into, and their atomic mirror for scrapes.
//!
//! Like the counters in `stats.rs`: the worker thread observes into a plain [`Histogram`] (a bucket search and
//! two adds, no allocation), the I/O loop copies its [`WorkerHistograms`] into atomics a few times a second, and
//! a scrape reads them whenever it likes. The bucket bounds are fixed here, so every worker's histograms add up.
//! This file owns the bounds and the counting; metric names and rendering belong to the server.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::quality::QualityReport;

/// Most finite bounds a histogram may have.
pub const MAX_BUCKETS: usize = 12;

/// Round-trip time, seconds.
pub const RTT_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0,
];
/// Interarrival jitter, seconds.
pub const JITTER_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2,
];
/// Fraction of packets lost; the first bucket holds the seconds without any loss.
pub const LOSS_BOUNDS: &[f64] = &[0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];
/// MOS-style score (1–4.5).
pub const MOS_BOUNDS: &[f64] = &[1.5, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.3, 4.4];
/// Forwarding latency inside the worker, seconds (50 µs to 50 ms; fine around the 2 ms target).
pub const LATENCY_BOUNDS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.0025, 0.005, 0.01, 0.025, 0.05,
];

/// How late a worker ran its connections' timers, seconds (100 µs to 100 ms: the slack is 1 or 8 ms by
/// design, and more means the worker is busy).
pub const TIMER_LATENESS_BOUNDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
];

/// Counts of observations per bucket, and their sum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// `counts[i]` holds observations in `(bounds[i-1], bounds[i]]`; `counts[bounds.len()]` those above the last
    /// bound.
    counts: [u64; MAX_BUCKETS + 1],
    sum: f64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending, at most [`MAX_BUCKETS`]).
    pub const fn new(bounds: &'static [f64]) -> Self {
        assert!(bounds.len() <= MAX_BUCKETS, "too many buckets");
        Histogram {
            bounds,
            counts: [0; MAX_BUCKETS + 1],
            sum: 0.0,
        }
    }

    /// Counts `value`; NaN is ignored.
    pub fn observe(&mut self, value: f64) {
        if value.is_nan() {
            return;
        }
        let i = self.bounds.partition_point(|b| *b < value);
        self.counts[i] += 1;
        self.sum += value;
    }

    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// `(upper bound, observations ≤ it)` for every finite bound, ascending.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.bounds.iter().zip(&self.counts).scan(0, |acc, (b, c)| {
            *acc += c;
            Some((*b, *acc))
        })
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Adds `other`'s observations (the same bounds: another worker's copy of the same histogram).
    pub fn accumulate(&mut self, other: &Histogram) {
        debug_assert_eq!(self.bounds, other.bounds);
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
    }
}

/// The atomic mirror of a [`Histogram`], written by one worker thread.
#[derive(Debug, Default)]
struct AtomicHistogram {
    counts: [AtomicU64; MAX_BUCKETS + 1],
    sum_bits: AtomicU64,
}

impl AtomicHistogram {
    fn store(&self, h: &Histogram) {
        for (a, c) in self.counts.iter().zip(&h.counts) {
            a.store(*c, Ordering::Relaxed);
        }
        self.sum_bits.store(h.sum.to_bits(), Ordering::Relaxed);
    }

    fn load(&self, bounds: &'static [f64]) -> Histogram {
        let mut h = Histogram::new(bounds);
        for (c, a) in h.counts.iter_mut().zip(&self.counts) {
            *c = a.load(Ordering::Relaxed);
        }
        h.sum = f64::from_bits(self.sum_bits.load(Ordering::Relaxed));
        h
    }
}

/// One worker's histograms since it started. Call quality is sampled once a second per participant (a
/// participant-second counts once, and only the values known then); forwarding latency once per datagram that
/// was forwarded to at least one subscriber.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerHistograms {
    pub rtt_seconds: Histogram,
    pub jitter_seconds: Histogram,
    pub loss_ratio: Histogram,
    pub mos: Histogram,
    /// From a datagram's arrival in the worker loop to the end of sending what it produced (str0m's pacer
    /// queue and the kernel's socket buffers are not included).
    pub forwarding_latency_seconds: Histogram,
    /// When the worker runs its connections' due timers: how long after the earliest of them was due. The
    /// worker allows some slack to share wake-ups (`io/udp_side.rs`); well beyond it, the worker is too busy.
    pub timer_lateness_seconds: Histogram,
}

impl Default for WorkerHistograms {
    fn default() -> Self {
        WorkerHistograms {
            rtt_seconds: Histogram::new(RTT_BOUNDS),
            jitter_seconds: Histogram::new(JITTER_BOUNDS),
            loss_ratio: Histogram::new(LOSS_BOUNDS),
            mos: Histogram::new(MOS_BOUNDS),
            forwarding_latency_seconds: Histogram::new(LATENCY_BOUNDS),
            timer_lateness_seconds: Histogram::new(TIMER_LATENESS_BOUNDS),
        }
    }
}

impl WorkerHistograms {
    /// Counts one participant-second of call quality.
    pub fn observe_quality(&mut self, r: &QualityReport) {
        if let Some(v) = r.rtt_ms {
            self.rtt_seconds.observe(v / 1000.0);
        }
        if let Some(v) = r.jitter_ms {
            self.jitter_seconds.observe(v / 1000.0);
        }
        if let Some(v) = r.loss {
            self.loss_ratio.observe(v);
        }
        if let Some(v) = r.mos {
            self.mos.observe(v);
        }
    }

    /// Adds another worker's histograms.
    pub fn accumulate(&mut self, other: &WorkerHistograms) {
        self.rtt_seconds.accumulate(&other.rtt_seconds);
        self.jitter_seconds.accumulate(&other.jitter_seconds);
        self.loss_ratio.accumulate(&other.loss_ratio);
        self.mos.accumulate(&other.mos);
        self.forwarding_latency_seconds
            .accumulate(&other.forwarding_latency_seconds);
        self.timer_lateness_seconds
            .accumulate(&other.timer_lateness_seconds);
    }
}

/// The atomic mirror of [`WorkerHistograms`].
#[derive(Debug, Default)]
pub(crate) struct AtomicHistograms {
    rtt_seconds: AtomicHistogram,
    jitter_seconds: AtomicHistogram,
    loss_ratio: AtomicHistogram,
    mos: AtomicHistogram,
    forwarding_latency_seconds: AtomicHistogram,
    timer_lateness_seconds: AtomicHistogram,
}

impl AtomicHistograms {
    pub(crate) fn store(&self, h: &WorkerHistograms) {
        self.rtt_seconds.store(&h.rtt_seconds);
        self.jitter_seconds.store(&h.jitter_seconds);
        self.loss_ratio.store(&h.loss_ratio);
        self.mos.store(&h.mos);
        self.forwarding_latency_seconds
            .store(&h.forwarding_latency_seconds);
        self.timer_lateness_seconds.store(&h.timer_lateness_seconds);
    }

    pub(crate) fn load(&self) -> WorkerHistograms {
        WorkerHistograms {
            rtt_seconds: self.rtt_seconds.load(RTT_BOUNDS),
            jitter_seconds: self.jitter_seconds.load(JITTER_BOUNDS),
            loss_ratio: self.loss_ratio.load(LOSS_BOUNDS),
            mos: self.mos.load(MOS_BOUNDS),
            forwarding_latency_seconds: self.forwarding_latency_seconds.load(LATENCY_BOUNDS),
            timer_lateness_seconds: self.timer_lateness_seconds.load(TIMER_LATENESS_BOUNDS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_le_buckets_and_add_up() {
        let mut h = Histogram::new(&[0.0, 1.0, 2.0]);
        for v in [0.0, 0.5, 1.0, 1.5, 3.0, f64::NAN] {
            h.observe(v);
        }
        assert_eq!(
            h.cumulative().collect::<Vec<_>>(),
            vec![(0.0, 1), (1.0, 3), (2.0, 4)]
        );
        assert_eq!(
            h.count(),
            5,
            "the one above every bound counts too; NaN does not"
        );
        assert_eq!(h.sum(), 6.0);
        let mut total = h;
        total.accumulate(&h);
        assert_eq!(total.count(), 10);
        assert_eq!(total.cumulative().last(), Some((2.0, 8)));
    }

    #[test]
    fn every_bound_list_ascends_and_fits() {
        for b in [
            RTT_BOUNDS,
            JITTER_BOUNDS,
            LOSS_BOUNDS,
            MOS_BOUNDS,
            LATENCY_BOUNDS,
            TIMER_LATENESS_BOUNDS,
        ] {
            assert!(b.len() <= MAX_BUCKETS);
            assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        }
    }

    #[test]
    fn quality_reports_and_atomics_round_trip() {
        let mut h = WorkerHistograms::default();
        h.observe_quality(&QualityReport {
            rtt_ms: Some(40.0),
            jitter_ms: Some(3.0),
            loss: Some(0.0),
            mos: Some(4.4),
            ..Default::default()
        });
        // Unknown values are not counted.
        h.observe_quality(&QualityReport::default());
        h.forwarding_latency_seconds.observe(0.0002);
        h.timer_lateness_seconds.observe(0.0012);
        let shared = AtomicHistograms::default();
        shared.store(&h);
        let read = shared.load();
        assert_eq!(read, h);
        assert_eq!(read.rtt_seconds.count(), 1);
        assert_eq!(read.rtt_seconds.cumulative().nth(3), Some((0.05, 1)));
        assert_eq!(read.loss_ratio.cumulative().next(), Some((0.0, 1)));
        assert_eq!(read.mos.count(), 1);
        assert_eq!(read.forwarding_latency_seconds.count(), 1);
        assert_eq!(
            read.timer_lateness_seconds.cumulative().nth(4),
            Some((0.0015, 1))
        );
    }
}
