//! The store: small traits per concern (identities, revocations, the webhook queue, chat history) and a [`Store`]
//! bundle the server holds. SQLite (`sqlite/`) is the default implementation, a file under the data directory or in
//! memory for tests. In a cluster, Redis (`redis/`) holds identities, revocations and chat history, shared by every
//! node, while each node keeps its webhook queue in its own SQLite ([`Store::open_redis`]).
//!
//! Owns the persistent records and nothing else: no HTTP, no rooms. Every method is async and never blocks the
//! runtime (the SQLite implementation runs on its own thread).

use std::path::Path;
use std::sync::Arc;

use chorus_protocol::ChatMessage;
use futures_util::future::BoxFuture;

mod redis;
mod sqlite;

#[cfg(test)]
mod tests;

pub use self::redis::{RedisStore, DEFAULT_PREFIX as DEFAULT_REDIS_PREFIX};
pub use sqlite::SqliteStore;

/// File name of the SQLite database inside the data directory.
pub const DB_FILE: &str = "chorus.db";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("the database schema is version {found}, newer than this server knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the store has stopped")]
    Closed,
    /// Redis failed, refused, did not answer in time, or holds a value this server cannot read. The message never
    /// contains the password of the Redis URL.
    #[error("Redis: {0}")]
    Redis(String),
}

pub type StoreResult<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// A user of the application, created through `POST /v1/identities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub name: String,
    pub metadata: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
}

/// Identities (user management).
pub trait IdentityStore: Send + Sync {
    /// Inserts `identity`; `false` (and no change) if one with its id exists.
    fn insert_identity(&self, identity: Identity) -> StoreResult<'_, bool>;
    fn get_identity(&self, id: &str) -> StoreResult<'_, Option<Identity>>;
    /// Deletes the identity; `false` if there was none.
    fn delete_identity(&self, id: &str) -> StoreResult<'_, bool>;
}

/// Token revocations: every token of an identity issued at or before `revoked_at` is invalid.
pub trait RevocationStore: Send + Sync {
    /// Records a revocation at `at` (seconds since the epoch); an earlier one is superseded, a later one kept.
    fn revoke(&self, identity: &str, at: u64) -> StoreResult<'_, ()>;
    /// The latest revocation of `identity`, if any.
    fn revoked_at(&self, identity: &str) -> StoreResult<'_, Option<u64>>;
}

/// An event to deliver to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub endpoint: String,
    /// Deliveries with the same endpoint and room go out one at a time, in insertion order.
    pub room: String,
    /// The request body (a CloudEvent, JSON).
    pub payload: String,
}

/// A queued delivery, as handed to the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelivery {
    pub id: i64,
    pub endpoint: String,
    pub room: String,
    pub payload: String,
    /// Attempts made so far.
    pub attempts: u32,
}

/// A delivery given up after its last attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub endpoint: String,
    pub room: String,
    pub payload: String,
    pub attempts: u32,
    pub last_error: String,
    /// Milliseconds since the Unix epoch.
    pub failed_at_ms: u64,
}

/// The durable webhook queue: at-least-once delivery, per (endpoint, room) order, dead letters.
pub trait WebhookQueue: Send + Sync {
    /// Appends deliveries (in order), due at once.
    fn enqueue(&self, deliveries: Vec<NewDelivery>, now_ms: u64) -> StoreResult<'_, ()>;
    /// The oldest delivery of each (endpoint, room) whose next attempt is due at `now_ms`, oldest first.
    fn due(&self, now_ms: u64, limit: usize) -> StoreResult<'_, Vec<PendingDelivery>>;
    /// When the earliest queue head becomes due (milliseconds since the epoch); `None` when the queue is empty.
    fn next_due_ms(&self) -> StoreResult<'_, Option<u64>>;
    /// The delivery succeeded: forget it.
    fn complete(&self, id: i64) -> StoreResult<'_, ()>;
    /// The attempt failed: count it and schedule the next one.
    fn retry_later(&self, id: i64, next_attempt_ms: u64, error: &str) -> StoreResult<'_, ()>;
    /// The last attempt failed: move the delivery to the dead letters.
    fn dead_letter(&self, id: i64, now_ms: u64, error: &str) -> StoreResult<'_, ()>;
    /// Deliveries waiting (including ones waiting for a retry).
    fn pending(&self) -> StoreResult<'_, u64>;
    /// The most recent dead letters, newest first.
    fn dead_letters(&self, limit: usize) -> StoreResult<'_, Vec<DeadLetter>>;
}

/// Chat history per room: the newest messages, with edits applied; deleted messages are gone (no tombstones).
/// The room actor is the only writer of an open room's history and keeps its own copy; this is what a room
/// starts from (also after a restart) and what the server API reads.
pub trait ChatStore: Send + Sync {
    /// Appends `message` to `room`'s history, then keeps only the room's newest `keep` messages.
    fn append_chat(&self, room: &str, message: ChatMessage, keep: usize) -> StoreResult<'_, ()>;
    /// Replaces a message's text and sets its `edited_at`; `false` if the room has no such message.
    fn edit_chat(&self, room: &str, id: &str, text: &str, edited_at: u64) -> StoreResult<'_, bool>;
    /// Deletes a message; `false` if the room has no such message.
    fn delete_chat(&self, room: &str, id: &str) -> StoreResult<'_, bool>;
    /// The newest `limit` messages of `room`, oldest first.
    fn chat_history(&self, room: &str, limit: usize) -> StoreResult<'_, Vec<ChatMessage>>;
}

/// Everything the server persists, one trait object per concern.
#[derive(Clone)]
pub struct Store {
    pub identities: Arc<dyn IdentityStore>,
    pub revocations: Arc<dyn RevocationStore>,
    pub webhooks: Arc<dyn WebhookQueue>,
    pub chat: Arc<dyn ChatStore>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// SQLite in `data_dir` (created if missing), or in memory when `None`.
    pub async fn open_sqlite(data_dir: Option<&Path>) -> Result<Store, StoreError> {
        let db = match data_dir {
            Some(dir) => SqliteStore::open(&dir.join(DB_FILE)).await?,
            None => SqliteStore::open_in_memory().await?,
        };
        Ok(Store::from_sqlite(db))
    }

    /// Identities, revocations and chat history in the Redis at `url` (under the `chorus:` prefix); the webhook
    /// queue in `sqlite_for_webhooks`, this node's own. Fails within about 5 s if Redis does not answer.
    pub async fn open_redis(
        url: &str,
        sqlite_for_webhooks: SqliteStore,
    ) -> Result<Store, StoreError> {
        Ok(Store::from_redis(
            RedisStore::connect(url).await?,
            sqlite_for_webhooks,
        ))
    }

    /// Like [`Store::open_redis`], with a connection made beforehand (e.g. under another key prefix).
    pub fn from_redis(shared: RedisStore, sqlite_for_webhooks: SqliteStore) -> Store {
        let shared = Arc::new(shared);
        Store {
            identities: shared.clone(),
            revocations: shared.clone(),
            webhooks: Arc::new(sqlite_for_webhooks),
            chat: shared,
        }
    }

    pub fn from_sqlite(db: SqliteStore) -> Store {
        let db = Arc::new(db);
        Store {
            identities: db.clone(),
            revocations: db.clone(),
            webhooks: db.clone(),
            chat: db,
        }
    }
}
