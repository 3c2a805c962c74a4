//! Turning an untrusted text frame into a [`ClientMessage`], with a size check before any parsing.

use serde::Deserialize;

use crate::client::ClientMessage;
use crate::error::{ErrorCode, ErrorMessage};

/// Default limit on one signaling frame. SDP for a large call stays well under this.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Why a frame could not be turned into a message. Never fatal to the connection on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }
}

impl From<ProtocolError> for ErrorMessage {
    fn from(e: ProtocolError) -> Self {
        ErrorMessage::new(e.code, e.message)
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for ProtocolError {}

/// Only the tag, to tell "unknown type" apart from "known type, bad fields".
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
}

const KNOWN_TYPES: &[&str] = &[
    "join",
    "offer",
    "answer",
    "candidate",
    "mute",
    "unpublish",
    "subscribe",
    "leave",
    "ping",
    "updateSubscription",
    "getStats",
    "chatSend",
    "chatEdit",
    "chatDelete",
    "chatTyping",
];

/// Parse one text frame from a client. Checks the size first, so an oversized frame is never parsed.
pub fn parse_client_message(text: &str, max_bytes: usize) -> Result<ClientMessage, ProtocolError> {
    if text.len() > max_bytes {
        return Err(ProtocolError::new(
            ErrorCode::MessageTooLarge,
            format!(
                "message of {} bytes exceeds the limit of {max_bytes} bytes",
                text.len()
            ),
        ));
    }
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(msg) => Ok(msg),
        Err(err) => match serde_json::from_str::<Envelope>(text) {
            Ok(env) if !KNOWN_TYPES.contains(&env.kind.as_str()) => Err(ProtocolError::new(
                ErrorCode::UnknownMessage,
                format!("unknown message type {:?}", truncate(&env.kind, 64)),
            )),
            Ok(env) => Err(ProtocolError::new(
                ErrorCode::BadRequest,
                format!("invalid {:?} message: {err}", env.kind),
            )),
            Err(_) => Err(ProtocolError::new(
                ErrorCode::BadRequest,
                format!("not a JSON object with a string \"type\": {err}"),
            )),
        },
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PcTarget;

    fn parse(s: &str) -> Result<ClientMessage, ProtocolError> {
        parse_client_message(s, DEFAULT_MAX_MESSAGE_BYTES)
    }

    #[test]
    fn parses_known_messages() {
        assert_eq!(
            parse(r#"{"type":"ping","timestamp":5}"#),
            Ok(ClientMessage::Ping { timestamp: 5 })
        );
        assert_eq!(parse(r#"{"type":"leave"}"#), Ok(ClientMessage::Leave));
        assert_eq!(
            parse(
                r#"{"type":"candidate","target":"subscriber","candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host"}"#
            ),
            Ok(ClientMessage::Candidate {
                target: PcTarget::Subscriber,
                candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into()
            })
        );
        let join = parse(r#"{"type":"join","token":"abc"}"#).expect("join parses");
        assert!(matches!(join, ClientMessage::Join(j) if j.token.as_deref() == Some("abc")));
        let offer = parse(
            r#"{"type":"offer","sdp":"v=0","tracks":[{"mid":"0","kind":"video","source":"camera","layers":["q","h","f"]}]}"#,
        )
        .expect("offer parses");
        assert!(
            matches!(offer, ClientMessage::Offer { tracks, .. } if tracks[0].layers.len() == 3)
        );
    }

    #[test]
    fn malformed_json_is_bad_request() {
        for text in [
            "",
            "{",
            "not json",
            "[1,2]",
            "{\"type\":5}",
            "\u{0}\u{1}",
            "{\"type\":\"offer\"}",
        ] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.code, ErrorCode::BadRequest, "{text}: {err}");
        }
    }

    #[test]
    fn wrong_field_types_are_bad_request_naming_the_type() {
        let err = parse(r#"{"type":"mute","trackSid":1,"muted":"yes"}"#).expect_err("bad fields");
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert!(err.message.contains("\"mute\""), "{}", err.message);
    }

    #[test]
    fn unknown_type_is_reported_as_such() {
        let err = parse(r#"{"type":"teleport","to":"mars"}"#).expect_err("unknown");
        assert_eq!(err.code, ErrorCode::UnknownMessage);
        assert!(err.message.contains("teleport"));
    }

    #[test]
    fn oversized_frame_is_refused_before_parsing() {
        let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(200));
        let err = parse_client_message(&big, 100).expect_err("too large");
        assert_eq!(err.code, ErrorCode::MessageTooLarge);
        // Just under the limit parses (unknown fields are ignored).
        assert!(parse_client_message(&big, big.len()).is_ok());
    }

    #[test]
    fn unknown_track_source_maps_to_unknown() {
        let offer = parse(r#"{"type":"offer","sdp":"v=0","tracks":[{"mid":"1","kind":"audio","source":"hologram"}]}"#)
            .expect("parses");
        match offer {
            ClientMessage::Offer { tracks, .. } => {
                assert_eq!(tracks[0].source, crate::model::TrackSource::Unknown)
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn server_messages_round_trip_with_type_tag() {
        use crate::server::ServerMessage;
        let msg = ServerMessage::Error(ErrorMessage::new(
            ErrorCode::WrongRoom,
            "token is for room a",
        ));
        let json = serde_json::to_string(&msg).expect("serializes");
        assert!(json.contains(r#""type":"error""#), "{json}");
        assert!(json.contains(r#""code":"wrong_room""#), "{json}");
        assert!(json.contains(r#""fatal":true"#), "{json}");
        let back: ServerMessage = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, msg);
    }
}
