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
//! in `peer.rs`; synthetic media in `media.rs`; receive counters in `stats.rs`; events and the room view in
//! `events.rs`.

mod chat;
mod connection;
mod data;
mod error;
mod events;
mod histogram;
pub mod media;
mod peer;
mod publisher;
mod stats;
mod subscriber;

use std::sync::Arc;
use std::time::Duration;

pub use chat::Chat;
pub use chorus_protocol::ChatMessage;
pub use chorus_protocol::{
    ErrorCode, JoinedResponse, ParticipantInfo, RoomInfo, TrackInfo, TrackKind, TrackSource,
};
pub use data::{DataMessage, SendOptions};
pub use error::ClientError;
pub use events::ClientEvent;
pub use histogram::LatencyHistogram;
pub use media::MediaOptions;
pub use publisher::{PublishOptions, PublishedTrack};
pub use stats::ReceivedTrackStats;

use chat::ChatState;
use chorus_protocol::ClientMessage;
use connection::{Dispatcher, SignalSender};
use events::EventSink;
use publisher::Publisher;
use subscriber::Subscriber;
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
        }
    }
}

/// A participant in a Chorus room. Dropping it ends the session without `leave` (the server then keeps the
/// participant for its resume window); call [`Client::leave`] to leave cleanly.
pub struct Client {
    joined: JoinedResponse,
    signal: SignalSender,
    publisher: Arc<Publisher>,
    subscriber: Arc<Subscriber>,
    events: EventSink,
    chat: Chat,
    event_rx: tokio::sync::Mutex<mpsc::Receiver<ClientEvent>>,
    data: Option<data::DataChannels>,
    reader: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    writer: JoinHandle<()>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("room", &self.joined.room.name)
            .field("participant_sid", &self.joined.participant.sid)
            .field("identity", &self.joined.participant.identity)
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
        let (ws, joined) = connection::join(
            ws_url,
            token,
            options.auto_subscribe,
            options.connect_timeout,
        )
        .await?;
        if joined.protocol != chorus_protocol::PROTOCOL_VERSION {
            tracing::warn!(
                server = joined.protocol,
                client = chorus_protocol::PROTOCOL_VERSION,
                "protocol version mismatch"
            );
        }
        let ping_interval = Duration::from_secs(match joined.ping_interval_secs {
            0 => 10,
            secs => secs,
        });
        let (signal, reader, writer) = connection::start_writer(ws, ping_interval);
        let peers = async {
            let publisher_api = peer::build_api(chorus_protocol::PcTarget::Publisher)?;
            let subscriber_api = peer::build_api(chorus_protocol::PcTarget::Subscriber)?;
            let publisher_pc =
                peer::new_peer_connection(&publisher_api, &joined.ice_servers).await?;
            let subscriber_pc =
                peer::new_peer_connection(&subscriber_api, &joined.ice_servers).await?;
            Ok::<_, ClientError>((publisher_pc, subscriber_pc))
        };
        let (publisher_pc, subscriber_pc) = match peers.await {
            Ok(pcs) => pcs,
            Err(err) => {
                writer.abort();
                return Err(err);
            }
        };
        let data = if options.data {
            match data::DataChannels::create(&publisher_pc, options.data_capacity).await {
                Ok(d) => Some(d),
                Err(err) => {
                    writer.abort();
                    return Err(err);
                }
            }
        } else {
            None
        };
        peer::log_state_changes(&publisher_pc, "publisher");
        peer::log_state_changes(&subscriber_pc, "subscriber");

        let (events, event_rx) =
            EventSink::new(options.event_capacity, joined.participants.clone());
        let publisher = Arc::new(Publisher::new(
            publisher_pc,
            signal.clone(),
            options.media,
            joined.participant.sid.clone(),
            options.negotiation_timeout,
        ));
        let subscriber = Arc::new(Subscriber::new(
            subscriber_pc,
            signal.clone(),
            events.clone(),
        ));
        let chat_state = Arc::new(ChatState::default());
        let dispatcher = Dispatcher {
            publisher: Arc::clone(&publisher),
            subscriber: Arc::clone(&subscriber),
            events: events.clone(),
            chat: Arc::clone(&chat_state),
            data_ready: data.as_ref().map(data::DataChannels::ready_sink),
        };
        let reader = tokio::spawn(async move {
            let publisher = Arc::clone(&dispatcher.publisher);
            let subscriber = Arc::clone(&dispatcher.subscriber);
            connection::read_loop(reader, dispatcher, ping_interval).await;
            publisher.close().await;
            subscriber.close().await;
        });
        tracing::debug!(
            room = %joined.room.name,
            participant_sid = %joined.participant.sid,
            others = joined.participants.len(),
            "joined"
        );
        let chat = Chat::new(signal.clone(), chat_state);
        let client = Client {
            joined,
            signal,
            publisher,
            subscriber,
            events,
            chat,
            event_rx: tokio::sync::Mutex::new(event_rx),
            data,
            reader: tokio::sync::Mutex::new(Some(reader)),
            writer,
        };
        if client.data.is_some() {
            // The data channels go out in a first offer of their own, so a client that publishes nothing
            // still connects its publisher connection.
            client.publisher.renegotiate().await?;
        }
        Ok(client)
    }

    /// This participant's sid.
    pub fn participant_sid(&self) -> &str {
        &self.joined.participant.sid
    }

    /// This participant's identity (the token's `sub`).
    pub fn identity(&self) -> &str {
        &self.joined.participant.identity
    }

    /// The room joined.
    pub fn room(&self) -> &RoomInfo {
        &self.joined.room
    }

    /// The server's `joined` answer, as it was at join time.
    pub fn joined(&self) -> &JoinedResponse {
        &self.joined
    }

    /// The other participants as currently known (from `joined`, kept up to date by room messages).
    pub fn participants(&self) -> Vec<ParticipantInfo> {
        self.events.participants()
    }

    /// False once the session is over (see [`ClientEvent::Disconnected`]).
    pub fn is_connected(&self) -> bool {
        !self.events.is_disconnected()
    }

    /// Publishes a synthetic Opus track (20 ms frames, 50/s).
    pub async fn publish_audio(&self) -> Result<PublishedTrack, ClientError> {
        self.publish(PublishOptions::audio()).await
    }

    /// Publishes a synthetic VP8 track (see [`MediaOptions`]).
    pub async fn publish_video(&self) -> Result<PublishedTrack, ClientError> {
        self.publish(PublishOptions::video()).await
    }

    /// Adds a synthetic track and renegotiates the publisher connection; returns once the server accepted it
    /// (media starts flowing then).
    pub async fn publish(&self, options: PublishOptions) -> Result<PublishedTrack, ClientError> {
        self.publisher.publish(options).await
    }

    /// Stops publishing one of this client's tracks.
    pub async fn unpublish(&self, track_sid: &str) -> Result<(), ClientError> {
        self.publisher.unpublish(track_sid).await
    }

    /// This client's published tracks, with what each has sent.
    pub fn published(&self) -> Vec<PublishedTrack> {
        self.publisher.published()
    }

    /// Mutes or unmutes one of this client's tracks (the synthetic source pauses while muted).
    pub fn set_muted(&self, track_sid: &str, muted: bool) -> Result<(), ClientError> {
        self.publisher.set_muted(track_sid, muted)
    }

    /// Subscribes to, or unsubscribes from, remote tracks.
    pub fn subscribe(&self, track_sids: &[String], subscribe: bool) -> Result<(), ClientError> {
        self.signal.send(ClientMessage::Subscribe {
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
        self.signal.send(ClientMessage::UpdateSubscription {
            track_sids: track_sids.to_vec(),
            quality,
            width: None,
            height: None,
            pinned: false,
        })
    }

    /// Sends any protocol message as it is (for tools and tests that need a message this API does not wrap).
    pub fn send_raw(&self, msg: ClientMessage) -> Result<(), ClientError> {
        self.signal.send(msg)
    }

    /// Chat in this room: send, edit, delete, typing, history (`chat.rs`).
    pub fn chat(&self) -> &Chat {
        &self.chat
    }

    /// Asks the server for this participant's media stats; they arrive as [`ClientEvent::Stats`].
    pub fn request_stats(&self) -> Result<(), ClientError> {
        self.signal.send(ClientMessage::GetStats)
    }

    /// What has been received of each remote track so far.
    pub fn received(&self) -> Vec<ReceivedTrackStats> {
        self.subscriber.remote().snapshot()
    }

    /// The next event; `None` once the session is over and every queued event has been read.
    pub async fn next_event(&self) -> Option<ClientEvent> {
        let mut rx = self.event_rx.lock().await;
        self.events.recv_while_open(&mut rx).await
    }

    /// The next event if one is queued, without waiting.
    pub fn try_next_event(&self) -> Option<ClientEvent> {
        self.event_rx.try_lock().ok()?.try_recv().ok()
    }

    /// Leaves the room: sends `leave`, waits (up to 3 s) for the server to end the session, and closes both
    /// peer connections. Idempotent.
    pub async fn leave(&self) {
        let Some(reader) = self.reader.lock().await.take() else {
            return;
        };
        if self.signal.send(ClientMessage::Leave).is_ok() {
            let abort = reader.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), reader)
                .await
                .is_err()
            {
                tracing::debug!("server did not end the session in time after leave");
                abort.abort();
            }
        } else {
            reader.abort();
        }
        self.events.disconnected("left".to_owned());
        self.publisher
            .fail_pending(ClientError::Disconnected("left".to_owned()));
        self.publisher.close().await;
        self.subscriber.close().await;
        self.writer.abort();
    }

    /// The underlying webrtc-rs publisher connection, for inspection (stats, state).
    pub fn publisher_connection(&self) -> &Arc<webrtc::peer_connection::RTCPeerConnection> {
        self.publisher.pc()
    }

    /// The underlying webrtc-rs subscriber connection, for inspection (stats, state).
    pub fn subscriber_connection(&self) -> &Arc<webrtc::peer_connection::RTCPeerConnection> {
        self.subscriber.pc()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.writer.abort();
        if let Ok(mut reader) = self.reader.try_lock() {
            if let Some(reader) = reader.take() {
                reader.abort();
            }
        }
        self.events.disconnected("client dropped".to_owned());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let publisher = Arc::clone(&self.publisher);
            let subscriber = Arc::clone(&self.subscriber);
            runtime.spawn(async move {
                publisher.close().await;
                subscriber.close().await;
            });
        }
    }
}

#[cfg(test)]
mod loopback_tests;
#[cfg(test)]
mod signaling_tests;
