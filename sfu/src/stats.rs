//! Media counters and gauges, and how they leave the worker thread without a lock on the packet path.
//!
//! The worker core counts into a plain [`WorkerStats`] (ordinary `u64` adds on its own thread). The I/O loop
//! copies it into that worker's [`WorkerCounters`] (relaxed atomic stores, no contention: one writer) once per
//! loop iteration, and the core's gauges ([`WorkerGauges`], an O(tracks) count) and histograms
//! ([`WorkerHistograms`], `histogram.rs`) a few times a second. A scraper (the server's `/metrics`) reads every
//! worker's [`WorkerCounters`] through [`crate::Sfu::counters`] whenever it likes. This file must not touch str0m state beyond reading the stats events it is handed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::media::Mid;
use str0m::stats::MediaEgressStats;

use crate::api::{MediaKind, ParticipantKey};
use crate::histogram::{AtomicHistograms, WorkerHistograms};

/// Defines the plain counters, their atomic mirror, and the copy between them, from one field list.
macro_rules! counters {
    ($(#[$meta:meta])* pub struct $plain:ident / $atomic:ident { $($(#[$fmeta:meta])* $field:ident,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct $plain {
            $($(#[$fmeta])* pub $field: u64,)*
        }

        impl $plain {
            /// Adds every field of `other` (to total several workers).
            pub fn accumulate(&mut self, other: &$plain) {
                $(self.$field += other.$field;)*
            }
        }

        /// The atomic mirror of the plain struct of the same fields, written by one worker thread.
        #[derive(Debug, Default)]
        struct $atomic {
            $($field: AtomicU64,)*
        }

        impl $atomic {
            fn store(&self, v: &$plain) {
                $(self.$field.store(v.$field, Ordering::Relaxed);)*
            }

            fn load(&self) -> $plain {
                $plain { $($field: self.$field.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Monotonic counters of one worker since it started.
    pub struct WorkerStats / AtomicStats {
        /// UDP datagrams received.
        datagrams_in,
        /// Data-channel messages received on `reliable`/`lossy` channels (before any check).
        data_messages_in,
        /// Data-channel messages written to recipients (one per recipient) and their bytes.
        data_messages_out,
        data_bytes_out,
        /// Data-channel messages refused (permission, size, rate, malformed envelope).
        data_rejected,
        /// Lossy messages dropped for a receiver that is behind, or writes to a channel not open.
        data_dropped,
        /// Receivers disconnected because their reliable data backlog filled its buffer.
        data_backlog_disconnects,
        /// UDP payload bytes received.
        bytes_in,
        /// Datagrams that matched no peer connection (dropped).
        datagrams_unrouted,
        /// RTP datagrams on a publisher connection held back because they would re-map a live stream's SSRC
        /// (`ssrc_guard.rs`): forged, or broken on the way.
        rtp_remaps_refused,
        /// UDP datagrams sent.
        datagrams_out,
        /// UDP payload bytes sent.
        bytes_out,
        /// `send_to` failures.
        send_errors,
        /// RTP packets received from publishers (after SRTP, deduplicated by str0m).
        rtp_in,
        /// RTP packets written to subscribers (one per subscriber a packet went to).
        rtp_forwarded,
        /// Publisher audio RTP packets and payload bytes received (on a known track).
        audio_packets_in,
        audio_bytes_in,
        /// Publisher video RTP packets and payload bytes received (on a known track).
        video_packets_in,
        video_bytes_in,
        /// Audio RTP packets and payload bytes written to subscribers.
        audio_packets_out,
        audio_bytes_out,
        /// Video RTP packets and payload bytes written to subscribers.
        video_packets_out,
        video_bytes_out,
        /// Keyframe requests (PLI) sent to publishers.
        keyframe_requests,
        /// Keyframe requests (PLI/FIR) received from subscribers.
        keyframe_requests_received,
        /// NACKs received from subscribers (each may ask for several packets), per str0m's egress stats.
        nacks_received,
        /// Participants ended by a panic inside the media engine.
        participant_faults,
        /// Subscriptions that moved to another simulcast layer.
        layer_switches,
        /// Subscriptions paused because the subscriber's downlink could not carry them.
        streams_paused,
        /// Subscriptions resumed after such a pause.
        streams_resumed,
        /// Downlink estimators restarted because the estimate stopped growing short of what the subscriber
        /// wanted (`estimate_stall.rs`).
        estimate_restarts,
        /// str0m timer rounds run on peer connections (the worker's timer pass, and inline while draining:
        /// str0m's pacer needs one to release each packet): bookkeeping per forwarded packet.
        rtc_timer_rounds,
        /// The worker thread's own CPU time (user + system), in µs; set by the I/O loop a few times a second.
        thread_cpu_micros,
        /// Times the worker thread slept waiting for input and was woken (voluntary context switches); set with
        /// `thread_cpu_micros`.
        thread_sleeps,
    }
}

impl WorkerStats {
    /// Counts a publisher packet of a known track.
    pub fn count_in(&mut self, kind: MediaKind, payload_len: usize) {
        let (packets, bytes) = match kind {
            MediaKind::Audio => (&mut self.audio_packets_in, &mut self.audio_bytes_in),
            MediaKind::Video => (&mut self.video_packets_in, &mut self.video_bytes_in),
        };
        *packets += 1;
        *bytes += payload_len as u64;
    }

    /// Counts one packet written to one subscriber.
    pub fn count_forwarded(&mut self, kind: MediaKind, payload_len: usize) {
        self.rtp_forwarded += 1;
        let (packets, bytes) = match kind {
            MediaKind::Audio => (&mut self.audio_packets_out, &mut self.audio_bytes_out),
            MediaKind::Video => (&mut self.video_packets_out, &mut self.video_bytes_out),
        };
        *packets += 1;
        *bytes += payload_len as u64;
    }
}

counters! {
    /// What one worker hosts right now.
    pub struct WorkerGauges / AtomicGauges {
        /// Rooms with media on this worker.
        rooms,
        /// Participants (each has a publisher and a subscriber connection).
        participants,
        /// Published tracks.
        tracks_published,
        /// Subscriptions: (subscriber, track) pairs being forwarded or waiting to be.
        tracks_subscribed,
    }
}

/// One worker's counters and gauges as last published by its thread. Padded to its own cache lines so that
/// two workers never write the same line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerCounters {
    stats: AtomicStats,
    gauges: AtomicGauges,
    histograms: AtomicHistograms,
}

impl WorkerCounters {
    /// Called by the worker thread (the only writer).
    pub(crate) fn publish_stats(&self, stats: &WorkerStats) {
        self.stats.store(stats);
    }

    /// Called by the worker thread (the only writer).
    pub(crate) fn publish_gauges(&self, gauges: &WorkerGauges) {
        self.gauges.store(gauges);
    }

    /// Called by the worker thread (the only writer).
    pub(crate) fn publish_histograms(&self, histograms: &WorkerHistograms) {
        self.histograms.store(histograms);
    }

    /// The counters as last published.
    pub fn stats(&self) -> WorkerStats {
        self.stats.load()
    }

    /// The gauges as last published.
    pub fn gauges(&self) -> WorkerGauges {
        self.gauges.load()
    }

    /// The histograms as last published.
    pub fn histograms(&self) -> WorkerHistograms {
        self.histograms.load()
    }
}

/// How long an egress stream may go without a stats event before its last totals are forgotten.
const TALLY_EXPIRY: Duration = Duration::from_secs(10);

/// Turns str0m's cumulative per-stream egress stats into deltas for the worker's NACK counter.
#[derive(Default)]
pub struct EgressTally {
    /// (subscriber, mid) → (NACKs counted so far, when last seen).
    last: HashMap<(ParticipantKey, Mid), (u64, Instant)>,
    next_prune: Option<Instant>,
}

impl EgressTally {
    /// Records one stats event of `subscriber`'s stream; adds the NACKs new since the previous one to `stats`.
    pub fn record(
        &mut self,
        now: Instant,
        subscriber: ParticipantKey,
        s: &MediaEgressStats,
        stats: &mut WorkerStats,
    ) {
        let entry = self.last.entry((subscriber, s.mid)).or_insert((0, now));
        // A reused mid can restart str0m's count only with a new stream; never count backwards.
        stats.nacks_received += s.nacks.saturating_sub(entry.0);
        *entry = (s.nacks.max(entry.0), now);
        if self.next_prune.is_none_or(|t| now >= t) {
            self.last
                .retain(|_, (_, seen)| now.saturating_duration_since(*seen) < TALLY_EXPIRY);
            self.next_prune = Some(now + TALLY_EXPIRY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(mid: &str, nacks: u64, now: Instant) -> MediaEgressStats {
        MediaEgressStats {
            mid: Mid::from(mid),
            rid: None,
            bytes: 0,
            packets: 0,
            firs: 0,
            plis: 0,
            nacks,
            rtt: None,
            loss: None,
            timestamp: now,
            remote: None,
        }
    }

    #[test]
    fn counters_round_trip_through_atomics() {
        let mut stats = WorkerStats::default();
        stats.count_in(MediaKind::Video, 1000);
        stats.count_forwarded(MediaKind::Video, 1000);
        stats.count_forwarded(MediaKind::Audio, 80);
        stats.datagrams_in = 7;
        let shared = WorkerCounters::default();
        assert_eq!(shared.stats(), WorkerStats::default());
        shared.publish_stats(&stats);
        let read = shared.stats();
        assert_eq!(read, stats);
        assert_eq!(
            (
                read.rtp_forwarded,
                read.video_packets_out,
                read.audio_bytes_out
            ),
            (2, 1, 80)
        );
        assert_eq!((read.video_packets_in, read.video_bytes_in), (1, 1000));
        let gauges = WorkerGauges {
            participants: 3,
            ..Default::default()
        };
        shared.publish_gauges(&gauges);
        assert_eq!(shared.gauges(), gauges);
        let mut total = read;
        total.accumulate(&read);
        assert_eq!((total.rtp_forwarded, total.datagrams_in), (4, 14));
    }

    #[test]
    fn nack_tally_counts_deltas_per_stream_and_forgets_old_streams() {
        let t0 = Instant::now();
        let mut tally = EgressTally::default();
        let mut stats = WorkerStats::default();
        let (a, b) = (ParticipantKey(1), ParticipantKey(2));
        tally.record(t0, a, &egress("0", 3, t0), &mut stats);
        tally.record(t0, b, &egress("0", 1, t0), &mut stats);
        assert_eq!(stats.nacks_received, 4);
        let t1 = t0 + Duration::from_secs(1);
        tally.record(t1, a, &egress("0", 5, t1), &mut stats);
        tally.record(t1, a, &egress("1", 0, t1), &mut stats);
        assert_eq!(stats.nacks_received, 6);
        // A lower total (should not happen) never subtracts.
        tally.record(t1, a, &egress("0", 2, t1), &mut stats);
        assert_eq!(stats.nacks_received, 6);
        // Long after, b's stream is forgotten at the next prune.
        let t2 = t0 + Duration::from_secs(30);
        tally.record(t2, a, &egress("0", 5, t2), &mut stats);
        assert_eq!(tally.last.len(), 1, "only the stream just seen remains");
        assert_eq!(stats.nacks_received, 6);
    }
}
