//! The media workers' histograms (`chorus_sfu::WorkerHistograms`, summed over workers) as Prometheus histogram
//! families: cumulative buckets, `+Inf` (the count), sum and count, built directly as metric families because
//! the counting happened in the workers. Owns the histogram metric names (documented in the README).

use chorus_sfu::{Histogram, WorkerHistograms};
use prometheus::proto::{Bucket, Metric, MetricFamily, MetricType};

/// One histogram family from worker totals.
fn family(name: &str, help: &str, h: &Histogram) -> MetricFamily {
    let buckets = h
        .cumulative()
        .map(|(bound, count)| {
            let mut b = Bucket::default();
            b.set_upper_bound(bound);
            b.set_cumulative_count(count);
            b
        })
        .collect();
    let mut hist = prometheus::proto::Histogram::default();
    hist.set_bucket(buckets);
    hist.set_sample_count(h.count());
    hist.set_sample_sum(h.sum());
    let mut metric = Metric::default();
    metric.set_histogram(hist);
    let mut family = MetricFamily::default();
    family.set_name(name.to_string());
    family.set_help(help.to_string());
    family.set_field_type(MetricType::HISTOGRAM);
    family.set_metric(vec![metric]);
    family
}

/// Every histogram family.
pub fn families(h: &WorkerHistograms) -> Vec<MetricFamily> {
    vec![
        family(
            "chorus_participant_rtt_seconds",
            "Round-trip time between the server and participants, one sample per participant-second.",
            &h.rtt_seconds,
        ),
        family(
            "chorus_participant_jitter_seconds",
            "Interarrival jitter of participants' media (worse direction), one sample per participant-second.",
            &h.jitter_seconds,
        ),
        family(
            "chorus_participant_loss_ratio",
            "Fraction of packets lost (worse direction), one sample per participant-second; le=0 holds the seconds without loss.",
            &h.loss_ratio,
        ),
        family(
            "chorus_participant_mos",
            "E-model call quality score (1-4.5), one sample per participant-second.",
            &h.mos,
        ),
        family(
            "chorus_forwarding_latency_seconds",
            "Time from a UDP datagram's arrival in a media worker to the end of sending what it produced, for datagrams forwarded to subscribers.",
            &h.forwarding_latency_seconds,
        ),
        family(
            "chorus_media_timer_lateness_seconds",
            "How long after the earliest due timer a media worker ran its connections' timers (a slack of 1 ms while media flows, 8 ms when quiet, is by design; far beyond, the worker is busy).",
            &h.timer_lateness_seconds,
        ),
    ]
}
