//! Call quality through the sans-IO core on a virtual network: bitrates, RTT, jitter and loss reach each
//! participant's stats from str0m's stats events, packets dropped on the way to the subscriber show as downlink
//! loss and a lower score, the worker's histograms count participant-seconds, and removing a participant
//! reports its session summary.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{Harness, ALICE, BOB};
use chorus_sfu::{Command, Event, ParticipantKey, ParticipantStats, TrackKey};

fn stats_of(h: &mut Harness, who: ParticipantKey) -> ParticipantStats {
    let slot = Arc::new(Mutex::new(None));
    let out = slot.clone();
    h.core.handle_command(
        h.now,
        Command::QueryStats {
            participant: who,
            reply: Box::new(move |s| *out.lock().expect("lock") = s),
        },
    );
    let stats = slot.lock().expect("lock").take();
    stats.expect("known participant")
}

/// Alice publishes video to bob for about `secs` seconds; every `drop_every`-th packet to bob is lost for good
/// (its retransmissions too).
fn call(secs: u32, drop_every: Option<usize>) -> Harness {
    let mut h = Harness::new();
    if let Some(n) = drop_every {
        h.drop_rtp_to_bob = (1..10_000).map(|i| i * n).collect();
        h.drop_retransmissions_to_bob = true;
    }
    let mid = h.publish_to_bob(TrackKey(1));
    h.run_for(Duration::from_secs(1));
    assert!(h.alice.connected && h.bob.connected);
    h.alice_sends_frames(mid, secs * 30, 0);
    h
}

#[test]
fn a_clean_call_has_bitrates_rtt_and_a_good_score() {
    let mut h = call(6, None);
    let bob = stats_of(&mut h, BOB);
    let q = bob.quality;
    eprintln!("bob: {q:?}\n{:?}", bob.session);
    assert!(
        q.bitrate_out_bps.is_some_and(|b| b > 10_000),
        "video reaches bob: {q:?}"
    );
    assert!(q.rtt_ms.is_some_and(|r| r < 50.0), "RTT known: {q:?}");
    assert_eq!(q.downlink.loss, Some(0.0), "{q:?}");
    assert!(q.downlink.jitter_ms.is_some(), "{q:?}");
    let mos = q.mos.expect("a score");
    assert!(mos > 4.2 && mos <= 4.5, "{mos}");

    let alice = stats_of(&mut h, ALICE);
    let q = alice.quality;
    eprintln!("alice: {q:?}");
    assert!(q.bitrate_in_bps.is_some_and(|b| b > 10_000), "{q:?}");
    assert_eq!(q.uplink.loss, Some(0.0), "{q:?}");
    assert!(q.uplink.jitter_ms.is_some(), "{q:?}");

    // The participant-seconds sampled went into the histograms (each value once it was known).
    let hist = h.core.histograms;
    let samples = alice.session.samples + bob.session.samples;
    eprintln!(
        "samples {samples}: loss {} jitter {} rtt {} mos {}",
        hist.loss_ratio.count(),
        hist.jitter_seconds.count(),
        hist.rtt_seconds.count(),
        hist.mos.count()
    );
    for (name, n) in [
        ("loss", hist.loss_ratio.count()),
        ("jitter", hist.jitter_seconds.count()),
        ("rtt", hist.rtt_seconds.count()),
        ("mos", hist.mos.count()),
    ] {
        assert!(n >= samples / 2 && n <= samples, "{name}: {n} of {samples}");
    }
    // No loss: every loss sample is in the first bucket (0).
    assert_eq!(
        hist.loss_ratio.cumulative().next(),
        Some((0.0, hist.loss_ratio.count()))
    );

    // Removing bob reports his session.
    h.take_events();
    h.core
        .handle_command(h.now, Command::RemoveParticipant { participant: BOB });
    let summaries: Vec<_> = h
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::QualitySummary {
                participant,
                summary,
            } => Some((participant, summary)),
            _ => None,
        })
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    let (who, s) = summaries[0];
    assert_eq!(who, BOB);
    assert!(s.duration >= Duration::from_secs(6), "{s:?}");
    assert!(s.samples >= 6, "{s:?}");
    assert!(s.bytes_out > 20_000 && s.bytes_in > 0, "{s:?}");
    assert!(s.mos_mean.is_some_and(|m| m > 4.2), "{s:?}");
    assert_eq!(s.loss_max, Some(0.0));
}

#[test]
fn packets_lost_on_the_way_to_the_subscriber_show_as_downlink_loss() {
    let mut h = call(8, Some(10));
    let bob = stats_of(&mut h, BOB);
    let q = bob.quality;
    eprintln!("bob: {q:?}\n{:?}", bob.session);
    let loss = q.downlink.loss.expect("loss reported");
    assert!((0.03..=0.3).contains(&loss), "about 10% lost: {q:?}");
    assert_eq!(q.loss, Some(loss), "the worse direction");
    let mos = q.mos.expect("a score");
    assert!(mos < 3.8, "loss lowers the score: {mos}");
    assert!(bob.session.loss_max.is_some_and(|l| l >= 0.03));
    // Alice's uplink is clean.
    let alice = stats_of(&mut h, ALICE);
    assert_eq!(alice.quality.uplink.loss, Some(0.0), "{:?}", alice.quality);
}
