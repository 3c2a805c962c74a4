//! Rooms: the registry that finds or creates a room by name, and the per-room actor that owns its membership,
//! track metadata and subscriptions and drives the room's media worker.
//!
//! Sessions (one per WebSocket) talk to their room only through [`RoomMsg`]s; the room talks back through each
//! member's [`SessionTx`]. One task per room means no locks around room state.

mod actor;
mod admin;
mod call_quality;
mod chat;
mod data;
mod events;
mod joining;
mod media;
mod member;
mod quality;
mod registry;

use chorus_protocol::{ClientMessage, ErrorMessage, ServerMessage};
use chorus_sfu::ParticipantKey;
use tokio::sync::{mpsc, oneshot};

use crate::auth::VerifiedToken;

pub use admin::{AdminError, AdminMsg, GrantsUpdate, ParticipantSnapshot, RoomSnapshot};
pub use call_quality::ParticipantQualityReport;
pub use chat::{
    ChatSettings, DEFAULT_HISTORY_SIZE as DEFAULT_CHAT_HISTORY_SIZE,
    DEFAULT_MAX_TEXT_BYTES as DEFAULT_CHAT_MAX_TEXT_BYTES,
    DEFAULT_RATE_BURST as DEFAULT_CHAT_RATE_BURST,
    DEFAULT_RATE_PER_MINUTE as DEFAULT_CHAT_RATE_PER_MINUTE,
};
pub use events::{
    NoObserver, ParticipantQuality, ParticipantRef, RoomEvent, RoomObserver, RoomRef,
};
pub use registry::{CreateError, Registry, RoomHandle, RoomOptions, RoomSettings};

/// What a room sends to a session.
// Boxing would add an allocation per message to save space only in the rare `Close`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Outbound {
    Message(ServerMessage),
    /// Send a close frame and end the session (after any messages queued before it).
    Close,
}

pub type SessionTx = mpsc::UnboundedSender<Outbound>;

/// A session's successful join or resume: who it is now, and which attachment it is.
#[derive(Debug, Clone, Copy)]
pub struct Attached {
    pub participant: ParticipantKey,
    /// Increases on every resume so messages from a stale connection are ignored.
    pub epoch: u64,
}

pub enum RoomMsg {
    Join {
        token: VerifiedToken,
        auto_subscribe: bool,
        session: SessionTx,
        reply: oneshot::Sender<JoinReply>,
    },
    Resume {
        token: VerifiedToken,
        participant_sid: String,
        resume_token: String,
        session: SessionTx,
        reply: oneshot::Sender<JoinReply>,
    },
    Client {
        from: Attached,
        msg: ClientMessage,
    },
    /// The session's WebSocket went away without `leave`.
    Detached {
        from: Attached,
    },
    /// The resume window of a detached participant has passed.
    ResumeExpired {
        from: Attached,
    },
    Media(chorus_sfu::Event),
    /// A server-API request (`admin.rs`).
    Admin(AdminMsg),
    /// The room's empty timeout has passed; it closes if it is still empty and `generation` is current.
    EmptyTimeout {
        generation: u64,
    },
    /// A member's `chatTyping: true` may have expired (`chat.rs`).
    ChatTypingExpired {
        participant: ParticipantKey,
        generation: u64,
    },
}

pub enum JoinReply {
    Ok(Attached),
    Refused(ErrorMessage),
    /// The room closed while the request was queued; ask the registry again.
    Retry,
}
