//! [`ClientError`]: everything that can go wrong in the SDK, one variant per layer.
//!
//! Large foreign errors are boxed so that `Result<_, ClientError>` stays small.

use chorus_protocol::ErrorCode;

/// An error returned by the Chorus client SDK.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The WebSocket could not be opened, or failed while in use.
    #[error("websocket: {0}")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// The server answered with a protocol `error` (e.g. `unauthorized` on join, `permission_denied` on offer).
    #[error("server error {code:?}: {message}")]
    Server { code: ErrorCode, message: String },
    /// The WebRTC stack (webrtc-rs) refused an operation.
    #[error("webrtc: {0}")]
    WebRtc(#[source] Box<webrtc::Error>),
    /// The server sent something this client did not expect at that point.
    #[error("protocol: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The signaling connection is gone (after `leave`, a `left` from the server, or a network failure).
    #[error("disconnected: {0}")]
    Disconnected(String),
    /// The track sid is not one of this client's published tracks.
    #[error("unknown track {0}")]
    UnknownTrack(String),
    /// The options asked for something the client cannot do (e.g. simulcast audio, or a bad layer list).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(e: tokio_tungstenite::tungstenite::Error) -> Self {
        ClientError::WebSocket(Box::new(e))
    }
}

impl From<webrtc::Error> for ClientError {
    fn from(e: webrtc::Error) -> Self {
        ClientError::WebRtc(Box::new(e))
    }
}

impl From<chorus_protocol::ErrorMessage> for ClientError {
    fn from(e: chorus_protocol::ErrorMessage) -> Self {
        ClientError::Server {
            code: e.code,
            message: e.message,
        }
    }
}
