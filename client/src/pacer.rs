//! Sending one video encoding's frames as RTP, spread over time the way a browser's pacer spreads them.
//!
//! A browser does not put a frame's packets on the wire at once: its pacer releases them at a multiple of the
//! target bitrate (Chrome: 2.5×), so a keyframe of forty packets takes tens of milliseconds to leave. A
//! publisher that sends each frame in one burst is a harsher load than any browser: every packet of a keyframe
//! reaches the SFU at the same instant and queues there behind the others' copies. [`VideoSender`] packetizes a
//! frame (VP8, picture ids on, as webrtc-rs does for a sample track) and, with a pacing factor, hands the
//! packets to a pacer task that sends them one gap apart; with factor 0 it sends them at once.
//!
//! A frame's stamp (see `media.rs`) is rewritten with the time its first packet actually leaves, so latency
//! measured from it is network and SFU, not time spent in this pacer's queue.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::time::Instant;
use webrtc::rtp::codecs::vp8::Vp8Payloader;
use webrtc::rtp::packet::Packet;
use webrtc::rtp::packetizer::{new_packetizer, Packetizer};
use webrtc::rtp::sequence::new_random_sequencer;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;

use crate::media::{stamp_offset, write_stamp};

/// The largest RTP payload plus header webrtc-rs's sample tracks produce; the same here.
const MTU: usize = 1200;

/// The RTP clock rate of video.
const VIDEO_CLOCK_RATE: u32 = 90_000;

/// Frames waiting in the pacer beyond this are dropped (as an encoder skips frames when its pacer's queue grows
/// long); at the default factor the queue never gets near it.
const MAX_QUEUED_FRAMES: usize = 30;

/// How long a packet of `bytes` occupies a link paced at `rate_bps` (bits per second).
pub fn pacing_gap(bytes: usize, rate_bps: f64) -> Duration {
    if rate_bps <= 0.0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(bytes as f64 * 8.0 / rate_bps)
}

/// Writes one encoding's frames to its track, paced or not.
pub(crate) struct VideoSender {
    track: Arc<TrackLocalStaticRTP>,
    packetizer: Box<dyn Packetizer + Send + Sync>,
    /// Frames for the pacer task (none when unpaced).
    pacer: Option<mpsc::Sender<Vec<Packet>>>,
}

impl VideoSender {
    /// A sender for `track`, pacing at `pacing_factor` × `bitrate_bps` (factor 0: each frame at once). Paced,
    /// it spawns the pacer task, which ends when the sender is dropped.
    pub(crate) fn new(
        track: Arc<TrackLocalStaticRTP>,
        bitrate_bps: u32,
        pacing_factor: f64,
    ) -> Self {
        let mut payloader = Vp8Payloader::default();
        payloader.enable_picture_id = true;
        // Payload type and SSRC are set per binding by the track when it writes.
        let packetizer = new_packetizer(
            MTU,
            0,
            0,
            Box::new(payloader),
            Box::new(new_random_sequencer()),
            VIDEO_CLOCK_RATE,
        );
        let rate_bps = f64::from(bitrate_bps) * pacing_factor;
        let pacer = (rate_bps > 0.0).then(|| {
            let (tx, rx) = mpsc::channel(MAX_QUEUED_FRAMES);
            let track = Arc::clone(&track);
            tokio::spawn(run_pacer(rx, rate_bps, move |packet| {
                let track = Arc::clone(&track);
                async move { write(&track, &packet).await }
            }));
            tx
        });
        VideoSender {
            track,
            packetizer: Box::new(packetizer),
            pacer,
        }
    }

    /// Packetizes one frame lasting `duration` and sends it (paced: queues it for the pacer). False if the
    /// frame was dropped because the pacer's queue is full.
    pub(crate) async fn send_frame(&mut self, frame: &Bytes, duration: Duration) -> bool {
        // Dropped before it is packetized, as an encoder skips a frame: no sequence numbers are used up, so
        // the receiver sees no loss.
        if self.pacer.as_ref().is_some_and(|p| p.capacity() == 0) {
            return false;
        }
        let samples = (duration.as_secs_f64() * f64::from(VIDEO_CLOCK_RATE)) as u32;
        let packets = match self.packetizer.packetize(frame, samples) {
            Ok(p) => p,
            Err(err) => {
                tracing::trace!(%err, "packetize failed");
                return false;
            }
        };
        match &self.pacer {
            Some(pacer) => pacer.try_send(packets).is_ok(),
            None => {
                for p in &packets {
                    write(&self.track, p).await;
                }
                true
            }
        }
    }
}

async fn write(track: &TrackLocalStaticRTP, packet: &Packet) {
    if let Err(err) = track.write_rtp_with_extensions(packet, &[]).await {
        tracing::trace!(%err, "write_rtp failed");
    }
}

/// Sends (with `write`) the queued frames' packets one [`pacing_gap`] apart at `rate_bps`, re-stamping each
/// frame's first packet as it leaves. Idle time is not saved up: after a pause the next packet leaves at once,
/// and the one after it a gap later.
async fn run_pacer<W, F>(mut frames: mpsc::Receiver<Vec<Packet>>, rate_bps: f64, mut write: W)
where
    W: FnMut(Packet) -> F,
    F: Future<Output = ()>,
{
    let mut next = Instant::now();
    while let Some(packets) = frames.recv().await {
        for mut packet in packets {
            let now = Instant::now();
            if next > now {
                tokio::time::sleep_until(next).await;
            }
            next = next.max(now) + pacing_gap(packet.payload.len(), rate_bps);
            if let Some(restamped) = restamp(&packet.payload, SystemTime::now()) {
                packet.payload = restamped;
            }
            write(packet).await;
        }
    }
}

/// `payload` with its stamp's send time set to `at`, if it carries a stamp.
fn restamp(payload: &Bytes, at: SystemTime) -> Option<Bytes> {
    let offset = stamp_offset(payload)?;
    let seq = u32::from_be_bytes(payload[offset + 4..offset + 8].try_into().ok()?);
    let mut stamp = BytesMut::new();
    write_stamp(&mut stamp, seq, at);
    let mut out = BytesMut::from(&payload[..]);
    out[offset..offset + stamp.len()].copy_from_slice(&stamp);
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{find_stamp, video_frame, MediaOptions};
    use std::time::UNIX_EPOCH;

    #[test]
    fn a_packet_occupies_its_size_at_the_pacing_rate() {
        // 1,200 bytes at 4.25 Mbit/s (2.5 × 1.7 Mbit/s): 2.26 ms.
        let gap = pacing_gap(1200, 2.5 * 1_700_000.0);
        assert_eq!(gap.as_micros(), 2258);
        assert_eq!(pacing_gap(1200, 0.0), Duration::ZERO);
        assert_eq!(pacing_gap(0, 1e6), Duration::ZERO);
    }

    /// Packets of `sizes` bytes, as one frame.
    fn frame_of(sizes: &[usize]) -> Vec<Packet> {
        sizes
            .iter()
            .map(|&n| Packet {
                payload: Bytes::from(vec![0u8; n]),
                ..Default::default()
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn packets_leave_one_gap_apart_and_idle_time_is_not_saved_up() {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_FRAMES);
        let (sent_tx, mut sent) = mpsc::unbounded_channel();
        let start = Instant::now();
        // 1,000-byte packets at 800 kbit/s: 10 ms apart.
        tokio::spawn(run_pacer(rx, 800_000.0, move |_packet| {
            let _ = sent_tx.send(Instant::now() - start);
            std::future::ready(())
        }));
        tx.send(frame_of(&[1000; 4])).await.expect("pacer runs");
        tx.send(frame_of(&[1000; 2])).await.expect("pacer runs");
        let mut at = Vec::new();
        for _ in 0..6 {
            at.push(sent.recv().await.expect("sent").as_millis());
        }
        // Two frames queued back to back: one stream of packets, a gap apart.
        assert_eq!(at, [0, 10, 20, 30, 40, 50]);

        // After a long pause the next frame's first packet leaves at once, not in a burst of saved-up credit.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let resumed = Instant::now() - start;
        tx.send(frame_of(&[1000; 2])).await.expect("pacer runs");
        let first = sent.recv().await.expect("sent");
        let second = sent.recv().await.expect("sent");
        assert_eq!(first, resumed);
        assert_eq!((second - first).as_millis(), 10);
    }

    #[test]
    fn restamping_changes_only_the_send_time() {
        let sent = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = sent + Duration::from_millis(40);
        let frame = video_frame(9, 900, true, &MediaOptions::default(), sent);
        let mut payload = BytesMut::from(&[0x90u8, 0x80, 0x81, 0x23][..]);
        payload.extend_from_slice(&frame);
        let payload = payload.freeze();
        let restamped = restamp(&payload, later).expect("has a stamp");
        assert_eq!(find_stamp(&restamped), Some((9, later)));
        assert_eq!(restamped.len(), payload.len());
        let stamp = stamp_offset(&payload).expect("a stamp");
        assert_eq!(restamped[..stamp], payload[..stamp]);
        assert_eq!(restamped[stamp + 16..], payload[stamp + 16..]);
        // A continuation packet has no stamp and is left alone.
        assert_eq!(restamp(&frame.slice(400..), later), None);
    }
}
