//! Redis implementation of the shared store traits (identities, revocations, chat history), so that every node of
//! a cluster (`--redis-url`) sees the same records. The webhook queue is not here: each node delivers the events it
//! produced from its own SQLite queue.
//!
//! This file owns the connection (a [`ConnectionManager`], which reconnects by itself), the key names and the
//! error mapping. Files: `identities.rs` (identities and revocations), `chat.rs` (chat history). Every write that
//! reads before it writes is one Lua script, so it is atomic however many nodes write at once.
//!
//! Keys, all under a prefix (`chorus:` by default; tests use their own):
//! - `<prefix>identities`: hash, identity id → JSON `{"name","metadata","createdAt"}`.
//! - `<prefix>revocations`: hash, identity id → revocation time (decimal seconds since the epoch).
//! - `<prefix>chat:ids:<room>`: list of the room's message ids, oldest first.
//! - `<prefix>chat:msgs:<room>`: hash, message id → JSON of the message as appended.
//! - `<prefix>chat:edits:<room>`: hash, message id → JSON `{"text","editedAt"}` of its latest edit.
//!
//! User-chosen names (room) only ever end a key name, and ids are hash fields, so no two rooms share a key.

use redis::aio::ConnectionManager;

use super::StoreError;

mod chat;
mod identities;

/// The key prefix of a production cluster.
pub const DEFAULT_PREFIX: &str = "chorus:";

/// A connection to the shared Redis; cheap to clone (the connection is multiplexed).
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    keys: Keys,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.keys.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[user:password@]host:port/db`) with the default key prefix.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        Self::connect_with_prefix(url, DEFAULT_PREFIX).await
    }

    /// Connects to `url` and names every key `<prefix>…`. Fails within about 5 s if Redis does not answer (see
    /// [`crate::redis_conn::connect`]).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        let (_, conn) = crate::redis_conn::connect(url)
            .await
            .map_err(StoreError::Redis)?;
        Ok(RedisStore {
            conn,
            keys: Keys {
                prefix: prefix.to_owned(),
            },
        })
    }

    /// A handle to the multiplexed connection for one call.
    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// Key names under one prefix.
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn identities(&self) -> String {
        format!("{}identities", self.prefix)
    }

    fn revocations(&self) -> String {
        format!("{}revocations", self.prefix)
    }

    /// The list of ids, the messages and the edits of `room`.
    fn chat(&self, room: &str) -> [String; 3] {
        let p = &self.prefix;
        [
            format!("{p}chat:ids:{room}"),
            format!("{p}chat:msgs:{room}"),
            format!("{p}chat:edits:{room}"),
        ]
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Redis(e.to_string())
    }
}

/// A stored value this server cannot read (written by something else, or corrupted).
fn malformed(what: &str, key: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Redis(format!("malformed {what} in {key}: {e}"))
}

/// A record as the JSON stored in Redis.
fn encode(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Redis(format!("cannot encode a record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_end_their_keys() {
        let keys = Keys {
            prefix: "chorus:".into(),
        };
        assert_eq!(keys.identities(), "chorus:identities");
        assert_eq!(
            keys.chat("a:b"),
            [
                "chorus:chat:ids:a:b",
                "chorus:chat:msgs:a:b",
                "chorus:chat:edits:a:b"
            ]
        );
    }
}
