//! `GET /metrics`: the server's health in the Prometheus text format.
//!
//! Two sources, both read at scrape time: the process collector of the `prometheus` crate
//! (`process_resident_memory_bytes`, open fds …, one per process) — except `process_cpu_seconds_total`, which
//! that collector rounds down to whole seconds and which we export from `/proc/self/stat` at clock-tick
//! resolution (10 ms) instead, because the load tester divides it by packet counts — and the media
//! workers' counters and gauges ([`chorus_sfu::Sfu::counters`], relaxed atomic loads: a scrape never stops or
//! messages a worker). Chorus metrics are built afresh on every scrape from those totals, so nothing here is
//! updated on the packet path. No per-room or per-participant labels; the labels are `kind` (audio/video) and, on
//! the per-worker families (`workers.rs`), `worker`.
//! Histograms (call quality, forwarding latency) are counted by the workers the same way and rendered in
//! `histograms.rs`. Webhook delivery counters and the queue depth (from the store) are in `webhooks.rs`. This
//! file owns the metric names (documented in the README); it must not change room or media state.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chorus_sfu::{WorkerGauges, WorkerHistograms, WorkerStats};
use prometheus::proto::MetricFamily;
use prometheus::{
    Counter, Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::server::AppState;
use crate::turn::TurnTotals;
use crate::webhooks::WebhookTotals;

mod histograms;
mod turn;
mod webhooks;
mod workers;

pub use workers::WorkerLoad;

/// The process collector, registered once per process (several test servers may share one process).
fn process_registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        if let Err(e) = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            tracing::warn!(error = %e, "process metrics unavailable");
        }
        registry
    })
}

/// The name the process collector and we both use; ours wins (finer resolution).
const CPU_SECONDS: &str = "process_cpu_seconds_total";

/// User + system CPU time of this process, at clock-tick resolution.
#[cfg(target_os = "linux")]
pub(crate) fn process_cpu_seconds() -> Option<f64> {
    let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
    let ticks = procfs::ticks_per_second();
    (ticks > 0).then(|| (stat.utime + stat.stime) as f64 / ticks as f64)
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn process_cpu_seconds() -> Option<f64> {
    None
}

/// The process metrics, with a precise `process_cpu_seconds_total`.
fn process_families() -> prometheus::Result<Vec<MetricFamily>> {
    let mut families = process_registry().gather();
    if let Some(seconds) = process_cpu_seconds() {
        families.retain(|f| f.name() != CPU_SECONDS);
        let c = Counter::with_opts(Opts::new(
            CPU_SECONDS,
            "Total user and system CPU time spent in seconds.",
        ))?;
        c.inc_by(seconds);
        families.extend(prometheus::core::Collector::collect(&c));
    }
    Ok(families)
}

/// What the server knows right now, summed over the media workers (and each worker's own share).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub rooms: u64,
    pub workers: u64,
    /// Each media worker's counters and gauges (index = worker index).
    pub per_worker: Vec<WorkerLoad>,
    pub stats: WorkerStats,
    pub gauges: WorkerGauges,
    pub histograms: WorkerHistograms,
    pub webhooks: WebhookTotals,
    pub turn: TurnTotals,
    /// Webhook deliveries waiting in the store; `None` when the store could not be read.
    pub webhook_queue: Option<u64>,
}

impl Snapshot {
    pub fn read(state: &AppState) -> Snapshot {
        let sfu = state.registry.sfu();
        let mut snap = Snapshot {
            rooms: state.registry.len() as u64,
            workers: sfu.counters().len() as u64,
            webhooks: state.webhook_counters.totals(),
            turn: state.turn.totals(),
            ..Default::default()
        };
        for w in sfu.counters() {
            let load = WorkerLoad {
                stats: w.stats(),
                gauges: w.gauges(),
            };
            snap.stats.accumulate(&load.stats);
            snap.gauges.accumulate(&load.gauges);
            snap.histograms.accumulate(&w.histograms());
            snap.per_worker.push(load);
        }
        snap
    }
}

/// Registers metrics on a scratch registry and sets them to the snapshot's values.
struct Builder {
    registry: Registry,
}

impl Builder {
    fn counter(&self, name: &str, help: &str, value: u64) -> prometheus::Result<()> {
        let c = IntCounter::with_opts(Opts::new(name, help))?;
        c.inc_by(value);
        self.registry.register(Box::new(c))
    }

    /// A counter in seconds, from a total in microseconds.
    fn seconds(&self, name: &str, help: &str, micros: u64) -> prometheus::Result<()> {
        let c = Counter::with_opts(Opts::new(name, help))?;
        c.inc_by(micros as f64 / 1e6);
        self.registry.register(Box::new(c))
    }

    fn gauge(&self, name: &str, help: &str, value: u64) -> prometheus::Result<()> {
        let g = IntGauge::with_opts(Opts::new(name, help))?;
        g.set(i64::try_from(value).unwrap_or(i64::MAX));
        self.registry.register(Box::new(g))
    }

    fn by_kind(&self, name: &str, help: &str, audio: u64, video: u64) -> prometheus::Result<()> {
        let c = IntCounterVec::new(Opts::new(name, help), &["kind"])?;
        c.with_label_values(&["audio"]).inc_by(audio);
        c.with_label_values(&["video"]).inc_by(video);
        self.registry.register(Box::new(c))
    }
}

/// The Chorus metric families for `snap`.
pub fn families(snap: &Snapshot) -> prometheus::Result<Vec<MetricFamily>> {
    let b = Builder {
        registry: Registry::new(),
    };
    let (s, g) = (&snap.stats, &snap.gauges);
    b.gauge("chorus_rooms", "Open rooms.", snap.rooms)?;
    b.gauge(
        "chorus_participants",
        "Participants with media on a worker.",
        g.participants,
    )?;
    b.gauge(
        "chorus_tracks_published",
        "Published tracks.",
        g.tracks_published,
    )?;
    b.gauge(
        "chorus_tracks_subscribed",
        "Subscriptions: (subscriber, track) pairs.",
        g.tracks_subscribed,
    )?;
    b.gauge(
        "chorus_media_workers",
        "Media worker threads.",
        snap.workers,
    )?;
    b.counter(
        "chorus_forwarded_packets_total",
        "RTP packets written to subscribers (one per subscriber a packet went to).",
        s.rtp_forwarded,
    )?;
    b.counter(
        "chorus_rtp_packets_in_total",
        "RTP packets received from publishers (after SRTP).",
        s.rtp_in,
    )?;
    b.by_kind(
        "chorus_media_packets_in_total",
        "Publisher RTP packets on known tracks, by kind.",
        s.audio_packets_in,
        s.video_packets_in,
    )?;
    b.by_kind(
        "chorus_media_bytes_in_total",
        "Publisher RTP payload bytes on known tracks, by kind.",
        s.audio_bytes_in,
        s.video_bytes_in,
    )?;
    b.by_kind(
        "chorus_media_packets_out_total",
        "RTP packets written to subscribers, by kind.",
        s.audio_packets_out,
        s.video_packets_out,
    )?;
    b.by_kind(
        "chorus_media_bytes_out_total",
        "RTP payload bytes written to subscribers, by kind.",
        s.audio_bytes_out,
        s.video_bytes_out,
    )?;
    b.counter(
        "chorus_udp_datagrams_in_total",
        "UDP datagrams received by the media workers.",
        s.datagrams_in,
    )?;
    b.counter(
        "chorus_udp_bytes_in_total",
        "UDP payload bytes received by the media workers.",
        s.bytes_in,
    )?;
    b.counter(
        "chorus_udp_datagrams_out_total",
        "UDP datagrams sent by the media workers.",
        s.datagrams_out,
    )?;
    b.counter(
        "chorus_udp_bytes_out_total",
        "UDP payload bytes sent by the media workers.",
        s.bytes_out,
    )?;
    b.counter(
        "chorus_udp_send_errors_total",
        "Failed UDP sends.",
        s.send_errors,
    )?;
    b.counter(
        "chorus_datagrams_unrouted_total",
        "Datagrams that matched no peer connection (dropped).",
        s.datagrams_unrouted,
    )?;
    b.counter(
        "chorus_rtp_remaps_refused_total",
        "RTP datagrams from publishers held back because they would re-map a live stream's SSRC (forged or broken).",
        s.rtp_remaps_refused,
    )?;
    b.counter(
        "chorus_nacks_received_total",
        "RTCP NACKs received from subscribers.",
        s.nacks_received,
    )?;
    b.counter(
        "chorus_keyframe_requests_received_total",
        "PLI/FIR received from subscribers.",
        s.keyframe_requests_received,
    )?;
    b.counter(
        "chorus_plis_sent_total",
        "Keyframe requests (PLI) sent to publishers.",
        s.keyframe_requests,
    )?;
    b.counter(
        "chorus_rtc_timer_rounds_total",
        "Timer rounds run on str0m peer connections (the media engine's bookkeeping; at least one per forwarded packet).",
        s.rtc_timer_rounds,
    )?;
    b.seconds(
        "chorus_media_thread_cpu_seconds_total",
        "CPU time of the media worker threads (user + system), all workers: the media plane's share of process_cpu_seconds_total.",
        s.thread_cpu_micros,
    )?;
    b.counter(
        "chorus_media_thread_sleeps_total",
        "Times a media worker thread slept waiting for input and was woken again (voluntary context switches), all workers.",
        s.thread_sleeps,
    )?;
    b.counter(
        "chorus_layer_switches_total",
        "Subscriptions that moved to another simulcast layer.",
        s.layer_switches,
    )?;
    b.counter(
        "chorus_streams_paused_total",
        "Subscriptions paused because the subscriber's downlink could not carry even the lowest layer.",
        s.streams_paused,
    )?;
    b.counter(
        "chorus_streams_resumed_total",
        "Subscriptions resumed after a bandwidth pause.",
        s.streams_resumed,
    )?;
    b.counter(
        "chorus_bwe_restarts_total",
        "Subscriber bandwidth estimators restarted (with startup probes) after the estimate stalled below what was wanted.",
        s.estimate_restarts,
    )?;
    b.counter(
        "chorus_data_messages_received_total",
        "Data-channel messages received from participants (before any check).",
        s.data_messages_in,
    )?;
    b.counter(
        "chorus_data_messages_forwarded_total",
        "Data-channel messages written to recipients (one per recipient).",
        s.data_messages_out,
    )?;
    b.counter(
        "chorus_data_bytes_forwarded_total",
        "Data-channel bytes written to recipients.",
        s.data_bytes_out,
    )?;
    b.counter(
        "chorus_data_messages_rejected_total",
        "Data-channel messages refused (permission, size, rate, malformed).",
        s.data_rejected,
    )?;
    b.counter(
        "chorus_data_messages_dropped_total",
        "Lossy data messages dropped for receivers that are behind (or channels not open).",
        s.data_dropped,
    )?;
    b.counter(
        "chorus_data_backlog_disconnects_total",
        "Participants disconnected because their reliable data backlog filled its buffer.",
        s.data_backlog_disconnects,
    )?;
    b.counter(
        "chorus_participant_faults_total",
        "Participants ended by an internal fault in the media engine.",
        s.participant_faults,
    )?;
    webhooks::register(&b, snap)?;
    workers::register(&b, &snap.per_worker)?;
    turn::register(&b, snap)?;
    let mut families = b.registry.gather();
    families.extend(histograms::families(&snap.histograms));
    Ok(families)
}

/// The whole `/metrics` body.
pub async fn render(state: &AppState) -> Result<String, prometheus::Error> {
    let mut snap = Snapshot::read(state);
    snap.webhook_queue = match state.store.webhooks.pending().await {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "webhook queue depth unavailable");
            None
        }
    };
    let mut all = process_families()?;
    all.extend(families(&snap)?);
    TextEncoder::new().encode_to_string(&all)
}

/// `GET /metrics`.
pub async fn handler(State(state): State<AppState>) -> Response {
    match render(&state).await {
        Ok(body) => (
            [(header::CONTENT_TYPE, TextEncoder::new().format_type())],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_renders_with_its_value() {
        let mut snap = Snapshot {
            rooms: 2,
            workers: 1,
            webhook_queue: Some(3),
            ..Default::default()
        };
        snap.webhooks.dead_lettered = 7;
        snap.stats.rtp_forwarded = 1234;
        snap.stats.rtc_timer_rounds = 99;
        snap.stats.thread_cpu_micros = 2_500_000;
        snap.stats.thread_sleeps = 42;
        snap.stats.count_in(chorus_sfu::MediaKind::Video, 1000);
        snap.gauges.participants = 5;
        snap.per_worker = vec![WorkerLoad::default(); 2];
        snap.per_worker[1].gauges.participants = 5;
        snap.per_worker[1].stats.rtp_forwarded = 1234;
        snap.per_worker[1].stats.thread_cpu_micros = 2_500_000;
        snap.turn.relayed_to_peers = crate::turn::RelayedTraffic {
            packets: 3,
            bytes: 3600,
        };
        snap.turn.relay_sends_refused = 1;
        let fams = families(&snap).expect("valid metric names");
        let text = TextEncoder::new().encode_to_string(&fams).expect("encodes");
        assert!(text.contains("# TYPE chorus_forwarded_packets_total counter"));
        assert!(text.contains("\nchorus_forwarded_packets_total 1234\n"));
        assert!(text.contains("\nchorus_rooms 2\n"));
        assert!(text.contains("\nchorus_participants 5\n"));
        assert!(text.contains("chorus_media_bytes_in_total{kind=\"video\"} 1000\n"));
        assert!(text.contains("chorus_media_bytes_in_total{kind=\"audio\"} 0\n"));
        assert!(text.contains("\nchorus_webhook_dead_letters_total 7\n"));
        assert!(text.contains("\nchorus_webhook_queue_depth 3\n"));
        assert!(text.contains("\nchorus_rtc_timer_rounds_total 99\n"));
        assert!(text.contains("\nchorus_media_thread_cpu_seconds_total 2.5\n"));
        assert!(text.contains("\nchorus_media_thread_sleeps_total 42\n"));
        assert!(text.contains("\nchorus_worker_participants{worker=\"0\"} 0\n"));
        assert!(text.contains("\nchorus_worker_participants{worker=\"1\"} 5\n"));
        assert!(text.contains("\nchorus_worker_forwarded_packets_total{worker=\"1\"} 1234\n"));
        assert!(text.contains("\nchorus_worker_cpu_seconds_total{worker=\"1\"} 2.5\n"));
        assert!(text.contains("\nchorus_worker_rooms{worker=\"0\"} 0\n"));
        assert!(text.contains("# TYPE chorus_worker_tracks_subscribed gauge"));
        assert!(text.contains("\nchorus_turn_relayed_bytes_total{direction=\"to_peer\"} 3600\n"));
        assert!(text.contains("\nchorus_turn_relayed_packets_total{direction=\"from_peer\"} 0\n"));
        assert!(text.contains("\nchorus_turn_relay_sends_refused_total 1\n"));
        assert_eq!(fams.len(), 56);
        snap.webhook_queue = None;
        let without_store = families(&snap).expect("valid metric names");
        assert_eq!(
            without_store.len(),
            55,
            "no queue depth when the store cannot say"
        );
    }

    #[test]
    fn histograms_render_cumulative_buckets_sum_and_count() {
        let mut snap = Snapshot::default();
        for rtt in [0.004, 0.03, 0.03, 5.0] {
            snap.histograms.rtt_seconds.observe(rtt);
        }
        snap.histograms.loss_ratio.observe(0.0);
        let fams = families(&snap).expect("valid metric names");
        let text = TextEncoder::new().encode_to_string(&fams).expect("encodes");
        assert!(text.contains("# TYPE chorus_participant_rtt_seconds histogram"));
        assert!(text.contains("\nchorus_participant_rtt_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("\nchorus_participant_rtt_seconds_bucket{le=\"0.05\"} 3\n"));
        assert!(text.contains("\nchorus_participant_rtt_seconds_bucket{le=\"2\"} 3\n"));
        assert!(text.contains("\nchorus_participant_rtt_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("\nchorus_participant_rtt_seconds_count 4\n"));
        assert!(text.contains("\nchorus_participant_rtt_seconds_sum 5.064\n"));
        assert!(text.contains("\nchorus_participant_loss_ratio_bucket{le=\"0\"} 1\n"));
        assert!(text.contains("\nchorus_forwarding_latency_seconds_count 0\n"));
        assert!(text.contains("# TYPE chorus_media_timer_lateness_seconds histogram"));
        assert!(text.contains("# TYPE chorus_participant_mos histogram"));
        assert!(text.contains("# TYPE chorus_participant_jitter_seconds histogram"));
    }

    #[test]
    fn process_metrics_are_exported_on_linux() {
        // Burn a little CPU so the counter has something to show at 10 ms resolution.
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        assert_ne!(x, 1);
        let fams = process_families().expect("valid process metrics");
        let text = TextEncoder::new().encode_to_string(&fams).expect("encodes");
        if cfg!(target_os = "linux") {
            assert_eq!(
                text.matches("# TYPE process_cpu_seconds_total").count(),
                1,
                "{text}"
            );
            let cpu: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))
                .and_then(|v| v.parse().ok())
                .expect("a cpu sample");
            assert!(cpu > 0.0, "{text}");
            assert!(text.contains("process_resident_memory_bytes"), "{text}");
        }
    }
}
