//! Chat in a room: `chatSend`/`chatEdit`/`chatDelete`/`chatTyping` from members, the history replayed after
//! `joined`/`resumed`, typing expiry, and the room's history in the store.
//!
//! The room actor owns the live history (so checks and ordering need no store round trip); every change is also
//! queued, in order, to a writer task that applies it to the [`ChatStore`]. A room loads its history from the
//! store when it opens and waits for the writer to finish when it closes, so a room that reopens (or a restarted
//! server) starts from what was said. The rules themselves are in `chat/rules.rs`; this file must not touch
//! media or membership.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chorus_protocol::{ChatMessage, ClientMessage, ServerMessage};
use chorus_sfu::ParticipantKey;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::actor::Room;
use super::member::Member;
use super::RoomMsg;
use crate::ids;
use crate::store::ChatStore;

mod rules;

use rules::{check_text, ChatError, History, Limits};
pub use rules::{
    ChatSettings, DEFAULT_HISTORY_SIZE, DEFAULT_MAX_TEXT_BYTES, DEFAULT_RATE_BURST,
    DEFAULT_RATE_PER_MINUTE, TYPING_TIMEOUT,
};

/// How long a closing room waits for its history writes to reach the store.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A change to persist, in the order the room made it.
enum Write {
    Append(ChatMessage),
    Edit { id: String, text: String, at: u64 },
    Delete(String),
}

/// A room's chat state.
pub struct ChatRoom {
    settings: ChatSettings,
    store: Arc<dyn ChatStore>,
    history: History,
    writes: Option<mpsc::UnboundedSender<Write>>,
    writer: Option<JoinHandle<()>>,
    /// Rate limits by identity, so that rejoining does not reset them (forgotten once idle and gone).
    limits: HashMap<String, Limits>,
    /// Members typing now, with the generation of their expiry timer.
    typing: HashMap<ParticipantKey, u64>,
    typing_generation: u64,
}

impl ChatRoom {
    pub fn new(store: Arc<dyn ChatStore>, settings: ChatSettings) -> ChatRoom {
        ChatRoom {
            history: History::new(settings.history_size, Vec::new()),
            settings,
            store,
            writes: None,
            writer: None,
            limits: HashMap::new(),
            typing: HashMap::new(),
            typing_generation: 0,
        }
    }

    fn persist(&self, write: Write) {
        if let Some(tx) = &self.writes {
            let _ = tx.send(write);
        }
    }

    fn limits(&mut self, identity: &str) -> &mut Limits {
        let settings = &self.settings;
        self.limits
            .entry(identity.to_owned())
            .or_insert_with(|| Limits::new(settings, Instant::now()))
    }
}

async fn write_loop(
    store: Arc<dyn ChatStore>,
    room: String,
    keep: usize,
    mut rx: mpsc::UnboundedReceiver<Write>,
) {
    while let Some(write) = rx.recv().await {
        let result = match write {
            Write::Append(message) => store.append_chat(&room, message, keep).await,
            Write::Edit { id, text, at } => store.edit_chat(&room, &id, &text, at).await.map(drop),
            Write::Delete(id) => store.delete_chat(&room, &id).await.map(drop),
        };
        if let Err(e) = result {
            tracing::warn!(room = %room, error = %e, "cannot store a chat change");
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Room {
    /// Loads the room's history from the store and starts the writer. Called once, before the first message.
    pub(super) async fn start_chat(&mut self) {
        let keep = self.chat.settings.history_size;
        match self.chat.store.chat_history(&self.name, keep).await {
            Ok(messages) => self.chat.history = History::new(keep, messages),
            Err(e) => {
                tracing::warn!(room = %self.name, error = %e, "cannot load chat history; starting empty")
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(
            self.chat.store.clone(),
            self.name.clone(),
            keep,
            rx,
        ));
        self.chat.writes = Some(tx);
        self.chat.writer = Some(writer);
    }

    /// Waits (a bounded time) until every chat change has reached the store. Called when the room closes.
    pub(super) async fn stop_chat(&mut self) {
        self.chat.writes = None;
        if let Some(writer) = self.chat.writer.take() {
            if tokio::time::timeout(FLUSH_TIMEOUT, writer).await.is_err() {
                tracing::warn!(room = %self.name, "chat history writes still pending at close");
            }
        }
    }

    /// The history as it is now (for the server API).
    pub(super) fn chat_history(&self) -> Vec<ChatMessage> {
        self.chat.history.messages()
    }

    /// Sends the history to `member`: after `joined` when there is any (so clients that never chat see no
    /// change), and always after `resumed` (it replaces what the client had, which may be stale).
    pub(super) fn send_chat_history(&self, member: &Member, resumed: bool) {
        if !resumed && self.chat.history.is_empty() {
            return;
        }
        member.send(ServerMessage::ChatHistory {
            messages: self.chat.history.messages(),
        });
    }

    /// A chat request from member `key`; anything else is ignored.
    pub(super) fn chat_request(&mut self, key: ParticipantKey, msg: ClientMessage) {
        let (result, nonce) = match msg {
            ClientMessage::ChatSend { text, nonce } => (self.chat_send(key, text, &nonce), nonce),
            ClientMessage::ChatEdit { id, text, nonce } => {
                (self.chat_edit(key, &id, text, &nonce), nonce)
            }
            ClientMessage::ChatDelete { id, nonce } => (self.chat_delete(key, id, &nonce), nonce),
            ClientMessage::ChatTyping { typing } => (self.chat_typing(key, typing), None),
            _ => return,
        };
        if let (Err(e), Some(member)) = (result, self.members.get(&key)) {
            tracing::debug!(room = %self.name, participant = %member.sid, error = %e, "chat request refused");
            member.send(ServerMessage::Error(e.to_message(nonce)));
        }
    }

    /// Sends `msg` to everyone but `key`, and to `key` with its `nonce`.
    fn chat_fan_out(&self, key: ParticipantKey, msg: ServerMessage, nonce: &Option<String>) {
        let own = match (&msg, nonce) {
            (_, None) => msg.clone(),
            (ServerMessage::ChatMessage { message, .. }, Some(n)) => ServerMessage::ChatMessage {
                message: message.clone(),
                nonce: Some(n.clone()),
            },
            (ServerMessage::ChatEdited { message, .. }, Some(n)) => ServerMessage::ChatEdited {
                message: message.clone(),
                nonce: Some(n.clone()),
            },
            (ServerMessage::ChatDeleted { id, by, .. }, Some(n)) => ServerMessage::ChatDeleted {
                id: id.clone(),
                by: by.clone(),
                nonce: Some(n.clone()),
            },
            _ => msg.clone(),
        };
        self.broadcast(key, msg);
        if let Some(m) = self.members.get(&key) {
            m.send(own);
        }
    }

    /// The member's identity, name, and whether it may chat / administers the room.
    fn chatter(&self, key: ParticipantKey) -> Option<(String, String, bool, bool)> {
        self.members.get(&key).map(|m| {
            (
                m.identity.clone(),
                m.name.clone(),
                m.grants.can_chat && m.visible(),
                m.grants.room_admin,
            )
        })
    }

    fn chat_send(
        &mut self,
        key: ParticipantKey,
        text: String,
        nonce: &Option<String>,
    ) -> Result<(), ChatError> {
        let (identity, name, can_chat, _) = self.chatter(key).ok_or(ChatError::NotAllowed)?;
        if !can_chat {
            return Err(ChatError::NotAllowed);
        }
        check_text(&text, self.chat.settings.max_text_bytes)?;
        self.chat.limits(&identity).message(Instant::now())?;
        let message = ChatMessage {
            id: ids::sid("CM"),
            timestamp: now_ms(),
            identity,
            name,
            text,
            edited_at: None,
        };
        self.chat.history.push(message.clone());
        self.chat.persist(Write::Append(message.clone()));
        self.set_typing(key, false);
        self.chat_fan_out(
            key,
            ServerMessage::ChatMessage {
                message,
                nonce: None,
            },
            nonce,
        );
        Ok(())
    }

    fn chat_edit(
        &mut self,
        key: ParticipantKey,
        id: &str,
        text: String,
        nonce: &Option<String>,
    ) -> Result<(), ChatError> {
        let (identity, _, can_chat, _) = self.chatter(key).ok_or(ChatError::NotAllowed)?;
        if !can_chat {
            return Err(ChatError::NotAllowed);
        }
        check_text(&text, self.chat.settings.max_text_bytes)?;
        self.chat.limits(&identity).message(Instant::now())?;
        let message = self.chat.history.edit(id, &identity, text, now_ms())?;
        self.chat.persist(Write::Edit {
            id: message.id.clone(),
            text: message.text.clone(),
            at: message.edited_at.unwrap_or_default(),
        });
        self.chat_fan_out(
            key,
            ServerMessage::ChatEdited {
                message,
                nonce: None,
            },
            nonce,
        );
        Ok(())
    }

    fn chat_delete(
        &mut self,
        key: ParticipantKey,
        id: String,
        nonce: &Option<String>,
    ) -> Result<(), ChatError> {
        let (identity, _, can_chat, admin) = self.chatter(key).ok_or(ChatError::NotAllowed)?;
        if !can_chat && !admin {
            return Err(ChatError::NotAllowed);
        }
        self.chat.history.check_delete(&id, &identity, admin)?;
        self.chat.limits(&identity).message(Instant::now())?;
        self.chat.history.remove(&id);
        self.chat.persist(Write::Delete(id.clone()));
        self.chat_fan_out(
            key,
            ServerMessage::ChatDeleted {
                id,
                by: identity,
                nonce: None,
            },
            nonce,
        );
        Ok(())
    }

    fn chat_typing(&mut self, key: ParticipantKey, typing: bool) -> Result<(), ChatError> {
        let (identity, _, can_chat, _) = self.chatter(key).ok_or(ChatError::NotAllowed)?;
        if !can_chat {
            return Err(ChatError::NotAllowed);
        }
        if self.chat.limits(&identity).typing(Instant::now()) {
            self.set_typing(key, typing);
        }
        Ok(())
    }

    /// Records member `key` as typing or not, tells the others when that changes, and (re)arms the expiry of a
    /// `typing: true`.
    fn set_typing(&mut self, key: ParticipantKey, typing: bool) {
        let was = if typing {
            self.chat.typing_generation += 1;
            let generation = self.chat.typing_generation;
            let tx = self.self_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(TYPING_TIMEOUT).await;
                let _ = tx.send(RoomMsg::ChatTypingExpired {
                    participant: key,
                    generation,
                });
            });
            self.chat.typing.insert(key, generation).is_some()
        } else {
            self.chat.typing.remove(&key).is_some()
        };
        if was != typing {
            if let Some(m) = self.members.get(&key).filter(|m| m.visible()) {
                self.broadcast(
                    key,
                    ServerMessage::ChatTyping {
                        participant_sid: m.sid.clone(),
                        identity: m.identity.clone(),
                        typing,
                    },
                );
            }
        }
    }

    /// A `typing: true` was not renewed in time.
    pub(super) fn chat_typing_expired(&mut self, key: ParticipantKey, generation: u64) {
        if self.chat.typing.get(&key) == Some(&generation) {
            self.set_typing(key, false);
        }
    }

    /// `member` left (already removed from the room): the others stop seeing it type; idle limits are forgotten.
    pub(super) fn chat_member_left(&mut self, member: &Member) {
        if self.chat.typing.remove(&member.key).is_some() && member.visible() {
            self.broadcast(
                member.key,
                ServerMessage::ChatTyping {
                    participant_sid: member.sid.clone(),
                    identity: member.identity.clone(),
                    typing: false,
                },
            );
        }
        let now = Instant::now();
        let present: Vec<&str> = self.members.values().map(|m| m.identity.as_str()).collect();
        self.chat.limits.retain(|identity, limits| {
            present.contains(&identity.as_str()) || !limits.is_idle(now)
        });
    }
}
