//! Call quality per participant: a [`QualityMeter`] turns str0m's once-a-second stats events into the
//! participant's current RTT, jitter, loss and bitrates ([`QualityReport`]), a MOS-style score ([`mos`]) and a
//! session summary ([`QualitySummary`]).
//!
//! Pure: the worker core hands it the stats events of the participant's two peer connections, with the kind
//! of track each stream carries; it keeps a handful of numbers per participant, reads no clock (times come from
//! the events and the caller) and touches no str0m state. Every event costs O(1) and allocates nothing.
//!
//! Directions are the participant's: **uplink** is what it sends us (its publisher connection), **downlink** what
//! we send it (its subscriber connection). Where each number comes from (str0m 0.25):
//! - bitrates: deltas of `PeerStats::peer_bytes_rx/tx` of both connections (every byte: media, RTCP,
//!   retransmissions, probes, data channels, ICE);
//! - uplink loss: the fraction lost in the receiver reports we send (`MediaIngressStats::loss`) and, when the
//!   publisher stamps transport-wide sequence numbers, `PeerStats::ingress_loss_fraction`;
//! - uplink jitter: the interarrival jitter of those reports (`MediaIngressStats::jitter`);
//! - downlink loss and jitter: the subscriber's receiver reports (`MediaEgressStats::loss`, `remote.jitter`)
//!   and, with transport-wide congestion control, `PeerStats::egress_loss_fraction`;
//! - RTT: the subscriber's receiver reports (`MediaEgressStats::rtt`); without them the transport-wide feedback
//!   round trip (`PeerStats::rtt`, which also holds the receiver's feedback delay), or an XR DLRR report from
//!   the publisher (`MediaIngressStats::rtt`). A participant that receives no media usually has no RTT.
//!
//! The events of one stats tick share a timestamp; per-stream values of one tick are combined by taking the
//! worst stream. Jitter is taken from audio streams when there are any (the score is about conversation; video
//! jitter mostly shows frame bursts), else from video. Where two sources give a loss, the higher counts. A
//! value not refreshed for [`STALE_AFTER`] is forgotten; anything never measured is `None`, never zero.

use std::time::{Duration, Instant};

use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};

use crate::api::{MediaKind, PcKind};

/// How long a measurement stays current without a new one.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// The least time between two session samples (stats come once a second per peer connection, two per
/// participant at unrelated phases: this keeps one sample per second).
const MIN_SAMPLE_GAP: Duration = Duration::from_millis(900);

/// RTP clock rates: Opus (the only audio codec negotiated) and every video codec.
const AUDIO_CLOCK_HZ: f64 = 48_000.0;
const VIDEO_CLOCK_HZ: f64 = 90_000.0;

/// E-model (ITU-T G.107, simplified) constants.
/// R with default transmission parameters and no impairment (G.107's default Ro − Is).
const R_DEFAULT: f64 = 93.2;
/// One-way delay added by encoding and packetization, in milliseconds.
const CODEC_DELAY_MS: f64 = 10.0;
/// Equipment impairment of the codec without loss: 0 for Opus at conversational bitrates.
const IE: f64 = 0.0;
/// Packet-loss robustness of the codec (G.113 lists 4–25 for common codecs); 10 is a conservative value for
/// Opus with its packet-loss concealment and without in-band FEC.
const BPL: f64 = 10.0;

/// A MOS-style score (1 = bad … 4.5 = best a call can get) from the E-model: effective one-way latency
/// `d = rtt/2 + 2·jitter + 10 ms`, delay impairment `Id = d/40` below 160 ms else `(d − 120)/10`, loss
/// impairment `Ie,eff = Ie + (95 − Ie)·Ppl/(Ppl + Bpl)` (`Ppl` in percent), `R = 93.2 − Id − Ie,eff`, and
/// `MOS = 1 + 0.035R + 7·10⁻⁶·R(R − 60)(100 − R)` clamped to [1, 4.5].
///
/// `loss` is a fraction (0–1, clamped); NaN or negative inputs count as 0. A perfect network scores about 4.4.
pub fn mos(rtt_ms: f64, jitter_ms: f64, loss: f64) -> f64 {
    let clean = |x: f64| if x.is_nan() { 0.0 } else { x.max(0.0) };
    let d = clean(rtt_ms) / 2.0 + 2.0 * clean(jitter_ms) + CODEC_DELAY_MS;
    let id = if d < 160.0 {
        d / 40.0
    } else {
        (d - 120.0) / 10.0
    };
    let ppl = clean(loss).min(1.0) * 100.0;
    let ie_eff = IE + (95.0 - IE) * ppl / (ppl + BPL);
    let r = R_DEFAULT - id - ie_eff;
    let score = if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)
    };
    score.clamp(1.0, 4.5)
}

/// One direction of a participant's media, as last measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkQuality {
    /// Bits per second over the last stats interval.
    pub bitrate_bps: Option<u64>,
    /// Fraction of packets lost (0–1).
    pub loss: Option<f64>,
    /// Interarrival jitter in milliseconds.
    pub jitter_ms: Option<f64>,
}

/// A participant's call quality now.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QualityReport {
    pub rtt_ms: Option<f64>,
    /// The worse of uplink and downlink.
    pub jitter_ms: Option<f64>,
    /// The worse of uplink and downlink (fraction, 0–1).
    pub loss: Option<f64>,
    /// What the participant sends us / what we send it, in bits per second.
    pub bitrate_in_bps: Option<u64>,
    pub bitrate_out_bps: Option<u64>,
    /// [`mos`] of the above; `None` until RTT, jitter and loss are all known.
    pub mos: Option<f64>,
    pub uplink: LinkQuality,
    pub downlink: LinkQuality,
}

/// A participant's call quality over its session: means and extremes of its once-a-second samples.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QualitySummary {
    /// Since the participant was added to its worker.
    pub duration: Duration,
    /// Seconds sampled (each sample counts only the values known then).
    pub samples: u64,
    pub mos_mean: Option<f64>,
    pub mos_min: Option<f64>,
    pub rtt_mean_ms: Option<f64>,
    pub rtt_max_ms: Option<f64>,
    /// Fractions (0–1).
    pub loss_mean: Option<f64>,
    pub loss_max: Option<f64>,
    pub jitter_mean_ms: Option<f64>,
    pub jitter_max_ms: Option<f64>,
    /// Bytes received from / sent to the participant on both connections, as of the last stats tick.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// The latest value of one measurement: the worst of the streams reporting in the current tick.
#[derive(Debug, Clone, Copy, Default)]
struct Latest {
    value: f64,
    at: Option<Instant>,
}

impl Latest {
    fn record(&mut self, at: Instant, value: f64) {
        if !value.is_finite() {
            return;
        }
        match self.at {
            Some(t) if t == at => self.value = self.value.max(value),
            Some(t) if t > at => {} // an older tick: ignore
            _ => {
                *self = Latest {
                    value,
                    at: Some(at),
                }
            }
        }
    }

    fn get(&self, now: Instant) -> Option<f64> {
        let at = self.at?;
        (now.saturating_duration_since(at) <= STALE_AFTER).then_some(self.value)
    }
}

/// A cumulative byte count and the bitrate between its last two readings.
#[derive(Debug, Clone, Copy, Default)]
struct ByteCounter {
    last: Option<(Instant, u64)>,
    bps: Latest,
}

impl ByteCounter {
    fn record(&mut self, at: Instant, total: u64) {
        if let Some((t0, b0)) = self.last {
            let secs = at.saturating_duration_since(t0).as_secs_f64();
            if secs > 0.0 {
                self.bps
                    .record(at, total.saturating_sub(b0) as f64 * 8.0 / secs);
            }
        }
        self.last = Some((at, total));
    }

    fn total(&self) -> u64 {
        self.last.map_or(0, |(_, b)| b)
    }
}

/// Loss and jitter of one direction.
#[derive(Debug, Clone, Copy, Default)]
struct Link {
    /// From receiver reports, per stream.
    loss_reports: Latest,
    /// From transport-wide congestion control, per connection.
    loss_transport: Latest,
    /// Seconds.
    jitter_audio: Latest,
    jitter_video: Latest,
}

impl Link {
    fn record_jitter(&mut self, at: Instant, kind: MediaKind, rtp_units: u32) {
        let (slot, rate) = match kind {
            MediaKind::Audio => (&mut self.jitter_audio, AUDIO_CLOCK_HZ),
            MediaKind::Video => (&mut self.jitter_video, VIDEO_CLOCK_HZ),
        };
        slot.record(at, f64::from(rtp_units) / rate);
    }

    fn quality(&self, now: Instant, bitrate_bps: Option<u64>) -> LinkQuality {
        let jitter = self
            .jitter_audio
            .get(now)
            .or_else(|| self.jitter_video.get(now));
        LinkQuality {
            bitrate_bps,
            loss: worse(self.loss_reports.get(now), self.loss_transport.get(now)),
            jitter_ms: jitter.map(|s| s * 1000.0),
        }
    }
}

fn worse(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn sum_bps(a: Option<f64>, b: Option<f64>) -> Option<u64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some((a.unwrap_or(0.0) + b.unwrap_or(0.0)).round() as u64),
    }
}

/// Count, sum and extremes of the samples of one value.
#[derive(Debug, Clone, Copy, Default)]
struct Running {
    n: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Running {
    fn add(&mut self, v: Option<f64>) {
        let Some(v) = v else {
            return;
        };
        if self.n == 0 {
            (self.min, self.max) = (v, v);
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.n += 1;
        self.sum += v;
    }

    fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }

    fn min(&self) -> Option<f64> {
        (self.n > 0).then_some(self.min)
    }

    fn max(&self) -> Option<f64> {
        (self.n > 0).then_some(self.max)
    }
}

/// One participant's call quality, fed from its connections' stats events.
#[derive(Debug, Clone)]
pub struct QualityMeter {
    started: Instant,
    /// Received on / sent on the publisher and the subscriber connection.
    publisher_rx: ByteCounter,
    publisher_tx: ByteCounter,
    subscriber_rx: ByteCounter,
    subscriber_tx: ByteCounter,
    uplink: Link,
    downlink: Link,
    rtt_reports: Latest,
    rtt_transport: Latest,
    rtt_publisher: Latest,
    last_sample: Option<Instant>,
    samples: u64,
    mos: Running,
    rtt: Running,
    loss: Running,
    jitter: Running,
}

impl QualityMeter {
    pub fn new(now: Instant) -> Self {
        QualityMeter {
            started: now,
            publisher_rx: ByteCounter::default(),
            publisher_tx: ByteCounter::default(),
            subscriber_rx: ByteCounter::default(),
            subscriber_tx: ByteCounter::default(),
            uplink: Link::default(),
            downlink: Link::default(),
            rtt_reports: Latest::default(),
            rtt_transport: Latest::default(),
            rtt_publisher: Latest::default(),
            last_sample: None,
            samples: 0,
            mos: Running::default(),
            rtt: Running::default(),
            loss: Running::default(),
            jitter: Running::default(),
        }
    }

    /// A connection's `PeerStats`. About once a second this also takes a session sample and returns it (for
    /// the worker's histograms).
    pub fn on_peer_stats(&mut self, pc: PcKind, s: &PeerStats) -> Option<QualityReport> {
        let at = s.timestamp;
        match pc {
            PcKind::Publisher => {
                self.publisher_rx.record(at, s.peer_bytes_rx);
                self.publisher_tx.record(at, s.peer_bytes_tx);
                if let Some(loss) = s.ingress_loss_fraction {
                    self.uplink.loss_transport.record(at, f64::from(loss));
                }
            }
            PcKind::Subscriber => {
                self.subscriber_rx.record(at, s.peer_bytes_rx);
                self.subscriber_tx.record(at, s.peer_bytes_tx);
                if let Some(loss) = s.egress_loss_fraction {
                    self.downlink.loss_transport.record(at, f64::from(loss));
                }
                if let Some(rtt) = s.rtt {
                    self.rtt_transport.record(at, rtt.as_secs_f64() * 1000.0);
                }
            }
        }
        self.sample(at)
    }

    /// Stats of a stream the participant publishes (`kind` of its track).
    pub fn on_ingress(&mut self, kind: MediaKind, s: &MediaIngressStats) {
        let at = s.timestamp;
        self.uplink.record_jitter(at, kind, s.jitter);
        if let Some(loss) = s.loss {
            self.uplink.loss_reports.record(at, f64::from(loss));
        }
        if let Some(rtt) = s.rtt {
            self.rtt_publisher.record(at, rtt.as_secs_f64() * 1000.0);
        }
    }

    /// Stats of a stream the participant receives (`kind` of its track).
    pub fn on_egress(&mut self, kind: MediaKind, s: &MediaEgressStats) {
        let at = s.timestamp;
        if let Some(remote) = &s.remote {
            self.downlink.record_jitter(at, kind, remote.jitter);
        }
        if let Some(loss) = s.loss {
            self.downlink.loss_reports.record(at, f64::from(loss));
        }
        if let Some(rtt) = s.rtt {
            self.rtt_reports.record(at, rtt.as_secs_f64() * 1000.0);
        }
    }

    /// The call quality as of `now`.
    pub fn report(&self, now: Instant) -> QualityReport {
        let uplink = self.uplink.quality(
            now,
            sum_bps(
                self.publisher_rx.bps.get(now),
                self.subscriber_rx.bps.get(now),
            ),
        );
        let downlink = self.downlink.quality(
            now,
            sum_bps(
                self.publisher_tx.bps.get(now),
                self.subscriber_tx.bps.get(now),
            ),
        );
        let rtt_ms = self
            .rtt_reports
            .get(now)
            .or_else(|| self.rtt_transport.get(now))
            .or_else(|| self.rtt_publisher.get(now));
        let jitter_ms = worse(uplink.jitter_ms, downlink.jitter_ms);
        let loss = worse(uplink.loss, downlink.loss);
        let mos = match (rtt_ms, jitter_ms, loss) {
            (Some(r), Some(j), Some(l)) => Some(mos(r, j, l)),
            _ => None,
        };
        QualityReport {
            rtt_ms,
            jitter_ms,
            loss,
            bitrate_in_bps: uplink.bitrate_bps,
            bitrate_out_bps: downlink.bitrate_bps,
            mos,
            uplink,
            downlink,
        }
    }

    /// The session so far, as of `now`.
    pub fn summary(&self, now: Instant) -> QualitySummary {
        QualitySummary {
            duration: now.saturating_duration_since(self.started),
            samples: self.samples,
            mos_mean: self.mos.mean(),
            mos_min: self.mos.min(),
            rtt_mean_ms: self.rtt.mean(),
            rtt_max_ms: self.rtt.max(),
            loss_mean: self.loss.mean(),
            loss_max: self.loss.max(),
            jitter_mean_ms: self.jitter.mean(),
            jitter_max_ms: self.jitter.max(),
            bytes_in: self.publisher_rx.total() + self.subscriber_rx.total(),
            bytes_out: self.publisher_tx.total() + self.subscriber_tx.total(),
        }
    }

    fn sample(&mut self, now: Instant) -> Option<QualityReport> {
        if self
            .last_sample
            .is_some_and(|t| now.saturating_duration_since(t) < MIN_SAMPLE_GAP)
        {
            return None;
        }
        self.last_sample = Some(now);
        let r = self.report(now);
        self.samples += 1;
        self.mos.add(r.mos);
        self.rtt.add(r.rtt_ms);
        self.loss.add(r.loss);
        self.jitter.add(r.jitter_ms);
        Some(r)
    }
}

#[cfg(test)]
mod tests;
