//! A virtual network and clock for driving the sans-IO `WorkerCore` with real str0m clients: alice publishes,
//! bob subscribes, and every datagram between them and the SFU passes through [`Harness::run`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod data;
pub mod simulcast;

use chorus_sfu::core::WorkerCore;
use chorus_sfu::{Command, Event, MediaKind, ParticipantKey, RoomKey, TrackKey, TrackSpec};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaTime, Mid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event as RtcEvent, Input, Output, Rtc};

pub const ROOM: RoomKey = RoomKey(1);
pub const ALICE: ParticipantKey = ParticipantKey(10);
pub const BOB: ParticipantKey = ParticipantKey(20);
/// Test keyframes are bigger than this, delta frames smaller, so the receiver can tell them apart.
pub const KEYFRAME_BYTES: usize = 500;

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// A client peer on the virtual network.
pub struct Client {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    pub received: Vec<(u64, u32, bool)>,
    /// SSRC of each received packet.
    pub ssrcs: Vec<u32>,
    /// VP8 PictureID of each received packet, if any.
    pub picture_ids: Vec<Option<u16>>,
    pub keyframe_requests: usize,
    /// Payload length of each received packet (simulcast tests tell layers apart by it).
    pub sizes: Vec<usize>,
    pub connected: bool,
}

impl Client {
    pub fn new(now: Instant, addr: SocketAddr, rtp_mode: bool, video: Option<Codec>) -> Client {
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
            sizes: Vec::new(),
            connected: false,
        }
    }
}

pub struct Harness {
    pub now: Instant,
    pub core: WorkerCore,
    pub server: SocketAddr,
    pub events: Arc<Mutex<Vec<Event>>>,
    pub alice: Client,
    pub bob: Client,
    /// The subscriber-connection mids the SFU offered to bob.
    pub bob_mids: Vec<Mid>,
    /// The video codec alice sends.
    pub codec: Codec,
    /// Drop the RTP datagrams to bob whose (0-based) index among RTP datagrams to bob is listed.
    pub drop_rtp_to_bob: Vec<usize>,
    /// Also drop every retransmission to bob (RTP on another SSRC than the media's), so losses stay lost.
    pub drop_retransmissions_to_bob: bool,
    pub rtp_to_bob: usize,
    /// The SSRC of the media stream to bob (learned from the first media packet).
    pub bob_media_ssrc: Option<u32>,
}

impl Harness {
    pub fn new() -> Harness {
        Self::with_codec(Codec::Vp8)
    }

    pub fn with_codec(codec: Codec) -> Harness {
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
                    identity: p.to_string().into(),
                    can_publish_data: true,
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
            drop_retransmissions_to_bob: false,
            rtp_to_bob: 0,
            bob_media_ssrc: None,
        }
    }

    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().expect("lock"))
    }

    /// Poll one client until it wants a timeout: its datagrams go to the SFU, its events are recorded.
    /// (In RTP mode str0m holds one received packet until the next poll, so poll after every input.)
    pub fn drain_client(&mut self, alice: bool) -> bool {
        let client = if alice {
            &mut self.alice
        } else {
            &mut self.bob
        };
        let mut moved = false;
        let mut due_now = 0;
        loop {
            match client.rtc.poll_output().expect("client poll") {
                // Work due now (e.g. more queued media): let the client do it before returning.
                Output::Timeout(t) if t <= self.now && due_now < 100 => {
                    due_now += 1;
                    client
                        .rtc
                        .handle_input(Input::Timeout(self.now))
                        .expect("timeout");
                }
                Output::Timeout(_) => return moved,
                Output::Transmit(t) => {
                    moved = true;
                    assert_eq!(t.destination, self.server, "clients only talk to the SFU");
                    self.core
                        .handle_datagram(self.now, t.source, t.destination, &t.contents);
                }
                Output::Event(e) => match e {
                    RtcEvent::Connected => client.connected = true,
                    // Padding-only packets (bandwidth probes) carry no media.
                    RtcEvent::RtpPacket(p) if p.payload.is_empty() => {}
                    RtcEvent::RtpPacket(p) => {
                        client.ssrcs.push(*p.header.ssrc);
                        client.sizes.push(p.payload.len());
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
    pub fn run(&mut self, step: Duration) {
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
                // Count only original media: not padding-only probes (P bit), not retransmissions (another
                // SSRC than the first media packet's).
                let is_rtp = is_rtp && t.contents[0] & 0x20 == 0 && t.contents.len() >= 12;
                let ssrc = is_rtp.then(|| {
                    u32::from_be_bytes([
                        t.contents[8],
                        t.contents[9],
                        t.contents[10],
                        t.contents[11],
                    ])
                });
                if !to_alice && is_rtp && self.bob_media_ssrc.is_none() {
                    self.bob_media_ssrc = ssrc;
                }
                if !to_alice && is_rtp && ssrc == self.bob_media_ssrc {
                    self.rtp_to_bob += 1;
                    if self.drop_rtp_to_bob.contains(&(self.rtp_to_bob - 1)) {
                        continue; // lost on the way
                    }
                } else if !to_alice && is_rtp && self.drop_retransmissions_to_bob {
                    continue;
                }
                let client = if to_alice {
                    &mut self.alice
                } else {
                    &mut self.bob
                };
                deliver(&mut client.rtc, self.now, &t);
                self.drain_client(to_alice);
            }
            if !moved {
                break;
            }
        }
        self.now += step;
        advance(
            self.now,
            [&mut self.alice.rtc, &mut self.bob.rtc],
            &mut self.core,
        );
    }

    pub fn run_for(&mut self, total: Duration) {
        let steps = total.as_millis() / 5;
        for _ in 0..steps {
            self.run(Duration::from_millis(5));
        }
    }

    /// Alice offers one sendonly video track; the SFU answers.
    pub fn alice_publishes(&mut self, track: TrackKey) -> Mid {
        self.alice_publishes_with(track, None, TrackSpec::default())
    }

    /// Alice offers one sendonly video track (with `simulcast` layers if given), described to the SFU by `spec`
    /// (its mid, track and kind are filled in); the SFU answers.
    pub fn alice_publishes_with(
        &mut self,
        track: TrackKey,
        simulcast: Option<str0m::media::Simulcast>,
        spec: TrackSpec,
    ) -> Mid {
        self.alice_offers(track, MediaKind::Video, simulcast, spec)
    }

    /// Alice offers one sendonly track of `kind` (with `simulcast` layers if given), described to the SFU by
    /// `spec` (its mid, track and kind are filled in); the SFU answers.
    pub fn alice_offers(
        &mut self,
        track: TrackKey,
        kind: MediaKind,
        simulcast: Option<str0m::media::Simulcast>,
        spec: TrackSpec,
    ) -> Mid {
        let media = match kind {
            MediaKind::Audio => str0m::media::MediaKind::Audio,
            MediaKind::Video => str0m::media::MediaKind::Video,
        };
        let mut api = self.alice.rtc.sdp_api();
        let mid = api.add_media(media, Direction::SendOnly, None, None, simulcast);
        let (offer, pending) = api.apply().expect("an offer");
        self.core.handle_command(
            self.now,
            Command::PublisherOffer {
                participant: ALICE,
                sdp: offer.to_sdp_string(),
                tracks: vec![TrackSpec {
                    mid: mid.to_string(),
                    track,
                    kind,
                    ..spec
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
    pub fn publish_to_bob(&mut self, track: TrackKey) -> Mid {
        let mid = self.alice_publishes(track);
        self.bob_subscribes(track);
        mid
    }

    /// [`Harness::publish_to_bob`], connected, with five frames of video sent and forwarded (100 ms allowed).
    pub fn video_flowing_to_bob(&mut self, track: TrackKey) -> Mid {
        let mid = self.publish_to_bob(track);
        self.run_for(Duration::from_secs(2));
        self.alice_sends_frames(mid, 5, 0);
        self.run_for(Duration::from_millis(100));
        mid
    }

    /// Bob subscribes to `track` and answers the one subscriber offer that follows.
    pub fn bob_subscribes(&mut self, track: TrackKey) {
        self.core.handle_command(
            self.now,
            Command::SetSubscribed {
                subscriber: BOB,
                track,
                subscribed: true,
            },
        );
        assert_eq!(self.bob_answers_offers(), 1, "one subscriber offer for bob");
    }

    /// Bob answers every subscriber offer the SFU has made.
    pub fn bob_answers_offers(&mut self) -> usize {
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
    pub fn alice_sends_frames(&mut self, mid: Mid, n: u32, start_ts: u64) {
        for i in 0..n {
            self.alice_writes_frame(mid, i == 0, 0, start_ts + u64::from(i) * 3000);
            self.run(Duration::from_millis(33));
        }
    }

    /// Alice hands one frame (one RTP packet, `extra` bytes longer than the usual size) to her connection without
    /// moving anything across the network.
    pub fn alice_writes_frame(&mut self, mid: Mid, keyframe: bool, extra: usize, ts: u64) {
        let pt = {
            let writer = self.alice.rtc.writer(mid).expect("writer");
            let pt = writer
                .payload_params()
                .find(|p| p.spec().codec == self.codec)
                .expect("the codec was negotiated")
                .pt();
            pt
        };
        let data = frame_with_padding(self.codec, keyframe, extra);
        let writer = self.alice.rtc.writer(mid).expect("writer");
        writer
            .write(pt, self.now, MediaTime::from_90khz(ts), data)
            .expect("write frame");
    }
}

/// A frame whose first bytes say keyframe or not the way each codec does; keyframes are bigger. `extra` bytes
/// longer than the usual size (to tell simulcast layers apart at the receiver, or to fill packets).
pub fn frame_with_padding(codec: Codec, keyframe: bool, extra: usize) -> Vec<u8> {
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
    let body = if keyframe { 800 } else { 300 } + extra;
    header
        .iter()
        .copied()
        .chain(std::iter::repeat_n(7u8, body))
        .collect()
}

/// Hands one datagram the SFU sent to the client's connection.
pub fn deliver(rtc: &mut Rtc, now: Instant, t: &Transmit) {
    let input = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
        .expect("SFU datagram parses");
    rtc.handle_input(Input::Receive(now, input))
        .expect("client accepts");
}

/// The virtual clock moved to `now`: every client and the core run what is due.
pub fn advance<'a>(
    now: Instant,
    clients: impl IntoIterator<Item = &'a mut Rtc>,
    core: &mut WorkerCore,
) {
    for rtc in clients {
        rtc.handle_input(Input::Timeout(now)).expect("timeout");
    }
    if core.next_deadline().is_some_and(|d| d <= now) {
        core.handle_timeout(now);
    }
}

pub fn accept_answer(rtc: &mut Rtc, pending: SdpPendingOffer, sdp: &str) {
    let answer = SdpAnswer::from_sdp_string(sdp).expect("answer parses");
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .expect("answer accepted");
}

pub fn assert_consecutive(received: &[(u64, u32, bool)]) {
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
