//! The signaling WebSocket: the `join` handshake, a writer task (outgoing messages and keepalive `ping`s) and the
//! reader loop that dispatches every server message to the publisher, the subscriber or the event stream.
//!
//! Owns the socket only; SDP and ICE work is done by `publisher.rs` / `subscriber.rs`, room state and events by
//! `events.rs`. Nothing here panics on network input: a bad frame is logged and skipped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_protocol::{ClientMessage, JoinRequest, JoinedResponse, PcTarget, ServerMessage};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::{debug, trace, warn};

use crate::chat::ChatState;
use crate::data::DataReadySink;
use crate::error::ClientError;
use crate::events::EventSink;
use crate::publisher::Publisher;
use crate::subscriber::Subscriber;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub(crate) type WsReader = SplitStream<Ws>;
type WsWriter = SplitSink<Ws, Message>;

/// Queues messages for the writer task. Cheap to clone; never blocks.
#[derive(Clone)]
pub(crate) struct SignalSender {
    tx: mpsc::UnboundedSender<ClientMessage>,
}

impl SignalSender {
    pub(crate) fn send(&self, msg: ClientMessage) -> Result<(), ClientError> {
        self.tx
            .send(msg)
            .map_err(|_| ClientError::Disconnected("signaling connection closed".into()))
    }

    /// A sender whose messages the test reads instead of a WebSocket.
    #[cfg(test)]
    pub(crate) fn test_pair() -> (Self, mpsc::UnboundedReceiver<ClientMessage>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (SignalSender { tx }, rx)
    }
}

/// Redirects (cluster: the room lives on another node) followed in a row before giving up.
const MAX_REDIRECTS: usize = 3;

/// The WebSocket's read buffer: signaling messages are a few KiB, and the library's 128 KiB default is
/// zero-filled on the first read, which adds up in a load test of thousands of participants. Larger frames grow
/// the buffer as they arrive.
const WS_READ_BUFFER: usize = 8 * 1024;

/// Opens the WebSocket, sends `join` and waits for `joined` (or the `error` that refuses it), following the
/// server's `redirect`s to the node that hosts the room.
pub(crate) async fn join(
    ws_url: &str,
    token: &str,
    auto_subscribe: bool,
    timeout: Duration,
) -> Result<(Ws, JoinedResponse), ClientError> {
    let handshake = async {
        let mut url = ws_url.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            match join_once(&url, token, auto_subscribe).await? {
                Handshake::Joined(joined) => return Ok(*joined),
                Handshake::Redirect { url: next, node } => {
                    debug!(%node, url = %next, "room lives on another node; following the redirect");
                    url = next;
                }
            }
        }
        Err(ClientError::Protocol(format!(
            "more than {MAX_REDIRECTS} redirects in a row"
        )))
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| ClientError::Timeout("joined"))?
}

enum Handshake {
    Joined(Box<(Ws, JoinedResponse)>),
    Redirect { url: String, node: String },
}

/// One WebSocket and one `join`.
async fn join_once(
    ws_url: &str,
    token: &str,
    auto_subscribe: bool,
) -> Result<Handshake, ClientError> {
    {
        let config = WebSocketConfig::default().read_buffer_size(WS_READ_BUFFER);
        let (mut ws, _response) =
            tokio_tungstenite::connect_async_with_config(ws_url, Some(config), false).await?;
        let join = ClientMessage::Join(JoinRequest {
            token: Some(token.to_owned()),
            resume: None,
            auto_subscribe: (!auto_subscribe).then_some(false),
        });
        ws.send(Message::text(encode(&join)?)).await?;
        loop {
            let Some(frame) = ws.next().await else {
                return Err(ClientError::Disconnected(
                    "connection closed before joined".into(),
                ));
            };
            match decode(frame?) {
                Some(ServerMessage::Joined(joined)) => {
                    return Ok(Handshake::Joined(Box::new((ws, joined))))
                }
                Some(ServerMessage::Redirect { url, node }) => {
                    let _ = ws.close(None).await;
                    return Ok(Handshake::Redirect { url, node });
                }
                Some(ServerMessage::Error(err)) => return Err(err.into()),
                Some(ServerMessage::Left { reason }) => {
                    return Err(ClientError::Disconnected(format!("left: {reason}")))
                }
                Some(other) => {
                    return Err(ClientError::Protocol(format!(
                        "expected joined, got {other:?}"
                    )))
                }
                None => continue,
            }
        }
    }
}

/// Splits the socket and starts the writer task (with keepalive pings every `ping_interval`).
pub(crate) fn start_writer(
    ws: Ws,
    ping_interval: Duration,
) -> (SignalSender, WsReader, JoinHandle<()>) {
    let (sink, stream) = ws.split();
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(sink, rx, ping_interval));
    (SignalSender { tx }, stream, writer)
}

async fn write_loop(
    mut sink: WsWriter,
    mut rx: mpsc::UnboundedReceiver<ClientMessage>,
    ping_interval: Duration,
) {
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
            _ = ping.tick() => ClientMessage::Ping { timestamp: unix_millis() },
        };
        let text = match encode(&msg) {
            Ok(text) => text,
            Err(err) => {
                warn!(%err, "dropping unencodable message");
                continue;
            }
        };
        trace!(%text, "send");
        if let Err(err) = sink.send(Message::text(text)).await {
            debug!(%err, "websocket write failed; writer stops");
            break;
        }
    }
    let _ = sink.close().await;
}

/// Everything a server message may need to reach.
pub(crate) struct Dispatcher {
    pub publisher: Arc<Publisher>,
    pub subscriber: Arc<Subscriber>,
    pub events: EventSink,
    pub chat: Arc<ChatState>,
    /// Where `dataReady` goes; `None` without data channels.
    pub data_ready: Option<DataReadySink>,
    /// Whether a peer connection of this session has connected: a media failure after that is worth joining
    /// again for (a network change), one before it is not (media never worked, e.g. a firewall).
    pub media_connected: Arc<AtomicBool>,
}

/// The `left` reason for a session whose media connection failed (ICE silent for several seconds).
const MEDIA_FAILED: &str = "mediaFailed";

/// How a session's signaling ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionEnd {
    pub reason: String,
    /// The connection was lost (closed, failed or silent) rather than ended by the server (`left`, a fatal
    /// error): joining again may work.
    pub lost: bool,
}

impl SessionEnd {
    fn lost(reason: String) -> Self {
        SessionEnd { reason, lost: true }
    }

    pub(crate) fn ended(reason: String) -> Self {
        SessionEnd {
            reason,
            lost: false,
        }
    }
}

/// Reads server messages until the connection ends; fails what was waiting on the session and says how it
/// ended. A server silent for three ping intervals is treated as gone (it answers every `ping` with `pong`).
pub(crate) async fn read_loop(
    mut stream: WsReader,
    d: Dispatcher,
    ping_interval: Duration,
) -> SessionEnd {
    let silence = (ping_interval * 3).max(Duration::from_secs(5));
    let end = loop {
        let frame = match tokio::time::timeout(silence, stream.next()).await {
            Err(_) => break SessionEnd::lost("server silent for three ping intervals".to_owned()),
            Ok(None) => break SessionEnd::lost("connection closed".to_owned()),
            Ok(Some(Err(err))) => break SessionEnd::lost(format!("websocket error: {err}")),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Message::Close(close) = &frame {
            // A close without `left` (e.g. the node shutting down): the session may live on elsewhere.
            break SessionEnd::lost(match close {
                Some(c) if !c.reason.is_empty() => format!("closed by server: {}", c.reason),
                _ => "closed by server".to_owned(),
            });
        }
        let Some(msg) = decode(frame) else { continue };
        if let ServerMessage::Left { reason } = &msg {
            if reason == MEDIA_FAILED && d.media_connected.load(Ordering::Relaxed) {
                // The server gave up on this session's media path; a new session may find a working one.
                break SessionEnd::lost(format!("left: {reason}"));
            }
        }
        if let Some(reason) = dispatch(&d, msg).await {
            break SessionEnd::ended(reason);
        }
    };
    debug!(reason = %end.reason, lost = end.lost, "signaling ended");
    d.publisher
        .fail_pending(ClientError::Disconnected(end.reason.clone()));
    d.chat.fail_pending();
    end
}

/// Handles one server message; returns a reason when the session is over.
async fn dispatch(d: &Dispatcher, msg: ServerMessage) -> Option<String> {
    match msg {
        ServerMessage::Answer { sdp } => d.publisher.on_answer(sdp),
        ServerMessage::TracksAssigned { tracks } => d.publisher.on_tracks_assigned(tracks),
        ServerMessage::Offer { sdp, tracks } => {
            if let Err(err) = d.subscriber.handle_offer(sdp, tracks).await {
                warn!(%err, "could not answer subscriber offer");
                d.events.error(chorus_protocol::ErrorMessage::new(
                    chorus_protocol::ErrorCode::NegotiationFailed,
                    format!("client could not answer subscriber offer: {err}"),
                ));
            }
        }
        ServerMessage::Candidate { target, candidate } => {
            let result = match target {
                PcTarget::Publisher => d.publisher.add_remote_candidate(candidate).await,
                PcTarget::Subscriber => d.subscriber.add_remote_candidate(candidate).await,
            };
            if let Err(err) = result {
                debug!(%err, ?target, "ignoring server candidate");
            }
        }
        ServerMessage::Pong { timestamp } => {
            trace!(rtt_ms = unix_millis().saturating_sub(timestamp), "pong");
        }
        ServerMessage::Left { reason } => return Some(format!("left: {reason}")),
        ServerMessage::Redirect { node, .. } => {
            return Some(format!("redirected to node {node} after joining"))
        }
        ServerMessage::Error(err) => {
            warn!(code = ?err.code, message = %err.message, fatal = err.fatal, "server error");
            d.publisher.on_server_error(&err);
            d.chat.on_error(&err);
            let fatal = err.fatal;
            let reason = format!("fatal server error {:?}: {}", err.code, err.message);
            d.events.error(err);
            if fatal {
                return Some(reason);
            }
        }
        ServerMessage::DataReady { channel } => match &d.data_ready {
            Some(sink) => sink.server_ready(channel),
            None => debug!(?channel, "dataReady without data channels; ignored"),
        },
        ServerMessage::Joined(_) | ServerMessage::Resumed(_) => {
            warn!("unexpected joined/resumed after join; ignored");
        }
        chat @ (ServerMessage::ChatHistory { .. }
        | ServerMessage::ChatMessage { .. }
        | ServerMessage::ChatEdited { .. }
        | ServerMessage::ChatDeleted { .. }
        | ServerMessage::ChatTyping { .. }) => d.chat.on_message(chat, &d.events),
        ServerMessage::ParticipantLeft {
            participant_sid,
            reason,
        } => {
            d.chat.participant_left(&participant_sid);
            d.events.room_message(ServerMessage::ParticipantLeft {
                participant_sid,
                reason,
            });
        }
        ServerMessage::PublishLayers {
            track_sid,
            enabled,
            layers,
        } => {
            d.publisher.on_publish_layers(&track_sid, enabled, &layers);
            d.events.room_message(ServerMessage::PublishLayers {
                track_sid,
                enabled,
                layers,
            });
        }
        room @ (ServerMessage::ParticipantJoined { .. }
        | ServerMessage::TrackPublished { .. }
        | ServerMessage::TrackUnpublished { .. }
        | ServerMessage::TrackMuted { .. }
        | ServerMessage::StreamState { .. }
        | ServerMessage::ActiveSpeakers { .. }
        | ServerMessage::Stats(_)) => d.events.room_message(room),
    }
    None
}

fn encode(msg: &ClientMessage) -> Result<String, ClientError> {
    serde_json::to_string(msg).map_err(|e| ClientError::Protocol(format!("encode: {e}")))
}

/// Parses a text frame; anything else (ping/pong frames, binary, bad JSON) is logged and skipped.
fn decode(frame: Message) -> Option<ServerMessage> {
    let Message::Text(text) = frame else {
        return None;
    };
    trace!(text = %text.as_str(), "recv");
    match serde_json::from_str(text.as_str()) {
        Ok(msg) => Some(msg),
        Err(err) => {
            warn!(%err, "ignoring unparsable server message");
            None
        }
    }
}

pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
