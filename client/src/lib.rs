//! Chorus client SDK: join a Chorus room from Rust, publish synthetic audio/video, receive everyone else's media.
//!
//! Built on the `webrtc` crate (webrtc-rs), an independent WebRTC implementation, so it doubles as an interop
//! check of the server. Bots and the load tester use it; many clients can run in one process (no global state,
//! everything on the caller's tokio runtime).
//!
//! ```no_run
//! # async fn demo() -> Result<(), chorus_client::ClientError> {
//! use chorus_client::{Client, ClientEvent, ConnectOptions};
//!
//! let client = Client::connect("ws://127.0.0.1:7880/rtc", "<token>", ConnectOptions::default()).await?;
//! client.publish_audio().await?;
//! client.publish_video().await?;
//! while let Some(event) = client.next_event().await {
//!     if let ClientEvent::ParticipantJoined(p) = event {
//!         println!("{} joined", p.identity);
//!     }
//!     for t in client.received() {
//!         println!("{} from {}: {} packets", t.track_sid, t.participant_sid, t.packets);
//!     }
//! }
//! client.leave().await;
//! # Ok(()) }
//! ```
//!
//! How it follows `docs/protocol.md`: one WebSocket (`connection.rs`); a publisher peer connection on which the
//! client offers (`publisher.rs`) and a subscriber one on which the server offers (`subscriber.rs`), both built
//! in `peer.rs`; together they make one session (`session.rs`), replaced by a new one when the client joins
//! again after losing its connection (`rejoin.rs`); the published tracks and their simulcast encodings in
//! `local_track.rs` and `simulcast.rs`; synthetic media in `media.rs`; receive counters in `stats.rs` (with the
//! VP8 keyframe sizes of `vp8.rs`, which tell a simulcast layer); events and the room view in `events.rs`.

mod chat;
mod connection;
mod data;
mod error;
mod events;
mod histogram;
mod local_track;
pub mod media;
mod pacer;
mod peer;
mod publisher;
mod rejoin;
mod session;
mod simulcast;
mod stats;
mod subscriber;
pub mod vp8;

use std::sync::Arc;
use std::time::Duration;

pub use chat::Chat;
pub use chorus_protocol::ChatMessage;
pub use chorus_protocol::{
    ErrorCode, JoinedResponse, ParticipantInfo, RoomInfo, TrackInfo, TrackKind, TrackSource,
    VideoQuality,
};
pub use data::{DataMessage, SendOptions};
pub use error::ClientError;
pub use events::ClientEvent;
pub use histogram::LatencyHistogram;
pub use local_track::{PublishOptions, PublishedLayer, PublishedTrack};
pub use media::MediaOptions;
pub use simulcast::{SimulcastLayer, MAX_SIMULCAST_LAYERS};
pub use stats::{FrameSizeStats, ReceivedTrackStats};

use std::sync::atomic::{AtomicBool, Ordering};

use chat::ChatState;
use chorus_protocol::ClientMessage;
use events::EventSink;
use session::{Lasting, Session};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Options for [`Client::connect`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Subscribe to every track in the room automatically (default true).
    pub auto_subscribe: bool,
    /// Limit on opening the WebSocket and getting `joined` (default 10 s).
    pub connect_timeout: Duration,
    /// Limit on each publisher negotiation, offer to answer (default 15 s).
    pub negotiation_timeout: Duration,
    /// How many events are queued for [`Client::next_event`] before new ones are dropped (default 1024).
    pub event_capacity: usize,
    /// Shape of the synthetic media this client publishes.
    pub media: MediaOptions,
    /// Open the `reliable` and `lossy` data channels (default true); without them the client neither sends
    /// nor receives data.
    pub data: bool,
    /// How many received data messages wait for [`Client::next_data`] before the channels stop being read
    /// (default 1024).
    pub data_capacity: usize,
    /// When the connection is lost, how long to keep trying to join again (default 30 s; zero: never, the
    /// client is then disconnected at once).
    pub rejoin_window: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            auto_subscribe: true,
            connect_timeout: Duration::from_secs(10),
            negotiation_timeout: Duration::from_secs(15),
            event_capacity: 1024,
            media: MediaOptions::default(),
            data: true,
            data_capacity: 1024,
            rejoin_window: Duration::from_secs(30),
        }
    }
}

/// A participant in a Chorus room. Dropping it ends the session without `leave` (the server then keeps the
/// participant for its resume window); call [`Client::leave`] to leave cleanly.
///
/// When the connection is lost (the node died, the network dropped), the client joins again by itself through
/// the URL it was given, for up to [`ConnectOptions::rejoin_window`], and publishes its tracks again
/// ([`ClientEvent::Reconnecting`], then [`ClientEvent::Rejoined`]); see `rejoin.rs`.
pub struct Client {
    shared: Arc<Shared>,
    event_rx: tokio::sync::Mutex<mpsc::Receiver<ClientEvent>>,
    supervisor: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// What the client and its supervisor task share: how to join again, what outlives a session, and the
/// current session.
pub(crate) struct Shared {
    entry_url: String,
    token: String,
    options: ConnectOptions,
    events: EventSink,
    chat: Arc<ChatState>,
    data: Option<data::DataQueue>,
    session: std::sync::RwLock<Arc<Session>>,
    leaving: AtomicBool,
}

impl Shared {
    pub(crate) fn session(&self) -> Arc<Session> {
        Arc::clone(
            &self
                .session
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    fn lasting(&self, announce_room: bool) -> Lasting<'_> {
        Lasting {
            events: &self.events,
            chat: &self.chat,
            data_tx: self.data.as_ref().map(|d| &d.tx),
            announce_room,
        }
    }

    fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let session = self.session();
        f.debug_struct("Client")
            .field("room", &session.joined.room.name)
            .field("participant_sid", &session.joined.participant.sid)
            .field("identity", &session.joined.participant.identity)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Opens the signaling WebSocket at `ws_url` (e.g. `ws://127.0.0.1:7880/rtc`), joins with `token`, and sets
    /// up the publisher and subscriber connections. A refused join is [`ClientError::Server`].
    pub async fn connect(
        ws_url: &str,
        token: &str,
        options: ConnectOptions,
    ) -> Result<Client, ClientError> {
        let (events, event_rx) = EventSink::new(options.event_capacity, Vec::new());
        let chat = Arc::new(ChatState::default());
        let data = options
            .data
            .then(|| data::DataQueue::new(options.data_capacity));
        let lasting = Lasting {
            events: &events,
            chat: &chat,
            data_tx: data.as_ref().map(|d| &d.tx),
            announce_room: false,
        };
        let session = Session::open(ws_url, token, &options, lasting).await?;
        let shared = Arc::new(Shared {
            entry_url: ws_url.to_owned(),
            token: token.to_owned(),
            options,
            events,
            chat,
            data,
            session: std::sync::RwLock::new(Arc::new(session)),
            leaving: AtomicBool::new(false),
        });
        let supervisor = tokio::spawn(rejoin::supervise(Arc::clone(&shared)));
        Ok(Client {
            shared,
            event_rx: tokio::sync::Mutex::new(event_rx),
            supervisor: std::sync::Mutex::new(Some(supervisor)),
        })
    }

    /// The current session (a rejoin replaces it).
    pub(crate) fn session(&self) -> Arc<Session> {
        self.shared.session()
    }

    pub(crate) fn events(&self) -> &EventSink {
        &self.shared.events
    }

    pub(crate) fn data_queue(&self) -> Option<&data::DataQueue> {
        self.shared.data.as_ref()
    }

    /// This participant's sid (a rejoin gives a new one).
    pub fn participant_sid(&self) -> String {
        self.session().joined.participant.sid.clone()
    }

    /// This participant's identity (the token's `sub`).
    pub fn identity(&self) -> String {
        self.session().joined.participant.identity.clone()
    }

    /// The room joined.
    pub fn room(&self) -> RoomInfo {
        self.session().joined.room.clone()
    }

    /// The server's `joined` answer of the current session, as it was at join time.
    pub fn joined(&self) -> JoinedResponse {
        self.session().joined.clone()
    }

    /// The other participants as currently known (from `joined`, kept up to date by room messages).
    pub fn participants(&self) -> Vec<ParticipantInfo> {
        self.shared.events.participants()
    }

    /// False once the session is over for good (see [`ClientEvent::Disconnected`]); true while rejoining.
    pub fn is_connected(&self) -> bool {
        !self.shared.events.is_disconnected()
    }

    /// Publishes a synthetic Opus track (20 ms frames, 50/s).
    pub async fn publish_audio(&self) -> Result<PublishedTrack, ClientError> {
        self.publish(PublishOptions::audio()).await
    }

    /// Publishes a synthetic VP8 track (see [`MediaOptions`]).
    pub async fn publish_video(&self) -> Result<PublishedTrack, ClientError> {
        self.publish(PublishOptions::video()).await
    }

    /// Publishes a synthetic VP8 track in three simulcast layers, `q`/`h`/`f` (see
    /// [`PublishOptions::simulcast_video`]).
    pub async fn publish_simulcast_video(&self) -> Result<PublishedTrack, ClientError> {
        self.publish(PublishOptions::simulcast_video()).await
    }

    /// Adds a synthetic track and renegotiates the publisher connection; returns once the server accepted it
    /// (media starts flowing then).
    pub async fn publish(&self, options: PublishOptions) -> Result<PublishedTrack, ClientError> {
        self.session().publisher.publish(options).await
    }

    /// Stops publishing one of this client's tracks.
    pub async fn unpublish(&self, track_sid: &str) -> Result<(), ClientError> {
        self.session().publisher.unpublish(track_sid).await
    }

    /// This client's published tracks, with what each has sent.
    pub fn published(&self) -> Vec<PublishedTrack> {
        self.session().publisher.published()
    }

    /// Mutes or unmutes one of this client's tracks (the synthetic source pauses while muted).
    pub fn set_muted(&self, track_sid: &str, muted: bool) -> Result<(), ClientError> {
        self.session().publisher.set_muted(track_sid, muted)
    }

    /// Subscribes to, or unsubscribes from, remote tracks.
    pub fn subscribe(&self, track_sids: &[String], subscribe: bool) -> Result<(), ClientError> {
        self.session().signal.send(ClientMessage::Subscribe {
            track_sids: track_sids.to_vec(),
            subscribe,
        })
    }

    /// Asks for a quality of remote video tracks (`None`: the best the server can send).
    pub fn set_quality(
        &self,
        track_sids: &[String],
        quality: Option<chorus_protocol::VideoQuality>,
    ) -> Result<(), ClientError> {
        self.session()
            .signal
            .send(ClientMessage::UpdateSubscription {
                track_sids: track_sids.to_vec(),
                quality,
                width: None,
                height: None,
                pinned: false,
            })
    }

    /// Sends any protocol message as it is (for tools and tests that need a message this API does not wrap).
    pub fn send_raw(&self, msg: ClientMessage) -> Result<(), ClientError> {
        self.session().signal.send(msg)
    }

    /// Chat in this room: send, edit, delete, typing, history (`chat.rs`). Requests go over the current
    /// session; the history outlives a rejoin (the server sends it again).
    pub fn chat(&self) -> Chat {
        Chat::new(self.session().signal.clone(), Arc::clone(&self.shared.chat))
    }

    /// Asks the server for this participant's media stats; they arrive as [`ClientEvent::Stats`].
    pub fn request_stats(&self) -> Result<(), ClientError> {
        self.session().signal.send(ClientMessage::GetStats)
    }

    /// What has been received of each remote track so far in this session (a rejoin starts afresh).
    pub fn received(&self) -> Vec<ReceivedTrackStats> {
        self.session().subscriber.remote().snapshot()
    }

    /// The next event; `None` once the session is over and every queued event has been read.
    pub async fn next_event(&self) -> Option<ClientEvent> {
        let mut rx = self.event_rx.lock().await;
        self.shared.events.recv_while_open(&mut rx).await
    }

    /// The next event if one is queued, without waiting.
    pub fn try_next_event(&self) -> Option<ClientEvent> {
        self.event_rx.try_lock().ok()?.try_recv().ok()
    }

    /// Leaves the room: sends `leave`, waits (up to 3 s) for the server to end the session, and closes both
    /// peer connections. Stops a rejoin in progress. Idempotent.
    pub async fn leave(&self) {
        if self.shared.leaving.swap(true, Ordering::AcqRel) {
            return;
        }
        let supervisor = self
            .supervisor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let session = self.session();
        if let Some(supervisor) = supervisor {
            let abort = supervisor.abort_handle();
            // The server answers `leave` with `left`; the supervisor then ends the session and reports it.
            let sent = session.signal.send(ClientMessage::Leave).is_ok();
            if !sent
                || tokio::time::timeout(Duration::from_secs(3), supervisor)
                    .await
                    .is_err()
            {
                tracing::debug!("server did not end the session in time after leave");
                abort.abort();
            }
        }
        self.shared.events.disconnected("left".to_owned());
        session.close("left").await;
    }

    /// The underlying webrtc-rs publisher connection of the current session, for inspection (stats, state).
    pub fn publisher_connection(&self) -> Arc<webrtc::peer_connection::RTCPeerConnection> {
        Arc::clone(self.session().publisher.pc())
    }

    /// The underlying webrtc-rs subscriber connection of the current session, for inspection (stats, state).
    pub fn subscriber_connection(&self) -> Arc<webrtc::peer_connection::RTCPeerConnection> {
        Arc::clone(self.session().subscriber.pc())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.leaving.store(true, Ordering::Release);
        if let Some(supervisor) = self
            .supervisor
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        {
            supervisor.abort();
        }
        self.shared.events.disconnected("client dropped".to_owned());
        self.session().abort();
    }
}

#[cfg(test)]
mod loopback_tests;
#[cfg(test)]
mod signaling_tests;
#[cfg(test)]
mod simulcast_tests;
