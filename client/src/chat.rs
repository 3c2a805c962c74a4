//! Chat for bots: [`Chat`] sends `chatSend`/`chatEdit`/`chatDelete`/`chatTyping` and awaits the server's answer
//! to each request (matched by `nonce`); [`ChatState`] keeps the room's history current from `chatHistory`,
//! `chatMessage`, `chatEdited` and `chatDeleted`, and turns each into a [`ClientEvent`].
//!
//! Owns chat only; the socket is `connection.rs`'s, the event queue `events.rs`'s.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chorus_protocol::{ChatMessage, ClientMessage, ErrorMessage, ServerMessage};
use tokio::sync::oneshot;

use crate::connection::SignalSender;
use crate::error::ClientError;
use crate::events::{ClientEvent, EventSink};

/// How long a chat request waits for the server's answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

type Reply = Result<Option<ChatMessage>, ClientError>;

#[derive(Default)]
struct Inner {
    history: Vec<ChatMessage>,
    /// Participant sid → identity of those typing now.
    typing: BTreeMap<String, String>,
    pending: HashMap<String, oneshot::Sender<Reply>>,
}

/// The room's chat as this client knows it, shared by [`Chat`] and the signaling reader.
#[derive(Default)]
pub(crate) struct ChatState {
    inner: Mutex<Inner>,
    next_nonce: AtomicU64,
}

impl ChatState {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the state consistent, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a chat message from the server, answers a waiting request, and queues the event.
    pub(crate) fn on_message(&self, msg: ServerMessage, events: &EventSink) {
        let mut inner = self.lock();
        let (event, answered) = match msg {
            ServerMessage::ChatHistory { messages } => {
                inner.history.clone_from(&messages);
                (ClientEvent::ChatHistory(messages), None)
            }
            ServerMessage::ChatMessage { message, nonce } => {
                inner.history.retain(|m| m.id != message.id);
                inner.history.push(message.clone());
                let answer = nonce.map(|n| (n, Ok(Some(message.clone()))));
                (ClientEvent::ChatMessage(message), answer)
            }
            ServerMessage::ChatEdited { message, nonce } => {
                if let Some(m) = inner.history.iter_mut().find(|m| m.id == message.id) {
                    *m = message.clone();
                }
                let answer = nonce.map(|n| (n, Ok(Some(message.clone()))));
                (ClientEvent::ChatEdited(message), answer)
            }
            ServerMessage::ChatDeleted { id, by, nonce } => {
                inner.history.retain(|m| m.id != id);
                (
                    ClientEvent::ChatDeleted { id, by },
                    nonce.map(|n| (n, Ok(None))),
                )
            }
            ServerMessage::ChatTyping {
                participant_sid,
                identity,
                typing,
            } => {
                if typing {
                    inner
                        .typing
                        .insert(participant_sid.clone(), identity.clone());
                } else {
                    inner.typing.remove(&participant_sid);
                }
                let event = ClientEvent::ChatTyping {
                    participant_sid,
                    identity,
                    typing,
                };
                (event, None)
            }
            _ => return,
        };
        if let Some((nonce, reply)) = answered {
            if let Some(waiter) = inner.pending.remove(&nonce) {
                let _ = waiter.send(reply);
            }
        }
        drop(inner);
        events.emit(event);
    }

    /// An `error` answering one of our chat requests fails that request.
    pub(crate) fn on_error(&self, err: &ErrorMessage) {
        let Some(nonce) = &err.nonce else { return };
        if let Some(waiter) = self.lock().pending.remove(nonce) {
            let _ = waiter.send(Err(err.clone().into()));
        }
    }

    /// A participant left: it no longer types.
    pub(crate) fn participant_left(&self, participant_sid: &str) {
        self.lock().typing.remove(participant_sid);
    }

    /// The session ended: every waiting request fails.
    pub(crate) fn fail_pending(&self) {
        self.lock().pending.clear();
    }
}

/// Chat in the joined room; get it from [`crate::Client::chat`].
pub struct Chat {
    signal: SignalSender,
    state: Arc<ChatState>,
}

impl Chat {
    pub(crate) fn new(signal: SignalSender, state: Arc<ChatState>) -> Chat {
        Chat { signal, state }
    }

    async fn request(
        &self,
        make: impl FnOnce(Option<String>) -> ClientMessage,
    ) -> Result<Option<ChatMessage>, ClientError> {
        let nonce = format!("n{}", self.state.next_nonce.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.state.lock().pending.insert(nonce.clone(), tx);
        if let Err(e) = self.signal.send(make(Some(nonce.clone()))) {
            self.state.lock().pending.remove(&nonce);
            return Err(e);
        }
        match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(ClientError::Disconnected(
                "the session ended before the chat answer".into(),
            )),
            Err(_) => {
                self.state.lock().pending.remove(&nonce);
                Err(ClientError::Timeout("chat answer"))
            }
        }
    }

    /// Sends a message; returns it as the server stored it (id, timestamp, sender). A refusal is
    /// [`ClientError::Server`] with a `chat_*` or `permission_denied` code.
    pub async fn send(&self, text: &str) -> Result<ChatMessage, ClientError> {
        let text = text.to_owned();
        self.request(|nonce| ClientMessage::ChatSend { text, nonce })
            .await?
            .ok_or_else(|| ClientError::Protocol("chat send answered without a message".into()))
    }

    /// Replaces the text of one of this identity's messages; returns the edited message.
    pub async fn edit(&self, id: &str, text: &str) -> Result<ChatMessage, ClientError> {
        let (id, text) = (id.to_owned(), text.to_owned());
        self.request(|nonce| ClientMessage::ChatEdit { id, text, nonce })
            .await?
            .ok_or_else(|| ClientError::Protocol("chat edit answered without a message".into()))
    }

    /// Deletes a message (one's own, or any with `roomAdmin`).
    pub async fn delete(&self, id: &str) -> Result<(), ClientError> {
        let id = id.to_owned();
        self.request(|nonce| ClientMessage::ChatDelete { id, nonce })
            .await
            .map(drop)
    }

    /// Tells the others whether this participant is typing (the server ends `true` after a few seconds).
    pub fn set_typing(&self, typing: bool) -> Result<(), ClientError> {
        self.signal.send(ClientMessage::ChatTyping { typing })
    }

    /// The room's recent messages, oldest first, as currently known (from `chatHistory` on join, kept current).
    pub fn history(&self) -> Vec<ChatMessage> {
        self.state.lock().history.clone()
    }

    /// Identities of the others typing now.
    pub fn typing(&self) -> Vec<String> {
        self.state.lock().typing.values().cloned().collect()
    }
}
