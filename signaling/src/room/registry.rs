//! Finding a room by name, creating it (pinned to a media worker) on first join, forgetting it when it closes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_protocol::{ErrorCode, ErrorMessage};
use tokio::sync::{mpsc, oneshot};

use super::actor::Room;
use super::{JoinReply, RoomMsg, RoomObserver};
use crate::ids;
use crate::store::ChatStore;

/// Settings every room needs.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    pub resume_window: Duration,
    pub ping_interval: Duration,
    /// Empty timeout of rooms created implicitly by a join (and the default for the API).
    pub empty_timeout: Duration,
    /// Chat limits and history size.
    pub chat: super::ChatSettings,
    /// The STUN/TURN servers (with fresh credentials) each join response carries.
    pub ice_servers: std::sync::Arc<crate::turn::IceServerSource>,
}

/// Per-room options, set when the room is created through the API (defaults otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomOptions {
    /// Most participants at once; 0 = no limit.
    pub max_participants: u32,
    /// How long the room stays open without participants (also after creation, before the first join).
    pub empty_timeout: Duration,
    /// Opaque application data.
    pub metadata: String,
}

/// Why `Registry::create` did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    #[error("room `{0}` already exists")]
    Exists(String),
}

#[derive(Clone)]
pub struct RoomHandle {
    pub sid: String,
    pub tx: mpsc::UnboundedSender<RoomMsg>,
}

struct Inner {
    rooms: Mutex<HashMap<String, RoomHandle>>,
    sfu: Arc<chorus_sfu::Sfu>,
    settings: RoomSettings,
    observer: Arc<dyn RoomObserver>,
    chat_store: Arc<dyn ChatStore>,
}

/// All rooms of this server.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl Registry {
    pub fn new(
        sfu: Arc<chorus_sfu::Sfu>,
        settings: RoomSettings,
        observer: Arc<dyn RoomObserver>,
        chat_store: Arc<dyn ChatStore>,
    ) -> Self {
        Registry {
            inner: Arc::new(Inner {
                rooms: Mutex::new(HashMap::new()),
                sfu,
                settings,
                observer,
                chat_store,
            }),
        }
    }

    /// The media workers rooms are pinned to (for monitoring).
    pub fn sfu(&self) -> &Arc<chorus_sfu::Sfu> {
        &self.inner.sfu
    }

    pub(super) fn chat_store(&self) -> Arc<dyn ChatStore> {
        self.inner.chat_store.clone()
    }

    pub(super) fn observer(&self) -> &dyn RoomObserver {
        self.inner.observer.as_ref()
    }

    /// Every open room, by name.
    pub fn rooms(&self) -> Vec<(String, RoomHandle)> {
        let mut rooms: Vec<_> = self
            .lock()
            .iter()
            .map(|(name, h)| (name.clone(), h.clone()))
            .collect();
        rooms.sort_by(|a, b| a.0.cmp(&b.0));
        rooms
    }

    /// Creates room `name` with `options` (the API's create); refuses if it is already open.
    pub fn create(&self, name: &str, options: RoomOptions) -> Result<RoomHandle, CreateError> {
        let mut rooms = self.lock();
        if rooms.contains_key(name) {
            return Err(CreateError::Exists(name.to_string()));
        }
        Ok(self.spawn_room(&mut rooms, name, options))
    }

    /// Sends the request `make` builds to room `name` and waits for the answer; `None` if no such room is open
    /// (or it closed before answering).
    pub async fn ask<T>(
        &self,
        name: &str,
        make: impl FnOnce(oneshot::Sender<T>) -> super::AdminMsg,
    ) -> Option<T> {
        let handle = self.get(name)?;
        let (tx, rx) = oneshot::channel();
        handle.tx.send(RoomMsg::Admin(make(tx))).ok()?;
        rx.await.ok()
    }

    /// Number of open rooms.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RoomHandle>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts/removes).
        self.inner
            .rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The open room called `name`, if any.
    pub fn get(&self, name: &str) -> Option<RoomHandle> {
        self.lock().get(name).cloned()
    }

    fn get_or_create(&self, name: &str) -> RoomHandle {
        let mut rooms = self.lock();
        if let Some(h) = rooms.get(name) {
            return h.clone();
        }
        let options = RoomOptions {
            empty_timeout: self.inner.settings.empty_timeout,
            ..RoomOptions::default()
        };
        self.spawn_room(&mut rooms, name, options)
    }

    fn spawn_room(
        &self,
        rooms: &mut HashMap<String, RoomHandle>,
        name: &str,
        options: RoomOptions,
    ) -> RoomHandle {
        let key = chorus_sfu::RoomKey(ids::next_key());
        let placement = self.inner.sfu.place_room();
        let worker = placement.index();
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = RoomHandle {
            sid: ids::sid("RM"),
            tx: tx.clone(),
        };
        let room = Room::new(
            super::RoomRef {
                name: name.to_string(),
                sid: handle.sid.clone(),
            },
            key,
            placement,
            tx,
            self.clone(),
            self.inner.settings.clone(),
            options,
        );
        tokio::spawn(room.run(rx));
        rooms.insert(name.to_string(), handle.clone());
        tracing::info!(room = name, sid = %handle.sid, worker, "room created");
        handle
    }

    /// Forget a room that is closing (only if `sid` still names it).
    pub(super) fn remove(&self, name: &str, sid: &str) {
        let mut rooms = self.lock();
        if rooms.get(name).is_some_and(|h| h.sid == sid) {
            rooms.remove(name);
        }
    }

    /// Send a join/resume built by `make` to the room called `name`, creating it if needed, and wait for the
    /// answer. Retries if the room closed in between.
    pub async fn join(
        &self,
        name: &str,
        make: impl Fn(oneshot::Sender<JoinReply>) -> RoomMsg,
        create: bool,
    ) -> Result<(RoomHandle, super::Attached), ErrorMessage> {
        for _ in 0..5 {
            let handle = if create {
                self.get_or_create(name)
            } else {
                match self.get(name) {
                    Some(h) => h,
                    None => {
                        return Err(ErrorMessage::new(
                            ErrorCode::ResumeFailed,
                            "the room no longer exists",
                        ))
                    }
                }
            };
            let (reply_tx, reply_rx) = oneshot::channel();
            if handle.tx.send(make(reply_tx)).is_err() {
                self.remove(name, &handle.sid);
                continue;
            }
            match reply_rx.await {
                Ok(JoinReply::Ok(attached)) => return Ok((handle, attached)),
                Ok(JoinReply::Refused(e)) => return Err(e),
                Ok(JoinReply::Retry) | Err(_) => {
                    self.remove(name, &handle.sid);
                    continue;
                }
            }
        }
        Err(ErrorMessage::new(
            ErrorCode::Internal,
            "the room kept closing while joining; try again",
        ))
    }
}
