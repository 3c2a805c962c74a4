//! Receive-side bookkeeping: which remote track each subscriber `mid` carries, and per-track counters
//! ([`ReceivedTrackStats`]) that the RTP reader tasks update.
//!
//! A `mid` can be reused by the server for another track after a renegotiation, so packets are attributed to
//! the track the `mid` carries when they arrive, and counters are kept per track sid.
//!
//! Video is also counted by the size of the last VP8 keyframe seen ([`FrameSizeStats`]): with simulcast that
//! size names the layer being received (see `vp8.rs`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chorus_protocol::{SubscribedTrack, TrackKind};

use crate::histogram::LatencyHistogram;

/// What this client has received of one remote track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedTrackStats {
    pub track_sid: String,
    pub participant_sid: String,
    /// The subscriber-connection `mid` that carried it (the last one, if it moved).
    pub mid: String,
    pub kind: TrackKind,
    /// RTP packets received (after SRTP, before any depacketizing).
    pub packets: u64,
    /// RTP payload bytes received.
    pub bytes: u64,
    /// Frames that carried a Chorus synthetic-media stamp (see [`crate::media`]), i.e. that a Chorus client sent.
    pub stamped_frames: u64,
    /// Sum of send-to-receive latencies of the stamped frames (same-host clocks: a load tester's measure).
    pub latency_total: Duration,
    /// Largest send-to-receive latency seen.
    pub latency_max: Duration,
    /// Sequence number of the last stamped frame (gaps mean frames that never arrived).
    pub last_frame_seq: Option<u32>,
    /// Send-to-receive latencies of the stamped frames.
    pub latency: LatencyHistogram,
    /// Packets the RTP sequence numbers say were sent, from the first received to the highest received (the
    /// RFC 3550 "expected"); `expected_packets - packets` were lost (negative with duplicates).
    pub expected_packets: u64,
    /// Size of the last VP8 keyframe received (video only): with simulcast, the layer arriving now.
    pub frame_size: Option<(u16, u16)>,
    /// Video packets and bytes by the size of the keyframe they followed, in first-seen order (packets before
    /// the first keyframe are only in `packets`/`bytes`).
    pub by_frame_size: Vec<FrameSizeStats>,
    /// Extended sequence numbers: first and highest seen.
    seq_first: Option<u64>,
    seq_max: u64,
}

/// What a video track delivered at one resolution (the size written in its keyframes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSizeStats {
    pub width: u16,
    pub height: u16,
    /// Keyframes of this size received.
    pub keyframes: u64,
    /// RTP packets and payload bytes from a keyframe of this size up to the next keyframe.
    pub packets: u64,
    pub bytes: u64,
}

/// One received RTP packet, as [`RemoteTracks::record`] counts it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReceivedPacket {
    pub seq: u16,
    pub payload_len: usize,
    /// `(frame sequence, latency)` of a synthetic-media stamp, if the packet carries one.
    pub stamp: Option<(u32, Duration)>,
    /// `(width, height)` if the packet starts a VP8 keyframe.
    pub keyframe: Option<(u16, u16)>,
}

impl ReceivedTrackStats {
    /// Mean send-to-receive latency of stamped frames, if any arrived.
    pub fn latency_mean(&self) -> Option<Duration> {
        let n = u32::try_from(self.stamped_frames).ok().filter(|n| *n > 0)?;
        Some(self.latency_total / n)
    }

    /// What arrived at `width`×`height` (see [`ReceivedTrackStats::by_frame_size`]).
    pub fn at_size(&self, width: u16, height: u16) -> Option<&FrameSizeStats> {
        self.by_frame_size
            .iter()
            .find(|s| (s.width, s.height) == (width, height))
    }

    /// Counts a packet under the current keyframe size (after switching to a new size if it starts a keyframe).
    fn record_size(&mut self, keyframe: Option<(u16, u16)>, payload_len: usize) {
        if let Some(size) = keyframe {
            self.frame_size = Some(size);
        }
        let Some((width, height)) = self.frame_size else {
            return;
        };
        let i = match self
            .by_frame_size
            .iter()
            .position(|s| (s.width, s.height) == (width, height))
        {
            Some(i) => i,
            None => {
                self.by_frame_size.push(FrameSizeStats {
                    width,
                    height,
                    keyframes: 0,
                    packets: 0,
                    bytes: 0,
                });
                self.by_frame_size.len() - 1
            }
        };
        let s = &mut self.by_frame_size[i];
        s.keyframes += u64::from(keyframe.is_some());
        s.packets += 1;
        s.bytes += payload_len as u64;
    }

    /// Packets missing by sequence number (0 if duplicates outnumber them).
    pub fn lost_packets(&self) -> u64 {
        self.expected_packets.saturating_sub(self.packets)
    }

    fn record_seq(&mut self, seq: u16) {
        let Some(first) = self.seq_first else {
            self.seq_first = Some(u64::from(seq));
            self.seq_max = u64::from(seq);
            self.expected_packets = 1;
            return;
        };
        // Extend against the highest seen: a step of more than half the space counts as backwards.
        let delta = i64::from(seq.wrapping_sub(self.seq_max as u16) as i16);
        let ext = self.seq_max.saturating_add_signed(delta);
        if ext > self.seq_max {
            self.seq_max = ext;
            self.expected_packets = self.seq_max - first + 1;
        }
    }
}

#[derive(Default)]
pub(crate) struct RemoteTracks {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// mid → what it carries now.
    by_mid: HashMap<String, SubscribedTrack>,
    /// track sid → counters; kept after the track goes away so totals stay readable.
    stats: HashMap<String, ReceivedTrackStats>,
    /// Track sids in the order they were first seen, for a stable listing.
    order: Vec<String>,
}

impl RemoteTracks {
    /// Replaces the mid map with the `tracks` of a new subscriber offer (a mid not listed carries nothing).
    pub(crate) fn set_assignments(&self, tracks: Vec<SubscribedTrack>) {
        let mut inner = self.lock();
        inner.by_mid = tracks.into_iter().map(|t| (t.mid.clone(), t)).collect();
    }

    /// What `mid` carries now.
    pub(crate) fn assignment(&self, mid: &str) -> Option<SubscribedTrack> {
        self.lock().by_mid.get(mid).cloned()
    }

    /// Counts one received packet on `mid`. Packets on a mid that carries nothing are not counted.
    pub(crate) fn record(&self, mid: &str, kind: TrackKind, packet: ReceivedPacket) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(assigned) = inner.by_mid.get(mid) else {
            return;
        };
        let entry = match inner.stats.get_mut(&assigned.track_sid) {
            Some(entry) => entry,
            None => {
                inner.order.push(assigned.track_sid.clone());
                inner
                    .stats
                    .entry(assigned.track_sid.clone())
                    .or_insert_with(|| ReceivedTrackStats {
                        track_sid: assigned.track_sid.clone(),
                        participant_sid: assigned.participant_sid.clone(),
                        mid: mid.to_owned(),
                        kind,
                        packets: 0,
                        bytes: 0,
                        stamped_frames: 0,
                        latency_total: Duration::ZERO,
                        latency_max: Duration::ZERO,
                        last_frame_seq: None,
                        latency: LatencyHistogram::default(),
                        expected_packets: 0,
                        frame_size: None,
                        by_frame_size: Vec::new(),
                        seq_first: None,
                        seq_max: 0,
                    })
            }
        };
        if entry.mid != mid {
            entry.mid = mid.to_owned();
        }
        entry.packets += 1;
        entry.bytes += packet.payload_len as u64;
        entry.record_seq(packet.seq);
        if kind == TrackKind::Video {
            entry.record_size(packet.keyframe, packet.payload_len);
        }
        if let Some((frame, latency)) = packet.stamp {
            entry.stamped_frames += 1;
            entry.latency_total += latency;
            entry.latency_max = entry.latency_max.max(latency);
            entry.latency.record(latency);
            entry.last_frame_seq = Some(frame);
        }
    }

    /// A snapshot of every track received so far, in first-seen order.
    pub(crate) fn snapshot(&self) -> Vec<ReceivedTrackStats> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .filter_map(|sid| inner.stats.get(sid).cloned())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(mid: &str, track: &str, participant: &str) -> SubscribedTrack {
        SubscribedTrack {
            mid: mid.into(),
            track_sid: track.into(),
            participant_sid: participant.into(),
        }
    }

    fn pkt(seq: u16, payload_len: usize) -> ReceivedPacket {
        ReceivedPacket {
            seq,
            payload_len,
            ..ReceivedPacket::default()
        }
    }

    #[test]
    fn counts_per_track_and_follows_mid_reuse() {
        let rt = RemoteTracks::default();
        rt.record("0", TrackKind::Audio, pkt(1, 100)); // before any offer: not counted
        rt.set_assignments(vec![sub("0", "TR_a", "PA_1"), sub("1", "TR_v", "PA_1")]);
        rt.record("0", TrackKind::Audio, pkt(65534, 100));
        rt.record(
            "0",
            TrackKind::Audio,
            ReceivedPacket {
                stamp: Some((7, Duration::from_millis(4))),
                ..pkt(1, 50) // wrapped; 65535 and 0 were lost
            },
        );
        rt.record("1", TrackKind::Video, pkt(9, 1000));
        // mid 0 now carries another participant's audio.
        rt.set_assignments(vec![sub("0", "TR_b", "PA_2")]);
        rt.record("0", TrackKind::Audio, pkt(300, 80));
        rt.record("0", TrackKind::Audio, pkt(299, 80)); // reordered
        rt.record("1", TrackKind::Video, pkt(10, 1000)); // inactive now

        let snap = rt.snapshot();
        assert_eq!(snap.len(), 3);
        assert_eq!(
            (snap[0].track_sid.as_str(), snap[0].packets, snap[0].bytes),
            ("TR_a", 2, 150)
        );
        assert_eq!(snap[0].stamped_frames, 1);
        assert_eq!(snap[0].last_frame_seq, Some(7));
        assert_eq!(snap[0].latency_mean(), Some(Duration::from_millis(4)));
        assert_eq!(snap[0].latency.count(), 1);
        assert_eq!((snap[0].expected_packets, snap[0].lost_packets()), (4, 2));
        assert_eq!((snap[1].track_sid.as_str(), snap[1].packets), ("TR_v", 1));
        assert_eq!(
            (snap[2].track_sid.as_str(), snap[2].participant_sid.as_str()),
            ("TR_b", "PA_2")
        );
        assert_eq!(snap[2].latency_mean(), None);
        assert_eq!((snap[2].expected_packets, snap[2].lost_packets()), (1, 0));
        assert_eq!(snap[2].packets, 2);
    }

    #[test]
    fn video_is_counted_by_the_size_of_the_last_keyframe() {
        let rt = RemoteTracks::default();
        rt.set_assignments(vec![sub("0", "TR_v", "PA_1"), sub("1", "TR_a", "PA_1")]);
        let key = |seq, len, size| ReceivedPacket {
            keyframe: Some(size),
            ..pkt(seq, len)
        };
        rt.record("0", TrackKind::Video, pkt(1, 100)); // before any keyframe: not attributed
        rt.record("0", TrackKind::Video, key(2, 1000, (320, 180)));
        rt.record("0", TrackKind::Video, pkt(3, 200));
        rt.record("0", TrackKind::Video, key(4, 3000, (1280, 720)));
        rt.record("0", TrackKind::Video, pkt(5, 900));
        rt.record("0", TrackKind::Video, key(6, 1100, (320, 180)));
        rt.record("1", TrackKind::Audio, key(1, 80, (1, 1))); // audio is never sized

        let snap = rt.snapshot();
        let v = &snap[0];
        assert_eq!((v.packets, v.bytes), (6, 6300));
        assert_eq!(v.frame_size, Some((320, 180)));
        assert_eq!(
            v.by_frame_size,
            [
                FrameSizeStats {
                    width: 320,
                    height: 180,
                    keyframes: 2,
                    packets: 3,
                    bytes: 2300
                },
                FrameSizeStats {
                    width: 1280,
                    height: 720,
                    keyframes: 1,
                    packets: 2,
                    bytes: 3900
                }
            ]
        );
        assert_eq!(v.at_size(1280, 720).map(|s| s.bytes), Some(3900));
        assert_eq!(v.at_size(640, 360), None);
        assert!(snap[1].by_frame_size.is_empty() && snap[1].frame_size.is_none());
    }
}
