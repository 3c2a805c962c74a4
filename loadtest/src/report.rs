//! The final figures of a load test ([`Report`], whose JSON field names are a stable interface documented in
//! `loadtest/README.md`), how they are computed from the clients' receive counters and two `/metrics` scrapes,
//! and how they are printed. The per-layer (simulcast) figures are computed in `layers.rs`.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chorus_client::{LatencyHistogram, ReceivedTrackStats, TrackKind};
use serde::Serialize;

use crate::data::{DataFigures, KindFigures};
use crate::layers::{self, LayerConfig, LayerFigures, LayerTallies};
use crate::scrape::{bucket_quantile, ServerSample};
use crate::workers::{self, WorkerFigures};

/// Bumped when a field changes meaning or disappears (new fields may be added without a bump).
pub const REPORT_VERSION: u32 = 1;

/// What the run was asked to do.
#[derive(Debug, Clone, Serialize)]
pub struct ReportConfig {
    pub url: String,
    pub rooms: usize,
    pub publishers_per_room: usize,
    pub subscribers_per_room: usize,
    pub duration_secs: f64,
    pub audio: bool,
    pub simulcast: bool,
    /// Per publisher; with simulcast, the top (`f`) layer's.
    pub video_bitrate_bps: u32,
    /// The simulcast layers publishers send, lowest first (empty without simulcast).
    pub simulcast_layers: Vec<LayerConfig>,
    /// Publishers' video left at this multiple of its bitrate (`--pacing-factor`; 0: each frame at once).
    pub pacing_factor: f64,
    /// `high`, `medium`, `low` or `mixed` (`--subscriber-quality`).
    pub subscriber_quality: String,
}

/// The server side of the window, from `/metrics` before and after.
#[derive(Debug, Clone, Serialize)]
pub struct ServerFigures {
    pub cpu_seconds: f64,
    /// CPU seconds per wall second: how many cores the server kept busy.
    pub cpu_cores: f64,
    pub forwarded_packets: u64,
    pub forwarded_packets_per_sec: f64,
    /// CPU seconds of the media worker threads alone (no signaling, storage or runtime threads).
    pub media_cpu_seconds: Option<f64>,
    /// Times per second the media worker threads slept waiting for input and were woken.
    pub media_sleeps_per_sec: Option<f64>,
    pub forwarded_video_packets: Option<u64>,
    pub forwarded_audio_packets: Option<u64>,
    pub nacks_received: Option<u64>,
    pub plis_sent: Option<u64>,
    /// Resident memory at the end of the window.
    pub rss_bytes: Option<u64>,
    /// The SFU's own share of the latency, from the server's histogram: a forwarded datagram's receive to its
    /// last copy handed to the kernel (interpolated within the histogram's buckets).
    pub forwarding_latency_ms_p50: Option<f64>,
    pub forwarding_latency_ms_p99: Option<f64>,
    /// How late the media workers ran their connections' timers (the server's histogram; by design up to its
    /// slack of 1 ms while media flows).
    pub timer_lateness_ms_p50: Option<f64>,
    pub timer_lateness_ms_p99: Option<f64>,
    /// Each media worker's share, by index (empty from servers without per-worker metrics).
    pub workers: Vec<WorkerFigures>,
}

/// Every figure of one run; `null` in JSON where it could not be measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: u32,
    pub config: ReportConfig,
    pub participants: usize,
    pub joined: usize,
    pub join_failures: usize,
    pub join_ms_p50: Option<f64>,
    pub join_ms_p99: Option<f64>,
    pub join_ms_max: Option<f64>,
    /// Length of the measurement window (after joining and settling).
    pub window_secs: f64,
    /// (receiver, remote video track) pairs that received packets in the window.
    pub video_streams: u64,
    pub audio_streams: u64,
    pub received_bitrate_bps: f64,
    pub received_video_bitrate_bps: f64,
    pub received_audio_bitrate_bps: f64,
    /// Mean video bitrate of one received stream.
    pub received_video_bitrate_bps_per_stream: Option<f64>,
    /// Received video per layer, smallest first: every layer publishers send, and any other size that arrived.
    pub video_layers: Vec<LayerFigures>,
    /// Video that arrived before a stream's first keyframe, so of no known layer.
    pub received_video_bitrate_bps_unknown_layer: f64,
    pub packets_received: u64,
    /// By RTP sequence numbers (first to highest received, per stream).
    pub packets_expected: u64,
    pub packets_lost: u64,
    pub packet_loss_ratio: Option<f64>,
    /// Send to receive, of stamped frames (first packet of each frame), both clocks on this host.
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p99: Option<f64>,
    pub latency_ms_max: Option<f64>,
    pub latency_samples: u64,
    pub server: Option<ServerFigures>,
    /// Server CPU time divided by packets forwarded in the window (all kinds), in µs.
    pub server_cpu_us_per_forwarded_packet: Option<f64>,
    /// The same for the media worker threads' CPU time alone.
    pub server_media_cpu_us_per_forwarded_packet: Option<f64>,
    /// Packets forwarded per sleep of the media worker threads: how many copies each wake-up's price is
    /// shared by.
    pub forwarded_packets_per_media_sleep: Option<f64>,
    /// Video streams one fully busy core would carry at the measured CPU cost: streams / cores used.
    pub subscriber_video_streams_per_core: Option<f64>,
    /// Server resident memory before anyone joined.
    pub server_rss_bytes_before_join: Option<u64>,
    /// Growth of the server's resident memory from before the joins to the start of the window, per joined
    /// participant (with `--publishers 0`: what an idle connected participant costs).
    pub server_rss_bytes_per_participant: Option<f64>,
    /// Data-channel load (`--data-participants`): delivery and latency per channel kind; `null` without it.
    pub data: Option<DataFigures>,
}

/// One receiver's counters for each remote track, keyed by track sid.
pub type Snapshot = HashMap<String, ReceivedTrackStats>;

/// Totals of the window over every receiver.
#[derive(Debug, Default)]
pub struct Received {
    pub video_streams: u64,
    pub audio_streams: u64,
    pub video_bytes: u64,
    pub audio_bytes: u64,
    pub packets: u64,
    pub expected: u64,
    pub latency: LatencyHistogram,
    /// Video by the size of the keyframes it followed.
    pub video_layers: LayerTallies,
    /// Video bytes received before a stream's first keyframe.
    pub video_bytes_unknown_layer: u64,
}

impl Received {
    /// Adds what one receiver got between `before` and `after`.
    pub fn add(&mut self, before: &Snapshot, after: &Snapshot) {
        for (sid, end) in after {
            let (packets, bytes, expected, latency) = match before.get(sid) {
                Some(start) => (
                    end.packets.saturating_sub(start.packets),
                    end.bytes.saturating_sub(start.bytes),
                    end.expected_packets.saturating_sub(start.expected_packets),
                    end.latency.since(&start.latency),
                ),
                None => (
                    end.packets,
                    end.bytes,
                    end.expected_packets,
                    end.latency.clone(),
                ),
            };
            if packets == 0 {
                continue;
            }
            match end.kind {
                TrackKind::Video => {
                    self.video_streams += 1;
                    self.video_bytes += bytes;
                    self.video_bytes_unknown_layer +=
                        layers::tally_stream(&mut self.video_layers, before.get(sid), end, bytes);
                }
                TrackKind::Audio => {
                    self.audio_streams += 1;
                    self.audio_bytes += bytes;
                }
            }
            self.packets += packets;
            self.expected += expected;
            self.latency.merge(&latency);
        }
    }

    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.packets)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn delta(before: Option<f64>, after: Option<f64>) -> Option<u64> {
    Some((after? - before?).max(0.0).round() as u64)
}

/// How much a counter grew between two scrapes, if both have it.
fn growth(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    Some((after? - before?).max(0.0))
}

/// The server's figures for the window, if both scrapes have them.
pub fn server_figures(before: &ServerSample, after: &ServerSample) -> Option<ServerFigures> {
    let wall = after.at.duration_since(before.at).as_secs_f64();
    let cpu_seconds = (after.cpu_seconds? - before.cpu_seconds?).max(0.0);
    let forwarded_packets = delta(before.forwarded_packets, after.forwarded_packets)?;
    (wall > 0.0).then(|| ServerFigures {
        cpu_seconds,
        cpu_cores: cpu_seconds / wall,
        forwarded_packets,
        forwarded_packets_per_sec: forwarded_packets as f64 / wall,
        media_cpu_seconds: growth(before.media_cpu_seconds, after.media_cpu_seconds),
        media_sleeps_per_sec: growth(before.media_sleeps, after.media_sleeps).map(|n| n / wall),
        forwarded_video_packets: delta(before.video_packets_out, after.video_packets_out),
        forwarded_audio_packets: delta(before.audio_packets_out, after.audio_packets_out),
        nacks_received: delta(before.nacks_received, after.nacks_received),
        plis_sent: delta(before.plis_sent, after.plis_sent),
        rss_bytes: after.rss_bytes.map(|b| b as u64),
        forwarding_latency_ms_p50: bucket_quantile(
            &before.forwarding_latency,
            &after.forwarding_latency,
            0.5,
        )
        .map(|s| s * 1e3),
        forwarding_latency_ms_p99: bucket_quantile(
            &before.forwarding_latency,
            &after.forwarding_latency,
            0.99,
        )
        .map(|s| s * 1e3),
        timer_lateness_ms_p50: bucket_quantile(&before.timer_lateness, &after.timer_lateness, 0.5)
            .map(|s| s * 1e3),
        timer_lateness_ms_p99: bucket_quantile(&before.timer_lateness, &after.timer_lateness, 0.99)
            .map(|s| s * 1e3),
        workers: workers::figures(&before.workers, &after.workers),
    })
}

/// Resident memory before the joins, and its growth per joined participant up to `window_start`.
pub fn memory_per_participant(
    before_join: Option<&ServerSample>,
    window_start: Option<&ServerSample>,
    joined: usize,
) -> (Option<u64>, Option<f64>) {
    let before = before_join.and_then(|s| s.rss_bytes);
    let growth = before
        .zip(window_start.and_then(|s| s.rss_bytes))
        .filter(|_| joined > 0)
        .map(|(b, a)| (a - b) / joined as f64);
    (before.map(|b| b as u64), growth)
}

impl Report {
    /// Fills in every derived figure.
    pub fn new(
        config: ReportConfig,
        participants: usize,
        join_times: &LatencyHistogram,
        window: Duration,
        received: &Received,
        server: Option<ServerFigures>,
    ) -> Report {
        let secs = window.as_secs_f64().max(1e-9);
        let bps = |bytes: u64| bytes as f64 * 8.0 / secs;
        let joined = join_times.count() as usize;
        let cpu_per_packet = server
            .as_ref()
            .filter(|s| s.forwarded_packets > 0 && s.cpu_seconds > 0.0)
            .map(|s| s.cpu_seconds * 1e6 / s.forwarded_packets as f64);
        let media_cpu_per_packet = server.as_ref().and_then(|s| {
            let cpu = s.media_cpu_seconds?;
            (s.forwarded_packets > 0 && cpu > 0.0).then(|| cpu * 1e6 / s.forwarded_packets as f64)
        });
        // Both rates over the server's own scrape interval.
        let packets_per_sleep = server.as_ref().and_then(|s| {
            let sleeps = s.media_sleeps_per_sec?;
            (sleeps > 0.0).then(|| s.forwarded_packets_per_sec / sleeps)
        });
        let streams_per_core = server
            .as_ref()
            .filter(|s| s.cpu_cores > 0.0 && received.video_streams > 0)
            .map(|s| received.video_streams as f64 / s.cpu_cores);
        Report {
            version: REPORT_VERSION,
            config,
            participants,
            joined,
            join_failures: participants.saturating_sub(joined),
            join_ms_p50: join_times.quantile(0.5).map(ms),
            join_ms_p99: join_times.quantile(0.99).map(ms),
            join_ms_max: join_times.max().map(ms),
            window_secs: window.as_secs_f64(),
            video_streams: received.video_streams,
            audio_streams: received.audio_streams,
            received_bitrate_bps: bps(received.video_bytes + received.audio_bytes),
            received_video_bitrate_bps: bps(received.video_bytes),
            received_audio_bitrate_bps: bps(received.audio_bytes),
            received_video_bitrate_bps_per_stream: (received.video_streams > 0)
                .then(|| bps(received.video_bytes) / received.video_streams as f64),
            video_layers: Vec::new(),
            received_video_bitrate_bps_unknown_layer: bps(received.video_bytes_unknown_layer),
            packets_received: received.packets,
            packets_expected: received.expected,
            packets_lost: received.lost(),
            packet_loss_ratio: (received.expected > 0)
                .then(|| received.lost() as f64 / received.expected as f64),
            latency_ms_p50: received.latency.quantile(0.5).map(ms),
            latency_ms_p99: received.latency.quantile(0.99).map(ms),
            latency_ms_max: received.latency.max().map(ms),
            latency_samples: received.latency.count(),
            server,
            server_cpu_us_per_forwarded_packet: cpu_per_packet,
            server_media_cpu_us_per_forwarded_packet: media_cpu_per_packet,
            forwarded_packets_per_media_sleep: packets_per_sleep,
            subscriber_video_streams_per_core: streams_per_core,
            server_rss_bytes_before_join: None,
            server_rss_bytes_per_participant: None,
            data: None,
        }
    }
}

struct Opt<T>(Option<T>, &'static str);

impl fmt::Display for Opt<f64> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v:.2}{}", self.1),
            None => write!(f, "n/a"),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "== Chorus load test: {} rooms × ({} publishers + {} subscribers), {:.1} s window",
            c.rooms, c.publishers_per_room, c.subscribers_per_room, self.window_secs
        )?;
        writeln!(
            f,
            "joined          {}/{} (p50 {}, p99 {}, max {})",
            self.joined,
            self.participants,
            Opt(self.join_ms_p50, " ms"),
            Opt(self.join_ms_p99, " ms"),
            Opt(self.join_ms_max, " ms")
        )?;
        writeln!(
            f,
            "received        {:.2} Mbit/s ({} video streams at {} each, {} audio streams)",
            self.received_bitrate_bps / 1e6,
            self.video_streams,
            Opt(
                self.received_video_bitrate_bps_per_stream.map(|b| b / 1e3),
                " kbit/s"
            ),
            self.audio_streams
        )?;
        if c.simulcast {
            for l in &self.video_layers {
                layers::write_layer_line(f, l)?;
            }
        }
        if self.received_video_bitrate_bps_unknown_layer > 0.0 {
            writeln!(
                f,
                "layer unknown   {:.1} kbit/s of video arrived before its stream's first keyframe",
                self.received_video_bitrate_bps_unknown_layer / 1e3
            )?;
        }
        writeln!(
            f,
            "packet loss     {} of {} ({})",
            self.packets_lost,
            self.packets_expected,
            Opt(self.packet_loss_ratio.map(|r| r * 100.0), " %")
        )?;
        writeln!(
            f,
            "latency         p50 {}, p99 {}, max {} ({} frames, send → receive)",
            Opt(self.latency_ms_p50, " ms"),
            Opt(self.latency_ms_p99, " ms"),
            Opt(self.latency_ms_max, " ms"),
            self.latency_samples
        )?;
        if let Some(d) = &self.data {
            for (name, k) in [("reliable", &d.reliable), ("lossy", &d.lossy)] {
                if let Some(k) = k {
                    write_data_line(f, name, d, k)?;
                }
            }
        }
        match &self.server {
            Some(s) => {
                writeln!(
                    f,
                    "server          {:.2} CPU s ({:.2} cores), {} packets forwarded ({:.0}/s), NACKs {}, PLIs {}",
                    s.cpu_seconds,
                    s.cpu_cores,
                    s.forwarded_packets,
                    s.forwarded_packets_per_sec,
                    s.nacks_received.map_or("n/a".into(), |n| n.to_string()),
                    s.plis_sent.map_or("n/a".into(), |n| n.to_string()),
                )?;
                writeln!(
                    f,
                    "server CPU      {} per forwarded packet, {} subscriber video streams per core",
                    Opt(self.server_cpu_us_per_forwarded_packet, " µs"),
                    Opt(self.subscriber_video_streams_per_core, ""),
                )?;
                writeln!(
                    f,
                    "media threads   {} CPU s, {} per forwarded packet, {} sleeps/s ({} forwarded packets per sleep)",
                    Opt(s.media_cpu_seconds, ""),
                    Opt(self.server_media_cpu_us_per_forwarded_packet, " µs"),
                    Opt(s.media_sleeps_per_sec, ""),
                    Opt(self.forwarded_packets_per_media_sleep, ""),
                )?;
                if s.workers.len() > 1 {
                    writeln!(f, "media workers   {}", workers::summary(&s.workers))?;
                }
                writeln!(
                    f,
                    "server latency  p50 {}, p99 {} (receive → last copy sent, the SFU's own share); timers run p50 {}, p99 {} late",
                    Opt(s.forwarding_latency_ms_p50, " ms"),
                    Opt(s.forwarding_latency_ms_p99, " ms"),
                    Opt(s.timer_lateness_ms_p50, " ms"),
                    Opt(s.timer_lateness_ms_p99, " ms"),
                )?;
                writeln!(
                    f,
                    "server memory   {} resident at the end, {} per participant (growth since before the joins)",
                    Opt(s.rss_bytes.map(|b| b as f64 / 1e6), " MB"),
                    Opt(self.server_rss_bytes_per_participant.map(|b| b / 1e3), " KB"),
                )
            }
            None => writeln!(f, "server          n/a (no /metrics figures)"),
        }
    }
}

fn write_data_line(
    f: &mut fmt::Formatter<'_>,
    name: &str,
    d: &DataFigures,
    k: &KindFigures,
) -> fmt::Result {
    writeln!(
        f,
        "data {name:<10} {} sent ({}/s × {} B each by {} per room), {} of {} delivered ({}), latency p50 {}, p99 {}{}",
        k.sent,
        d.messages_per_sec,
        d.message_bytes,
        d.participants_per_room,
        k.received,
        k.expected,
        Opt(k.delivery_ratio.map(|r| r * 100.0), " %"),
        Opt(k.latency_ms_p50, " ms"),
        Opt(k.latency_ms_p99, " ms"),
        if k.send_errors > 0 {
            format!(", {} send errors", k.send_errors)
        } else {
            String::new()
        }
    )
}
