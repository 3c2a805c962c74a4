//! `POST /v1/rooms/{room}/data`: the application server sends a data message to a room's participants. It
//! arrives on their `reliable` (or `lossy`) data channel like a participant's message, flagged as coming from
//! the server (`from` is null in the SDKs). See `docs/protocol.md`, "Data".

use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use chorus_sfu::ServerData;
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::extract::{Admin, ApiJson};
use crate::auth::AdminGrant;
use crate::room::AdminMsg;
use crate::server::AppState;

/// Largest payload, before base64 (the reliable channel's default limit less room for the envelope).
const MAX_PAYLOAD_BYTES: usize = 60 * 1024;
/// Largest lossy payload: it must fit one packet.
const MAX_LOSSY_PAYLOAD_BYTES: usize = 1000;
const MAX_TOPIC_BYTES: usize = chorus_protocol::data::MAX_TOPIC_BYTES;
const MAX_RECIPIENTS: usize = chorus_protocol::data::MAX_RECIPIENTS;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SendData {
    /// A text payload (browsers receive a string)…
    text: Option<String>,
    /// …or a binary one, base64-encoded (browsers receive a Uint8Array).
    base64: Option<String>,
    #[serde(default)]
    topic: String,
    /// Identities to deliver to; absent or empty means everyone.
    #[serde(default)]
    to: Vec<String>,
    /// The reliable channel (default) or the lossy one.
    reliable: Option<bool>,
}

/// Checks the body and turns it into the worker's message.
fn server_data(body: SendData) -> ApiResult<ServerData> {
    let (payload, text) = match (body.text, body.base64) {
        (Some(t), None) => (t.into_bytes(), true),
        (None, Some(b)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map_err(|e| ApiError::invalid("base64", format!("not valid base64: {e}")))?;
            (bytes, false)
        }
        _ => {
            return Err(ApiError::invalid(
                "text",
                "give exactly one of `text` and `base64`",
            ))
        }
    };
    let reliable = body.reliable.unwrap_or(true);
    let max = if reliable {
        MAX_PAYLOAD_BYTES
    } else {
        MAX_LOSSY_PAYLOAD_BYTES
    };
    if payload.len() > max {
        let field = if text { "text" } else { "base64" };
        return Err(ApiError::invalid(
            field,
            format!(
                "payload of {} bytes (at most {max} on this channel)",
                payload.len()
            ),
        ));
    }
    if body.topic.len() > MAX_TOPIC_BYTES {
        return Err(ApiError::invalid(
            "topic",
            format!("at most {MAX_TOPIC_BYTES} bytes"),
        ));
    }
    if body.to.len() > MAX_RECIPIENTS || body.to.iter().any(|i| i.is_empty() || i.len() > 1024) {
        return Err(ApiError::invalid(
            "to",
            format!("at most {MAX_RECIPIENTS} identities of 1-1024 bytes"),
        ));
    }
    Ok(ServerData {
        reliable,
        topic: body.topic,
        to: body.to,
        text,
        payload,
    })
}

pub async fn send(
    admin: Admin,
    State(state): State<AppState>,
    Path(room): Path<String>,
    ApiJson(body): ApiJson<SendData>,
) -> ApiResult<StatusCode> {
    admin.require(AdminGrant::RoomAdmin, Some(&room))?;
    let message = server_data(body)?;
    state
        .registry
        .ask(&room, |reply| AdminMsg::SendData { message, reply })
        .await
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no open room `{}`",
                room.chars().take(64).collect::<String>()
            ))
        })?;
    Ok(StatusCode::ACCEPTED)
}
