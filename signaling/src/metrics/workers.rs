//! The per-worker metric families (label `worker`, the media thread's index): what each media worker hosts,
//! what it forwarded and the CPU its thread used, so that an operator (or the load tester) can see whether the
//! rooms and their load are spread over the workers. The unlabelled families in `metrics.rs` are their sums.

use chorus_sfu::{WorkerGauges, WorkerStats};
use prometheus::{CounterVec, IntCounterVec, IntGaugeVec, Opts};

use super::Builder;

/// One worker's counters and gauges as it last published them.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerLoad {
    pub stats: WorkerStats,
    pub gauges: WorkerGauges,
}

pub(super) fn register(b: &Builder, workers: &[WorkerLoad]) -> prometheus::Result<()> {
    let gauges = |name: &str, help: &str, value: fn(&WorkerGauges) -> u64| {
        let g = IntGaugeVec::new(Opts::new(name, help), &["worker"])?;
        for (i, w) in workers.iter().enumerate() {
            let v = i64::try_from(value(&w.gauges)).unwrap_or(i64::MAX);
            g.with_label_values(&[&i.to_string()]).set(v);
        }
        b.registry.register(Box::new(g))
    };
    gauges(
        "chorus_worker_rooms",
        "Rooms with media on each media worker.",
        |g| g.rooms,
    )?;
    gauges(
        "chorus_worker_participants",
        "Participants with media on each media worker.",
        |g| g.participants,
    )?;
    gauges(
        "chorus_worker_tracks_subscribed",
        "Subscriptions ((subscriber, track) pairs) on each media worker.",
        |g| g.tracks_subscribed,
    )?;
    let forwarded = IntCounterVec::new(
        Opts::new(
            "chorus_worker_forwarded_packets_total",
            "RTP packets written to subscribers by each media worker.",
        ),
        &["worker"],
    )?;
    let cpu = CounterVec::new(
        Opts::new(
            "chorus_worker_cpu_seconds_total",
            "CPU time (user + system) of each media worker thread (Linux; updated ~10 times a second).",
        ),
        &["worker"],
    )?;
    for (i, w) in workers.iter().enumerate() {
        let label = i.to_string();
        forwarded
            .with_label_values(&[&label])
            .inc_by(w.stats.rtp_forwarded);
        cpu.with_label_values(&[&label])
            .inc_by(w.stats.thread_cpu_micros as f64 / 1e6);
    }
    b.registry.register(Box::new(forwarded))?;
    b.registry.register(Box::new(cpu))?;
    Ok(())
}
