//! Chat shapes: a stored chat message as the server sends it in `chatMessage`, `chatEdited` and `chatHistory`.
//!
//! Chat travels over the signaling WebSocket (not data channels). The server assigns ids and timestamps and
//! stamps the sender; clients never choose them. The rules (lengths, rates, who may edit) live in the server.

use serde::{Deserialize, Serialize};

/// One chat message of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// Server-assigned, unique (`CM_…`).
    pub id: String,
    /// When the server accepted it, milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// The sender's identity (from its token).
    pub identity: String,
    /// The sender's display name at the time it sent the message.
    #[serde(default)]
    pub name: String,
    pub text: String,
    /// When it was last edited, milliseconds since the Unix epoch; absent if never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<u64>,
}

#[cfg(test)]
mod tests {
    use crate::{parse_client_message, ClientMessage, ErrorCode, ErrorMessage, ServerMessage};

    fn parse(s: &str) -> Result<ClientMessage, crate::ProtocolError> {
        parse_client_message(s, crate::DEFAULT_MAX_MESSAGE_BYTES)
    }

    #[test]
    fn chat_requests_parse() {
        assert_eq!(
            parse(r#"{"type":"chatSend","text":"hi","nonce":"n1"}"#),
            Ok(ClientMessage::ChatSend {
                text: "hi".into(),
                nonce: Some("n1".into())
            })
        );
        assert_eq!(
            parse(r#"{"type":"chatEdit","id":"CM_1","text":"hey"}"#),
            Ok(ClientMessage::ChatEdit {
                id: "CM_1".into(),
                text: "hey".into(),
                nonce: None
            })
        );
        assert_eq!(
            parse(r#"{"type":"chatDelete","id":"CM_1"}"#),
            Ok(ClientMessage::ChatDelete {
                id: "CM_1".into(),
                nonce: None
            })
        );
        assert_eq!(
            parse(r#"{"type":"chatTyping","typing":true}"#),
            Ok(ClientMessage::ChatTyping { typing: true })
        );
    }

    #[test]
    fn malformed_chat_requests_are_bad_request_not_unknown() {
        for text in [
            r#"{"type":"chatSend"}"#,
            r#"{"type":"chatSend","text":5}"#,
            r#"{"type":"chatEdit","id":"x"}"#,
            r#"{"type":"chatDelete","id":null}"#,
            r#"{"type":"chatTyping","typing":"yes"}"#,
        ] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.code, ErrorCode::BadRequest, "{text}: {err}");
        }
    }

    #[test]
    fn chat_server_messages_use_camel_case_tags_and_codes() {
        let msg = ServerMessage::ChatMessage {
            message: super::ChatMessage {
                id: "CM_1".into(),
                timestamp: 5,
                identity: "alice".into(),
                name: "Alice".into(),
                text: "hi".into(),
                edited_at: None,
            },
            nonce: None,
        };
        let json = serde_json::to_string(&msg).expect("serializes");
        assert!(json.contains(r#""type":"chatMessage""#), "{json}");
        assert!(
            !json.contains("editedAt") && !json.contains("nonce"),
            "{json}"
        );
        let err = ServerMessage::Error(
            ErrorMessage::new(ErrorCode::ChatTooLong, "too long").with_nonce(Some("n".into())),
        );
        let json = serde_json::to_string(&err).expect("serializes");
        assert!(json.contains(r#""code":"chat_too_long""#), "{json}");
        assert!(json.contains(r#""nonce":"n""#), "{json}");
        let typing = serde_json::to_string(&ServerMessage::ChatTyping {
            participant_sid: "PA_1".into(),
            identity: "bob".into(),
            typing: true,
        })
        .expect("serializes");
        assert!(typing.contains(r#""participantSid":"PA_1""#), "{typing}");
    }
}
