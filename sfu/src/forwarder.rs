//! Per-subscriber rewriting of one forwarded track: which packets go out, and with what sequence number and
//! timestamp, so each outgoing stream stays continuous whatever the publisher does.
//!
//! A [`Forwarder`] is a pure decision: it sees the packets of the source it forwards (a publisher's SSRC), and
//! answers [`Forward::Drop`] or [`Forward::Send`]. When the source changes — another SSRC after a publisher
//! republished or rejoined, or the same SSRC after a mute during which packets were dropped — the next packet
//! re-anchors the mapping so the outgoing sequence numbers continue at `last + 1` and the timestamp advances by
//! the wall-clock time that passed. Video re-anchors only on a keyframe, so a decoder never sees a frame that
//! references one it did not get. This file owns no I/O and no str0m types.

use std::time::Instant;

/// What the forwarder needs to know about one incoming packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePacket {
    /// The publisher's SSRC (identifies the source stream).
    pub ssrc: u32,
    /// Extended (never wrapping) sequence number of the packet in its source stream.
    pub seq: u64,
    /// RTP timestamp in the source stream.
    pub timestamp: u32,
    /// When the packet arrived.
    pub arrival: Instant,
    /// Whether the packet starts a keyframe (always `true` for audio).
    pub keyframe: bool,
    /// RTP clock rate of the codec, in Hz.
    pub clock_rate: u32,
}

/// The forwarder's decision for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Send with these values in the outgoing stream.
    Send { seq: u64, timestamp: u32 },
    /// Do not send.
    Drop(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A new source (or a resumed one) must start on a keyframe; the caller should ask the publisher for one.
    WaitingForKeyframe,
    /// The packet belongs before the point where the current source was anchored.
    BeforeAnchor,
}

/// Mapping from the current source's numbering to the outgoing numbering.
#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    /// First source sequence number forwarded since the anchor.
    first_seq: u64,
    /// Outgoing seq = source seq + `seq_offset`.
    seq_offset: i64,
    /// Outgoing timestamp = source timestamp + `ts_offset` (wrapping).
    ts_offset: u32,
}

/// The last packet sent, the reference point for the next re-anchor.
#[derive(Debug, Clone, Copy)]
struct LastSent {
    seq: u64,
    timestamp: u32,
    arrival: Instant,
}

/// Continuous outgoing numbering for one (subscriber, track).
#[derive(Debug, Clone)]
pub struct Forwarder {
    anchor: Option<Anchor>,
    last: Option<LastSent>,
    /// The first outgoing sequence number (kept below 2^16 so the receiver's rollover counter starts at 0).
    initial_seq: u64,
    initial_timestamp: u32,
}

impl Forwarder {
    /// A forwarder whose outgoing stream starts at `initial_seq` (taken modulo 2^15) and `initial_timestamp`.
    pub fn new(initial_seq: u16, initial_timestamp: u32) -> Self {
        Forwarder {
            anchor: None,
            last: None,
            initial_seq: u64::from(initial_seq & 0x7fff).max(1),
            initial_timestamp,
        }
    }

    /// Forget the current source mapping: the next packet re-anchors (on a keyframe, for video). Call after a
    /// pause during which packets were dropped (mute), or when the source is about to change.
    pub fn reset_source(&mut self) {
        self.anchor = None;
    }

    /// Whether the forwarder is waiting for a (key)frame to anchor on.
    pub fn is_anchored(&self) -> bool {
        self.anchor.is_some()
    }

    /// Decide what to do with one packet of the current source.
    pub fn forward(&mut self, p: &SourcePacket) -> Forward {
        let anchor = match self.anchor {
            Some(a) if a.ssrc == p.ssrc => a,
            _ => {
                if !p.keyframe {
                    return Forward::Drop(DropReason::WaitingForKeyframe);
                }
                let a = self.anchor_at(p);
                self.anchor = Some(a);
                a
            }
        };
        if p.seq < anchor.first_seq {
            return Forward::Drop(DropReason::BeforeAnchor);
        }
        let seq = (p.seq as i64 + anchor.seq_offset) as u64;
        let timestamp = p.timestamp.wrapping_add(anchor.ts_offset);
        if self.last.is_none_or(|l| seq > l.seq) {
            self.last = Some(LastSent {
                seq,
                timestamp,
                arrival: p.arrival,
            });
        }
        Forward::Send { seq, timestamp }
    }

    /// Choose offsets so that `p` goes out right after the last packet sent.
    fn anchor_at(&self, p: &SourcePacket) -> Anchor {
        let (out_seq, out_ts) = match self.last {
            None => (self.initial_seq, self.initial_timestamp),
            Some(last) => {
                let elapsed = p.arrival.saturating_duration_since(last.arrival);
                let ticks = (elapsed.as_secs_f64() * f64::from(p.clock_rate)).round() as u64;
                // At least one tick, so the new frame never shares the previous frame's timestamp.
                let ticks = ticks.clamp(1, u64::from(u32::MAX / 2)) as u32;
                (last.seq + 1, last.timestamp.wrapping_add(ticks))
            }
        };
        Anchor {
            ssrc: p.ssrc,
            first_seq: p.seq,
            seq_offset: out_seq as i64 - p.seq as i64,
            ts_offset: out_ts.wrapping_sub(p.timestamp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const VIDEO_HZ: u32 = 90_000;

    fn packet(ssrc: u32, seq: u64, ts: u32, at: Instant, keyframe: bool) -> SourcePacket {
        SourcePacket {
            ssrc,
            seq,
            timestamp: ts,
            arrival: at,
            keyframe,
            clock_rate: VIDEO_HZ,
        }
    }

    fn sent(f: Forward) -> (u64, u32) {
        match f {
            Forward::Send { seq, timestamp } => (seq, timestamp),
            Forward::Drop(r) => panic!("expected send, got drop {r:?}"),
        }
    }

    /// Feed `n` packets of 30 fps video (one packet per frame) starting at `seq`, `ts`, `at`.
    fn run(
        f: &mut Forwarder,
        ssrc: u32,
        seq: u64,
        ts: u32,
        at: Instant,
        n: u64,
    ) -> Vec<(u64, u32)> {
        (0..n)
            .map(|i| {
                let p = packet(
                    ssrc,
                    seq + i,
                    ts.wrapping_add(3000 * i as u32),
                    at + Duration::from_millis(33 * i),
                    i == 0,
                );
                sent(f.forward(&p))
            })
            .collect()
    }

    fn assert_continuous(out: &[(u64, u32)]) {
        for w in out.windows(2) {
            assert_eq!(w[1].0, w[0].0 + 1, "sequence gap in {out:?}");
            assert!(
                w[1].1.wrapping_sub(w[0].1) > 0 && w[1].1.wrapping_sub(w[0].1) < u32::MAX / 2,
                "timestamp not increasing in {out:?}"
            );
        }
    }

    #[test]
    fn rewrites_a_single_source_to_the_initial_numbering() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(1000, 5000);
        let out = run(&mut f, 7, 40_000, 123_456, t0, 5);
        assert_eq!(out[0], (1000, 5000));
        assert_eq!(out[4], (1004, 5000 + 4 * 3000));
        assert_continuous(&out);
    }

    #[test]
    fn video_waits_for_a_keyframe_before_anchoring() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(1, 0);
        let delta = packet(7, 10, 0, t0, false);
        assert_eq!(
            f.forward(&delta),
            Forward::Drop(DropReason::WaitingForKeyframe)
        );
        assert!(!f.is_anchored());
        assert!(matches!(
            f.forward(&packet(7, 11, 3000, t0, true)),
            Forward::Send { .. }
        ));
    }

    #[test]
    fn stays_continuous_across_republish_with_new_ssrc_and_numbering() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(1000, 0);
        let mut out = run(&mut f, 7, 100, 9_000, t0, 10);
        // The publisher unpublishes, and two seconds later republishes: new SSRC, unrelated seq/ts.
        let t1 = t0 + Duration::from_millis(33 * 9 + 2000);
        f.reset_source();
        let after = run(&mut f, 99, 60_000, 4_000_000_000, t1, 10);
        // The gap in timestamps reflects the two seconds that passed.
        let gap = after[0].1.wrapping_sub(out[9].1);
        assert!(
            (179_000..=181_000).contains(&gap),
            "timestamp gap {gap} should be ~2 s of 90 kHz"
        );
        out.extend(after);
        assert_continuous(&out);
    }

    #[test]
    fn switches_source_without_reset_when_ssrc_changes() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(1000, 0);
        let mut out = run(&mut f, 7, 100, 0, t0, 3);
        out.extend(run(&mut f, 8, 5, 77, t0 + Duration::from_millis(100), 3));
        assert_continuous(&out);
    }

    #[test]
    fn stays_continuous_across_mute_when_source_numbering_jumped() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(1000, 0);
        let mut out = run(&mut f, 7, 100, 0, t0, 5);
        // Muted: the SFU drops 300 packets of the same source, then resumes with a reset.
        f.reset_source();
        let resume = t0 + Duration::from_secs(10);
        out.extend(run(&mut f, 7, 405, 900_000, resume, 5));
        assert_continuous(&out);
    }

    #[test]
    fn reordered_packets_keep_their_relative_numbering() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(1000, 0);
        let a = sent(f.forward(&packet(7, 50, 0, t0, true)));
        let c = sent(f.forward(&packet(7, 52, 6000, t0, false)));
        let b = sent(f.forward(&packet(7, 51, 3000, t0, false)));
        assert_eq!((a.0, b.0, c.0), (1000, 1001, 1002));
        // A late packet still maps, and does not move the "last sent" reference backwards.
        let d = sent(f.forward(&packet(7, 53, 9000, t0, false)));
        assert_eq!(d.0, 1003);
    }

    #[test]
    fn packets_from_before_a_re_anchor_are_dropped() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(1000, 0);
        run(&mut f, 7, 100, 0, t0, 3);
        f.reset_source();
        sent(f.forward(&packet(7, 200, 0, t0, true)));
        assert_eq!(
            f.forward(&packet(7, 199, 0, t0, false)),
            Forward::Drop(DropReason::BeforeAnchor)
        );
    }

    #[test]
    fn timestamp_wraps_without_breaking_continuity() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(1000, u32::MAX - 4000);
        let out = run(&mut f, 7, 1, 0, t0, 4);
        assert_continuous(&out);
        assert!(out[3].1 < 10_000, "wrapped: {out:?}");
    }

    #[test]
    fn audio_anchors_on_any_packet() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(10, 0);
        let p = SourcePacket {
            keyframe: true,
            clock_rate: 48_000,
            ..packet(3, 900, 480, t0, true)
        };
        assert_eq!(
            f.forward(&p),
            Forward::Send {
                seq: 10,
                timestamp: 0
            }
        );
    }
}
