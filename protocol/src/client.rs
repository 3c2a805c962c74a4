//! Messages a client sends to the server.

use serde::{Deserialize, Serialize};

use crate::model::{PcTarget, TrackKind, TrackSource};
use crate::simulcast::VideoQuality;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientMessage {
    /// Must be the first message on a connection.
    Join(JoinRequest),
    /// SDP offer for the publisher connection, describing every track the client sends.
    #[serde(rename_all = "camelCase")]
    Offer {
        sdp: String,
        #[serde(default)]
        tracks: Vec<PublishTrack>,
    },
    /// SDP answer to a server `offer` on the subscriber connection.
    Answer { sdp: String },
    /// A trickled local ICE candidate (`candidate:...` as the browser gives it); empty means end of candidates.
    Candidate { target: PcTarget, candidate: String },
    /// Mute or unmute one of the sender's own tracks.
    #[serde(rename_all = "camelCase")]
    Mute { track_sid: String, muted: bool },
    /// Stop publishing a track (the client also removes it from its next offer).
    #[serde(rename_all = "camelCase")]
    Unpublish { track_sid: String },
    /// Subscribe to, or unsubscribe from, remote tracks. Everything is subscribed by default.
    #[serde(rename_all = "camelCase")]
    Subscribe {
        track_sids: Vec<String>,
        subscribe: bool,
    },
    /// Say which layers of remote video tracks you want: a quality, the size the video is rendered at (device
    /// pixels), and whether it is pinned (served first when bandwidth is short). Each message replaces the
    /// previous preference of the tracks it names; absent fields mean no limit and not pinned.
    #[serde(rename_all = "camelCase")]
    UpdateSubscription {
        track_sids: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quality: Option<VideoQuality>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        height: Option<u32>,
        #[serde(default)]
        pinned: bool,
    },
    /// Ask for this participant's media stats; the server answers `stats`.
    GetStats,
    /// Leave the room; the server answers `left` and closes the connection.
    Leave,
    /// Keepalive; the server answers `pong` with the same timestamp.
    Ping {
        #[serde(default)]
        timestamp: u64,
    },
    /// Send a chat message to the room. The sender gets its `chatMessage` back with the same `nonce`.
    ChatSend {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    /// Replace the text of one of your own chat messages.
    ChatEdit {
        id: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    /// Delete one of your own chat messages (any message with `roomAdmin`).
    ChatDelete {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    /// Say whether you are typing; not stored, and the server ends a `typing: true` after a few seconds.
    ChatTyping { typing: bool },
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// The access token, unless it was given as `?access_token=` in the WebSocket URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Resume a participant whose previous connection dropped, instead of joining afresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeRequest>,
    /// Subscribe to every track automatically (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_subscribe: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeRequest {
    pub participant_sid: String,
    pub resume_token: String,
}

/// A track described alongside a publisher offer; `mid` is the transceiver's mid in that offer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishTrack {
    pub mid: String,
    pub kind: TrackKind,
    #[serde(default)]
    pub source: TrackSource,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub muted: bool,
    /// Simulcast `rid`s in the offer, lowest quality first (e.g. `["q","h","f"]`); empty for one encoding.
    #[serde(default)]
    pub layers: Vec<String>,
    /// Width and height of the top layer in pixels, if known; each lower layer halves them (the SDK's
    /// `scaleResolutionDownBy` 4, 2, 1), which lets subscribers get a layer by rendered size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}
