//! Chorus signaling protocol: the JSON messages exchanged over the `/rtc` WebSocket.
//!
//! This crate owns the wire types only (serde, no I/O) so that the server, the Rust client SDK and the load
//! tester share one definition. `docs/protocol.md` is the human-readable contract; keep them in step.
//!
//! Every message is a JSON object with a `type` field naming it; fields are camelCase.

mod chat;
mod client;
pub mod data;
mod error;
mod model;
mod parse;
mod quality;
mod server;
mod simulcast;

pub use chat::ChatMessage;
pub use client::{ClientMessage, JoinRequest, PublishTrack, ResumeRequest};
pub use error::{ErrorCode, ErrorMessage};
pub use model::{
    DataChannelKind, IceServer, ParticipantInfo, PcTarget, RoomInfo, SpeakerInfo, SubscribedTrack,
    TrackInfo, TrackKind, TrackSource,
};
pub use parse::{parse_client_message, ProtocolError, DEFAULT_MAX_MESSAGE_BYTES};
pub use quality::{CallQuality, LinkQuality, QualitySummary};
pub use server::{AssignedTrack, JoinedResponse, ServerMessage};
pub use simulcast::{LayerReason, ParticipantStats, SubscriptionStats, VideoQuality};

/// Protocol version spoken by this crate; sent in `joined` so clients can detect mismatches.
pub const PROTOCOL_VERSION: u32 = 1;
