//! Application data for bots: the `reliable` and `lossy` data channels on the publisher connection, the
//! envelope (`chorus_protocol::data`), [`Client::send_data`] and [`Client::next_data`].
//!
//! Received messages wait in a bounded queue. A bot that stops calling [`Client::next_data`] stops reading
//! its channels once the queue is full, exactly like a slow browser: the server then disconnects it rather than
//! buffer without bound (`docs/protocol.md`, "Data").
//!
//! webrtc-rs reads data-channel messages into a 65,535-byte buffer, so this client cannot receive messages
//! bigger than that (the server's reliable limit is 64 KiB plus the envelope); browsers can.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chorus_protocol::data::{IncomingData, OutgoingData};
use chorus_protocol::DataChannelKind;
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::data_channel_init::RTCDataChannelInit;
use webrtc::data_channel::data_channel_message::DataChannelMessage;
use webrtc::data_channel::RTCDataChannel;
use webrtc::peer_connection::RTCPeerConnection;

use crate::session::Session;
use crate::{Client, ClientError};

/// A data message from another participant (or the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMessage {
    /// The sender's identity as the server stamped it; `None` when the server itself sent the message.
    pub from: Option<String>,
    /// Empty when the sender gave none.
    pub topic: String,
    pub payload: Bytes,
    /// The sender sent text (UTF-8).
    pub text: bool,
    /// Arrived on the reliable channel (else the lossy one).
    pub reliable: bool,
}

/// How to send one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOptions {
    /// The ordered, reliable channel (default) or the unordered one without retransmissions.
    pub reliable: bool,
    /// Identities to deliver to; empty (default) means everyone else in the room.
    pub to: Vec<String>,
    pub topic: String,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            reliable: true,
            to: Vec::new(),
            topic: String::new(),
        }
    }
}

impl SendOptions {
    pub fn lossy() -> Self {
        SendOptions {
            reliable: false,
            ..SendOptions::default()
        }
    }
}

/// How far the two channels are from usable: open here, and confirmed by the server's `dataReady`.
#[derive(Debug, Clone, Copy, Default)]
struct Readiness {
    /// How many of the two are open on this side.
    local: usize,
    /// Which the server has confirmed (`dataReady`).
    server_reliable: bool,
    server_lossy: bool,
}

impl Readiness {
    fn usable(&self) -> bool {
        self.local >= 2 && self.server_reliable && self.server_lossy
    }
}

/// Where the reader of signaling messages reports `dataReady`.
#[derive(Clone)]
pub(crate) struct DataReadySink(Arc<watch::Sender<Readiness>>);

impl DataReadySink {
    pub(crate) fn server_ready(&self, channel: DataChannelKind) {
        self.0.send_modify(|r| match channel {
            DataChannelKind::Reliable => r.server_reliable = true,
            DataChannelKind::Lossy => r.server_lossy = true,
        });
    }
}

/// The two channels of one session. What they receive goes to the client's queue (`tx`), which outlives
/// sessions.
pub(crate) struct DataChannels {
    reliable: Arc<RTCDataChannel>,
    lossy: Arc<RTCDataChannel>,
    readiness: Arc<watch::Sender<Readiness>>,
}

impl DataChannels {
    /// Creates both channels on `pc` (before its first offer); received messages go to `tx` (bounded: a full
    /// queue stops the channels being read).
    pub(crate) async fn create(
        pc: &RTCPeerConnection,
        tx: mpsc::Sender<DataMessage>,
    ) -> Result<DataChannels, ClientError> {
        let reliable = pc
            .create_data_channel(
                "reliable",
                Some(RTCDataChannelInit {
                    ordered: Some(true),
                    ..Default::default()
                }),
            )
            .await?;
        let lossy = pc
            .create_data_channel(
                "lossy",
                Some(RTCDataChannelInit {
                    ordered: Some(false),
                    max_retransmits: Some(0),
                    ..Default::default()
                }),
            )
            .await?;
        let readiness = Arc::new(watch::Sender::new(Readiness::default()));
        for (channel, is_reliable) in [(&reliable, true), (&lossy, false)] {
            let opened = Arc::clone(&readiness);
            channel.on_open(Box::new(move || {
                opened.send_modify(|r| r.local += 1);
                Box::pin(async {})
            }));
            let tx = tx.clone();
            channel.on_message(Box::new(move |msg: DataChannelMessage| {
                let tx = tx.clone();
                Box::pin(async move {
                    let Some(message) = decode(&msg.data, is_reliable) else {
                        tracing::warn!("ignoring a malformed data message");
                        return;
                    };
                    // Waits while the queue is full: the channel stops being read (backpressure).
                    let _ = tx.send(message).await;
                })
            }));
        }
        Ok(DataChannels {
            reliable,
            lossy,
            readiness,
        })
    }

    fn channel(&self, reliable: bool) -> &Arc<RTCDataChannel> {
        if reliable {
            &self.reliable
        } else {
            &self.lossy
        }
    }

    pub(crate) fn ready_sink(&self) -> DataReadySink {
        DataReadySink(Arc::clone(&self.readiness))
    }

    /// Waits until both channels are open here and the server has confirmed both.
    async fn wait_open(&self, timeout: Duration) -> Result<(), ClientError> {
        let mut readiness = self.readiness.subscribe();
        tokio::time::timeout(timeout, readiness.wait_for(Readiness::usable))
            .await
            .map_err(|_| ClientError::Timeout("data channels to open"))?
            .map_err(|_| ClientError::Disconnected("data channels closed".into()))?;
        Ok(())
    }
}

fn decode(frame: &[u8], reliable: bool) -> Option<DataMessage> {
    let m = IncomingData::decode(frame).ok()?;
    Some(DataMessage {
        from: m.from.map(str::to_owned),
        topic: m.topic.to_owned(),
        payload: Bytes::copy_from_slice(m.payload),
        text: m.text,
        reliable,
    })
}

/// How long `send_data` waits for the channels to open.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

impl Client {
    /// The current session, if this client has data channels.
    fn data_session(&self) -> Result<Arc<Session>, ClientError> {
        if self.data_queue().is_none() {
            return Err(ClientError::Protocol(
                "data channels are off (ConnectOptions::data)".into(),
            ));
        }
        Ok(self.session())
    }

    /// Waits until both data channels are open and the server has confirmed them (at most `timeout`): from
    /// then on, every message others send reaches this client.
    pub async fn wait_data_open(&self, timeout: Duration) -> Result<(), ClientError> {
        let session = self.data_session()?;
        channels(&session)?.wait_open(timeout).await
    }

    /// Sends binary data to everyone else in the room (or `options.to`), waiting for the channels to open first.
    /// Refusals by the server (size, rate, permission) arrive as [`crate::ClientEvent::Error`].
    pub async fn send_data(
        &self,
        payload: &[u8],
        options: &SendOptions,
    ) -> Result<(), ClientError> {
        self.send_envelope(payload, false, options).await
    }

    /// Sends UTF-8 text, which browsers receive as a string.
    pub async fn send_text(&self, text: &str, options: &SendOptions) -> Result<(), ClientError> {
        self.send_envelope(text.as_bytes(), true, options).await
    }

    async fn send_envelope(
        &self,
        payload: &[u8],
        text: bool,
        options: &SendOptions,
    ) -> Result<(), ClientError> {
        let session = self.data_session()?;
        let data = channels(&session)?;
        let channel = data.channel(options.reliable);
        if !data.readiness.borrow().usable() {
            data.wait_open(OPEN_TIMEOUT).await?;
        }
        let mut frame = Vec::with_capacity(payload.len() + options.topic.len() + 8);
        OutgoingData {
            text,
            topic: &options.topic,
            to: options.to.iter().map(String::as_str).collect(),
            payload,
        }
        .encode(&mut frame);
        channel.send(&Bytes::from(frame)).await?;
        Ok(())
    }

    /// The next data message (of any session: the queue outlives a rejoin); `None` once the client is
    /// disconnected and nothing is queued.
    pub async fn next_data(&self) -> Option<DataMessage> {
        let queue = self.data_queue()?;
        let mut rx = queue.rx.lock().await;
        self.events().recv_while_open(&mut rx).await
    }

    /// The next data message if one is queued, without waiting.
    pub fn try_next_data(&self) -> Option<DataMessage> {
        self.data_queue()?.rx.try_lock().ok()?.try_recv().ok()
    }

    /// Bytes queued on a data channel and not yet sent.
    pub async fn data_buffered_amount(&self, reliable: bool) -> usize {
        match &self.session().data {
            Some(d) => d.channel(reliable).buffered_amount().await,
            None => 0,
        }
    }
}

fn channels(session: &Session) -> Result<&DataChannels, ClientError> {
    session
        .data
        .as_ref()
        .ok_or_else(|| ClientError::Protocol("data channels are off (ConnectOptions::data)".into()))
}

/// The client's queue of received data messages, fed by every session's channels.
pub(crate) struct DataQueue {
    pub(crate) tx: mpsc::Sender<DataMessage>,
    rx: tokio::sync::Mutex<mpsc::Receiver<DataMessage>>,
}

impl DataQueue {
    pub(crate) fn new(capacity: usize) -> DataQueue {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        DataQueue {
            tx,
            rx: tokio::sync::Mutex::new(rx),
        }
    }
}
