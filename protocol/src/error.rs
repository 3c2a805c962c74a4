//! The `error` message: a stable machine-readable code and a human-readable message.

use serde::{Deserialize, Serialize};

/// Stable error codes. Clients may match on these; the message text may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON or a field had the wrong shape.
    BadRequest,
    /// The `type` is not one this server knows.
    UnknownMessage,
    /// The frame exceeded the server's size limit.
    MessageTooLarge,
    /// No token, or a token that does not verify.
    Unauthorized,
    /// The token's `exp` has passed.
    TokenExpired,
    /// The token's `nbf` is in the future.
    TokenNotYetValid,
    /// The token is for another room than the one requested.
    WrongRoom,
    /// The token's grants do not allow this action.
    PermissionDenied,
    /// A message other than `join` arrived before joining.
    NotJoined,
    /// A second `join` on the same connection.
    AlreadyJoined,
    /// The session to resume does not exist any more, or the resume token is wrong.
    ResumeFailed,
    /// An SDP offer or answer could not be applied.
    NegotiationFailed,
    /// The track sid is not one of this participant's (or not in the room).
    UnknownTrack,
    /// The room cannot take more participants.
    RoomFull,
    /// A data-channel message exceeded the size limit of its channel (`reliable` or `lossy`).
    DataTooLarge,
    /// The sender went over its rate limit; the message (and others after it, until the rate drops) was not
    /// delivered.
    RateLimited,
    /// Something went wrong inside the server; the message says what.
    Internal,
    /// Chat text is empty (or only whitespace).
    ChatEmpty,
    /// Chat text is longer than the server's limit.
    ChatTooLong,
    /// No chat message with that id in the room's history.
    ChatUnknownMessage,
    /// The chat message is someone else's (edit: always; delete: without `roomAdmin`).
    ChatNotAuthor,
    /// Too many chat messages (sends, edits, deletes) in a short time; try again later.
    ChatRateLimited,
    /// No node can host the room now (every node is draining), or the cluster state or shared store cannot be
    /// reached to place the room or check the token; try again in a few seconds.
    Unavailable,
}

impl ErrorCode {
    /// Whether the server closes the connection after sending this error.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            ErrorCode::Unauthorized
                | ErrorCode::TokenExpired
                | ErrorCode::TokenNotYetValid
                | ErrorCode::WrongRoom
                | ErrorCode::ResumeFailed
                | ErrorCode::RoomFull
                | ErrorCode::Unavailable
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorMessage {
    pub code: ErrorCode,
    pub message: String,
    /// True when the server closes the connection after this error.
    #[serde(default)]
    pub fatal: bool,
    /// The `nonce` of the request that failed, when it carried one (chat requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

impl ErrorMessage {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorMessage {
            code,
            message: message.into(),
            fatal: code.is_fatal(),
            nonce: None,
        }
    }

    /// The same error, answering the request that carried `nonce`.
    pub fn with_nonce(mut self, nonce: Option<String>) -> Self {
        self.nonce = nonce;
        self
    }
}
