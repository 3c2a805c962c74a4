//! What a room reports to the outside (webhooks today): lifecycle, membership and track events, in the order the
//! room actor saw them. A [`RoomObserver`] must not block: it is called from the room's task.

use chorus_protocol::{QualitySummary, TrackInfo};

/// One thing that happened in a room.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    RoomStarted {
        room: RoomRef,
    },
    RoomFinished {
        room: RoomRef,
        /// Seconds the room was open.
        duration_secs: u64,
        /// Participants that joined over the room's life.
        participants_total: u64,
        /// Each of them (the first 1000) with its call quality over its session, in the order they joined.
        participants: Vec<ParticipantQuality>,
    },
    ParticipantJoined {
        room: RoomRef,
        participant: ParticipantRef,
    },
    ParticipantLeft {
        room: RoomRef,
        participant: ParticipantRef,
        reason: String,
    },
    TrackPublished {
        room: RoomRef,
        participant: ParticipantRef,
        track: TrackInfo,
    },
    TrackUnpublished {
        room: RoomRef,
        participant: ParticipantRef,
        track: TrackInfo,
    },
}

impl RoomEvent {
    /// The room the event is about.
    pub fn room(&self) -> &RoomRef {
        match self {
            RoomEvent::RoomStarted { room }
            | RoomEvent::RoomFinished { room, .. }
            | RoomEvent::ParticipantJoined { room, .. }
            | RoomEvent::ParticipantLeft { room, .. }
            | RoomEvent::TrackPublished { room, .. }
            | RoomEvent::TrackUnpublished { room, .. } => room,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRef {
    pub name: String,
    pub sid: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantRef {
    pub sid: String,
    pub identity: String,
    pub name: String,
}

/// A participant of a finished room and its call quality (`None` if the media worker never reported it).
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantQuality {
    pub participant: ParticipantRef,
    pub quality: Option<QualitySummary>,
}

/// Receives every room's events.
pub trait RoomObserver: Send + Sync {
    fn event(&self, event: RoomEvent);
}

/// Ignores everything (no webhooks configured).
#[derive(Debug)]
pub struct NoObserver;

impl RoomObserver for NoObserver {
    fn event(&self, _event: RoomEvent) {}
}
