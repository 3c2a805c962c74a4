//! (Feature `testkit`; never part of the server.) A virtual network and clock around one [`WorkerCore`] with
//! real str0m clients: one publisher sending VP8 and N subscribers receiving it, all connected through ICE-lite
//! and DTLS-SRTP. Benchmarks use it to time the core's packet path in isolation: [`FanoutNet::publisher_packets`]
//! makes SRTP datagrams from the publisher (untimed), [`FanoutNet::forward`] feeds one to the core and drains
//! the encrypted copies it produces for the subscribers (the part worth timing), and [`FanoutNet::settle`]
//! delivers everything both ways so the subscribers stay connected (consent, RTCP).
//!
//! Setup failures panic with a reason: this is test infrastructure.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event as RtcEvent, Input, Output, Rtc};

use crate::api::{Command, Event, MediaKind, ParticipantKey, RoomKey, TrackKey, TrackSpec};
use crate::core::WorkerCore;

const ROOM: RoomKey = RoomKey(1);
const PUBLISHER: ParticipantKey = ParticipantKey(1);
const TRACK: TrackKey = TrackKey(1);
/// Bytes of each synthetic VP8 frame: one RTP packet of about 1,050 bytes on the wire.
pub const FRAME_BYTES: usize = 1000;

/// A client peer on the virtual network.
pub struct VirtualClient {
    pub rtc: Rtc,
    pub addr: SocketAddr,
    pub connected: bool,
    /// RTP packets (or frames, in frame mode) this client received.
    pub media_received: u64,
    /// The ICE ufrag of the SFU's side of this client's connection (from the SFU's SDP), as every STUN
    /// check this client sends names it.
    pub server_ufrag: String,
}

impl VirtualClient {
    /// A client without transport-wide congestion control (no TWCC extension), like the Rust bot client: the
    /// SFU's bandwidth estimation then leaves the synthetic bursts alone and the bench measures forwarding.
    fn new(now: Instant, addr: SocketAddr) -> VirtualClient {
        let mut rtc = Rtc::builder()
            .clear_extension_map()
            .set_extension(4, str0m::rtp::Extension::RtpMid)
            .set_extension(10, str0m::rtp::Extension::RtpStreamId)
            .set_extension(11, str0m::rtp::Extension::RepairedRtpStreamId)
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
        VirtualClient {
            rtc,
            addr,
            connected: false,
            media_received: 0,
            server_ufrag: String::new(),
        }
    }

    /// Hand this client a datagram the SFU sent it.
    fn receive(&mut self, now: Instant, t: &Transmit) {
        let input = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
            .expect("SFU datagram parses");
        self.rtc
            .handle_input(Input::Receive(now, input))
            .expect("client accepts");
    }
}

/// A datagram the publisher sent towards the SFU, and when.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub at: Instant,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// One room on one core: a VP8 publisher and `n` subscribers of its track.
pub struct FanoutNet {
    pub now: Instant,
    pub core: WorkerCore,
    pub server: SocketAddr,
    events: Arc<Mutex<Vec<Event>>>,
    pub publisher: VirtualClient,
    pub subscribers: Vec<VirtualClient>,
    mid: Mid,
    pt: Pt,
    frames: u64,
    /// `MediaFailed` reasons the core reported (a bench must stop if anyone dropped out).
    pub failures: Vec<String>,
}

/// The ICE ufrag an SDP announces.
fn ice_ufrag(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .expect("the SFU's SDP has an ICE ufrag")
        .to_string()
}

fn addr_of(i: usize) -> SocketAddr {
    let i = u32::try_from(i).expect("fewer than 2^32 clients");
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 5000))
}

impl FanoutNet {
    /// Builds the room, negotiates every connection and runs until everyone is connected and the subscribers
    /// receive the publisher's video (forwarders anchored on a keyframe).
    pub fn new(subscribers: usize) -> FanoutNet {
        let now = Instant::now();
        let server: SocketAddr = ([127, 0, 0, 1], 7882).into();
        let mut core = WorkerCore::new(server);
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        core.handle_command(
            now,
            Command::CreateRoom {
                room: ROOM,
                events: Arc::new(move |e| sink.lock().expect("event lock").push(e)),
            },
        );
        for i in 0..=subscribers {
            core.handle_command(
                now,
                Command::AddParticipant {
                    room: ROOM,
                    participant: ParticipantKey(i as u64 + 1),
                    identity: format!("p{i}").into(),
                    can_publish_data: true,
                },
            );
        }
        let mut net = FanoutNet {
            now,
            core,
            server,
            events,
            publisher: VirtualClient::new(now, addr_of(0)),
            subscribers: (1..=subscribers)
                .map(|i| VirtualClient::new(now, addr_of(i)))
                .collect(),
            mid: Mid::from("0"),
            pt: Pt::from(0),
            frames: 0,
            failures: Vec::new(),
        };
        net.publish();
        for i in 0..subscribers {
            net.core.handle_command(
                net.now,
                Command::SetSubscribed {
                    subscriber: ParticipantKey(i as u64 + 2),
                    track: TRACK,
                    subscribed: true,
                },
            );
        }
        net.answer_subscriber_offers();
        let deadline = net.now + Duration::from_secs(10);
        while !(net.publisher.connected && net.subscribers.iter().all(|s| s.connected)) {
            assert!(net.now < deadline, "clients did not connect");
            net.settle(Duration::from_millis(20));
        }
        // A keyframe anchors every forwarder; a few deltas after it must reach everyone.
        for _ in 0..5 {
            let packets = net.publisher_packets(1);
            for p in &packets {
                net.core
                    .handle_datagram(p.at, p.source, p.destination, &p.contents);
            }
            net.settle(Duration::from_millis(33));
        }
        assert!(
            net.subscribers.iter().all(|s| s.media_received > 0),
            "every subscriber receives the video"
        );
        net
    }

    /// The core's events since the last call; departures are also noted in [`FanoutNet::failures`].
    fn take_events(&mut self) -> Vec<Event> {
        let events = std::mem::take(&mut *self.events.lock().expect("event lock"));
        for e in &events {
            if let Event::MediaFailed {
                participant,
                reason,
            } = e
            {
                self.failures.push(format!("{participant}: {reason}"));
            }
        }
        events
    }

    fn publish(&mut self) {
        let mut api = self.publisher.rtc.sdp_api();
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
                participant: PUBLISHER,
                sdp: offer.to_sdp_string(),
                tracks: vec![TrackSpec {
                    mid: mid.to_string(),
                    track: TRACK,
                    kind: MediaKind::Video,
                    ..Default::default()
                }],
            },
        );
        let answer = self
            .take_events()
            .into_iter()
            .find_map(|e| match e {
                Event::PublisherAnswer { sdp, .. } => Some(sdp),
                _ => None,
            })
            .expect("publisher answer");
        self.publisher.server_ufrag = ice_ufrag(&answer);
        let answer = SdpAnswer::from_sdp_string(&answer).expect("answer parses");
        self.publisher
            .rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
        self.mid = mid;
        self.pt = self
            .publisher
            .rtc
            .writer(mid)
            .expect("writer")
            .payload_params()
            .find(|p| p.spec().codec == Codec::Vp8)
            .expect("VP8 negotiated")
            .pt();
    }

    fn answer_subscriber_offers(&mut self) {
        for e in self.take_events() {
            let Event::SubscriberOffer {
                participant, sdp, ..
            } = e
            else {
                continue;
            };
            let i = participant.0 as usize - 2;
            self.subscribers[i].server_ufrag = ice_ufrag(&sdp);
            let offer = SdpOffer::from_sdp_string(&sdp).expect("offer parses");
            let answer = self.subscribers[i]
                .rtc
                .sdp_api()
                .accept_offer(offer)
                .expect("subscriber accepts");
            self.core.handle_command(
                self.now,
                Command::SubscriberAnswer {
                    participant,
                    sdp: answer.to_sdp_string(),
                },
            );
        }
    }

    fn client(&mut self, addr: SocketAddr) -> Option<&mut VirtualClient> {
        if addr == self.publisher.addr {
            return Some(&mut self.publisher);
        }
        self.subscribers.iter_mut().find(|s| s.addr == addr)
    }

    /// Poll a client until it wants a timeout, delivering its datagrams to the core.
    fn drain(core: &mut WorkerCore, now: Instant, c: &mut VirtualClient) {
        loop {
            match c.rtc.poll_output().expect("client poll") {
                Output::Timeout(_) => return,
                Output::Transmit(t) => {
                    core.handle_datagram(now, t.source, t.destination, &t.contents)
                }
                Output::Event(RtcEvent::Connected) => c.connected = true,
                Output::Event(RtcEvent::MediaData(_) | RtcEvent::RtpPacket(_)) => {
                    c.media_received += 1
                }
                Output::Event(_) => {}
            }
        }
    }

    /// Deliver everything both ways and advance the clock in 5 ms steps for `total`.
    pub fn settle(&mut self, total: Duration) {
        let end = self.now + total;
        loop {
            for _ in 0..50 {
                let now = self.now;
                Self::drain(&mut self.core, now, &mut self.publisher);
                for s in &mut self.subscribers {
                    Self::drain(&mut self.core, now, s);
                }
                let mut moved = false;
                while let Some(t) = self.core.poll_transmit() {
                    moved = true;
                    if let Some(c) = self.client(t.destination) {
                        c.receive(now, &t);
                    }
                }
                if !moved {
                    break;
                }
            }
            self.answer_subscriber_offers();
            if self.now >= end {
                return;
            }
            self.now += Duration::from_millis(5);
            let now = self.now;
            for c in std::iter::once(&mut self.publisher).chain(self.subscribers.iter_mut()) {
                c.rtc.handle_input(Input::Timeout(now)).expect("timeout");
            }
            if self.core.next_deadline().is_some_and(|d| d <= now) {
                self.core.handle_timeout(now);
            }
        }
    }

    /// The publisher sends `n` VP8 frames (one packet each, the very first a keyframe), 1 ms apart; returns
    /// its datagrams to the SFU without delivering them.
    pub fn publisher_packets(&mut self, n: usize) -> Vec<Datagram> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            self.now += Duration::from_millis(1);
            let keyframe = self.frames == 0;
            let mut data = vec![0x5a; FRAME_BYTES];
            data[0] = u8::from(!keyframe); // VP8 frame tag bit 0: 0 = keyframe
                                           // The media clock keeps pace with the 1 ms between frames, as a real source's would.
            let ts = MediaTime::from_90khz(self.frames * 90);
            self.frames += 1;
            let now = self.now;
            let (pt, mid) = (self.pt, self.mid);
            let rtc = &mut self.publisher.rtc;
            rtc.handle_input(Input::Timeout(now)).expect("timeout");
            rtc.writer(mid)
                .expect("writer")
                .write(pt, now, ts, data)
                .expect("write frame");
            loop {
                match rtc.poll_output().expect("publisher poll") {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => out.push(Datagram {
                        at: now,
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.to_vec(),
                    }),
                    Output::Event(_) => {}
                }
            }
        }
        out
    }

    /// Frames (packets) the publisher has made so far.
    pub fn packets_made(&self) -> u64 {
        self.frames
    }

    /// Feeds one publisher datagram to the core and drops every datagram it makes for the subscribers (the
    /// encrypted copies, plus any RTCP); returns how many there were. What it makes for the publisher (answers
    /// to its ICE consent checks, receiver reports) is delivered: a publisher whose checks went unanswered
    /// would stop sending them, and the SFU would end it as ICE-disconnected after about 40 s of packets.
    pub fn forward(&mut self, d: &Datagram) -> usize {
        self.core
            .handle_datagram(d.at, d.source, d.destination, &d.contents);
        // As the I/O loop does on every iteration: run timers that are due (str0m releases queued packets).
        if self.core.next_deadline().is_some_and(|t| t <= d.at) {
            self.core.handle_timeout(d.at);
        }
        let mut sent = 0;
        while let Some(t) = self.core.poll_transmit() {
            if t.destination != self.publisher.addr {
                sent += 1;
                continue;
            }
            self.publisher.receive(d.at, &t);
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_out_keeps_flowing_for_a_minute_of_packets() {
        // 60,000 packets, 1 ms apart: past the ~40 s after which a publisher whose ICE consent checks went
        // unanswered used to be ended (the net dropped the SFU's answers), and most likely across the sequence
        // number wrap (60,000 of 65,536 numbers from a random start).
        let mut net = FanoutNet::new(3);
        for batch in 0..60 {
            let packets = net.publisher_packets(1000);
            let before = net.core.stats;
            let sent: usize = packets.iter().map(|p| net.forward(p)).sum();
            net.settle(Duration::from_millis(20));
            let after = net.core.stats;
            let forwarded = after.rtp_forwarded - before.rtp_forwarded;
            assert!(
                // The last packet's copies may still sit in str0m's pacer until its next timer.
                sent >= (packets.len() - 1) * 3 && forwarded >= 3 * (packets.len() as u64 - 1),
                "batch {batch}: {} packets made {sent} datagrams, {forwarded} forwards; failures {:?}",
                packets.len(),
                net.failures
            );
        }
        assert!(net.failures.is_empty(), "{:?}", net.failures);
        assert_eq!(net.packets_made(), 5 + 60 * 1000);
    }
}
