//! The worker core end to end without sockets or real time: two str0m clients on a virtual network, a virtual
//! clock, and the sans-IO `WorkerCore` between them. Proves negotiation, ICE-lite, DTLS-SRTP, forwarding with
//! continuous rewritten sequence numbers, keyframe requests upstream, and mute/republish continuity.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chorus_sfu::core::WorkerCore;
use chorus_sfu::{Command, Event, MediaKind, ParticipantKey, PcKind, RoomKey, TrackKey, TrackSpec};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event as RtcEvent, Input, Output, Rtc};

const ROOM: RoomKey = RoomKey(1);
const ALICE: ParticipantKey = ParticipantKey(10);
const BOB: ParticipantKey = ParticipantKey(20);
/// Test keyframes are bigger than this, delta frames smaller, so the receiver can tell them apart.
const KEYFRAME_BYTES: usize = 500;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// A client peer on the virtual network.
struct Client {
    rtc: Rtc,
    addr: SocketAddr,
    received: Vec<(u64, u32, bool)>,
    /// SSRC of each received packet.
    ssrcs: Vec<u32>,
    /// VP8 PictureID of each received packet, if any.
    picture_ids: Vec<Option<u16>>,
    keyframe_requests: usize,
    connected: bool,
}

impl Client {
    fn new(now: Instant, addr: SocketAddr, rtp_mode: bool, video: Option<Codec>) -> Client {
        let mut config = Rtc::builder().set_rtp_mode(rtp_mode);
        if let Some(codec) = video {
            // Offer only this video codec (and Opus), as a browser restricted by setCodecPreferences would.
            config = config.clear_codecs().enable_opus(true, false);
            config = match codec {
                Codec::H264 => config.enable_h264(true),
                Codec::Vp9 => config.enable_vp9(true),
                Codec::Av1 => config.enable_av1(true),
                _ => config.enable_vp8(true),
            };
        }
        let mut rtc = config.build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        Client {
            rtc,
            addr,
            received: Vec::new(),
            ssrcs: Vec::new(),
            picture_ids: Vec::new(),
            keyframe_requests: 0,
            connected: false,
        }
    }
}

struct Harness {
    now: Instant,
    core: WorkerCore,
    server: SocketAddr,
    events: Arc<Mutex<Vec<Event>>>,
    alice: Client,
    bob: Client,
    /// The subscriber-connection mids the SFU offered to bob.
    bob_mids: Vec<Mid>,
    /// The video codec alice sends.
    codec: Codec,
    /// Drop the RTP datagrams to bob whose (0-based) index among RTP datagrams to bob is listed.
    drop_rtp_to_bob: Vec<usize>,
    rtp_to_bob: usize,
}

impl Harness {
    fn new() -> Harness {
        Self::with_codec(Codec::Vp8)
    }

    fn with_codec(codec: Codec) -> Harness {
        let now = Instant::now();
        let server = addr("127.0.0.1:7882");
        let mut core = WorkerCore::new(server);
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        core.handle_command(
            now,
            Command::CreateRoom {
                room: ROOM,
                events: Arc::new(move |e| sink.lock().expect("lock").push(e)),
            },
        );
        for p in [ALICE, BOB] {
            core.handle_command(
                now,
                Command::AddParticipant {
                    room: ROOM,
                    participant: p,
                },
            );
        }
        Harness {
            now,
            core,
            server,
            events,
            alice: Client::new(now, addr("10.0.0.1:5000"), false, Some(codec)),
            bob: Client::new(now, addr("10.0.0.2:6000"), true, None),
            bob_mids: Vec::new(),
            codec,
            drop_rtp_to_bob: Vec::new(),
            rtp_to_bob: 0,
        }
    }

    fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().expect("lock"))
    }

    /// Poll one client until it wants a timeout: its datagrams go to the SFU, its events are recorded.
    /// (In RTP mode str0m holds one received packet until the next poll, so poll after every input.)
    fn drain_client(&mut self, alice: bool) -> bool {
        let client = if alice {
            &mut self.alice
        } else {
            &mut self.bob
        };
        let mut moved = false;
        loop {
            match client.rtc.poll_output().expect("client poll") {
                Output::Timeout(_) => return moved,
                Output::Transmit(t) => {
                    moved = true;
                    assert_eq!(t.destination, self.server, "clients only talk to the SFU");
                    self.core
                        .handle_datagram(self.now, t.source, t.destination, &t.contents);
                }
                Output::Event(e) => match e {
                    RtcEvent::Connected => client.connected = true,
                    RtcEvent::RtpPacket(p) => {
                        client.ssrcs.push(*p.header.ssrc);
                        client.picture_ids.push(
                            chorus_sfu::vp8::parse_fields(&p.payload)
                                .and_then(|f| f.picture_id)
                                .map(|(id, _)| id),
                        );
                        client.received.push((
                            *p.seq_no,
                            p.header.timestamp,
                            p.payload.len() > KEYFRAME_BYTES,
                        ))
                    }
                    RtcEvent::KeyframeRequest(_) => client.keyframe_requests += 1,
                    _ => {}
                },
            }
        }
    }

    /// Move every pending datagram across the virtual network, then advance the clock by `step`.
    fn run(&mut self, step: Duration) {
        for _ in 0..100 {
            let mut moved = self.drain_client(true) | self.drain_client(false);
            while let Some(t) = self.core.poll_transmit() {
                moved = true;
                let to_alice = t.destination == self.alice.addr;
                assert!(
                    to_alice || t.destination == self.bob.addr,
                    "SFU sent to an unknown address {}",
                    t.destination
                );
                // RTP (not RTCP): version 2 and a payload type outside RTCP's 192..=223.
                let is_rtp = t.contents[0] >> 6 == 2 && !(192..224).contains(&t.contents[1]);
                if !to_alice && is_rtp {
                    self.rtp_to_bob += 1;
                    if self.drop_rtp_to_bob.contains(&(self.rtp_to_bob - 1)) {
                        continue; // lost on the way
                    }
                }
                let client = if to_alice {
                    &mut self.alice
                } else {
                    &mut self.bob
                };
                let input = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
                    .expect("SFU datagram parses");
                client
                    .rtc
                    .handle_input(Input::Receive(self.now, input))
                    .expect("client accepts");
                self.drain_client(to_alice);
            }
            if !moved {
                break;
            }
        }
        self.now += step;
        for rtc in [&mut self.alice.rtc, &mut self.bob.rtc] {
            rtc.handle_input(Input::Timeout(self.now)).expect("timeout");
        }
        if self.core.next_deadline().is_some_and(|d| d <= self.now) {
            self.core.handle_timeout(self.now);
        }
    }

    fn run_for(&mut self, total: Duration) {
        let steps = total.as_millis() / 5;
        for _ in 0..steps {
            self.run(Duration::from_millis(5));
        }
    }

    /// Alice offers one sendonly video track; the SFU answers.
    fn alice_publishes(&mut self, track: TrackKey) -> Mid {
        let mut api = self.alice.rtc.sdp_api();
        let mid = api.add_media(
            str0m::media::MediaKind::Video,
            Direction::SendOnly,
            None,
            None,
            None,
        );
        let (offer, pending) = api.apply().expect("an offer");
        self.core.handle_command(
            self.now,
            Command::PublisherOffer {
                participant: ALICE,
                sdp: offer.to_sdp_string(),
                tracks: vec![TrackSpec {
                    mid: mid.to_string(),
                    track,
                    kind: MediaKind::Video,
                }],
            },
        );
        let answer = self
            .take_events()
            .into_iter()
            .find_map(|e| match e {
                Event::PublisherAnswer { participant, sdp } if participant == ALICE => Some(sdp),
                _ => None,
            })
            .expect("publisher answer");
        accept_answer(&mut self.alice.rtc, pending, &answer);
        mid
    }

    /// Alice publishes `track`, bob subscribes to it and answers the one subscriber offer that follows.
    fn publish_to_bob(&mut self, track: TrackKey) -> Mid {
        let mid = self.alice_publishes(track);
        self.core.handle_command(
            self.now,
            Command::SetSubscribed {
                subscriber: BOB,
                track,
                subscribed: true,
            },
        );
        assert_eq!(self.bob_answers_offers(), 1, "one subscriber offer for bob");
        mid
    }

    /// Bob answers every subscriber offer the SFU has made.
    fn bob_answers_offers(&mut self) -> usize {
        let mut offers = Vec::new();
        for e in self.take_events() {
            if let Event::SubscriberOffer {
                participant: BOB,
                sdp,
                tracks,
            } = e
            {
                self.bob_mids = tracks.iter().map(|(m, _)| Mid::from(m.as_str())).collect();
                offers.push(sdp);
            }
        }
        for sdp in &offers {
            let offer = SdpOffer::from_sdp_string(sdp).expect("offer parses");
            let answer = self
                .bob
                .rtc
                .sdp_api()
                .accept_offer(offer)
                .expect("bob accepts");
            self.core.handle_command(
                self.now,
                Command::SubscriberAnswer {
                    participant: BOB,
                    sdp: answer.to_sdp_string(),
                },
            );
        }
        offers.len()
    }

    /// Alice sends `n` frames at 30 fps in her codec, the first a keyframe, each one RTP packet.
    fn alice_sends_frames(&mut self, mid: Mid, n: u32, start_ts: u64) {
        for i in 0..n {
            let pt = {
                let writer = self.alice.rtc.writer(mid).expect("writer");
                let pt = writer
                    .payload_params()
                    .find(|p| p.spec().codec == self.codec)
                    .expect("the codec was negotiated")
                    .pt();
                pt
            };
            let keyframe = i == 0;
            let data = frame(self.codec, keyframe);
            let writer = self.alice.rtc.writer(mid).expect("writer");
            writer
                .write(
                    pt,
                    self.now,
                    MediaTime::from_90khz(start_ts + u64::from(i) * 3000),
                    data,
                )
                .expect("write frame");
            self.run(Duration::from_millis(33));
        }
    }
}

/// A frame whose first bytes say keyframe or not the way each codec does; keyframes are bigger.
fn frame(codec: Codec, keyframe: bool) -> Vec<u8> {
    let header: &[u8] = match (codec, keyframe) {
        // VP8 frame tag: bit 0 clear on a keyframe.
        (Codec::Vp8, true) => &[0x00],
        (Codec::Vp8, false) => &[0x01],
        // H.264 Annex B: an IDR slice, or a non-IDR slice.
        (Codec::H264, true) => &[0, 0, 0, 1, 0x65],
        (Codec::H264, false) => &[0, 0, 0, 1, 0x41],
        // VP9 uncompressed header, profile 0: frame_type 0 (key) or 1.
        (Codec::Vp9, true) => &[0x82, 0x49, 0x83, 0x42],
        (Codec::Vp9, false) => &[0x86],
        _ => unreachable!("no test frames for {codec:?}"),
    };
    let body = if keyframe { 800 } else { 300 };
    header
        .iter()
        .copied()
        .chain(std::iter::repeat_n(7u8, body))
        .collect()
}

fn accept_answer(rtc: &mut Rtc, pending: SdpPendingOffer, sdp: &str) {
    let answer = SdpAnswer::from_sdp_string(sdp).expect("answer parses");
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .expect("answer accepted");
}

fn assert_consecutive(received: &[(u64, u32, bool)]) {
    for w in received.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0 + 1,
            "sequence numbers not consecutive: {received:?}"
        );
        let dt = w[1].1.wrapping_sub(w[0].1);
        assert!(
            dt > 0 && dt < u32::MAX / 2,
            "timestamps not increasing: {received:?}"
        );
    }
}

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
