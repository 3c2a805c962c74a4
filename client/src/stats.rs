//! Receive-side bookkeeping: which remote track each subscriber `mid` carries, and per-track counters
//! ([`ReceivedTrackStats`]) that the RTP reader tasks update.
//!
//! A `mid` can be reused by the server for another track after a renegotiation, so packets are attributed to
//! the track the `mid` carries when they arrive, and counters are kept per track sid.

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
    /// Extended sequence numbers: first and highest seen.
    seq_first: Option<u64>,
    seq_max: u64,
}

impl ReceivedTrackStats {
    /// Mean send-to-receive latency of stamped frames, if any arrived.
    pub fn latency_mean(&self) -> Option<Duration> {
        let n = u32::try_from(self.stamped_frames).ok().filter(|n| *n > 0)?;
        Some(self.latency_total / n)
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

    /// Counts one received packet (RTP sequence number `seq`) on `mid`; `latency`/`frame_seq` come from a
    /// synthetic-media stamp, if any. Packets on a mid that carries nothing are not counted.
    pub(crate) fn record(
        &self,
        mid: &str,
        kind: TrackKind,
        seq: u16,
        payload_len: usize,
        stamp: Option<(u32, Duration)>,
    ) {
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
                        seq_first: None,
                        seq_max: 0,
                    })
            }
        };
        if entry.mid != mid {
            entry.mid = mid.to_owned();
        }
        entry.packets += 1;
        entry.bytes += payload_len as u64;
        entry.record_seq(seq);
        if let Some((frame, latency)) = stamp {
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

    #[test]
    fn counts_per_track_and_follows_mid_reuse() {
        let rt = RemoteTracks::default();
        rt.record("0", TrackKind::Audio, 1, 100, None); // before any offer: not counted
        rt.set_assignments(vec![sub("0", "TR_a", "PA_1"), sub("1", "TR_v", "PA_1")]);
        rt.record("0", TrackKind::Audio, 65534, 100, None);
        rt.record(
            "0",
            TrackKind::Audio,
            1, // wrapped; 65535 and 0 were lost
            50,
            Some((7, Duration::from_millis(4))),
        );
        rt.record("1", TrackKind::Video, 9, 1000, None);
        // mid 0 now carries another participant's audio.
        rt.set_assignments(vec![sub("0", "TR_b", "PA_2")]);
        rt.record("0", TrackKind::Audio, 300, 80, None);
        rt.record("0", TrackKind::Audio, 299, 80, None); // reordered
        rt.record("1", TrackKind::Video, 10, 1000, None); // inactive now

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
}
