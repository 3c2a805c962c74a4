//! `/v1/rooms`: create, list, read and delete rooms; list, read and remove participants, read their call
//! quality, mute their tracks, change their grants and cap their downlink mid-call. Each request is forwarded to
//! the room's actor (`room::AdminMsg`), so it is ordered with everything else happening in the room.
//!
//! In a cluster (`forward.rs`): calls about one room reach the room's node through a route layer, so these
//! handlers act on rooms open here; a create is placed like a join and sent to the chosen node; the list
//! gathers every live node's rooms.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chorus_protocol::TrackInfo;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{Admin, ApiJson};
use super::forward;
use crate::auth::AdminGrant;
use crate::room::{
    AdminError, AdminMsg, CreateError, GrantsUpdate, ParticipantQualityReport, ParticipantSnapshot,
    RoomOptions, RoomSnapshot,
};
use crate::server::AppState;

const MAX_ROOM_NAME_CHARS: usize = 256;
const MAX_PARTICIPANTS: u32 = 10_000;
const EMPTY_TIMEOUT_RANGE_SECS: std::ops::RangeInclusive<u64> = 1..=7 * 24 * 3600;
const MAX_METADATA_BYTES: usize = 16 * 1024;
/// A downlink cap below the lowest useful layer, or above any link, is a mistake.
const DOWNLINK_CAP_RANGE_BPS: std::ops::RangeInclusive<u64> = 50_000..=10_000_000_000;

/// Serialized again when forwarded to the node placement chose.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateRoom {
    name: String,
    /// 0 or absent: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_participants: Option<u32>,
    /// Default: the server's `room_empty_timeout_secs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    empty_timeout_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RoomList {
    rooms: Vec<ListedRoom>,
}

/// A room of this node, or one another node listed (relayed as it sent it).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum ListedRoom {
    Here(RoomSnapshot),
    Elsewhere(serde_json::Value),
}

impl ListedRoom {
    fn name(&self) -> &str {
        match self {
            ListedRoom::Here(room) => &room.name,
            ListedRoom::Elsewhere(room) => room["name"].as_str().unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ParticipantList {
    participants: Vec<ParticipantSnapshot>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateParticipant {
    grants: Option<GrantsBody>,
    /// The most the server sends this participant, in bit/s; 0 lifts the cap.
    max_downlink_bps: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GrantsBody {
    can_publish: Option<bool>,
    can_subscribe: Option<bool>,
    can_publish_data: Option<bool>,
    can_chat: Option<bool>,
    room_admin: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MuteTrack {
    muted: bool,
}

fn check_room_name(name: &str) -> ApiResult<()> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_ROOM_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            format!("must be 1-{MAX_ROOM_NAME_CHARS} characters without control characters"),
        ));
    }
    Ok(())
}

fn no_room(room: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no open room `{}`",
        room.chars().take(64).collect::<String>()
    ))
}

fn no_participant(room: &str, identity: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no participant `{}` in room `{}`",
        identity.chars().take(64).collect::<String>(),
        room.chars().take(64).collect::<String>()
    ))
}

async fn snapshot(state: &AppState, room: &str) -> ApiResult<RoomSnapshot> {
    state
        .registry
        .ask(room, AdminMsg::Info)
        .await
        .ok_or_else(|| no_room(room))
}

pub async fn create(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateRoom>,
) -> ApiResult<Response> {
    admin.require(AdminGrant::RoomCreate, None)?;
    check_room_name(&body.name)?;
    let max_participants = body.max_participants.unwrap_or(0);
    if max_participants > MAX_PARTICIPANTS {
        return Err(ApiError::invalid(
            "maxParticipants",
            format!("at most {MAX_PARTICIPANTS} (0 means no limit)"),
        ));
    }
    let empty_timeout = match body.empty_timeout_secs {
        Some(secs) if !EMPTY_TIMEOUT_RANGE_SECS.contains(&secs) => {
            return Err(ApiError::invalid(
                "emptyTimeoutSecs",
                format!(
                    "must be between {} and {}",
                    EMPTY_TIMEOUT_RANGE_SECS.start(),
                    EMPTY_TIMEOUT_RANGE_SECS.end()
                ),
            ))
        }
        Some(secs) => Duration::from_secs(secs),
        None => state.room_empty_timeout,
    };
    if body
        .metadata
        .as_ref()
        .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
    {
        return Err(ApiError::invalid(
            "metadata",
            format!("at most {MAX_METADATA_BYTES} bytes"),
        ));
    }
    if let Some(node) = forward::place(&state, &headers, &body.name).await? {
        return forward::relay_json(&state, &node, Method::POST, "/v1/rooms", &headers, &body)
            .await;
    }
    let metadata = body.metadata.unwrap_or_default();
    let options = RoomOptions {
        max_participants,
        empty_timeout,
        metadata,
    };
    state
        .registry
        .create(&body.name, options)
        .map_err(|CreateError::Exists(name)| {
            ApiError::Conflict(format!("room `{name}` is already open"))
        })?;
    let room = snapshot(&state, &body.name).await?;
    Ok((StatusCode::CREATED, Json(room)).into_response())
}

/// The rooms of every live node, by name.
pub async fn list(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<RoomList>> {
    admin.require(AdminGrant::RoomList, None)?;
    let elsewhere = forward::rooms_elsewhere(&state, &headers).await?;
    let mut rooms = Vec::new();
    for (name, _) in state.registry.rooms() {
        // A room that closed meanwhile is simply not listed.
        if let Some(room) = state.registry.ask(&name, AdminMsg::Info).await {
            rooms.push(ListedRoom::Here(room));
        }
    }
    rooms.extend(elsewhere.into_iter().map(ListedRoom::Elsewhere));
    rooms.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(Json(RoomList { rooms }))
}

pub async fn get(
    admin: Admin,
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> ApiResult<Json<RoomSnapshot>> {
    admin.require(AdminGrant::RoomAdmin, Some(&room))?;
    Ok(Json(snapshot(&state, &room).await?))
}

pub async fn delete(
    admin: Admin,
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> ApiResult<StatusCode> {
    admin.require(AdminGrant::RoomAdmin, Some(&room))?;
    state
        .registry
        .ask(&room, AdminMsg::Close)
        .await
        .ok_or_else(|| no_room(&room))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn participants(state: &AppState, room: &str) -> ApiResult<Vec<ParticipantSnapshot>> {
    state
        .registry
        .ask(room, AdminMsg::Participants)
        .await
        .ok_or_else(|| no_room(room))
}

pub async fn list_participants(
    admin: Admin,
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> ApiResult<Json<ParticipantList>> {
    admin.require(AdminGrant::RoomAdmin, Some(&room))?;
    let participants = participants(&state, &room).await?;
    Ok(Json(ParticipantList { participants }))
}

pub async fn get_participant(
    admin: Admin,
    State(state): State<AppState>,
    Path((room, identity)): Path<(String, String)>,
) -> ApiResult<Json<ParticipantSnapshot>> {
    admin.require(AdminGrant::RoomAdmin, Some(&room))?;
    participants(&state, &room)
        .await?
        .into_iter()
        .find(|p| p.identity == identity)
        .map(Json)
        .ok_or_else(|| no_participant(&room, &identity))
}

pub async fn remove_participant(
    admin: Admin,
    State(state): State<AppState>,
    Path((room, identity)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    admin.require(AdminGrant::RoomAdmin, Some(&room))?;
    let who = identity.clone();
    let found = state
        .registry
        .ask(&room, |reply| AdminMsg::Remove {
            identity: who,
            reply,
        })
        .await
        .ok_or_else(|| no_room(&room))?;
    if !found {
        return Err(no_participant(&room, &identity));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A participant's call quality now and over its session (see `docs/quality.md`).
pub async fn participant_stats(
    admin: Admin,
    State(state): State<AppState>,
    Path((room, identity)): Path<(String, String)>,
) -> ApiResult<Json<ParticipantQualityReport>> {
    admin.require(AdminGrant::RoomAdmin, Some(&room))?;
    let who = identity.clone();
    state
        .registry
        .ask(&room, |reply| AdminMsg::Quality {
            identity: who,
            reply,
        })
        .await
        .ok_or_else(|| no_room(&room))?
        .map(Json)
        .map_err(|e| admin_error(e, &room, &identity, ""))
}

fn admin_error(e: AdminError, room: &str, identity: &str, track: &str) -> ApiError {
    match e {
        AdminError::UnknownParticipant => no_participant(room, identity),
        AdminError::UnknownTrack => ApiError::NotFound(format!(
            "participant `{}` has no track `{}`",
            identity.chars().take(64).collect::<String>(),
            track.chars().take(64).collect::<String>()
        )),
    }
}

pub async fn update_participant(
    admin: Admin,
    State(state): State<AppState>,
    Path((room, identity)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateParticipant>,
) -> ApiResult<Json<ParticipantSnapshot>> {
    admin.require(AdminGrant::RoomAdmin, Some(&room))?;
    if body.grants.is_none() && body.max_downlink_bps.is_none() {
        return Err(ApiError::invalid(
            "grants",
            "give `grants`, `maxDownlinkBps` or both",
        ));
    }
    let cap = match body.max_downlink_bps {
        None => None,
        Some(0) => Some(None),
        Some(bps) if DOWNLINK_CAP_RANGE_BPS.contains(&bps) => Some(Some(bps)),
        Some(_) => {
            return Err(ApiError::invalid(
                "maxDownlinkBps",
                format!(
                    "0 (no cap) or {}-{} bit/s",
                    DOWNLINK_CAP_RANGE_BPS.start(),
                    DOWNLINK_CAP_RANGE_BPS.end()
                ),
            ))
        }
    };
    let mut snapshot = None;
    if let Some(g) = body.grants {
        let update = GrantsUpdate {
            can_publish: g.can_publish,
            can_subscribe: g.can_subscribe,
            can_publish_data: g.can_publish_data,
            can_chat: g.can_chat,
            room_admin: g.room_admin,
        };
        let who = identity.clone();
        let reply = state
            .registry
            .ask(&room, |reply| AdminMsg::UpdateGrants {
                identity: who,
                update,
                reply,
            })
            .await
            .ok_or_else(|| no_room(&room))?;
        snapshot = Some(reply.map_err(|e| admin_error(e, &room, &identity, ""))?);
    }
    if let Some(max_bps) = cap {
        let who = identity.clone();
        let reply = state
            .registry
            .ask(&room, |reply| AdminMsg::LimitDownlink {
                identity: who,
                max_bps,
                reply,
            })
            .await
            .ok_or_else(|| no_room(&room))?;
        snapshot = Some(reply.map_err(|e| admin_error(e, &room, &identity, ""))?);
    }
    snapshot
        .map(Json)
        .ok_or_else(|| ApiError::invalid("grants", "nothing to update"))
}

pub async fn mute_track(
    admin: Admin,
    State(state): State<AppState>,
    Path((room, identity, track)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<MuteTrack>,
) -> ApiResult<Json<TrackInfo>> {
    admin.require(AdminGrant::RoomAdmin, Some(&room))?;
    let (who, sid) = (identity.clone(), track.clone());
    state
        .registry
        .ask(&room, |reply| AdminMsg::Mute {
            identity: who,
            track_sid: sid,
            muted: body.muted,
            reply,
        })
        .await
        .ok_or_else(|| no_room(&room))?
        .map(Json)
        .map_err(|e| admin_error(e, &room, &identity, &track))
}

#[derive(Debug, Serialize)]
pub struct ChatHistory {
    messages: Vec<chorus_protocol::ChatMessage>,
}

/// Most messages read from the store for a closed room (the store keeps at most `chat_history_size`).
const MAX_CHAT_HISTORY: usize = 10_000;

/// The room's chat history, oldest first: from the room itself while it is open, else from the store (so it
/// also answers for a closed room, with an empty list when nothing was said).
pub async fn chat_history(
    admin: Admin,
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> ApiResult<Json<ChatHistory>> {
    admin.require(AdminGrant::RoomAdmin, Some(&room))?;
    let messages = match state.registry.ask(&room, AdminMsg::ChatHistory).await {
        Some(messages) => messages,
        None => {
            state
                .store
                .chat
                .chat_history(&room, MAX_CHAT_HISTORY)
                .await?
        }
    };
    Ok(Json(ChatHistory { messages }))
}
