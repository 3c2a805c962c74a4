//! One session in a room: the signaling WebSocket after `joined`, the publisher and subscriber connections, the
//! data channels, and the tasks serving them. A [`crate::Client`] has one session at a time; when a session is
//! lost and the client joins again (`rejoin.rs`), a new one replaces it.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_protocol::JoinedResponse;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::chat::ChatState;
use crate::connection::{self, Dispatcher, SessionEnd, SignalSender};
use crate::data::{DataChannels, DataMessage};
use crate::error::ClientError;
use crate::events::EventSink;
use crate::publisher::Publisher;
use crate::subscriber::Subscriber;
use crate::{peer, ConnectOptions};

/// What outlives a session: the client's event stream, chat state and data queue.
pub(crate) struct Lasting<'a> {
    pub events: &'a EventSink,
    pub chat: &'a Arc<ChatState>,
    /// Where both data channels deliver; `None` without data channels.
    pub data_tx: Option<&'a mpsc::Sender<DataMessage>>,
    /// Whether differences between the old view of the room and the new `joined` are events (a rejoin) or
    /// not (a first join).
    pub announce_room: bool,
}

pub(crate) struct Session {
    pub joined: JoinedResponse,
    pub signal: SignalSender,
    pub publisher: Arc<Publisher>,
    pub subscriber: Arc<Subscriber>,
    pub data: Option<DataChannels>,
    /// Ends with the signaling; taken by whoever waits for the end (the client's supervisor or `leave`).
    reader: Mutex<Option<JoinHandle<SessionEnd>>>,
    writer: JoinHandle<()>,
}

impl Session {
    /// Opens the WebSocket at `ws_url` (following redirects), joins with `token`, and sets up both peer
    /// connections and (with `options.data`) the data channels, which go out in a first offer of their own.
    pub(crate) async fn open(
        ws_url: &str,
        token: &str,
        options: &ConnectOptions,
        lasting: Lasting<'_>,
    ) -> Result<Session, ClientError> {
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
            let data = match lasting.data_tx {
                Some(tx) => Some(DataChannels::create(&publisher_pc, tx.clone()).await?),
                None => None,
            };
            Ok::<_, ClientError>((publisher_pc, subscriber_pc, data))
        };
        let (publisher_pc, subscriber_pc, data) = match peers.await {
            Ok(built) => built,
            Err(err) => {
                writer.abort();
                return Err(err);
            }
        };
        let media_connected = Arc::new(AtomicBool::new(false));
        peer::watch_state(&publisher_pc, "publisher", Arc::clone(&media_connected));
        peer::watch_state(&subscriber_pc, "subscriber", Arc::clone(&media_connected));

        let publisher = Arc::new(Publisher::new(
            publisher_pc,
            signal.clone(),
            options.media.clone(),
            joined.participant.sid.clone(),
            options.negotiation_timeout,
        ));
        let subscriber = Arc::new(Subscriber::new(
            subscriber_pc,
            signal.clone(),
            lasting.events.clone(),
        ));
        // Before the reader starts, so that room messages of this session apply on top of its `joined`.
        lasting
            .events
            .replace_room(joined.participants.clone(), lasting.announce_room);
        let dispatcher = Dispatcher {
            publisher: Arc::clone(&publisher),
            subscriber: Arc::clone(&subscriber),
            events: lasting.events.clone(),
            chat: Arc::clone(lasting.chat),
            data_ready: data.as_ref().map(DataChannels::ready_sink),
            media_connected,
        };
        let reader = tokio::spawn(connection::read_loop(reader, dispatcher, ping_interval));
        tracing::debug!(
            room = %joined.room.name,
            participant_sid = %joined.participant.sid,
            others = joined.participants.len(),
            "joined"
        );
        let session = Session {
            joined,
            signal,
            publisher,
            subscriber,
            data,
            reader: Mutex::new(Some(reader)),
            writer,
        };
        if session.data.is_some() {
            // A client that publishes nothing still connects its publisher connection this way.
            if let Err(err) = session.publisher.renegotiate().await {
                session.close("negotiating the data channels failed").await;
                return Err(err);
            }
        }
        Ok(session)
    }

    /// The signaling reader, once: await it for how the session ended.
    pub(crate) fn take_reader(&self) -> Option<JoinHandle<SessionEnd>> {
        self.reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    /// Ends the session here: fails pending negotiations, stops the synthetic sources, closes both
    /// connections and the WebSocket. Idempotent.
    pub(crate) async fn close(&self, reason: &str) {
        if let Some(reader) = self.take_reader() {
            reader.abort();
        }
        self.publisher
            .fail_pending(ClientError::Disconnected(reason.to_owned()));
        self.publisher.close().await;
        self.subscriber.close().await;
        self.writer.abort();
    }

    /// Stops the tasks without waiting (for `Drop`); the connections close in the background if a runtime
    /// is there.
    pub(crate) fn abort(&self) {
        self.writer.abort();
        if let Some(reader) = self.take_reader() {
            reader.abort();
        }
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
