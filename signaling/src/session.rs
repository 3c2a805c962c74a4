//! One WebSocket connection at `/rtc`: authenticate, join (or resume) a room, then relay frames between the
//! client and its room (or, in a cluster, send it to the node its room lives on). Everything that goes wrong here is scoped to this connection. Its log lines carry a
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

use crate::cluster::Route;
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
                    Err(JoinFailure::Redirect { url, node }) => {
                        tracing::debug!(%node, "room lives on another node; redirecting");
                        let _ =
                            out_tx.send(Outbound::Message(ServerMessage::Redirect { url, node }));
                        let _ = out_tx.send(Outbound::Close);
                    }
                    Err(JoinFailure::Refused(e)) => {
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

/// Why a `join` did not join here.
enum JoinFailure {
    Refused(ErrorMessage),
    /// The room lives on another node of the cluster.
    Redirect {
        url: String,
        node: String,
    },
}

impl From<ErrorMessage> for JoinFailure {
    fn from(e: ErrorMessage) -> Self {
        JoinFailure::Refused(e)
    }
}

/// The WebSocket URL of `/rtc` on the node at `node_url` (`http(s)://host[:port][/prefix]`), with this
/// connection's query parameters.
fn redirect_url(node_url: &str, query: &RtcQuery) -> Option<String> {
    let mut url = url::Url::parse(node_url).ok()?;
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme).ok()?;
    let path = format!("{}/rtc", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    {
        let mut pairs = url.query_pairs_mut();
        if let Some(t) = &query.access_token {
            pairs.append_pair("access_token", t);
        }
        if let Some(r) = &query.room {
            pairs.append_pair("room", r);
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    Some(url.to_string())
}

/// Joins here when the room lives on this node (placing it if no node hosts it); otherwise says where it lives.
async fn route(state: &AppState, query: &RtcQuery, room: &str) -> Result<(), JoinFailure> {
    let here = state.registry.get(room).is_some();
    match state.cluster.route(room, here).await {
        Ok(Route::Local) => Ok(()),
        Ok(Route::Remote(node)) => match redirect_url(&node.url, query) {
            Some(url) => Err(JoinFailure::Redirect { url, node: node.id }),
            None => Err(JoinFailure::Refused(ErrorMessage::new(
                ErrorCode::Internal,
                format!("node {} has an unusable URL", node.id),
            ))),
        },
        Err(e) => {
            tracing::warn!(room, error = %e, "cannot place the room");
            Err(JoinFailure::Refused(ErrorMessage::new(
                ErrorCode::Unavailable,
                format!("no node can host the room now ({e}); try again shortly"),
            )))
        }
    }
}

async fn join(
    registry: &Registry,
    state: &AppState,
    query: &RtcQuery,
    req: JoinRequest,
    session: mpsc::UnboundedSender<Outbound>,
) -> Result<Joined, JoinFailure> {
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
    route(state, query, &room_name).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_urls_keep_the_query_and_the_path_prefix() {
        let q = RtcQuery {
            access_token: Some("a b".into()),
            room: Some("r".into()),
        };
        assert_eq!(
            redirect_url("http://10.0.0.2:7880", &q).as_deref(),
            Some("ws://10.0.0.2:7880/rtc?access_token=a+b&room=r")
        );
        assert_eq!(
            redirect_url("https://sfu.example.com/chorus/", &RtcQuery::default()).as_deref(),
            Some("wss://sfu.example.com/chorus/rtc")
        );
        assert_eq!(redirect_url("not a url", &q), None);
    }
}
