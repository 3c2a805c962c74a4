//! Finding a room by name, creating it (pinned to a media worker) on first join, forgetting it when it closes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chorus_protocol::{ErrorCode, ErrorMessage};
use tokio::sync::{mpsc, oneshot};

use super::actor::Room;
use super::{JoinReply, RoomMsg};
use crate::ids;

/// Settings every room needs.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    pub resume_window: Duration,
    pub ping_interval: Duration,
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
}

/// All rooms of this server.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl Registry {
    pub fn new(sfu: Arc<chorus_sfu::Sfu>, settings: RoomSettings) -> Self {
        Registry {
            inner: Arc::new(Inner {
                rooms: Mutex::new(HashMap::new()),
                sfu,
                settings,
            }),
        }
    }

    /// The media workers rooms are pinned to (for monitoring).
    pub fn sfu(&self) -> &Arc<chorus_sfu::Sfu> {
        &self.inner.sfu
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
        let key = chorus_sfu::RoomKey(ids::next_key());
        let worker = self.inner.sfu.worker_for(key).clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = RoomHandle {
            sid: ids::sid("RM"),
            tx: tx.clone(),
        };
        let room = Room::new(
            name.to_string(),
            handle.sid.clone(),
            key,
            worker,
            tx,
            self.clone(),
            self.inner.settings.clone(),
        );
        tokio::spawn(room.run(rx));
        rooms.insert(name.to_string(), handle.clone());
        tracing::info!(room = name, sid = %handle.sid, "room created");
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
