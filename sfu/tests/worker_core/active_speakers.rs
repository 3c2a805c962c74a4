//! Active speakers through the sans-IO core with str0m clients and a virtual clock: alice publishes audio whose
//! packets carry an audio level (RFC 6464); speech makes her an active speaker of the room (one
//! `ActiveSpeakers` event), silence ends it after the hold time, muting ends it too, and leaving clears her.

use std::time::Duration;

use chorus_sfu::speakers::HOLD;
use chorus_sfu::{Command, Event, MediaKind, ParticipantKey, TrackKey, TrackSpec};
use str0m::format::Codec;
use str0m::media::{Frequency, MediaTime, Mid};

use crate::support::{Harness, ALICE};

const MIC: TrackKey = TrackKey(7);

/// Alice sends `n` 20 ms Opus frames at `level` dBov; returns the RTP time after them.
fn alice_talks(h: &mut Harness, mid: Mid, n: u32, start: u64, level: i8) -> u64 {
    for i in 0..n {
        let writer = h.alice.rtc.writer(mid).expect("writer");
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == Codec::Opus)
            .expect("opus")
            .pt();
        writer
            .audio_level(level, level > -50)
            .write(
                pt,
                h.now,
                MediaTime::new(start + u64::from(i) * 960, Frequency::FORTY_EIGHT_KHZ),
                vec![0xfc; 60],
            )
            .expect("write opus frame");
        h.run(Duration::from_millis(20));
    }
    start + u64::from(n) * 960
}

/// The `ActiveSpeakers` events since the last call.
fn speaker_events(h: &Harness) -> Vec<Vec<(ParticipantKey, u8)>> {
    h.take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ActiveSpeakers { speakers } => Some(speakers),
            _ => None,
        })
        .collect()
}

#[test]
fn speech_makes_an_active_speaker_and_silence_mute_or_leaving_ends_it() {
    let mut h = Harness::new();
    let mid = h.alice_offers(MIC, MediaKind::Audio, None, TrackSpec::default());
    h.run_for(Duration::from_secs(2));
    assert!(h.alice.connected, "alice connected");
    h.take_events();

    // Silence (-127 dBov): nobody speaks.
    let t = alice_talks(&mut h, mid, 50, 0, -127);
    assert_eq!(
        speaker_events(&h),
        Vec::<Vec<_>>::new(),
        "silence is not speech"
    );

    // Speech at -20 dBov: one event naming alice, loudness 107.
    let t = alice_talks(&mut h, mid, 50, t, -20);
    let events = speaker_events(&h);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0], vec![(ALICE, 107)]);

    // A short pause is held; a long one ends it.
    let t = alice_talks(&mut h, mid, 25, t, -127);
    assert_eq!(
        speaker_events(&h),
        Vec::<Vec<_>>::new(),
        "held through a 0.5 s pause"
    );
    let frames = (HOLD.as_millis() / 20) as u32 + 25;
    let t = alice_talks(&mut h, mid, frames, t, -127);
    assert_eq!(speaker_events(&h), vec![vec![]], "silence ends it");

    // Muted, even loud packets do not count.
    let t = alice_talks(&mut h, mid, 50, t, -20);
    assert_eq!(speaker_events(&h), vec![vec![(ALICE, 107)]]);
    h.core.handle_command(
        h.now,
        Command::SetTrackMuted {
            track: MIC,
            muted: true,
        },
    );
    let t = alice_talks(&mut h, mid, 25 + frames, t, -20);
    assert_eq!(speaker_events(&h), vec![vec![]], "muting ends it");
    h.core.handle_command(
        h.now,
        Command::SetTrackMuted {
            track: MIC,
            muted: false,
        },
    );

    // Leaving while speaking clears her at once.
    alice_talks(&mut h, mid, 50, t, -10);
    assert_eq!(speaker_events(&h), vec![vec![(ALICE, 117)]]);
    h.core
        .handle_command(h.now, Command::RemoveParticipant { participant: ALICE });
    assert_eq!(
        speaker_events(&h),
        vec![vec![]],
        "a speaker who left is dropped"
    );
}
