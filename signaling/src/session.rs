//! One WebSocket connection at `/rtc`: authenticate, join (or resume) a room, then relay frames between the
//! client and its room. Everything that goes wrong here is scoped to this connection. Its log lines carry a
//! `session` span with the room and identity once joined (`--log-format json` prints them as fields).

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chorus_protocol::{
    parse_client_message, ClientMessage, ErrorCode, ErrorMessage, JoinRequest, ServerMessage,
};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tracing::field::Empty;
use tracing::Instrument;

use crate::room::{Attached, Outbound, Registry, RoomHandle, RoomMsg};
use crate::server::AppState;

/// Query parameters accepted on `/rtc`.
#[derive(Debug, Default, Deserialize)]
pub struct RtcQuery {
    pub access_token: Option<String>,
    /// If given, the token must be for this room.
    pub room: Option<String>,
}

struct Joined {
    room: RoomHandle,
    attached: Attached,
}

pub async fn run(socket: WebSocket, state: AppState, query: RtcQuery) {
    let span = tracing::info_span!("session", room = Empty, identity = Empty);
    serve(socket, state, query).instrument(span).await
}

async fn serve(socket: WebSocket, state: AppState, query: RtcQuery) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Outbound>();
    let (closed_tx, mut closed_rx) = oneshot::channel::<()>();

    // Writer: everything for the client goes through `out_tx`, so the room and this task never interleave.
    let writer = tokio::spawn(async move {
        while let Some(out) = out_rx.recv().await {
            match out {
                Outbound::Message(msg) => {
                    let text = match serde_json::to_string(&msg) {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot serialize server message");
                            continue;
                        }
                    };
                    if ws_tx.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Outbound::Close => {
                    let _ = ws_tx
                        .send(Message::Close(Some(CloseFrame {
                            code: 1000,
                            reason: Utf8Bytes::from_static("bye"),
                        })))
                        .await;
                    break;
                }
            }
        }
        let _ = closed_tx.send(());
    });

    let idle_limit = state.ping_interval * 3 + Duration::from_secs(2);
    let mut joined: Option<Joined> = None;
    let mut left = false;
    loop {
        let frame = tokio::select! {
            _ = &mut closed_rx => break,
            frame = tokio::time::timeout(idle_limit, ws_rx.next()) => frame,
        };
        let text = match frame {
            Err(_) => {
                tracing::info!("signaling connection idle for {idle_limit:?}; dropping it");
                break;
            }
            Ok(Some(Ok(Message::Close(_)))) => {
                // Answer the client's close frame so its close completes cleanly (code 1000, not 1006).
                let _ = out_tx.send(Outbound::Close);
                break;
            }
            Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Binary(_)))) => {
                send_error(
                    &out_tx,
                    ErrorCode::BadRequest,
                    "binary frames are not part of the protocol",
                );
                continue;
            }
            Ok(Some(Ok(_))) => continue, // ping/pong frames
        };
        let msg = match parse_client_message(text.as_str(), state.max_message_bytes) {
            Ok(msg) => msg,
            Err(e) => {
                let _ = out_tx.send(Outbound::Message(ServerMessage::Error(e.into())));
                continue;
            }
        };
        match (&joined, msg) {
            (_, ClientMessage::Ping { timestamp }) => {
                let _ = out_tx.send(Outbound::Message(ServerMessage::Pong { timestamp }));
            }
            (None, ClientMessage::Join(req)) => {
                match join(&state.registry, &state, &query, req, out_tx.clone()).await {
                    Ok(j) => {
                        tracing::debug!(participant = %j.attached.participant, "joined");
                        joined = Some(j);
                    }
                    Err(e) => {
                        let fatal = e.fatal;
                        let _ = out_tx.send(Outbound::Message(ServerMessage::Error(e)));
                        if fatal {
                            let _ = out_tx.send(Outbound::Close);
                        }
                    }
                }
            }
            (None, _) => send_error(&out_tx, ErrorCode::NotJoined, "send `join` first"),
            (Some(_), ClientMessage::Join(_)) => send_error(
                &out_tx,
                ErrorCode::AlreadyJoined,
                "this connection has already joined",
            ),
            (Some(j), msg) => {
                left |= matches!(msg, ClientMessage::Leave);
                if j.room
                    .tx
                    .send(RoomMsg::Client {
                        from: j.attached,
                        msg,
                    })
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    if let (Some(j), false) = (&joined, left) {
        let _ = j.room.tx.send(RoomMsg::Detached { from: j.attached });
    }
    drop(out_tx);
    // Let queued messages (e.g. a fatal error) go out before the socket closes.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
}

fn send_error(out: &mpsc::UnboundedSender<Outbound>, code: ErrorCode, message: &str) {
    let _ = out.send(Outbound::Message(ServerMessage::Error(ErrorMessage::new(
        code, message,
    ))));
}

async fn join(
    registry: &Registry,
    state: &AppState,
    query: &RtcQuery,
    req: JoinRequest,
    session: mpsc::UnboundedSender<Outbound>,
) -> Result<Joined, ErrorMessage> {
    let token_str = req
        .token
        .as_deref()
        .or(query.access_token.as_deref())
        .ok_or_else(|| {
            ErrorMessage::new(
                ErrorCode::Unauthorized,
                "no access token: pass ?access_token= or `token` in join",
            )
        })?;
    let token = state
        .keys
        .verify(token_str)
        .map_err(|e| ErrorMessage::new(e.code(), e.to_string()))?;
    if let Some(room) = &query.room {
        token
            .check_room(room)
            .map_err(|e| ErrorMessage::new(e.code(), e.to_string()))?;
    }
    crate::api::revocation::check_not_revoked(&state.store, &token).await?;
    let room_name = token.room.clone();
    tracing::Span::current()
        .record("room", room_name.as_str())
        .record("identity", token.identity.as_str());
    let (room, attached) = match req.resume {
        Some(resume) => {
            registry
                .join(
                    &room_name,
                    |reply| RoomMsg::Resume {
                        token: token.clone(),
                        participant_sid: resume.participant_sid.clone(),
                        resume_token: resume.resume_token.clone(),
                        session: session.clone(),
                        reply,
                    },
                    false,
                )
                .await?
        }
        None => {
            let auto_subscribe = req.auto_subscribe.unwrap_or(true);
            registry
                .join(
                    &room_name,
                    |reply| RoomMsg::Join {
                        token: token.clone(),
                        auto_subscribe,
                        session: session.clone(),
                        reply,
                    },
                    true,
                )
                .await?
        }
    };
    Ok(Joined { room, attached })
}
