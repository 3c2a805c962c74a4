//! Simulcast through the sans-IO core with str0m clients and a virtual clock: per-subscriber layer choice by
//! quality, switching only at keyframes with continuous numbering, bandwidth caps that step layers down and
//! pause, a publisher's dropped layer, and dynacast. (str0m's VP8 packetizer sends no PictureID, so picture-id
//! continuity across switches is covered by the `vp8` unit tests and the browser test instead.)

use std::time::Duration;

use chorus_sfu::{Command, Event, Quality, SubscriptionPreference, TrackKey};

use crate::support::simulcast::RIDS;
use crate::support::{assert_consecutive, Harness, ALICE, BOB};

const ALL: u8 = 0b111;
const TRACK: TrackKey = TrackKey(100);

fn connected_simulcast() -> (Harness, str0m::media::Mid) {
    let mut h = Harness::new();
    let mid = h.publish_simulcast_to_bob(TRACK);
    h.run_for(Duration::from_secs(2));
    assert!(h.alice.connected && h.bob.connected, "both connected");
    (h, mid)
}

fn prefer(h: &mut Harness, quality: Quality) {
    h.core.handle_command(
        h.now,
        Command::SetPreference {
            subscriber: BOB,
            track: TRACK,
            preference: SubscriptionPreference {
                quality: Some(quality),
                ..Default::default()
            },
        },
    );
}

fn cap(h: &mut Harness, bps: Option<u64>) {
    h.core.handle_command(
        h.now,
        Command::SetEstimateCap {
            participant: BOB,
            cap_bps: bps,
        },
    );
}

fn stats_of(h: &mut Harness) -> chorus_sfu::ParticipantStats {
    let slot = std::sync::Arc::new(std::sync::Mutex::new(None));
    let out = slot.clone();
    h.core.handle_command(
        h.now,
        Command::QueryStats {
            participant: BOB,
            reply: Box::new(move |s| *out.lock().expect("lock") = s),
        },
    );
    let stats = slot.lock().expect("lock").take();
    stats.expect("bob's stats")
}

#[test]
fn each_switch_waits_for_a_keyframe_of_the_new_layer_and_keeps_numbering_continuous() {
    let (mut h, mid) = connected_simulcast();
    // By default bob wants the top layer.
    h.alice_sends_simulcast(mid, 20, 0, ALL, |i, _| i == 0);
    assert!(h.bob.received.len() >= 19, "bob got the top layer");
    // The first frame's layers arrive lowest first, each a keyframe: bob may start on any, then settles on f.
    assert!(h.bob_layers_since(3).iter().all(|&l| l == 2));
    assert!(h.bob.received[0].2, "starts on a keyframe");

    // Bob asks for low quality: the top layer keeps flowing until the low layer's keyframe (frame 10).
    prefer(&mut h, Quality::Low);
    let requests_before = h.alice.keyframe_requests;
    let mark = h.bob.received.len();
    h.alice_sends_simulcast(mid, 20, 60_000, ALL, |i, l| i == 10 && l == 0);
    let layers = h.bob_layers_since(mark);
    let first_low = layers.iter().position(|&l| l == 0).expect("switched to q");
    assert!(
        first_low >= 9,
        "switched only at the q keyframe: {layers:?}"
    );
    assert!(layers[..first_low].iter().all(|&l| l == 2), "{layers:?}");
    assert!(layers[first_low..].iter().all(|&l| l == 0), "{layers:?}");
    assert!(
        h.bob.received[mark + first_low].2,
        "the switch is a keyframe"
    );
    assert!(
        h.alice.keyframe_requests > requests_before,
        "a keyframe of the new layer was requested"
    );

    // Back up to high at the next f keyframe.
    prefer(&mut h, Quality::High);
    let mark = h.bob.received.len();
    h.alice_sends_simulcast(mid, 20, 120_000, ALL, |i, l| i == 5 && l == 2);
    let layers = h.bob_layers_since(mark);
    let first_high = layers.iter().position(|&l| l == 2).expect("switched to f");
    assert!(first_high >= 4, "{layers:?}");
    assert!(layers[first_high..].iter().all(|&l| l == 2), "{layers:?}");

    assert_consecutive(&h.bob.received);
    let ssrc = h.bob.ssrcs[0];
    assert!(h.bob.ssrcs.iter().all(|s| *s == ssrc), "one outgoing SSRC");
    let stats = stats_of(&mut h);
    let sub = &stats.subscriptions[0];
    assert_eq!(sub.current_layer.as_deref(), Some("f"));
    // q → h → f as the first frame's layers appeared, then down to q and back up to f.
    assert_eq!(sub.layer_switches, 5);
}

#[test]
fn a_falling_estimate_steps_down_and_pauses_then_recovers() {
    let (mut h, mid) = connected_simulcast();
    let keyframes_every_10 = |i: u32, _| i.is_multiple_of(10);
    h.alice_sends_simulcast(mid, 40, 0, ALL, keyframes_every_10);
    assert_eq!(h.bob_layers_since(h.bob.sizes.len() - 5), vec![2; 5]);

    // The test layers carry about 85 (q), 110 (h) and 135 (f) kbit/s: a 120 kbit/s downlink cannot carry f.
    assert_eq!(
        stats_of(&mut h).subscriptions[0].current_layer.as_deref(),
        Some("f")
    );
    cap(&mut h, Some(120_000));
    let mark = h.bob.received.len();
    h.alice_sends_simulcast(mid, 40, 200_000, ALL, keyframes_every_10);
    let layers = h.bob_layers_since(mark);
    // Within one keyframe interval (10 frames) the lower layer takes over.
    let first_lower = layers.iter().position(|&l| l < 2).expect("stepped down");
    assert!(
        first_lower <= 11,
        "stepped down within a keyframe interval: {layers:?}"
    );
    assert!(layers[first_lower..].iter().all(|&l| l < 2), "{layers:?}");
    let stats = stats_of(&mut h);
    assert_eq!(stats.estimate_bps, Some(120_000));
    assert_eq!(
        stats.subscriptions[0].reason,
        chorus_sfu::LimitReason::Bandwidth
    );

    // Nothing fits: paused, and bob is told.
    h.take_events();
    cap(&mut h, Some(1_000));
    assert!(h.take_events().contains(&Event::StreamPaused {
        participant: BOB,
        track: TRACK,
        paused: true
    }));
    let mark = h.bob.received.len();
    h.alice_sends_simulcast(mid, 20, 400_000, ALL, keyframes_every_10);
    assert_eq!(h.bob.received.len(), mark, "nothing forwarded while paused");

    // The limit is lifted: resumed at a keyframe, back to the top layer.
    cap(&mut h, None);
    assert!(h.take_events().contains(&Event::StreamPaused {
        participant: BOB,
        track: TRACK,
        paused: false
    }));
    let mark = h.bob.received.len();
    h.alice_sends_simulcast(mid, 40, 600_000, ALL, keyframes_every_10);
    assert!(h.bob.received[mark].2, "resumes on a keyframe");
    assert_eq!(
        h.bob_layers_since(h.bob.sizes.len() - 5),
        vec![2; 5],
        "back on the top layer"
    );
    assert_consecutive(&h.bob.received);
}

#[test]
fn a_layer_the_publisher_stops_sending_falls_back_and_returns() {
    let (mut h, mid) = connected_simulcast();
    h.alice_sends_simulcast(mid, 20, 0, ALL, |i, _| i.is_multiple_of(10));
    // The publisher stops sending f (CPU or uplink limits): after the layer timeout, h takes over.
    let mark = h.bob.received.len();
    h.alice_sends_simulcast(mid, 60, 100_000, 0b011, |i, _| i.is_multiple_of(10));
    let layers = h.bob_layers_since(mark);
    assert!(layers.ends_with(&[1; 10]), "fell back to h: {layers:?}");
    let stats = stats_of(&mut h);
    assert_eq!(
        stats.subscriptions[0].reason,
        chorus_sfu::LimitReason::Unavailable
    );
    // f comes back: bob returns to it at its keyframe.
    let mark = h.bob.received.len();
    h.alice_sends_simulcast(mid, 30, 400_000, ALL, |i, _| i.is_multiple_of(10));
    assert!(
        h.bob_layers_since(mark).ends_with(&[2; 10]),
        "back on f: {:?}",
        h.bob_layers_since(mark)
    );
    assert_consecutive(&h.bob.received);
}

#[test]
fn dynacast_asks_the_publisher_for_only_the_layers_someone_receives() {
    let (mut h, mid) = connected_simulcast();
    h.alice_sends_simulcast(mid, 10, 0, ALL, |i, _| i == 0);
    h.take_events();
    prefer(&mut h, Quality::Low);
    h.run_for(Duration::from_secs(4));
    let layers_events: Vec<Event> = h
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, Event::PublishLayers { .. }))
        .collect();
    assert_eq!(
        layers_events,
        vec![Event::PublishLayers {
            participant: ALICE,
            track: TRACK,
            enabled: true,
            rids: vec![RIDS[0].to_string()],
        }],
        "after the hold, only q is wanted"
    );
    // Wanting more is announced at once.
    prefer(&mut h, Quality::Medium);
    assert!(h.take_events().contains(&Event::PublishLayers {
        participant: ALICE,
        track: TRACK,
        enabled: true,
        rids: vec!["q".into(), "h".into()],
    }));
    // Nobody subscribes: the track is switched off entirely.
    h.core.handle_command(
        h.now,
        Command::SetSubscribed {
            subscriber: BOB,
            track: TRACK,
            subscribed: false,
        },
    );
    h.run_for(Duration::from_secs(4));
    assert!(h.take_events().contains(&Event::PublishLayers {
        participant: ALICE,
        track: TRACK,
        enabled: false,
        rids: vec![],
    }));
}
