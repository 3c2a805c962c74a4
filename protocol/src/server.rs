//! Messages the server sends to a client.

use serde::{Deserialize, Serialize};

use crate::simulcast::{LayerReason, ParticipantStats};

use crate::chat::ChatMessage;
use crate::error::ErrorMessage;
use crate::model::{
    DataChannelKind, IceServer, ParticipantInfo, PcTarget, RoomInfo, SpeakerInfo, SubscribedTrack,
    TrackInfo,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMessage {
    /// Answer to `join`: who you are and who is already there.
    Joined(JoinedResponse),
    /// Answer to a `join` with `resume`: the same shape, with the room as it is now.
    Resumed(JoinedResponse),
    /// SDP answer to the client's publisher `offer`.
    Answer {
        sdp: String,
    },
    /// SDP offer for the subscriber connection, with the track carried by each `mid`.
    Offer {
        sdp: String,
        tracks: Vec<SubscribedTrack>,
    },
    /// A server ICE candidate (the server is ICE-lite and puts its candidates in the SDP, so this is rare).
    Candidate {
        target: PcTarget,
        candidate: String,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    #[serde(rename_all = "camelCase")]
    ParticipantLeft {
        participant_sid: String,
        #[serde(default)]
        reason: String,
    },
    #[serde(rename_all = "camelCase")]
    TrackPublished {
        participant_sid: String,
        track: TrackInfo,
    },
    #[serde(rename_all = "camelCase")]
    TrackUnpublished {
        participant_sid: String,
        track_sid: String,
    },
    #[serde(rename_all = "camelCase")]
    TrackMuted {
        participant_sid: String,
        track_sid: String,
        muted: bool,
    },
    /// The server confirms the sid given to each track of a publisher offer (sent before the `answer`).
    TracksAssigned {
        tracks: Vec<AssignedTrack>,
    },
    Pong {
        timestamp: u64,
    },
    /// Forwarding of a remote track to you was paused because your downlink cannot carry it (`paused`), or
    /// resumed. `reason` is `bandwidth`.
    #[serde(rename_all = "camelCase")]
    StreamState {
        track_sid: String,
        paused: bool,
        reason: LayerReason,
    },
    /// Dynacast, to a publisher: send only these simulcast layers of your track (`rid`s, lowest first; empty
    /// for a track without simulcast), or nothing at all when `enabled` is false, because nobody receives more.
    #[serde(rename_all = "camelCase")]
    PublishLayers {
        track_sid: String,
        enabled: bool,
        layers: Vec<String>,
    },
    /// The room's active speakers changed: who is talking now (and for a moment after), speaking now first,
    /// loudest first, at most three; empty when nobody speaks. Their video is served first when a downlink
    /// cannot carry everything.
    ActiveSpeakers {
        speakers: Vec<SpeakerInfo>,
    },
    /// Your `channel` data channel is open on the server: what others send from now on reaches you. A
    /// channel's own `open` event comes earlier (before the server has seen it), so the SDKs report a channel
    /// open only after this. Sent once per channel per publisher connection.
    DataReady {
        channel: DataChannelKind,
    },
    /// The answer to `getStats`.
    Stats(ParticipantStats),
    /// In a cluster: the room lives on another node. Reconnect to `url` and send the same `join` (or resume)
    /// there; this connection closes after this message.
    Redirect {
        url: String,
        node: String,
    },
    /// The server ended this participant's session; the connection closes after this message.
    Left {
        reason: String,
    },
    Error(ErrorMessage),
    /// A new chat message. The sender's copy carries the `nonce` of its `chatSend`.
    ChatMessage {
        message: ChatMessage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    /// A chat message was edited: the message as it is now (with `editedAt`).
    ChatEdited {
        message: ChatMessage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    /// A chat message was deleted, by the identity `by` (its sender, or a room admin).
    ChatDeleted {
        id: String,
        by: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    /// Someone started or stopped typing.
    #[serde(rename_all = "camelCase")]
    ChatTyping {
        participant_sid: String,
        identity: String,
        typing: bool,
    },
    /// The room's recent chat, oldest first; replaces what the client had. Sent right after `joined` when the
    /// room has any (no `chatHistory` means none), and always right after `resumed`.
    ChatHistory {
        messages: Vec<ChatMessage>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedTrack {
    pub mid: String,
    pub track_sid: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinedResponse {
    pub protocol: u32,
    pub room: RoomInfo,
    pub participant: ParticipantInfo,
    /// Everyone else visible in the room, with their published tracks.
    pub participants: Vec<ParticipantInfo>,
    /// Present with `participant.sid` in a `resume` request after the connection drops.
    pub resume_token: String,
    /// How long a dropped connection may be resumed, in seconds.
    pub resume_window_secs: u64,
    /// Suggested keepalive interval, in seconds.
    pub ping_interval_secs: u64,
    pub ice_servers: Vec<IceServer>,
}

#[cfg(test)]
mod tests {
    use super::ServerMessage;
    use crate::DataChannelKind;

    #[test]
    fn data_ready_names_its_channel() {
        let msg = ServerMessage::DataReady {
            channel: DataChannelKind::Lossy,
        };
        let json = serde_json::to_string(&msg).expect("serialize");
        assert_eq!(json, r#"{"type":"dataReady","channel":"lossy"}"#);
        let back: ServerMessage =
            serde_json::from_str(r#"{"type":"dataReady","channel":"reliable"}"#).expect("parse");
        assert_eq!(
            back,
            ServerMessage::DataReady {
                channel: DataChannelKind::Reliable
            }
        );
    }
}
