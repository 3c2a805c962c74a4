//! The contract between the signaling side and a media worker: commands in, events out.

use std::fmt;
use std::sync::Arc;

/// Identifies a room within the SFU. Chosen by the caller, unique per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomKey(pub u64);

/// Identifies a participant within the SFU. Chosen by the caller, unique per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantKey(pub u64);

/// Identifies a published track within the SFU. Chosen by the caller, unique per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackKey(pub u64);

impl fmt::Display for ParticipantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl fmt::Display for TrackKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// Which of a participant's two peer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PcKind {
    /// The client sends media on it and makes the offers.
    Publisher,
    /// The SFU sends media on it and makes the offers.
    Subscriber,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

/// A track in a publisher offer: the transceiver `mid` that carries it and the key the caller gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSpec {
    pub mid: String,
    pub track: TrackKey,
    pub kind: MediaKind,
}

/// Receives a room's events on the worker thread. Must not block.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// What the signaling side asks of a worker. Commands for unknown rooms, participants or tracks are ignored
/// (logged): they race with departures and are harmless.
pub enum Command {
    /// Start hosting a room on this worker; its events go to `events`.
    CreateRoom { room: RoomKey, events: EventSink },
    /// Stop hosting a room, dropping any participant still in it.
    RemoveRoom { room: RoomKey },
    /// Create both peer connections of a new participant.
    AddParticipant {
        room: RoomKey,
        participant: ParticipantKey,
    },
    /// Apply a publisher offer; answers with [`Event::PublisherAnswer`] or [`Event::NegotiationFailed`].
    /// `tracks` lists every track the offer carries; tracks of earlier offers missing here are unpublished.
    PublisherOffer {
        participant: ParticipantKey,
        sdp: String,
        tracks: Vec<TrackSpec>,
    },
    /// Apply the client's answer to the last [`Event::SubscriberOffer`].
    SubscriberAnswer {
        participant: ParticipantKey,
        sdp: String,
    },
    /// A trickled client candidate (`candidate:…`); an empty string means end of candidates.
    RemoteCandidate {
        participant: ParticipantKey,
        pc: PcKind,
        candidate: String,
    },
    /// Start or stop forwarding `track` to `subscriber`.
    SetSubscribed {
        subscriber: ParticipantKey,
        track: TrackKey,
        subscribed: bool,
    },
    /// Pause or resume forwarding of a track to everyone.
    SetTrackMuted { track: TrackKey, muted: bool },
    /// Stop forwarding a track and forget it.
    UnpublishTrack { track: TrackKey },
    /// Send the outstanding subscriber offer again (after the client reconnected its signaling).
    ResendSubscriberOffer { participant: ParticipantKey },
    /// Close both peer connections of a participant and forget it.
    RemoveParticipant { participant: ParticipantKey },
    /// Stop the worker thread.
    Shutdown,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::CreateRoom { room, .. } => write!(f, "CreateRoom({room:?})"),
            Command::RemoveRoom { room } => write!(f, "RemoveRoom({room:?})"),
            Command::AddParticipant { room, participant } => {
                write!(f, "AddParticipant({room:?}, {participant})")
            }
            Command::PublisherOffer {
                participant,
                tracks,
                ..
            } => write!(f, "PublisherOffer({participant}, {} tracks)", tracks.len()),
            Command::SubscriberAnswer { participant, .. } => {
                write!(f, "SubscriberAnswer({participant})")
            }
            Command::RemoteCandidate {
                participant, pc, ..
            } => write!(f, "RemoteCandidate({participant}, {pc:?})"),
            Command::SetSubscribed {
                subscriber,
                track,
                subscribed,
            } => write!(f, "SetSubscribed({subscriber}, {track}, {subscribed})"),
            Command::SetTrackMuted { track, muted } => write!(f, "SetTrackMuted({track}, {muted})"),
            Command::UnpublishTrack { track } => write!(f, "UnpublishTrack({track})"),
            Command::ResendSubscriberOffer { participant } => {
                write!(f, "ResendSubscriberOffer({participant})")
            }
            Command::RemoveParticipant { participant } => {
                write!(f, "RemoveParticipant({participant})")
            }
            Command::Shutdown => write!(f, "Shutdown"),
        }
    }
}

/// What a worker reports back, on the room's [`EventSink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The SDP answer to a [`Command::PublisherOffer`].
    PublisherAnswer {
        participant: ParticipantKey,
        sdp: String,
    },
    /// A new offer for the subscriber connection; `tracks` maps each active `mid` to the track it carries.
    SubscriberOffer {
        participant: ParticipantKey,
        sdp: String,
        tracks: Vec<(String, TrackKey)>,
    },
    /// An offer or answer from the client could not be applied. The participant stays; the client may retry.
    NegotiationFailed {
        participant: ParticipantKey,
        pc: PcKind,
        reason: String,
    },
    /// ICE and DTLS completed on one of the participant's connections.
    Connected {
        participant: ParticipantKey,
        pc: PcKind,
    },
    /// The participant's media is gone for good (ICE timed out, DTLS failed, or an internal fault); the worker
    /// has already dropped it. The signaling side should treat this as a departure.
    MediaFailed {
        participant: ParticipantKey,
        reason: String,
    },
}
