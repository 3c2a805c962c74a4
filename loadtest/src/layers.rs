//! Simulcast in a load test: subscribers asking for a layer (`--subscriber-quality`) and waiting until it
//! arrives, and the per-layer figures of the report — what the publishers' sources wrote for each layer, and
//! what receivers got of it.
//!
//! Which layer a received packet belongs to is told by the size in the last VP8 keyframe of its stream
//! (`chorus_client::ReceivedTrackStats::by_frame_size`): every layer writes its own size, and the SFU switches
//! a subscriber's layer only at a keyframe of the new one. That is what arrived, not what the server says it
//! forwards. `report.rs` owns the rest of the report, `run.rs` the sequence.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use chorus_client::{Client, ReceivedTrackStats, SimulcastLayer, TrackKind, VideoQuality};
use clap::ValueEnum;
use serde::Serialize;

use crate::config::Config;
use crate::run::Progress;

/// The layer subscribers ask for (`--subscriber-quality`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SubscriberQuality {
    High,
    Medium,
    Low,
    /// Subscriber `i` of each room asks for low, medium, high for `i` = 0, 1, 2, and so on.
    Mixed,
}

impl SubscriberQuality {
    /// The flag's value, as the report gives it.
    pub fn name(self) -> &'static str {
        match self {
            SubscriberQuality::High => "high",
            SubscriberQuality::Medium => "medium",
            SubscriberQuality::Low => "low",
            SubscriberQuality::Mixed => "mixed",
        }
    }

    /// What subscriber `i` of a room asks for; `None` (high) sends no preference.
    pub fn for_subscriber(self, i: usize) -> Option<chorus_client::VideoQuality> {
        use chorus_client::VideoQuality::{Low, Medium};
        match self {
            SubscriberQuality::High => None,
            SubscriberQuality::Medium => Some(Medium),
            SubscriberQuality::Low => Some(Low),
            SubscriberQuality::Mixed => [Some(Low), Some(Medium), None][i % 3],
        }
    }
}

/// One simulcast layer as publishers send it (the report's `config.simulcast_layers`).
#[derive(Debug, Clone, Serialize)]
pub struct LayerConfig {
    pub rid: String,
    pub width: u16,
    pub height: u16,
    pub bitrate_bps: u32,
}

impl From<&SimulcastLayer> for LayerConfig {
    fn from(l: &SimulcastLayer) -> Self {
        LayerConfig {
            rid: l.rid.clone(),
            width: l.width,
            height: l.height,
            bitrate_bps: l.bitrate_bps,
        }
    }
}

/// Received video of one layer, identified by the resolution in the VP8 keyframes that arrived.
#[derive(Debug, Clone, Serialize)]
pub struct LayerFigures {
    /// The simulcast `rid` sent at this size; `null` without simulcast or for a size no layer has.
    pub layer: Option<String>,
    pub width: u16,
    pub height: u16,
    /// (receiver, remote video track) pairs that received packets of this layer in the window (a stream that
    /// switched layers counts under each).
    pub streams: u64,
    pub packets: u64,
    pub keyframes: u64,
    /// RTP payload bits per second of this layer received by all participants.
    pub received_bitrate_bps: f64,
    /// `received_bitrate_bps` ÷ `streams`.
    pub received_bitrate_bps_per_stream: Option<f64>,
    /// What each publisher's source wrote at this size (RTP payload, before the SFU), mean per publisher.
    pub sent_bitrate_bps_per_publisher: Option<f64>,
    /// What each publisher was asked to send at this size.
    pub target_bitrate_bps: Option<u32>,
}

/// Received video of one size, over every receiver.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LayerTally {
    pub streams: u64,
    pub packets: u64,
    pub bytes: u64,
    pub keyframes: u64,
}

/// Received video by keyframe size: (width, height) → totals.
pub type LayerTallies = BTreeMap<(u16, u16), LayerTally>;

/// Payload bytes publishers' sources wrote, by video size (simulcast layer or the one encoding).
pub type SentBySize = HashMap<(u16, u16), u64>;

/// A layer publishers send: its rid (`None` for a single encoding), size and target bitrate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSpec {
    pub rid: Option<String>,
    pub width: u16,
    pub height: u16,
    pub bitrate_bps: u32,
}

/// What publishers send: the simulcast layers, or the one encoding.
pub fn layer_specs(config: &Config) -> Vec<LayerSpec> {
    if config.simulcast.is_empty() {
        let m = config.media_options();
        return vec![LayerSpec {
            rid: None,
            width: m.video_width,
            height: m.video_height,
            bitrate_bps: m.video_bitrate_bps,
        }];
    }
    config
        .simulcast
        .iter()
        .map(|l| LayerSpec {
            rid: Some(l.rid.clone()),
            width: l.width,
            height: l.height,
            bitrate_bps: l.bitrate_bps,
        })
        .collect()
}

/// Adds one video stream's window (`start` to `end`, `bytes` in all) to `tallies` by keyframe size; returns
/// the bytes of no known size (before the stream's first keyframe).
pub fn tally_stream(
    tallies: &mut LayerTallies,
    start: Option<&ReceivedTrackStats>,
    end: &ReceivedTrackStats,
    bytes: u64,
) -> u64 {
    let mut sized = 0;
    for s in &end.by_frame_size {
        let was = start.and_then(|b| b.at_size(s.width, s.height));
        let since = |now: u64, then: Option<u64>| now - then.unwrap_or(0).min(now);
        let packets = since(s.packets, was.map(|w| w.packets));
        if packets == 0 {
            continue;
        }
        let layer_bytes = since(s.bytes, was.map(|w| w.bytes));
        let tally = tallies.entry((s.width, s.height)).or_default();
        tally.streams += 1;
        tally.packets += packets;
        tally.bytes += layer_bytes;
        tally.keyframes += since(s.keyframes, was.map(|w| w.keyframes));
        sized += layer_bytes;
    }
    bytes.saturating_sub(sized)
}

/// Payload bytes every publisher's video sources have written so far, by size (layer); a one-encoding track
/// counts at `single_size`.
pub fn sent_by_size<'a>(
    publishers: impl Iterator<Item = &'a Client>,
    single_size: (u16, u16),
) -> SentBySize {
    let mut sent = SentBySize::new();
    for t in publishers.flat_map(|c| c.published()) {
        if t.kind != TrackKind::Video {
            continue;
        }
        if t.layers.is_empty() {
            *sent.entry(single_size).or_default() += t.bytes_sent;
        }
        for l in &t.layers {
            *sent.entry((l.width, l.height)).or_default() += l.bytes_sent;
        }
    }
    sent
}

/// `after - before` per size; a counter that went backwards (a publisher rejoined and started afresh) counts
/// from zero.
pub fn sent_since(before: &SentBySize, after: &SentBySize) -> SentBySize {
    after
        .iter()
        .map(|(size, &now)| {
            let then = before.get(size).copied().unwrap_or(0);
            (*size, if then > now { now } else { now - then })
        })
        .collect()
}

/// The per-layer figures: every layer publishers send (`specs`), then any other size that arrived; smallest
/// first.
pub fn layer_figures(
    specs: &[LayerSpec],
    received: &LayerTallies,
    sent: &SentBySize,
    publishers: usize,
    window: Duration,
) -> Vec<LayerFigures> {
    let secs = window.as_secs_f64().max(1e-9);
    let mut sizes: Vec<(u16, u16)> = specs.iter().map(|l| (l.width, l.height)).collect();
    for size in received.keys() {
        if !sizes.contains(size) {
            sizes.push(*size);
        }
    }
    sizes.sort_by_key(|&(w, h)| (u32::from(w) * u32::from(h), w));
    sizes
        .into_iter()
        .map(|(width, height)| {
            let spec = specs
                .iter()
                .find(|l| (l.width, l.height) == (width, height));
            let tally = received.get(&(width, height)).copied().unwrap_or_default();
            let bps = tally.bytes as f64 * 8.0 / secs;
            LayerFigures {
                layer: spec.and_then(|l| l.rid.clone()),
                width,
                height,
                streams: tally.streams,
                packets: tally.packets,
                keyframes: tally.keyframes,
                received_bitrate_bps: bps,
                received_bitrate_bps_per_stream: (tally.streams > 0)
                    .then(|| bps / tally.streams as f64),
                sent_bitrate_bps_per_publisher: (publishers > 0 && spec.is_some()).then(|| {
                    sent.get(&(width, height)).copied().unwrap_or(0) as f64 * 8.0
                        / secs
                        / publishers as f64
                }),
                target_bitrate_bps: spec.map(|l| l.bitrate_bps),
            }
        })
        .collect()
}

/// One line of the text report for a layer.
pub fn write_layer_line(f: &mut fmt::Formatter<'_>, l: &LayerFigures) -> fmt::Result {
    let name = format!("layer {}", l.layer.as_deref().unwrap_or("?"));
    write!(
        f,
        "{name:<15} {}×{}: {} streams at {} each ({:.2} Mbit/s in all, {} keyframes)",
        l.width,
        l.height,
        l.streams,
        l.received_bitrate_bps_per_stream
            .map_or("n/a".into(), |b| format!("{:.1} kbit/s", b / 1e3)),
        l.received_bitrate_bps / 1e6,
        l.keyframes,
    )?;
    match (l.sent_bitrate_bps_per_publisher, l.target_bitrate_bps) {
        (Some(sent), Some(target)) => writeln!(
            f,
            "; sent {:.1} kbit/s per publisher (target {:.0})",
            sent / 1e3,
            f64::from(target) / 1e3
        ),
        _ => writeln!(f),
    }
}

/// With `--subscriber-quality`: each of `subscribers` asks for its quality of every video track it receives,
/// then this waits (up to `settle_timeout`) until the keyframes arriving have that layer's size.
pub async fn settle_layers(
    config: &Config,
    subscribers: &[(&Client, VideoQuality)],
    progress: Progress<'_>,
) {
    let Some(top) = config.simulcast.len().checked_sub(1) else {
        return;
    };
    let mut waiting = Vec::new();
    for &(client, quality) in subscribers {
        let video: Vec<String> = client
            .received()
            .into_iter()
            .filter(|t| t.kind == TrackKind::Video)
            .map(|t| t.track_sid)
            .collect();
        if let Err(e) = client.set_quality(&video, Some(quality)) {
            progress(&format!("warning: could not ask for {quality:?}: {e}"));
            continue;
        }
        // The server's mapping (sfu/src/selector.rs): low is the lowest layer, medium the second.
        let layer = match quality {
            VideoQuality::Low => 0,
            VideoQuality::Medium => top.min(1),
            VideoQuality::High => top,
        };
        let size = (
            config.simulcast[layer].width,
            config.simulcast[layer].height,
        );
        waiting.push((client, video, size));
    }
    if waiting.is_empty() {
        return;
    }
    let total: usize = waiting.iter().map(|(_, v, _)| v.len()).sum();
    let deadline = Instant::now() + config.settle_timeout;
    loop {
        let settled: usize = waiting
            .iter()
            .map(|(client, video, size)| {
                client
                    .received()
                    .iter()
                    .filter(|t| video.contains(&t.track_sid) && t.frame_size == Some(*size))
                    .count()
            })
            .sum();
        if settled >= total {
            progress(&format!(
                "subscribers receive their asked-for layer on all {total} video streams"
            ));
            return;
        }
        if Instant::now() >= deadline {
            progress(&format!(
                "warning: only {settled} of {total} video streams switched to the asked-for layer; measuring anyway"
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_list_every_sent_layer_then_other_sizes_smallest_first() {
        let specs =
            [("q", 320, 180, 150_000), ("f", 1280, 720, 1_700_000)].map(|(r, w, h, b)| LayerSpec {
                rid: Some(r.into()),
                width: w,
                height: h,
                bitrate_bps: b,
            });
        let mut received = LayerTallies::new();
        received.insert(
            (1280, 720),
            LayerTally {
                streams: 2,
                packets: 100,
                bytes: 500_000,
                keyframes: 2,
            },
        );
        received.insert((640, 360), LayerTally::default());
        let sent = SentBySize::from([((320, 180), 37_500), ((1280, 720), 425_000)]);
        let figures = layer_figures(&specs, &received, &sent, 1, Duration::from_secs(2));
        let shape: Vec<_> = figures
            .iter()
            .map(|l| (l.layer.as_deref(), l.width, l.streams))
            .collect();
        assert_eq!(
            shape,
            [(Some("q"), 320, 0), (None, 640, 0), (Some("f"), 1280, 2)]
        );
        let f = &figures[2];
        assert_eq!(f.received_bitrate_bps, 2_000_000.0);
        assert_eq!(f.received_bitrate_bps_per_stream, Some(1_000_000.0));
        assert_eq!(f.sent_bitrate_bps_per_publisher, Some(1_700_000.0));
        assert_eq!(figures[0].received_bitrate_bps_per_stream, None);
        assert_eq!(figures[0].sent_bitrate_bps_per_publisher, Some(150_000.0));
        assert_eq!(
            figures[1].sent_bitrate_bps_per_publisher, None,
            "no layer sent it"
        );
        let since = sent_since(&SentBySize::from([((1280, 720), 25_000)]), &sent);
        assert_eq!(since[&(1280, 720)], 400_000);
        let since = sent_since(&SentBySize::from([((320, 180), 40_000)]), &sent);
        assert_eq!(since[&(320, 180)], 37_500, "a counter that went backwards");
    }
}
