//! Synthetic media: Opus-shaped audio frames and VP8-shaped video frames, paced in real time, so that bots and the
//! load tester produce realistic packet rates and sizes without encoding anything.
//!
//! Every frame carries a 16-byte **stamp** near its start — a magic marker, a frame sequence number and the send
//! time in microseconds since the Unix epoch — which the receiving side finds with [`find_stamp`] to measure
//! send-to-receive latency and loss. Video frames start with a valid VP8 frame tag (and a keyframe header every
//! `keyframe_interval` or when the SFU asks with PLI/FIR), so an SFU that inspects VP8 sees key/delta frames.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::watch;
use webrtc::media::Sample;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;

use crate::pacer::VideoSender;

/// Marks a Chorus stamp; chosen to be unlikely in the filler bytes.
pub const STAMP_MAGIC: [u8; 4] = [0xC4, 0x0A, 0x5E, 0x17];
/// Length of a stamp: magic, sequence (u32 BE), send time in µs since the epoch (u64 BE).
pub const STAMP_LEN: usize = 16;
/// How far into an RTP payload [`find_stamp`] looks (VP8 payload descriptor + keyframe header + slack).
const STAMP_SEARCH: usize = 32;

/// Shape of the synthetic media a client publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaOptions {
    /// Average video bitrate, bits per second (default 500 kbit/s).
    pub video_bitrate_bps: u32,
    /// Video frames per second (default 30).
    pub video_fps: u32,
    /// Keyframe period (default 2 s); keyframes are about 6× the size of a delta frame.
    pub keyframe_interval: Duration,
    /// Resolution written into VP8 keyframe headers (default 640×360).
    pub video_width: u16,
    pub video_height: u16,
    /// Video packets leave at this multiple of the video bitrate, as a browser's pacer sends them (Chrome's
    /// factor is 2.5, the default), so a keyframe is spread over tens of milliseconds; 0 sends each frame's
    /// packets at once, a harsher load than any browser.
    pub pacing_factor: f64,
}

impl Default for MediaOptions {
    fn default() -> Self {
        MediaOptions {
            video_bitrate_bps: 500_000,
            video_fps: 30,
            keyframe_interval: Duration::from_secs(2),
            video_width: 640,
            video_height: 360,
            pacing_factor: 2.5,
        }
    }
}

/// Controls and counters shared between a publishing task (one encoding) and the client API.
#[derive(Default)]
pub(crate) struct SourceControl {
    pub muted: AtomicBool,
    /// Dynacast asked this simulcast layer to stop (`publishLayers`); it sends nothing, like a muted source.
    pub paused: AtomicBool,
    pub keyframe_requested: AtomicBool,
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
}

/// Writes the 16-byte stamp for frame `seq` sent at `at`.
pub fn write_stamp(buf: &mut BytesMut, seq: u32, at: SystemTime) {
    let micros = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    buf.put_slice(&STAMP_MAGIC);
    buf.put_u32(seq);
    buf.put_u64(micros);
}

/// Where a whole stamp starts near the start of an RTP payload.
pub fn stamp_offset(payload: &[u8]) -> Option<usize> {
    let head = &payload[..payload.len().min(STAMP_SEARCH + STAMP_LEN)];
    let at = head.windows(4).position(|w| w == STAMP_MAGIC)?;
    (at + STAMP_LEN <= head.len()).then_some(at)
}

/// Finds a stamp near the start of an RTP payload: `(frame sequence, send time)`.
pub fn find_stamp(payload: &[u8]) -> Option<(u32, SystemTime)> {
    let at = stamp_offset(payload)?;
    let body = &payload[at + 4..at + STAMP_LEN];
    let seq = u32::from_be_bytes(body[..4].try_into().ok()?);
    let micros = u64::from_be_bytes(body[4..12].try_into().ok()?);
    Some((seq, UNIX_EPOCH + Duration::from_micros(micros)))
}

/// A small xorshift generator: frame-size jitter only, never security.
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
        Jitter(seed | 1)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (self.0 % (hi - lo + 1) as u64) as usize
    }
}

fn fill(buf: &mut BytesMut, len: usize) {
    let mut i = buf.len();
    while buf.len() < len {
        buf.put_u8((i as u8).wrapping_mul(31) | 0x01);
        i += 1;
    }
}

/// One Opus-shaped frame: a TOC byte (20 ms, fullband, mono), the stamp and filler, `size` bytes in all.
pub fn audio_frame(seq: u32, size: usize, at: SystemTime) -> Bytes {
    let mut buf = BytesMut::with_capacity(size.max(1 + STAMP_LEN));
    buf.put_u8(0x78);
    write_stamp(&mut buf, seq, at);
    fill(&mut buf, size);
    buf.freeze()
}

/// One VP8-shaped frame of `size` bytes: frame tag (plus start code and size for a keyframe), stamp, filler.
pub fn video_frame(
    seq: u32,
    size: usize,
    keyframe: bool,
    opts: &MediaOptions,
    at: SystemTime,
) -> Bytes {
    let header = if keyframe { 10 } else { 3 };
    let size = size.max(header + STAMP_LEN);
    let mut buf = BytesMut::with_capacity(size);
    let first_partition = ((size - header) / 4).min(0x7FFFF) as u32;
    // Frame tag: bit 0 = 0 for a keyframe, version 0, show_frame = 1, 19-bit first partition size.
    let tag = u32::from(!keyframe) | (1 << 4) | (first_partition << 5);
    buf.put_slice(&tag.to_le_bytes()[..3]);
    if keyframe {
        buf.put_slice(&[0x9d, 0x01, 0x2a]);
        buf.put_u16_le(opts.video_width & 0x3FFF);
        buf.put_u16_le(opts.video_height & 0x3FFF);
    }
    write_stamp(&mut buf, seq, at);
    fill(&mut buf, size);
    buf.freeze()
}

/// Sends 20 ms audio frames of 60–120 bytes (50 per second) until `stop` flips or the track is gone.
pub(crate) async fn run_audio(
    track: Arc<TrackLocalStaticSample>,
    ctl: Arc<SourceControl>,
    mut stop: watch::Receiver<bool>,
) {
    let frame = Duration::from_millis(20);
    let mut tick = tokio::time::interval(frame);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut jitter = Jitter::new();
    let mut seq = 0u32;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if ctl.muted.load(Ordering::Relaxed) {
            continue;
        }
        let data = audio_frame(seq, jitter.range(60, 120), SystemTime::now());
        if !send(&track, &ctl, data, frame).await {
            return;
        }
        seq = seq.wrapping_add(1);
    }
}

/// Sends VP8-shaped frames at `video_fps`, averaging `video_bitrate_bps`, with a keyframe every
/// `keyframe_interval`, on unmute (or when dynacast resumes the layer), and when the SFU asks (at most every
/// 300 ms); their packets paced at `pacing_factor` × the bitrate (`pacer.rs`). A simulcast track runs one of these per layer, each with its own options.
pub(crate) async fn run_video(
    track: Arc<TrackLocalStaticRTP>,
    ctl: Arc<SourceControl>,
    opts: MediaOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut sender = VideoSender::new(track, opts.video_bitrate_bps, opts.pacing_factor);
    let fps = opts.video_fps.clamp(1, 120);
    let frame = Duration::from_secs(1) / fps;
    // Per keyframe interval: one keyframe of ~6 delta frames, the rest deltas; solve for the delta size.
    let frames_per_key = (opts.keyframe_interval.as_secs_f64() * f64::from(fps)).max(1.0);
    let bytes_per_frame = f64::from(opts.video_bitrate_bps) / 8.0 / f64::from(fps);
    let delta = (bytes_per_frame * frames_per_key / (frames_per_key + 5.0)).max(40.0) as usize;
    let mut tick = tokio::time::interval(frame);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut jitter = Jitter::new();
    let mut seq = 0u32;
    let mut last_key: Option<Instant> = None;
    let mut was_muted = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let muted = ctl.muted.load(Ordering::Relaxed) || ctl.paused.load(Ordering::Relaxed);
        if muted {
            was_muted = true;
            continue;
        }
        let now = Instant::now();
        let requested = ctl.keyframe_requested.swap(false, Ordering::Relaxed)
            && last_key.is_none_or(|t| now.duration_since(t) >= Duration::from_millis(300));
        let keyframe = was_muted
            || requested
            || last_key.is_none_or(|t| now.duration_since(t) >= opts.keyframe_interval);
        was_muted = false;
        let size = if keyframe {
            last_key = Some(now);
            jitter.range(delta * 5, delta * 7)
        } else {
            jitter.range(delta * 7 / 10, delta * 13 / 10)
        };
        let data = video_frame(seq, size, keyframe, &opts, SystemTime::now());
        if sender.send_frame(&data, frame).await {
            ctl.frames_sent.fetch_add(1, Ordering::Relaxed);
            ctl.bytes_sent
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        seq = seq.wrapping_add(1);
    }
}

async fn send(
    track: &TrackLocalStaticSample,
    ctl: &SourceControl,
    data: Bytes,
    duration: Duration,
) -> bool {
    let len = data.len() as u64;
    let sample = Sample {
        data,
        duration,
        timestamp: SystemTime::now(),
        ..Default::default()
    };
    match track.write_sample(&sample).await {
        Ok(()) => {
            ctl.frames_sent.fetch_add(1, Ordering::Relaxed);
            ctl.bytes_sent.fetch_add(len, Ordering::Relaxed);
            true
        }
        Err(webrtc::Error::ErrClosedPipe) => false,
        Err(err) => {
            tracing::trace!(%err, "write_sample failed");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_behind_a_vp8_descriptor() {
        let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let opts = MediaOptions::default();
        let key = video_frame(42, 5000, true, &opts, at);
        assert_eq!(key.len(), 5000);
        assert_eq!(key[0] & 1, 0, "keyframe bit");
        assert_eq!(&key[3..6], &[0x9d, 0x01, 0x2a]);
        assert_eq!(u16::from_le_bytes([key[6], key[7]]), 640);
        // An RTP payload: 4-byte VP8 payload descriptor (with picture id) then the frame.
        let mut payload = vec![0x90, 0x80, 0x81, 0x23];
        payload.extend_from_slice(&key[..1200]);
        assert_eq!(find_stamp(&payload), Some((42, at)));

        let delta = video_frame(43, 10, false, &opts, at);
        assert_eq!(delta.len(), 3 + STAMP_LEN, "grown to fit the stamp");
        assert_eq!(delta[0] & 1, 1, "delta frame bit");
        assert_eq!(find_stamp(&delta), Some((43, at)));

        let audio = audio_frame(7, 90, at);
        assert_eq!(audio.len(), 90);
        assert_eq!(find_stamp(&audio), Some((7, at)));
    }

    #[test]
    fn no_stamp_in_continuation_packets_or_garbage() {
        let frame = video_frame(1, 3000, false, &MediaOptions::default(), SystemTime::now());
        assert_eq!(find_stamp(&frame[1200..]), None);
        assert_eq!(find_stamp(&[]), None);
        assert_eq!(find_stamp(&STAMP_MAGIC), None, "truncated stamp");
    }
}
