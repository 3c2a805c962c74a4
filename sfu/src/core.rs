//! The sans-IO heart of a media worker: rooms, participants and forwarding, driven by `(now, input)`.
//!
//! [`WorkerCore`] is fed commands, datagrams and timeouts with the caller's clock, and yields transmits (via
//! [`WorkerCore::poll_transmit`]) and [`Event`]s (via each room's sink). It never reads the clock, sleeps or
//! touches a socket; `io.rs` does that. A str0m panic while handling one participant ends that participant
//! only.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use str0m::media::KeyframeRequestKind;
use str0m::net::Transmit;
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor};
use str0m::{Event as RtcEvent, IceConnectionState};

use crate::api::{Command, Event, MediaKind, ParticipantKey, PcKind, RoomKey, TrackKey};
use crate::forwarder::{DropReason, Forward, SourcePacket};
use crate::keyframe::{is_keyframe_start, VideoCodec};
use crate::participant::Participant;
use crate::peer::Peer;
use crate::room::{LayerDecision, PtInfo, RoomMedia, TrackRoute};
use crate::router::Router;
use crate::vp8::parse_fields;

pub struct WorkerCore {
    /// The address advertised to clients as our host candidate.
    local_addr: SocketAddr,
    rooms: HashMap<RoomKey, RoomMedia>,
    participants: HashMap<ParticipantKey, Participant>,
    tracks: HashMap<TrackKey, TrackRoute>,
    router: Router,
    transmits: VecDeque<Transmit>,
    /// Peers with output to drain.
    dirty: Vec<(ParticipantKey, PcKind)>,
    /// Subscribers whose forwarded tracks changed during this input: one offer each, after it.
    needs_offer: Vec<ParticipantKey>,
    /// Reused buffer for str0m events.
    event_buf: Vec<RtcEvent>,
    /// Whose peer we are inside, to blame on a panic.
    current: Option<ParticipantKey>,
    /// Subscriber connections that completed DTLS (writing before that only fills queues).
    connected_subscribers: std::collections::HashSet<ParticipantKey>,
    pub stats: WorkerStats,
}

/// Counters for monitoring; read by the I/O layer.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerStats {
    pub datagrams_in: u64,
    pub datagrams_unrouted: u64,
    pub rtp_in: u64,
    pub rtp_forwarded: u64,
    pub keyframe_requests: u64,
    pub participant_faults: u64,
}

impl WorkerCore {
    pub fn new(local_addr: SocketAddr) -> Self {
        WorkerCore {
            local_addr,
            rooms: HashMap::new(),
            participants: HashMap::new(),
            tracks: HashMap::new(),
            router: Router::default(),
            transmits: VecDeque::new(),
            dirty: Vec::new(),
            needs_offer: Vec::new(),
            event_buf: Vec::new(),
            current: None,
            connected_subscribers: Default::default(),
            stats: WorkerStats::default(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`WorkerCore::handle_timeout`] should next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.participants.values().map(|p| p.deadline()).min()
    }

    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        tracing::debug!(?cmd, "worker command");
        self.guarded(now, |core| core.apply_command(now, cmd));
    }

    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        self.stats.datagrams_in += 1;
        let Some((pk, pc)) = self.router.route(source, data) else {
            self.stats.datagrams_unrouted += 1;
            tracing::trace!(%source, len = data.len(), "unrouted datagram");
            return;
        };
        self.guarded(now, |core| {
            let Some(p) = core.participants.get_mut(&pk) else {
                return;
            };
            core.current = Some(pk);
            if let Err(e) = p.peer(pc).handle_datagram(now, source, destination, data) {
                core.fail_participant(pk, format!("{pc:?} connection failed: {e}"));
                return;
            }
            core.mark_dirty(pk, pc);
        });
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.guarded(now, |core| {
            let due: Vec<ParticipantKey> = core
                .participants
                .iter()
                .filter(|(_, p)| p.deadline() <= now)
                .map(|(k, _)| *k)
                .collect();
            for pk in due {
                let Some(p) = core.participants.get_mut(&pk) else {
                    continue;
                };
                core.current = Some(pk);
                if let Err(e) = p.handle_timeout(now) {
                    core.fail_participant(pk, format!("timer failed: {e}"));
                    continue;
                }
                core.mark_dirty(pk, PcKind::Publisher);
                core.mark_dirty(pk, PcKind::Subscriber);
            }
        });
    }

    /// Run `f`, then drain every peer it touched; a panic ends the participant being worked on.
    fn guarded(&mut self, now: Instant, f: impl FnOnce(&mut Self)) {
        let result = catch_unwind(AssertUnwindSafe(|| {
            f(self);
            self.settle(now);
        }));
        if result.is_err() {
            self.stats.participant_faults += 1;
            self.dirty.clear();
            if let Some(pk) = self.current.take() {
                tracing::error!(participant = %pk, "panic while handling participant; removing it");
                self.fail_participant(pk, "internal fault in the media engine".into());
                // Removing may itself touch other peers (renegotiation); settle without re-entering the guard.
                if catch_unwind(AssertUnwindSafe(|| self.settle(now))).is_err() {
                    self.dirty.clear();
                    self.needs_offer.clear();
                }
            }
        }
        self.current = None;
    }

    /// Make the offers and drain the peers that the last input touched, until nothing is left to do.
    fn settle(&mut self, now: Instant) {
        while !self.needs_offer.is_empty() || !self.dirty.is_empty() {
            for pk in std::mem::take(&mut self.needs_offer) {
                let Some(p) = self.participants.get_mut(&pk) else {
                    continue;
                };
                if let Some(offer) = p.negotiate() {
                    self.emit_for(pk, offer);
                }
                self.mark_dirty(pk, PcKind::Subscriber);
            }
            self.drain_dirty(now);
        }
    }

    fn queue_offer(&mut self, pk: ParticipantKey) {
        if !self.needs_offer.contains(&pk) {
            self.needs_offer.push(pk);
        }
    }

    fn mark_dirty(&mut self, pk: ParticipantKey, pc: PcKind) {
        if !self.dirty.contains(&(pk, pc)) {
            self.dirty.push((pk, pc));
        }
    }

    fn drain_dirty(&mut self, now: Instant) {
        while let Some((pk, pc)) = self.dirty.pop() {
            let mut events = std::mem::take(&mut self.event_buf);
            let Some(p) = self.participants.get_mut(&pk) else {
                continue;
            };
            self.current = Some(pk);
            let peer = p.peer(pc);
            let result = peer.poll(&mut self.transmits, &mut events);
            let alive = peer.is_alive();
            for e in events.drain(..) {
                self.handle_rtc_event(now, pk, pc, e);
            }
            self.event_buf = events;
            if let Err(e) = result {
                self.fail_participant(pk, format!("{pc:?} connection failed: {e}"));
            } else if !alive {
                self.fail_participant(pk, format!("{pc:?} connection closed"));
            }
        }
    }

    fn emit(&self, room: RoomKey, event: Event) {
        if let Some(r) = self.rooms.get(&room) {
            (r.events)(event);
        }
    }

    fn emit_for(&self, pk: ParticipantKey, event: Event) {
        if let Some(p) = self.participants.get(&pk) {
            self.emit(p.room, event);
        }
    }

    fn apply_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::CreateRoom { room, events } => {
                self.rooms.entry(room).or_insert(RoomMedia {
                    events,
                    participants: Vec::new(),
                });
            }
            Command::RemoveRoom { room } => {
                if let Some(r) = self.rooms.get(&room) {
                    for pk in r.participants.clone() {
                        self.remove_participant(pk);
                    }
                }
                self.rooms.remove(&room);
            }
            Command::AddParticipant { room, participant } => {
                self.add_participant(now, room, participant)
            }
            Command::PublisherOffer {
                participant,
                sdp,
                tracks,
            } => self.publisher_offer(participant, &sdp, &tracks),
            Command::SubscriberAnswer { participant, sdp } => {
                let Some(p) = self.participants.get_mut(&participant) else {
                    return;
                };
                self.current = Some(participant);
                match p.accept_subscriber_answer(&sdp) {
                    Ok(next) => {
                        self.mark_dirty(participant, PcKind::Subscriber);
                        if let Some(offer) = next {
                            self.emit_for(participant, offer);
                        }
                    }
                    Err(reason) => self.emit_for(
                        participant,
                        Event::NegotiationFailed {
                            participant,
                            pc: PcKind::Subscriber,
                            reason,
                        },
                    ),
                }
            }
            Command::RemoteCandidate {
                participant,
                pc,
                candidate,
            } => {
                let Some(p) = self.participants.get_mut(&participant) else {
                    return;
                };
                self.current = Some(participant);
                match p.add_remote_candidate(pc, &candidate) {
                    Ok(()) => self.mark_dirty(participant, pc),
                    Err(reason) => tracing::debug!(%participant, %reason, "ignored candidate"),
                }
            }
            Command::SetSubscribed {
                subscriber,
                track,
                subscribed,
            } => self.set_subscribed(subscriber, track, subscribed),
            Command::SetTrackMuted { track, muted } => self.set_muted(now, track, muted),
            Command::UnpublishTrack { track } => self.unpublish(track),
            Command::ResendSubscriberOffer { participant } => {
                if let Some(offer) = self
                    .participants
                    .get(&participant)
                    .and_then(|p| p.outstanding_offer())
                {
                    self.emit_for(participant, offer);
                }
            }
            Command::RemoveParticipant { participant } => self.remove_participant(participant),
            Command::Shutdown => {}
        }
    }

    fn add_participant(&mut self, now: Instant, room: RoomKey, pk: ParticipantKey) {
        if self.participants.contains_key(&pk) {
            return;
        }
        let Some(r) = self.rooms.get_mut(&room) else {
            tracing::warn!(participant = %pk, ?room, "participant for an unknown room");
            return;
        };
        let peers =
            Peer::new(now, self.local_addr).and_then(|p| Ok((p, Peer::new(now, self.local_addr)?)));
        let (publisher, subscriber) = match peers {
            Ok(peers) => peers,
            Err(e) => {
                (r.events)(Event::MediaFailed {
                    participant: pk,
                    reason: format!("could not create peer connection: {e}"),
                });
                return;
            }
        };
        r.participants.push(pk);
        self.router
            .add_ufrag(publisher.ufrag().to_string(), (pk, PcKind::Publisher));
        self.router
            .add_ufrag(subscriber.ufrag().to_string(), (pk, PcKind::Subscriber));
        self.participants
            .insert(pk, Participant::new(pk, room, publisher, subscriber));
        self.mark_dirty(pk, PcKind::Publisher);
        self.mark_dirty(pk, PcKind::Subscriber);
    }

    fn publisher_offer(&mut self, pk: ParticipantKey, sdp: &str, specs: &[crate::api::TrackSpec]) {
        let Some(p) = self.participants.get_mut(&pk) else {
            return;
        };
        self.current = Some(pk);
        let room = p.room;
        match p.accept_publisher_offer(sdp, specs) {
            Ok((answer, gone)) => {
                for spec in specs {
                    self.tracks.entry(spec.track).or_insert_with(|| {
                        TrackRoute::new(
                            room,
                            pk,
                            str0m::media::Mid::from(spec.mid.as_str()),
                            spec.kind,
                        )
                    });
                }
                for track in gone {
                    self.unpublish(track);
                }
                self.mark_dirty(pk, PcKind::Publisher);
                self.emit(
                    room,
                    Event::PublisherAnswer {
                        participant: pk,
                        sdp: answer,
                    },
                );
            }
            Err(reason) => self.emit(
                room,
                Event::NegotiationFailed {
                    participant: pk,
                    pc: PcKind::Publisher,
                    reason,
                },
            ),
        }
    }

    fn set_subscribed(&mut self, sub: ParticipantKey, track: TrackKey, on: bool) {
        let Some(route) = self.tracks.get_mut(&track) else {
            return;
        };
        let Some(p) = self.participants.get_mut(&sub) else {
            return;
        };
        if p.room != route.room || route.publisher == sub {
            return;
        }
        if on {
            if !route.subscribers.contains(&sub) {
                route.subscribers.push(sub);
            }
            p.add_out_track(track, route.kind, route.publisher);
        } else {
            route.subscribers.retain(|s| *s != sub);
            p.remove_out_track(track);
        }
        self.queue_offer(sub);
    }

    fn set_muted(&mut self, now: Instant, track: TrackKey, muted: bool) {
        let Some(route) = self.tracks.get_mut(&track) else {
            return;
        };
        if route.muted == muted {
            return;
        }
        route.muted = muted;
        if !muted {
            // Packets were dropped while muted: re-anchor every outgoing stream on the next (key)frame.
            for sub in &route.subscribers {
                if let Some(out) = self
                    .participants
                    .get_mut(sub)
                    .and_then(|p| p.out.get_mut(&track))
                {
                    out.reset_source();
                }
            }
            self.request_keyframe(now, track);
        }
    }

    fn unpublish(&mut self, track: TrackKey) {
        let Some(route) = self.tracks.remove(&track) else {
            return;
        };
        if let Some(p) = self.participants.get_mut(&route.publisher) {
            p.published.retain(|_, t| *t != track);
        }
        for sub in route.subscribers {
            let Some(p) = self.participants.get_mut(&sub) else {
                continue;
            };
            p.remove_out_track(track);
            self.queue_offer(sub);
        }
    }

    fn remove_participant(&mut self, pk: ParticipantKey) {
        let Some(p) = self.participants.get(&pk) else {
            return;
        };
        let room = p.room;
        let published: Vec<TrackKey> = p.published.values().copied().collect();
        for track in published {
            self.unpublish(track);
        }
        // Tracks published by mids not yet in `published` (offer pending) are routed by publisher.
        let orphans: Vec<TrackKey> = self
            .tracks
            .iter()
            .filter(|(_, r)| r.publisher == pk)
            .map(|(k, _)| *k)
            .collect();
        for track in orphans {
            self.unpublish(track);
        }
        for route in self.tracks.values_mut() {
            route.subscribers.retain(|s| *s != pk);
        }
        if let Some(mut p) = self.participants.remove(&pk) {
            p.publisher.rtc().disconnect();
            p.subscriber.rtc().disconnect();
        }
        self.connected_subscribers.remove(&pk);
        self.router.remove_participant(pk);
        self.dirty.retain(|(k, _)| *k != pk);
        self.needs_offer.retain(|k| *k != pk);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.participants.retain(|k| *k != pk);
        }
    }

    fn fail_participant(&mut self, pk: ParticipantKey, reason: String) {
        let Some(room) = self.participants.get(&pk).map(|p| p.room) else {
            return;
        };
        tracing::info!(participant = %pk, %reason, "participant media failed");
        self.remove_participant(pk);
        self.emit(
            room,
            Event::MediaFailed {
                participant: pk,
                reason,
            },
        );
    }

    fn handle_rtc_event(&mut self, now: Instant, pk: ParticipantKey, pc: PcKind, e: RtcEvent) {
        match e {
            RtcEvent::Connected => {
                if pc == PcKind::Subscriber {
                    self.connected_subscribers.insert(pk);
                }
                self.emit_for(
                    pk,
                    Event::Connected {
                        participant: pk,
                        pc,
                    },
                );
            }
            RtcEvent::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.fail_participant(pk, format!("{pc:?} connection: ICE disconnected"));
            }
            RtcEvent::RtpPacket(pkt) if pc == PcKind::Publisher => {
                self.stats.rtp_in += 1;
                self.forward(now, pk, pkt);
            }
            RtcEvent::KeyframeRequest(req) if pc == PcKind::Subscriber => {
                let track = self
                    .participants
                    .get(&pk)
                    .and_then(|p| p.out_by_mid.get(&req.mid))
                    .copied();
                if let Some(track) = track {
                    self.request_keyframe(now, track);
                }
            }
            RtcEvent::Closed => {
                self.fail_participant(pk, format!("{pc:?} connection closed by the client"));
            }
            _ => {}
        }
    }

    /// Ask the publisher of `track` for a keyframe of the layer being forwarded, at most every 500 ms.
    fn request_keyframe(&mut self, now: Instant, track: TrackKey) {
        let Some(route) = self.tracks.get_mut(&track) else {
            return;
        };
        if route.kind != MediaKind::Video || !route.allow_keyframe_request(now) {
            return;
        }
        let publisher = route.publisher;
        let rid = route.keyframe_rid().map(str0m::media::Rid::from);
        let mid = route.mid;
        let Some(p) = self.participants.get_mut(&publisher) else {
            return;
        };
        let mut api = p.publisher.rtc().direct_api();
        if let Some(rx) = api.stream_rx_by_mid(mid, rid) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
            self.stats.keyframe_requests += 1;
            self.mark_dirty(publisher, PcKind::Publisher);
        }
    }

    /// Fan one publisher packet out to every subscriber of its track.
    fn forward(&mut self, now: Instant, pk: ParticipantKey, pkt: RtpPacket) {
        let Some(p) = self.participants.get_mut(&pk) else {
            return;
        };
        let pt = pkt.header.payload_type;
        let (mid, rid) = {
            let mut api = p.publisher.rtc().direct_api();
            let Some(rx) = api.stream_rx(&pkt.header.ssrc) else {
                return;
            };
            (rx.mid(), rx.rid())
        };
        let Some(&track) = p.published.get(&mid) else {
            return;
        };
        let Some(route) = self.tracks.get_mut(&track) else {
            return;
        };
        if route.muted {
            return;
        }
        let info = match route.pt_info.iter().find(|i| i.pt == *pt) {
            Some(i) => *i,
            None => {
                let rtc = p.publisher.rtc();
                let Some(params) = rtc.codec_config().find(|c| c.pt() == pt).copied() else {
                    return;
                };
                let spec = params.spec();
                let codec = match spec.codec {
                    str0m::format::Codec::Vp8 => VideoCodec::Vp8,
                    str0m::format::Codec::Vp9 => VideoCodec::Vp9,
                    str0m::format::Codec::H264 => VideoCodec::H264,
                    str0m::format::Codec::Av1 => VideoCodec::Av1,
                    _ => VideoCodec::Other,
                };
                let info = PtInfo {
                    pt: *pt,
                    params,
                    codec,
                    clock_rate: spec.clock_rate.get(),
                };
                route.pt_info.push(info);
                info
            }
        };
        let video = route.kind == MediaKind::Video;
        let keyframe = !video || is_keyframe_start(info.codec, &pkt.payload);
        let switched = match route.select_layer(rid.as_deref(), keyframe, now) {
            LayerDecision::Skip => {
                if route.switch_pending() {
                    self.request_keyframe(now, track);
                }
                return;
            }
            LayerDecision::Switched => true,
            LayerDecision::Forward => false,
        };
        let source = SourcePacket {
            ssrc: *pkt.header.ssrc,
            seq: *pkt.seq_no,
            timestamp: pkt.header.timestamp,
            arrival: pkt.timestamp,
            keyframe,
            clock_rate: info.clock_rate,
        };
        let ext = ExtensionValues {
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            video_orientation: pkt.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let vp8_fields = (info.codec == VideoCodec::Vp8)
            .then(|| {
                Vp8Descriptor::parse(&pkt.payload)
                    .ok()
                    .zip(parse_fields(&pkt.payload))
            })
            .flatten();
        let mut need_keyframe = switched && !keyframe;
        for i in 0..route.subscribers.len() {
            let sk = route.subscribers[i];
            if !self.connected_subscribers.contains(&sk) {
                continue;
            }
            let Some(sub) = self.participants.get_mut(&sk) else {
                continue;
            };
            let Some(out) = sub.out.get_mut(&track) else {
                continue;
            };
            let Some(out_mid) = out.mid else {
                continue;
            };
            if switched {
                out.reset_source();
            }
            let (seq, timestamp) = match out.forwarder.forward(&source) {
                Forward::Send { seq, timestamp } => (seq, timestamp),
                Forward::Drop(DropReason::WaitingForKeyframe) => {
                    need_keyframe = true;
                    continue;
                }
                Forward::Drop(DropReason::BeforeAnchor) => continue,
            };
            let rtc = sub.subscriber.rtc();
            let out_pt = match out.pt_map.iter().find(|(from, _)| *from == pt) {
                Some((_, to)) => *to,
                None => {
                    let to = rtc.codec_config().match_params(info.params).map(|p| p.pt());
                    out.pt_map.push((pt, to));
                    to
                }
            };
            let Some(out_pt) = out_pt else {
                continue;
            };
            let mut write = RtpWrite::new(
                out_pt,
                seq.into(),
                timestamp,
                pkt.timestamp,
                pkt.payload.clone(),
            )
            .marker(pkt.header.marker)
            .nackable(video)
            .ext_vals(ext.clone());
            if let Some((descriptor, fields)) = &vp8_fields {
                let (picture_id, tl0) = out.vp8.rewrite(source.ssrc, fields);
                let mut patch = descriptor.patch();
                if let Some(p) = picture_id {
                    patch = patch.picture_id(p);
                }
                if let Some(t) = tl0 {
                    patch = patch.tl0_pic_idx(t);
                }
                if let Ok(patch) = patch.build() {
                    write = write.vp8_patch(patch);
                }
            }
            let mut api = rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(out_mid, None) else {
                continue;
            };
            tx.write_rtp(write);
            self.stats.rtp_forwarded += 1;
            if !self.dirty.contains(&(sk, PcKind::Subscriber)) {
                self.dirty.push((sk, PcKind::Subscriber));
            }
        }
        if need_keyframe {
            self.request_keyframe(now, track);
        }
    }
}
