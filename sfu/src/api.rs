//! The contract between the signaling side and a media worker: commands in, events out.

use std::fmt;
use std::sync::Arc;

use crate::quality::{QualityReport, QualitySummary};

/// Identifies a room within the SFU. Chosen by the caller, unique per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomKey(pub u64);

/// Identifies a participant within the SFU. Chosen by the caller, unique per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantKey(pub u64);

/// Identifies a published track within the SFU. Chosen by the caller, unique per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MediaKind {
    #[default]
    Audio,
    Video,
}

/// A track in a publisher offer: the transceiver `mid` that carries it and the key the caller gave it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackSpec {
    pub mid: String,
    pub track: TrackKey,
    pub kind: MediaKind,
    /// Simulcast `rid`s, lowest quality first; empty when the track is sent as one encoding.
    pub layers: Vec<String>,
    /// Width and height of the top layer, if known: lower layers halve it, so a subscriber's rendered size
    /// can pick a layer.
    pub full_size: Option<(u32, u32)>,
    /// Bandwidth allocation priority, higher first (e.g. screen share 2, camera 1).
    pub priority: u8,
}

/// What a subscriber wants of one track it receives. The default is the top layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionPreference {
    /// The highest quality wanted.
    pub quality: Option<Quality>,
    /// The size the video is rendered at (device pixels): no layer bigger than needed is sent.
    pub max_size: Option<(u32, u32)>,
    /// Pinned or active-speaker tracks are served before the others when bandwidth is short.
    pub pinned: bool,
}

/// Why a subscription receives less than it asked for, as reported in stats.
pub use crate::selector::LimitReason;
pub use crate::selector::Quality;

/// One received track's state, for stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStats {
    pub track: TrackKey,
    /// The `rid` (or layer index as text without simulcast) being forwarded, if any.
    pub current_layer: Option<String>,
    /// The layer the selector is moving to (equal to `current_layer` when settled).
    pub target_layer: Option<String>,
    /// The highest layer the subscriber wants.
    pub wanted_layer: Option<String>,
    pub reason: LimitReason,
    /// Paused for bandwidth.
    pub paused: bool,
    pub layer_switches: u64,
}

/// A participant's media state, for stats.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParticipantStats {
    /// The downlink bandwidth estimate in bits per second, if the subscriber connection has one.
    pub estimate_bps: Option<u64>,
    pub subscriptions: Vec<SubscriptionStats>,
    /// Call quality now (RTT, jitter, loss, bitrates, MOS).
    pub quality: QualityReport,
    /// Call quality over the session so far.
    pub session: QualitySummary,
}

/// A data message the server itself sends (from the REST API).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerData {
    pub reliable: bool,
    pub topic: String,
    /// Identities to deliver to; empty means everyone.
    pub to: Vec<String>,
    pub text: bool,
    pub payload: Vec<u8>,
}

pub use crate::data::{DataKind, DataLimits, DataRejection};

/// Receives the answer to [`Command::QueryStats`] on the worker thread. Must not block.
pub type StatsReply = Box<dyn FnOnce(Option<ParticipantStats>) + Send>;

/// Receives a room's events on the worker thread. Must not block.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// Called on the worker thread when a command is done. Must not block.
pub type Done = Box<dyn FnOnce() + Send>;

/// What the signaling side asks of a worker. Commands for unknown rooms, participants or tracks are ignored
/// (logged): they race with departures and are harmless.
pub enum Command {
    /// Start hosting a room on this worker; its events go to `events`.
    CreateRoom { room: RoomKey, events: EventSink },
    /// Stop hosting a room, dropping any participant still in it. Then `done` is called: every event of the
    /// room (such as the [`Event::QualitySummary`] of each participant) has reached its sink by then.
    RemoveRoom { room: RoomKey, done: Option<Done> },
    /// Create both peer connections of a new participant. `identity` is stamped on the data messages it sends
    /// and matched against the recipients others name; `can_publish_data` says whether it may send any.
    AddParticipant {
        room: RoomKey,
        participant: ParticipantKey,
        identity: Arc<str>,
        can_publish_data: bool,
    },
    /// Allow or forbid a participant to send data messages (a grant changed mid-call).
    SetCanPublishData {
        participant: ParticipantKey,
        allowed: bool,
    },
    /// Deliver a message from the server itself to the room's participants (all, or those whose identity is
    /// in `to`) on their reliable or lossy channel.
    SendData { room: RoomKey, message: ServerData },
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
    /// Change which layers of `track` the subscriber wants (quality, rendered size, pinned).
    SetPreference {
        subscriber: ParticipantKey,
        track: TrackKey,
        preference: SubscriptionPreference,
    },
    /// Cap a participant's downlink estimate (bits per second; `None` lifts the cap). For operators limiting
    /// a participant, and for tests standing in for a slow network.
    SetEstimateCap {
        participant: ParticipantKey,
        cap_bps: Option<u64>,
    },
    /// Report a participant's media state (`None` if the worker does not know it).
    QueryStats {
        participant: ParticipantKey,
        reply: StatsReply,
    },
    /// Pause or resume forwarding of a track to everyone.
    SetTrackMuted { track: TrackKey, muted: bool },
    /// Stop forwarding a track and forget it.
    UnpublishTrack { track: TrackKey },
    /// Send the outstanding subscriber offer again (after the client reconnected its signaling).
    ResendSubscriberOffer { participant: ParticipantKey },
    /// Close both peer connections of a participant and forget it (reporting [`Event::QualitySummary`]).
    RemoveParticipant { participant: ParticipantKey },
    /// Stop the worker thread.
    Shutdown,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::CreateRoom { room, .. } => write!(f, "CreateRoom({room:?})"),
            Command::RemoveRoom { room, .. } => write!(f, "RemoveRoom({room:?})"),
            Command::AddParticipant {
                room,
                participant,
                identity,
                can_publish_data,
            } => write!(
                f,
                "AddParticipant({room:?}, {participant}, {identity:?}, data: {can_publish_data})"
            ),
            Command::SetCanPublishData {
                participant,
                allowed,
            } => write!(f, "SetCanPublishData({participant}, {allowed})"),
            Command::SendData { room, message } => write!(
                f,
                "SendData({room:?}, {} bytes, {} recipients)",
                message.payload.len(),
                message.to.len()
            ),
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
            Command::SetPreference {
                subscriber,
                track,
                preference,
            } => write!(f, "SetPreference({subscriber}, {track}, {preference:?})"),
            Command::SetEstimateCap {
                participant,
                cap_bps,
            } => write!(f, "SetEstimateCap({participant}, {cap_bps:?})"),
            Command::QueryStats { participant, .. } => write!(f, "QueryStats({participant})"),
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
#[derive(Debug, Clone, PartialEq)]
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
    /// Forwarding of `track` to subscriber `participant` was paused (its downlink cannot carry even the lowest
    /// layer) or resumed.
    StreamPaused {
        participant: ParticipantKey,
        track: TrackKey,
        paused: bool,
    },
    /// Dynacast: the publisher should send only these layers of `track` (`rids` lowest first, empty without
    /// simulcast), or nothing at all when `enabled` is false.
    PublishLayers {
        participant: ParticipantKey,
        track: TrackKey,
        enabled: bool,
        rids: Vec<String>,
    },
    /// The room's active speakers changed: who is talking now (and for a moment after), with loudness
    /// (1 quiet ..= 127 loudest), speaking now first, loudest first; empty when nobody speaks.
    ActiveSpeakers { speakers: Vec<(ParticipantKey, u8)> },
    /// `participant`'s data channel of `kind` is open on the server: what others send from now on reaches it.
    /// Its SDK reports the channel open only after hearing this (its own side opens earlier).
    DataReady {
        participant: ParticipantKey,
        kind: DataKind,
    },
    /// Data messages of `participant` were refused (`count` since the last report; reports are throttled).
    DataRejected {
        participant: ParticipantKey,
        reason: DataRejection,
        count: u64,
        detail: String,
    },
    /// `participant` stopped reading its reliable data channel: `buffer_bytes` of messages were waiting for it.
    /// The worker has already dropped it; the signaling side should treat this as a departure.
    DataBacklog {
        participant: ParticipantKey,
        buffer_bytes: usize,
    },
    /// A participant left the worker (removed, failed, or its room removed): its call quality over the session.
    /// Comes before any [`Event::MediaFailed`] or [`Event::DataBacklog`] for the same departure.
    QualitySummary {
        participant: ParticipantKey,
        summary: QualitySummary,
    },
    /// The participant's media is gone for good (ICE timed out, DTLS failed, or an internal fault); the worker
    /// has already dropped it. The signaling side should treat this as a departure.
    MediaFailed {
        participant: ParticipantKey,
        reason: String,
    },
}
