//! One participant on a worker: its publisher and subscriber peer connections, the tracks it publishes, the
//! tracks it receives (one [`Forwarder`] each), and the subscriber connection's offer/answer state.
//!
//! The SFU always makes the offers on the subscriber connection and never has more than one outstanding:
//! changes made while an offer is pending wait for the answer, then go out in the next offer.

use std::time::Instant;

use rustc_hash::FxHashMap;

use str0m::bwe::Bitrate;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Mid, Pt};

use crate::api::{
    Event, MediaKind, ParticipantKey, PcKind, RoomKey, SubscriptionPreference, TrackKey, TrackSpec,
};
use crate::data::DataEndpoint;
use crate::forwarder::Forwarder;
use crate::peer::{Peer, PeerError};
use crate::quality::QualityMeter;
use crate::selector::LayerSelector;
use crate::ssrc_guard::SsrcGuard;
use crate::vp8::Vp8Rewriter;

/// A track this participant receives, carried by one `mid` of its subscriber connection.
pub struct OutTrack {
    pub kind: MediaKind,
    /// The publisher, used as the msid stream id so the browser groups a participant's tracks.
    pub publisher: ParticipantKey,
    /// Assigned when the track is put into an offer.
    pub mid: Option<Mid>,
    pub forwarder: Forwarder,
    /// VP8 PictureID/TL0PICIDX continuity (unused for other codecs).
    pub vp8: Vp8Rewriter,
    /// Publisher payload type → our payload type towards this subscriber, learned on first use.
    pub pt_map: Vec<(Pt, Option<Pt>)>,
    /// Which simulcast layer this subscriber receives.
    pub selector: LayerSelector,
    /// What the subscriber asked for; turned into the selector's wanted layer.
    pub preference: SubscriptionPreference,
}

/// The subscriber connection's downlink: str0m's send-side estimate and an optional cap.
#[derive(Debug, Clone, Copy, Default)]
pub struct Downlink {
    /// The latest estimate from transport-wide congestion control feedback, in bits per second.
    pub estimate_bps: Option<u64>,
    /// A cap set by the operator or a test ([`crate::Command::SetEstimateCap`]).
    pub cap_bps: Option<u64>,
    /// Since when the estimate has asked for less than the subscriber gets (downgrades wait a little).
    pub lower_since: Option<Instant>,
    /// The subscriber did not negotiate transport-wide congestion control: no estimate will come.
    pub no_feedback: bool,
    /// Whether the estimate stopped growing while the subscriber wants more (restarts probing).
    pub stall: crate::estimate_stall::EstimateStall,
}

/// The RTP header extension that carries transport-wide sequence numbers (TWCC).
const TWCC_EXTENSION: &str = "transport-wide-cc";

/// The "estimate" a subscriber without congestion feedback is paced at: far above any real stream.
const UNPACED_BPS: u64 = 10_000_000_000;

impl Downlink {
    /// What the allocator may spend: the estimate (never below [`MIN_ESTIMATE_BPS`]) or the cap, whichever is
    /// lower; `None` when neither is known.
    pub fn budget_bps(&self) -> Option<u64> {
        let estimate = self.estimate_bps.map(|e| e.max(MIN_ESTIMATE_BPS));
        match (estimate, self.cap_bps) {
            (Some(e), Some(c)) => Some(e.min(c)),
            (e, c) => e.or(c),
        }
    }
}

/// The least downlink an estimate is taken to mean. Delay-based estimates collapse towards what is being
/// received when a busy receiver delays feedback, and a subscriber that receives little (one low layer) would
/// then have its last video paused although nothing is congested: a low layer and audio always fit in this.
/// An explicit cap may go lower.
pub const MIN_ESTIMATE_BPS: u64 = 300_000;

/// A subscriber-connection mid that carried a track before and can carry another one. Reusing it keeps the
/// outgoing SSRC, and its forwarder keeps the numbering continuous, so a republished (or rejoined) publisher's
/// new track continues the same stream; it also keeps the SDP from growing with every track that comes and goes.
struct FreeSlot {
    mid: Mid,
    kind: MediaKind,
    publisher: ParticipantKey,
    forwarder: Forwarder,
    vp8: Vp8Rewriter,
}

impl OutTrack {
    /// The next forwarded packet starts a new source: re-anchor every continuity mapping on it.
    pub fn reset_source(&mut self) {
        self.forwarder.reset_source();
        self.vp8.reset();
    }
}

#[derive(Default)]
struct SubscriberNegotiation {
    pending: Option<SdpPendingOffer>,
    /// The outstanding offer, to send again after a signaling reconnect.
    last_offer: Option<(String, Vec<(String, TrackKey)>)>,
    to_add: Vec<TrackKey>,
    to_deactivate: Vec<Mid>,
    to_activate: Vec<Mid>,
}

pub struct Participant {
    pub key: ParticipantKey,
    pub room: RoomKey,
    pub publisher: Peer,
    /// Which SSRC carries each of the publisher's streams, from authenticated packets (against forged re-maps).
    pub publisher_ssrcs: SsrcGuard,
    pub subscriber: Peer,
    /// Publisher-connection mid → the track it carries.
    pub published: FxHashMap<Mid, TrackKey>,
    pub out: FxHashMap<TrackKey, OutTrack>,
    pub out_by_mid: FxHashMap<Mid, TrackKey>,
    free_slots: Vec<FreeSlot>,
    negotiation: SubscriberNegotiation,
    pub downlink: Downlink,
    /// Since when each connection (publisher, subscriber) has been ICE-disconnected.
    ice_disconnected: [Option<Instant>; 2],
    /// The data channels on the publisher connection, and what this participant may send on them.
    pub data: DataEndpoint,
    /// Call quality, fed from both connections' stats.
    pub quality: QualityMeter,
    /// Whether the publisher, subscriber connection is in the worker's list of peers to drain.
    dirty: [bool; 2],
    /// Whether forwarded copies were written into the subscriber connection since the worker last drained
    /// it for them (see `WorkerCore::poll_transmit`).
    copies_written: bool,
}

impl Participant {
    pub fn new(
        now: Instant,
        key: ParticipantKey,
        room: RoomKey,
        (publisher, subscriber): (Peer, Peer),
        data: DataEndpoint,
    ) -> Self {
        Participant {
            key,
            room,
            publisher,
            publisher_ssrcs: SsrcGuard::default(),
            subscriber,
            published: FxHashMap::default(),
            out: FxHashMap::default(),
            out_by_mid: FxHashMap::default(),
            free_slots: Vec::new(),
            negotiation: SubscriberNegotiation::default(),
            downlink: Downlink::default(),
            ice_disconnected: [None; 2],
            data,
            dirty: [false; 2],
            copies_written: false,
            quality: QualityMeter::new(now),
        }
    }

    pub fn peer(&mut self, pc: PcKind) -> &mut Peer {
        match pc {
            PcKind::Publisher => &mut self.publisher,
            PcKind::Subscriber => &mut self.subscriber,
        }
    }

    /// Whether connection `pc` is in the worker's list of peers to drain.
    pub fn dirty(&mut self, pc: PcKind) -> &mut bool {
        &mut self.dirty[pc as usize]
    }

    /// Put connection `pc` in the worker's list of peers to drain, unless it is there already (a flag, not a
    /// search of the list: this runs for every forwarded copy).
    pub fn mark_dirty(&mut self, pc: PcKind, list: &mut Vec<(ParticipantKey, PcKind)>) {
        let key = self.key;
        let flag = self.dirty(pc);
        if !*flag {
            *flag = true;
            list.push((key, pc));
        }
    }

    /// Note that forwarded copies were written into the subscriber connection: the first time since the last
    /// fan-out drain, the participant joins `list` (the worker's subscribers to drain then).
    pub fn note_copies_written(&mut self, list: &mut Vec<ParticipantKey>) {
        if !self.copies_written {
            self.copies_written = true;
            list.push(self.key);
        }
    }

    /// The fan-out drain takes this participant's written copies: true if there were any.
    pub fn take_copies_written(&mut self) -> bool {
        std::mem::take(&mut self.copies_written)
    }

    /// Since when a connection has been ICE-disconnected (`None` while it is not).
    pub fn ice_disconnected_since(&mut self, pc: PcKind) -> &mut Option<Instant> {
        match pc {
            PcKind::Publisher => &mut self.ice_disconnected[0],
            PcKind::Subscriber => &mut self.ice_disconnected[1],
        }
    }

    /// The earliest time either connection wants to be woken.
    pub fn deadline(&self) -> Instant {
        self.publisher.deadline().min(self.subscriber.deadline())
    }

    /// Apply a publisher offer. Returns the answer SDP and the tracks of earlier offers no longer present.
    pub fn accept_publisher_offer(
        &mut self,
        sdp: &str,
        tracks: &[TrackSpec],
    ) -> Result<(String, Vec<TrackKey>), String> {
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| format!("invalid SDP offer: {e}"))?;
        let answer = self
            .publisher
            .rtc()
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| format!("offer not accepted: {e}"))?;
        self.publisher_ssrcs.session_changed();
        let mut now_published = FxHashMap::default();
        for t in tracks {
            now_published.insert(Mid::from(t.mid.as_str()), t.track);
        }
        let gone = self
            .published
            .values()
            .filter(|k| !now_published.values().any(|n| n == *k))
            .copied()
            .collect();
        self.published = now_published;
        Ok((answer.to_sdp_string(), gone))
    }

    /// Start receiving `track` (wanting up to layer `wanted`); the next subscriber offer will carry it. A free
    /// slot of the same kind is reused (preferably one that carried the same publisher), else a new mid is
    /// added.
    pub fn add_out_track(
        &mut self,
        track: TrackKey,
        kind: MediaKind,
        publisher: ParticipantKey,
        wanted: u8,
    ) {
        if self.out.contains_key(&track) {
            return;
        }
        let reuse = self
            .free_slots
            .iter()
            .rposition(|s| s.kind == kind && s.publisher == publisher)
            .or_else(|| self.free_slots.iter().rposition(|s| s.kind == kind));
        if let Some(i) = reuse {
            let slot = self.free_slots.remove(i);
            let mut out = OutTrack {
                kind,
                publisher,
                mid: Some(slot.mid),
                forwarder: slot.forwarder,
                vp8: slot.vp8,
                pt_map: Vec::new(),
                selector: LayerSelector::new(wanted),
                preference: SubscriptionPreference::default(),
            };
            out.reset_source();
            self.out.insert(track, out);
            self.out_by_mid.insert(slot.mid, track);
            self.negotiation.to_activate.push(slot.mid);
            return;
        }
        // A per-subscriber starting point, so streams from different tracks don't look alike.
        let seed = (self.key.0.wrapping_mul(7919) ^ track.0.wrapping_mul(104_729)) as u32;
        self.out.insert(
            track,
            OutTrack {
                kind,
                publisher,
                mid: None,
                forwarder: Forwarder::new(seed as u16, seed.rotate_left(16)),
                vp8: Vp8Rewriter::default(),
                pt_map: Vec::new(),
                selector: LayerSelector::new(wanted),
                preference: SubscriptionPreference::default(),
            },
        );
        self.negotiation.to_add.push(track);
    }

    /// Stop receiving `track`; its mid goes inactive in the next subscriber offer and becomes free for reuse.
    pub fn remove_out_track(&mut self, track: TrackKey) {
        let Some(out) = self.out.remove(&track) else {
            return;
        };
        self.negotiation.to_add.retain(|t| *t != track);
        if let Some(mid) = out.mid {
            self.out_by_mid.remove(&mid);
            self.negotiation.to_activate.retain(|m| *m != mid);
            self.negotiation.to_deactivate.push(mid);
            self.free_slots.push(FreeSlot {
                mid,
                kind: out.kind,
                publisher: out.publisher,
                forwarder: out.forwarder,
                vp8: out.vp8,
            });
        }
    }

    /// If changes are waiting and no offer is outstanding, make the next subscriber offer.
    pub fn negotiate(&mut self) -> Option<Event> {
        let n = &mut self.negotiation;
        let nothing_changed =
            n.to_add.is_empty() && n.to_deactivate.is_empty() && n.to_activate.is_empty();
        if n.pending.is_some() || nothing_changed {
            return None;
        }
        let mut api = self.subscriber.rtc().sdp_api();
        for track in n.to_add.drain(..) {
            let Some(out) = self.out.get_mut(&track) else {
                continue;
            };
            let kind = match out.kind {
                MediaKind::Audio => str0m::media::MediaKind::Audio,
                MediaKind::Video => str0m::media::MediaKind::Video,
            };
            let mid = api.add_media(
                kind,
                Direction::SendOnly,
                Some(out.publisher.to_string()),
                Some(track.to_string()),
                None,
            );
            out.mid = Some(mid);
            self.out_by_mid.insert(mid, track);
        }
        // Deactivate before reactivating: a mid freed and reused within one offer still changes hands, so the
        // offer (and its track list) must go out.
        for mid in n.to_deactivate.drain(..) {
            api.set_direction(mid, Direction::Inactive);
        }
        for mid in n.to_activate.drain(..) {
            api.set_direction(mid, Direction::SendOnly);
        }
        let (offer, pending) = api.apply()?;
        let sdp = offer.to_sdp_string();
        let mut tracks: Vec<(String, TrackKey)> = self
            .out
            .iter()
            .filter_map(|(k, o)| o.mid.map(|m| (m.to_string(), *k)))
            .collect();
        tracks.sort();
        n.pending = Some(pending);
        n.last_offer = Some((sdp.clone(), tracks.clone()));
        Some(Event::SubscriberOffer {
            participant: self.key,
            sdp,
            tracks,
        })
    }

    /// Apply the client's answer to the outstanding subscriber offer, then offer again if more changed.
    pub fn accept_subscriber_answer(&mut self, sdp: &str) -> Result<Option<Event>, String> {
        let Some(pending) = self.negotiation.pending.take() else {
            return Err("no subscriber offer is outstanding".into());
        };
        self.negotiation.last_offer = None;
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| format!("invalid SDP answer: {e}"))?;
        self.subscriber
            .rtc()
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("answer not accepted: {e}"))?;
        for out in self.out.values_mut() {
            out.pt_map.clear();
        }
        if !sdp.contains(TWCC_EXTENSION) && !self.downlink.no_feedback {
            // No congestion feedback will come: the estimate would stay at its starting value, and str0m's
            // pacer (which sends at the estimate) would throttle this subscriber to it. Lift it out of the way.
            self.downlink.no_feedback = true;
            self.subscriber
                .rtc()
                .bwe()
                .reset(Bitrate::from(UNPACED_BPS));
        }
        Ok(self.negotiate())
    }

    /// The outstanding subscriber offer, if any, as an event to send again.
    pub fn outstanding_offer(&self) -> Option<Event> {
        let (sdp, tracks) = self.negotiation.last_offer.clone()?;
        Some(Event::SubscriberOffer {
            participant: self.key,
            sdp,
            tracks,
        })
    }

    /// Add a trickled remote candidate to one connection.
    pub fn add_remote_candidate(&mut self, pc: PcKind, candidate: &str) -> Result<(), String> {
        let line = candidate.trim();
        if line.is_empty() {
            return Ok(());
        }
        let line = line.strip_prefix("a=").unwrap_or(line);
        let c = str0m::Candidate::from_sdp_string(line)
            .map_err(|e| format!("invalid candidate: {e}"))?;
        self.peer(pc).rtc().add_remote_candidate(c);
        Ok(())
    }

    /// Run the timers of whichever connection is due, and list it in `dirty` to be drained (the other one
    /// has nothing new to say).
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        dirty: &mut Vec<(ParticipantKey, PcKind)>,
    ) -> Result<(), PeerError> {
        for pc in [PcKind::Publisher, PcKind::Subscriber] {
            if self.peer(pc).deadline() <= now {
                self.peer(pc).handle_timeout(now)?;
                self.mark_dirty(pc, dirty);
            }
        }
        Ok(())
    }
}
