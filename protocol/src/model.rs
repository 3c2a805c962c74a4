//! Shared data shapes that appear inside several messages: participants, tracks, rooms.

use serde::{Deserialize, Serialize};

/// Which of a participant's two peer connections a message is about.
///
/// Chorus uses one peer connection for publishing (the client offers) and one for subscribing (the server
/// offers), so neither side ever has to resolve an offer collision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PcTarget {
    Publisher,
    Subscriber,
}

/// One of the two data channels every participant opens on its publisher connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DataChannelKind {
    /// Label `reliable`: ordered, retransmitted.
    Reliable,
    /// Label `lossy`: unordered, never retransmitted.
    Lossy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrackKind {
    #[default]
    Audio,
    Video,
}

/// What a track carries, as the publisher declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrackSource {
    Camera,
    Microphone,
    ScreenShare,
    ScreenShareAudio,
    #[default]
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomInfo {
    pub name: String,
    pub sid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    pub sid: String,
    pub kind: TrackKind,
    #[serde(default)]
    pub source: TrackSource,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub muted: bool,
    /// Simulcast layer ids (`rid`s) the publisher declared, lowest first; empty for a single encoding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
    /// Size of the top layer in pixels, if the publisher said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantInfo {
    pub sid: String,
    pub identity: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tracks: Vec<TrackInfo>,
}

/// One subscribed track carried on the subscriber connection: the `mid` of the transceiver that carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribedTrack {
    pub mid: String,
    pub track_sid: String,
    pub participant_sid: String,
}

/// One active speaker: who, and how loud (1 quiet ..= 127 loudest, from the audio level of its packets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerInfo {
    pub participant_sid: String,
    pub level: u8,
}

/// An ICE server a client may use (STUN/TURN): the embedded TURN server or an external one, with credentials for
/// one participant (see `docs/connectivity.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}
