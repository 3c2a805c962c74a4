//! [`ClientEvent`]s and the client's view of the room (who else is there, with which tracks).
//!
//! The signaling loop feeds room messages in; this file keeps the participant list current and queues one event
//! per message. The queue is bounded so that a load tester that never reads events does not grow without limit:
//! when it is full, new events are dropped (and counted in a log line).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chorus_protocol::{ErrorCode, ErrorMessage, ParticipantInfo, ServerMessage, TrackInfo};
use tokio::sync::{mpsc, watch};
use tracing::warn;

/// Something that happened in the room or to the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// Another participant joined.
    ParticipantJoined(ParticipantInfo),
    /// A participant left (`reason` as the server gave it).
    ParticipantLeft {
        participant_sid: String,
        reason: String,
    },
    /// A participant published a track.
    TrackPublished {
        participant_sid: String,
        track: TrackInfo,
    },
    /// A participant stopped publishing a track.
    TrackUnpublished {
        participant_sid: String,
        track_sid: String,
    },
    /// A participant muted or unmuted a track.
    TrackMuted {
        participant_sid: String,
        track_sid: String,
        muted: bool,
    },
    /// Media of a remote track started arriving on the subscriber connection.
    TrackSubscribed {
        participant_sid: String,
        track_sid: String,
        mid: String,
    },
    /// Forwarding of a remote track to us was paused for bandwidth, or resumed.
    StreamState { track_sid: String, paused: bool },
    /// Dynacast: the server asked us to send only `layers` (rids) of our simulcast track `track_sid`, or
    /// nothing when not `enabled`; the client has applied it (a track sent as one encoding ignores it).
    PublishLayers {
        track_sid: String,
        enabled: bool,
        layers: Vec<String>,
    },
    /// Who is talking in the room now, loudest first (empty: nobody); see `activeSpeakers` in the protocol.
    ActiveSpeakers(Vec<chorus_protocol::SpeakerInfo>),
    /// The answer to [`crate::Client::request_stats`]: our subscriptions' simulcast state.
    Stats(chorus_protocol::ParticipantStats),
    /// The room's chat history, sent right after joining (replaces what [`crate::Chat::history`] had).
    ChatHistory(Vec<chorus_protocol::ChatMessage>),
    /// A new chat message (our own included).
    ChatMessage(chorus_protocol::ChatMessage),
    /// A chat message was edited; the message as it is now.
    ChatEdited(chorus_protocol::ChatMessage),
    /// A chat message was deleted by the identity `by`.
    ChatDeleted { id: String, by: String },
    /// Another participant started or stopped typing.
    ChatTyping {
        participant_sid: String,
        identity: String,
        typing: bool,
    },
    /// The server reported an error (non-fatal ones leave the session running).
    Error {
        code: ErrorCode,
        message: String,
        fatal: bool,
    },
    /// The connection to the server was lost (closed, failed or silent); the client is joining again (see
    /// [`crate::ConnectOptions::rejoin_window`]). Remote media stops until [`ClientEvent::Rejoined`].
    Reconnecting { reason: String },
    /// The client joined again as a new session (its node may have died and the room moved): new participant
    /// sid, every track published again, remote participants brought up to date by `ParticipantLeft` /
    /// `ParticipantJoined` events. Receive counters ([`crate::Client::received`]) start afresh.
    Rejoined { participant_sid: String },
    /// The session is over: `leave`, a `left` from the server, a fatal error, or a network failure that joining
    /// again did not repair. Last event.
    Disconnected { reason: String },
}

/// Shared by the signaling loop and the peer connections; cheap to clone.
#[derive(Clone)]
pub(crate) struct EventSink {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<ClientEvent>,
    participants: Mutex<BTreeMap<String, ParticipantInfo>>,
    disconnected: AtomicBool,
    /// Flips to true after `Disconnected` is queued, so waiting readers can stop.
    closed: watch::Sender<bool>,
    dropped: AtomicU64,
}

impl EventSink {
    pub(crate) fn new(
        capacity: usize,
        others: Vec<ParticipantInfo>,
    ) -> (Self, mpsc::Receiver<ClientEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let participants = others.into_iter().map(|p| (p.sid.clone(), p)).collect();
        let inner = Inner {
            tx,
            participants: Mutex::new(participants),
            disconnected: AtomicBool::new(false),
            closed: watch::Sender::new(false),
            dropped: AtomicU64::new(0),
        };
        (
            EventSink {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    /// The other participants as this client currently knows them.
    pub(crate) fn participants(&self) -> Vec<ParticipantInfo> {
        self.room().values().cloned().collect()
    }

    /// Replaces the view of the room with `others` (from `joined`). With `announce` (a rejoin), emits
    /// `ParticipantLeft` for those gone (`reason` "left while reconnecting") and `ParticipantJoined` for the
    /// new ones; a first join announces nothing.
    pub(crate) fn replace_room(&self, others: Vec<ParticipantInfo>, announce: bool) {
        let events = {
            let mut room = self.room();
            let old = std::mem::replace(
                &mut *room,
                others.into_iter().map(|p| (p.sid.clone(), p)).collect(),
            );
            let joined: Vec<_> = room
                .values()
                .filter(|p| !old.contains_key(&p.sid))
                .cloned()
                .map(ClientEvent::ParticipantJoined)
                .collect();
            let left =
                old.into_keys()
                    .filter(|sid| !room.contains_key(sid))
                    .map(|participant_sid| ClientEvent::ParticipantLeft {
                        participant_sid,
                        reason: "left while reconnecting".to_owned(),
                    });
            left.chain(joined).collect::<Vec<_>>()
        };
        if announce {
            for event in events {
                self.emit(event);
            }
        }
    }

    pub(crate) fn is_disconnected(&self) -> bool {
        self.inner.disconnected.load(Ordering::Acquire)
    }

    /// Applies a room message (participant/track changes) and queues the matching event.
    pub(crate) fn room_message(&self, msg: ServerMessage) {
        let event = {
            let mut room = self.room();
            match msg {
                ServerMessage::ParticipantJoined { participant } => {
                    room.insert(participant.sid.clone(), participant.clone());
                    ClientEvent::ParticipantJoined(participant)
                }
                ServerMessage::ParticipantLeft {
                    participant_sid,
                    reason,
                } => {
                    room.remove(&participant_sid);
                    ClientEvent::ParticipantLeft {
                        participant_sid,
                        reason,
                    }
                }
                ServerMessage::TrackPublished {
                    participant_sid,
                    track,
                } => {
                    if let Some(p) = room.get_mut(&participant_sid) {
                        p.tracks.retain(|t| t.sid != track.sid);
                        p.tracks.push(track.clone());
                    }
                    ClientEvent::TrackPublished {
                        participant_sid,
                        track,
                    }
                }
                ServerMessage::TrackUnpublished {
                    participant_sid,
                    track_sid,
                } => {
                    if let Some(p) = room.get_mut(&participant_sid) {
                        p.tracks.retain(|t| t.sid != track_sid);
                    }
                    ClientEvent::TrackUnpublished {
                        participant_sid,
                        track_sid,
                    }
                }
                ServerMessage::TrackMuted {
                    participant_sid,
                    track_sid,
                    muted,
                } => {
                    if let Some(t) = room
                        .get_mut(&participant_sid)
                        .and_then(|p| p.tracks.iter_mut().find(|t| t.sid == track_sid))
                    {
                        t.muted = muted;
                    }
                    ClientEvent::TrackMuted {
                        participant_sid,
                        track_sid,
                        muted,
                    }
                }
                ServerMessage::StreamState {
                    track_sid, paused, ..
                } => ClientEvent::StreamState { track_sid, paused },
                ServerMessage::Stats(stats) => ClientEvent::Stats(stats),
                ServerMessage::PublishLayers {
                    track_sid,
                    enabled,
                    layers,
                } => ClientEvent::PublishLayers {
                    track_sid,
                    enabled,
                    layers,
                },
                ServerMessage::ActiveSpeakers { speakers } => ClientEvent::ActiveSpeakers(speakers),
                _ => return,
            }
        };
        self.emit(event);
    }

    pub(crate) fn error(&self, err: ErrorMessage) {
        self.emit(ClientEvent::Error {
            code: err.code,
            message: err.message,
            fatal: err.fatal,
        });
    }

    /// Queues `Disconnected` the first time only.
    pub(crate) fn disconnected(&self, reason: String) {
        if !self.inner.disconnected.swap(true, Ordering::AcqRel) {
            self.emit_inner(ClientEvent::Disconnected { reason });
            self.inner.closed.send_replace(true);
        }
    }

    /// Becomes true once the session is over and `Disconnected` has been queued.
    pub(crate) fn closed(&self) -> watch::Receiver<bool> {
        self.inner.closed.subscribe()
    }

    /// The next item of `rx`, waiting while the session lasts; once it is over, only what is already queued.
    pub(crate) async fn recv_while_open<T>(&self, rx: &mut mpsc::Receiver<T>) -> Option<T> {
        if let Ok(item) = rx.try_recv() {
            return Some(item);
        }
        let mut closed = self.closed();
        tokio::select! {
            item = rx.recv() => item,
            _ = closed.wait_for(|closed| *closed) => rx.try_recv().ok(),
        }
    }

    pub(crate) fn emit(&self, event: ClientEvent) {
        if self.is_disconnected() {
            return;
        }
        self.emit_inner(event);
    }

    fn emit_inner(&self, event: ClientEvent) {
        if let Err(mpsc::error::TrySendError::Full(event)) = self.inner.tx.try_send(event) {
            let dropped = self.inner.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            warn!(dropped, ?event, "event queue full; event dropped");
        }
    }

    fn room(&self) -> MutexGuard<'_, BTreeMap<String, ParticipantInfo>> {
        // The map is always left consistent, so a poisoned lock is still usable.
        self.inner
            .participants
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
