//! Active speakers: who is talking in a room, from the audio level every audio packet carries (RFC 6464,
//! `ssrc-audio-level`: 0 dBov loudest, -127 silence). Pure and driven by the caller's clock.
//!
//! A [`SpeechDetector`] per audio track counts, packet by packet (two counters, no allocation), how many
//! recent packets were louder than speech; [`ActiveSpeakers`] per room turns that into a short, stable list:
//! a participant joins it while speaking and stays for [`HOLD`] after falling silent, so brief pauses between
//! words do not make the list (and the bandwidth priority it confers) flicker.

use std::time::{Duration, Instant};

/// Louder than this (dBov) counts as speech. Silence and comfort noise sit far below; speech at normal
/// microphone gain sits above.
pub const SPEECH_DBOV: i8 = -50;
/// Packets are counted in buckets of this length; a track's state covers the last one to two buckets.
const BUCKET: Duration = Duration::from_millis(400);
/// Speaking: at least this share of the recent packets were loud (in tenths).
const LOUD_SHARE_TENTHS: u32 = 3;
/// Fewer recent packets than this (a track that just started, or stopped sending) says nothing.
const MIN_PACKETS: u32 = 5;
/// How long a participant stays an active speaker after it last spoke.
pub const HOLD: Duration = Duration::from_millis(1500);
/// At most this many active speakers per room, loudest first.
pub const MAX_ACTIVE: usize = 3;

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    packets: u32,
    loud: u32,
    /// Sum of `127 + level` over the loud packets.
    loudness: u32,
}

impl Tally {
    fn add(self, other: Tally) -> Tally {
        Tally {
            packets: self.packets + other.packets,
            loud: self.loud + other.loud,
            loudness: self.loudness + other.loudness,
        }
    }
}

/// Whether one audio track carries speech right now.
#[derive(Debug, Default, Clone)]
pub struct SpeechDetector {
    bucket_start: Option<Instant>,
    current: Tally,
    previous: Tally,
}

impl SpeechDetector {
    /// One packet, with its audio level if it had the extension (packets without it count as silence).
    pub fn on_packet(&mut self, now: Instant, level_dbov: Option<i8>) {
        self.roll(now);
        self.current.packets += 1;
        if let Some(level) = level_dbov.filter(|&l| l >= SPEECH_DBOV) {
            self.current.loud += 1;
            self.current.loudness += u32::from((127 + i16::from(level.max(-127))) as u8);
        }
    }

    /// How loud the speech is now (1 quiet ..= 127 loudest), or `None` when the track is not speaking.
    pub fn speaking(&mut self, now: Instant) -> Option<u8> {
        self.roll(now);
        let recent = self.previous.add(self.current);
        if recent.packets < MIN_PACKETS || recent.loud * 10 < recent.packets * LOUD_SHARE_TENTHS {
            return None;
        }
        Some((recent.loudness / recent.loud).clamp(1, 127) as u8)
    }

    fn roll(&mut self, now: Instant) {
        let Some(start) = self.bucket_start else {
            self.bucket_start = Some(now);
            return;
        };
        let age = now.saturating_duration_since(start);
        if age < BUCKET {
            return;
        }
        // A gap of two buckets or more leaves nothing recent.
        self.previous = if age < BUCKET * 2 {
            self.current
        } else {
            Tally::default()
        };
        self.current = Tally::default();
        self.bucket_start = Some(now);
    }
}

/// The active speakers of one room, keyed by `K` (a participant).
#[derive(Debug, Clone)]
pub struct ActiveSpeakers<K> {
    /// (speaker, loudness when last heard, when last heard)
    active: Vec<(K, u8, Instant)>,
}

impl<K> Default for ActiveSpeakers<K> {
    fn default() -> Self {
        ActiveSpeakers { active: Vec::new() }
    }
}

impl<K: Copy + PartialEq> ActiveSpeakers<K> {
    /// Takes who is speaking now (with loudness); returns true when the set of active speakers changed.
    pub fn update(&mut self, now: Instant, speaking: impl IntoIterator<Item = (K, u8)>) -> bool {
        let before: Vec<K> = self.active.iter().map(|a| a.0).collect();
        for (key, level) in speaking {
            match self.active.iter_mut().find(|a| a.0 == key) {
                Some(a) => *a = (key, level, now),
                None => self.active.push((key, level, now)),
            }
        }
        self.active
            .retain(|a| now.saturating_duration_since(a.2) <= HOLD);
        // Speaking now before holding, louder before quieter.
        self.active
            .sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)));
        self.active.truncate(MAX_ACTIVE);
        self.active.len() != before.len() || self.active.iter().any(|a| !before.contains(&a.0))
    }

    pub fn contains(&self, key: K) -> bool {
        self.active.iter().any(|a| a.0 == key)
    }

    /// The active speakers with their loudness, speaking now first, loudest first.
    pub fn list(&self) -> Vec<(K, u8)> {
        self.active.iter().map(|a| (a.0, a.1)).collect()
    }

    /// Forgets `key` (it left); true if it was active.
    pub fn remove(&mut self, key: K) -> bool {
        let before = self.active.len();
        self.active.retain(|a| a.0 != key);
        self.active.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKET: Duration = Duration::from_millis(20);

    /// Feeds `n` packets at 50/s, `level(i)` each; returns the time after the last.
    fn feed(
        d: &mut SpeechDetector,
        mut now: Instant,
        n: u32,
        level: impl Fn(u32) -> Option<i8>,
    ) -> Instant {
        for i in 0..n {
            d.on_packet(now, level(i));
            now += PACKET;
        }
        now
    }

    #[test]
    fn speech_is_detected_and_silence_is_not() {
        let t0 = Instant::now();
        let mut d = SpeechDetector::default();
        let t = feed(&mut d, t0, 50, |_| Some(-127));
        assert_eq!(d.speaking(t), None, "silence");
        let t = feed(&mut d, t, 50, |_| Some(-20));
        assert_eq!(d.speaking(t), Some(107), "steady speech at -20 dBov");
        // Speech with gaps between words (60% loud) still counts.
        let t = feed(&mut d, t, 50, |i| Some(if i % 5 < 3 { -30 } else { -100 }));
        assert_eq!(d.speaking(t), Some(97));
        // Background noise below the threshold does not.
        let t = feed(&mut d, t, 50, |_| Some(-60));
        assert_eq!(d.speaking(t), None);
        // Packets without the extension count as silence.
        let t = feed(&mut d, t, 50, |_| None);
        assert_eq!(d.speaking(t), None);
    }

    #[test]
    fn a_track_that_stops_sending_stops_speaking_within_two_buckets() {
        let t0 = Instant::now();
        let mut d = SpeechDetector::default();
        let t = feed(&mut d, t0, 50, |_| Some(-10));
        assert!(d.speaking(t).is_some());
        assert!(
            d.speaking(t + BUCKET).is_some(),
            "the last bucket still counts"
        );
        assert_eq!(d.speaking(t + BUCKET * 3), None);
        assert_eq!(d.speaking(t + Duration::from_secs(60)), None);
    }

    #[test]
    fn a_few_packets_say_nothing_and_garbage_levels_do_not_panic() {
        let t0 = Instant::now();
        let mut d = SpeechDetector::default();
        let t = feed(&mut d, t0, 3, |_| Some(0));
        assert_eq!(d.speaking(t), None, "too few packets");
        let t = feed(&mut d, t, 50, |i| {
            Some(if i % 2 == 0 { i8::MIN } else { i8::MAX })
        });
        assert!(d.speaking(t).is_some_and(|l| (1..=127).contains(&l)));
    }

    #[test]
    fn speakers_are_held_briefly_ranked_and_capped() {
        let t0 = Instant::now();
        let mut room = ActiveSpeakers::default();
        assert!(room.update(t0, [(1, 90), (2, 100)]));
        assert_eq!(room.list(), vec![(2, 100), (1, 90)], "loudest first");
        assert!(
            !room.update(t0 + Duration::from_millis(250), [(1, 110)]),
            "same set"
        );
        assert_eq!(room.list()[0], (1, 110), "speaking now before holding");
        // 2 is held through a short pause, then dropped.
        let t = t0 + HOLD;
        assert!(!room.update(t, [(1, 100)]));
        assert!(room.contains(2));
        assert!(room.update(t + Duration::from_millis(250), [(1, 100)]));
        assert!(!room.contains(2));
        // At most MAX_ACTIVE, those speaking now first.
        assert!(room.update(t + Duration::from_millis(500), [(3, 50), (4, 60), (5, 70)]));
        assert_eq!(room.list().len(), MAX_ACTIVE);
        assert!(
            !room.contains(1),
            "the held one gives way to three speaking now"
        );
        assert!(room.remove(5));
        assert!(!room.remove(5));
    }
}
