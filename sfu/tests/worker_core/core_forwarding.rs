//! The worker core end to end without sockets or real time: two str0m clients on a virtual network, a virtual
//! clock, and the sans-IO `WorkerCore` between them. Proves negotiation, ICE-lite, DTLS-SRTP, forwarding with
//! continuous rewritten sequence numbers, keyframe requests upstream, NACK repair, and mute/republish continuity.

use std::time::Duration;

use chorus_sfu::{Command, Event, ParticipantKey, PcKind, TrackKey};
use str0m::format::Codec;
use str0m::media::KeyframeRequestKind;

use crate::support::{addr, assert_consecutive, Harness, ALICE, BOB};

#[test]
fn forwards_video_between_two_clients_with_continuous_numbering() {
    let mut h = Harness::new();
    let track = TrackKey(100);
    let mid = h.publish_to_bob(track);
    h.run_for(Duration::from_secs(2));
    assert!(
        h.alice.connected && h.bob.connected,
        "both clients connected"
    );
    let connected: Vec<_> = h
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, Event::Connected { .. }))
        .collect();
    assert!(connected.contains(&Event::Connected {
        participant: BOB,
        pc: PcKind::Subscriber
    }));

    h.alice_sends_frames(mid, 30, 0);
    h.run_for(Duration::from_millis(200));
    let got = h.bob.received.clone();
    assert!(got.len() >= 29, "bob received {} of 30 packets", got.len());
    assert!(got[0].2, "the forwarded stream starts on a keyframe");
    assert_consecutive(&got);

    // Bob asks for a keyframe: it reaches Alice (throttled, so exactly one for two quick requests).
    for _ in 0..2 {
        let mid = h.bob_mids[0];
        let mut api = h.bob.rtc.direct_api();
        api.stream_rx_by_mid(mid, None)
            .expect("bob's stream")
            .request_keyframe(KeyframeRequestKind::Pli);
        h.run_for(Duration::from_millis(50));
    }
    assert_eq!(
        h.alice.keyframe_requests, 1,
        "PLI forwarded once (throttled)"
    );

    // Mute: packets are dropped; unmute: the stream continues at the next sequence number.
    h.core
        .handle_command(h.now, Command::SetTrackMuted { track, muted: true });
    h.alice_sends_frames(mid, 10, 90_000);
    let during_mute = h.bob.received.len();
    assert_eq!(during_mute, got.len(), "nothing forwarded while muted");
    h.core.handle_command(
        h.now,
        Command::SetTrackMuted {
            track,
            muted: false,
        },
    );
    h.alice_sends_frames(mid, 10, 200_000);
    h.run_for(Duration::from_millis(100));
    assert!(
        h.bob.received.len() > during_mute,
        "forwarding resumed after unmute"
    );
    assert!(h.bob.received[during_mute].2, "resumes on a keyframe");
    assert_consecutive(&h.bob.received);
}

#[test]
fn a_burst_of_video_is_forwarded_at_once_not_paced() {
    let mut h = Harness::new();
    let mid = h.video_flowing_to_bob(TrackKey(100));
    let before = h.bob.received.len();
    assert!(before >= 4, "bob received {before} of the first 5 packets");

    // A keyframe's worth of packets at one instant (40 of about 1 KB), which a pacer at the subscriber's starting
    // estimate would spread over tens of milliseconds.
    const BURST: usize = 40;
    for i in 0..BURST {
        h.alice_writes_frame(mid, false, 500, 30_000 + i as u64);
    }
    let at = h.now;
    // Alice's datagrams reach the core, which forwards them (the copies wait in its transmit queue).
    h.drain_client(true);
    // str0m's "right away" timer rounds (one after each packet) ran while the core drained bob's connection,
    // rather than being left for the worker's next loop iteration.
    let deadline = h.core.next_deadline().expect("a deadline");
    assert!(
        deadline >= at + Duration::from_millis(1),
        "a timer pass is due {:?} after the burst",
        deadline.saturating_duration_since(at)
    );
    h.run(Duration::ZERO);
    assert_eq!(h.now, at, "the clock did not move");
    assert_eq!(
        h.bob.received.len() - before,
        BURST,
        "the whole burst reached bob at the instant it was sent"
    );
    assert_consecutive(&h.bob.received);
}

#[test]
fn a_steady_stream_costs_one_timer_round_per_packet_and_none_waits_for_one() {
    let mut h = Harness::new();
    let mid = h.video_flowing_to_bob(TrackKey(100));

    // One packet a millisecond, each forwarded the instant it arrives. After each, str0m asks for a timer
    // round "right away" (its pacer gates the next packet on it); the core leaves that round for the next
    // packet's drain, which needs one anyway, so it never holds a packet back.
    const PACKETS: u64 = 20;
    let rounds_before = h.core.stats.rtc_timer_rounds;
    for i in 0..PACKETS {
        let before = h.bob.received.len();
        h.alice_writes_frame(mid, false, 500, 30_000 + 90 * i);
        let at = h.now;
        h.drain_client(true);
        h.run(Duration::ZERO);
        assert_eq!(h.now, at);
        assert_eq!(
            h.bob.received.len() - before,
            1,
            "packet {i} reached bob at the instant it was sent"
        );
        h.run(Duration::from_millis(1));
    }
    assert_consecutive(&h.bob.received);
    // Bob's connection: one round per packet (two if the trailing one ran too); alice's and the odd periodic
    // timer are the rest.
    let rounds = h.core.stats.rtc_timer_rounds - rounds_before;
    assert!(
        rounds < PACKETS * 3 / 2,
        "{rounds} str0m timer rounds for {PACKETS} forwarded packets"
    );
}

#[test]
fn garbage_datagrams_and_unknown_commands_are_harmless() {
    let mut h = Harness::new();
    let src = addr("10.9.9.9:1234");
    for len in [0usize, 1, 20, 100, 1500] {
        for first in [0u8, 1, 22, 128, 255] {
            let mut d = vec![first; len];
            if len >= 8 {
                d[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
            }
            h.core.handle_datagram(h.now, src, h.server, &d);
        }
    }
    h.core.handle_command(
        h.now,
        Command::SubscriberAnswer {
            participant: BOB,
            sdp: "garbage".into(),
        },
    );
    h.core.handle_command(
        h.now,
        Command::PublisherOffer {
            participant: ALICE,
            sdp: "not sdp".into(),
            tracks: vec![],
        },
    );
    h.core.handle_command(
        h.now,
        Command::SetSubscribed {
            subscriber: ParticipantKey(999),
            track: TrackKey(5),
            subscribed: true,
        },
    );
    let events = h.take_events();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::NegotiationFailed {
            participant: ALICE,
            pc: PcKind::Publisher,
            ..
        }
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::NegotiationFailed {
            participant: BOB,
            pc: PcKind::Subscriber,
            ..
        }
    )));
    assert_eq!(h.core.participant_count(), 2, "nobody was dropped");
}

#[test]
fn a_republished_track_continues_the_same_outgoing_stream() {
    let mut h = Harness::new();
    let first = TrackKey(100);
    let mid = h.publish_to_bob(first);
    h.run_for(Duration::from_secs(2));
    h.alice_sends_frames(mid, 10, 0);
    h.run_for(Duration::from_millis(100));
    let before = h.bob.received.len();
    assert!(
        before >= 9,
        "bob received {before} packets of the first track"
    );
    let bob_mid = h.bob_mids[0];

    // Alice unpublishes; bob's mid goes inactive.
    h.core
        .handle_command(h.now, Command::UnpublishTrack { track: first });
    assert_eq!(h.bob_answers_offers(), 1, "an offer deactivating the mid");
    assert!(h.bob_mids.is_empty(), "no track carried while unpublished");
    h.run_for(Duration::from_millis(500));

    // Alice publishes again: a new track, a new mid and SSRC on her side.
    let second = TrackKey(101);
    let mid2 = h.alice_publishes(second);
    assert_ne!(mid, mid2);
    h.core.handle_command(
        h.now,
        Command::SetSubscribed {
            subscriber: BOB,
            track: second,
            subscribed: true,
        },
    );
    assert_eq!(h.bob_answers_offers(), 1, "an offer reactivating the mid");
    assert_eq!(
        h.bob_mids,
        vec![bob_mid],
        "the same subscriber mid carries the new track"
    );
    h.run_for(Duration::from_millis(500));
    h.alice_sends_frames(mid2, 10, 7_777_777);
    h.run_for(Duration::from_millis(200));

    assert!(
        h.bob.received.len() >= before + 9,
        "bob received {} packets of the republished track",
        h.bob.received.len() - before
    );
    assert!(
        h.bob.received[before].2,
        "the new source starts on a keyframe"
    );
    let ssrc = h.bob.ssrcs[0];
    assert!(
        h.bob.ssrcs.iter().all(|s| *s == ssrc),
        "one outgoing SSRC throughout"
    );
    assert_consecutive(&h.bob.received);
}

#[test]
fn forwards_h264_and_vp9_too() {
    for codec in [Codec::H264, Codec::Vp9] {
        let mut h = Harness::with_codec(codec);
        let track = TrackKey(100);
        let mid = h.publish_to_bob(track);
        h.run_for(Duration::from_secs(2));
        h.alice_sends_frames(mid, 20, 0);
        h.run_for(Duration::from_millis(200));
        let got = &h.bob.received;
        assert!(
            got.len() >= 19,
            "{codec:?}: bob received {} of 20",
            got.len()
        );
        assert!(got[0].2, "{codec:?}: starts on a keyframe");
        assert_consecutive(got);
    }
}

#[test]
fn packets_lost_on_the_way_to_a_subscriber_are_resent_on_nack() {
    let mut h = Harness::new();
    let track = TrackKey(100);
    let mid = h.publish_to_bob(track);
    h.run_for(Duration::from_secs(2));
    h.drop_rtp_to_bob = vec![h.rtp_to_bob + 5, h.rtp_to_bob + 6, h.rtp_to_bob + 12];
    h.alice_sends_frames(mid, 30, 0);
    h.run_for(Duration::from_millis(500));
    let last_dropped = h.drop_rtp_to_bob.iter().copied().max().unwrap_or(0);
    assert!(
        h.rtp_to_bob > last_dropped + 3,
        "the dropped packets were really sent: {} RTP datagrams to bob, dropped {:?}",
        h.rtp_to_bob,
        h.drop_rtp_to_bob
    );
    let mut seqs: Vec<u64> = h.bob.received.iter().map(|r| r.0).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert!(
        seqs.len() >= 29,
        "bob has {} of 30 packets after NACKs",
        seqs.len()
    );
    assert_eq!(
        seqs.last().map(|l| l - seqs[0] + 1),
        Some(seqs.len() as u64),
        "no holes left: {seqs:?}"
    );
}
