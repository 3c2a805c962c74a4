//! A room's media graph on its worker: who is in it, and for each published track, who receives it.
//!
//! Pure bookkeeping (no str0m calls): the worker core consults it on every packet to find the subscribers of a
//! track and the track's simulcast layers ([`LayerSet`]); per-subscriber layer choice lives in each
//! subscriber's [`crate::selector::LayerSelector`].

use crate::api::{EventSink, MediaKind, ParticipantKey, RoomKey};
use crate::dynacast::Dynacast;
use crate::keyframe::VideoCodec;
use crate::layers::LayerSet;
use crate::speakers::{ActiveSpeakers, SpeechDetector};

pub struct RoomMedia {
    pub events: EventSink,
    pub participants: Vec<ParticipantKey>,
    /// Who is talking (their video gets bandwidth first).
    pub speakers: ActiveSpeakers<ParticipantKey>,
}

/// The codec of one payload type of a publisher, cached on first sight.
#[derive(Debug, Clone, Copy)]
pub struct PtInfo {
    pub pt: u8,
    /// The publisher's parameters for this payload type, to find the matching one towards each subscriber.
    pub params: str0m::format::PayloadParams,
    pub codec: VideoCodec,
    pub clock_rate: u32,
}

pub struct TrackRoute {
    pub room: RoomKey,
    pub publisher: ParticipantKey,
    /// The publisher connection's mid carrying this track.
    pub mid: str0m::media::Mid,
    pub kind: MediaKind,
    pub muted: bool,
    /// Bandwidth allocation priority (higher first): screen share above camera.
    pub priority: u8,
    pub subscribers: Vec<ParticipantKey>,
    pub pt_info: Vec<PtInfo>,
    /// The simulcast layers (one without simulcast), their liveness, bitrates and keyframe throttles.
    pub layers: LayerSet,
    /// Which layers the publisher has been asked to send.
    pub dynacast: Dynacast,
    /// Audio: whether the track carries speech now (from each packet's audio level).
    pub speech: SpeechDetector,
}

impl TrackRoute {
    pub fn new(room: RoomKey, publisher: ParticipantKey, spec: &crate::api::TrackSpec) -> Self {
        let layers = LayerSet::new(&spec.layers, spec.full_size);
        TrackRoute {
            room,
            publisher,
            mid: str0m::media::Mid::from(spec.mid.as_str()),
            kind: spec.kind,
            muted: false,
            priority: spec.priority,
            subscribers: Vec::new(),
            pt_info: Vec::new(),
            dynacast: Dynacast::new(layers.top()),
            layers,
            speech: SpeechDetector::default(),
        }
    }
}
