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

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::StoreError;

mod chat;
mod identities;

/// The key prefix of a production cluster.
pub const DEFAULT_PREFIX: &str = "chorus:";

/// How long connecting (and each later command) may take before it fails.
const TIMEOUT: Duration = Duration::from_secs(5);

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

    /// Connects to `url` and names every key `<prefix>…`. Fails within about 5 s if Redis does not answer.
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        let shown = redact(url);
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Redis(format!("invalid URL {shown}: {}", scrub(url, &e))))?;
        // After a lost connection, the next command reconnects: up to 3 more attempts, at most about 1 s apart, so
        // a restarting Redis is ridden out and a gone one fails commands within seconds. Connecting and each
        // answer may take up to TIMEOUT.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            .set_factor(2)
            .set_max_delay(1000)
            .set_number_of_retries(3);
        let connect = async {
            // One plain attempt first, so that a refused or wrong connection fails at once, not after the retries.
            let probe_config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(TIMEOUT)
                .set_response_timeout(TIMEOUT);
            let mut probe = client
                .get_multiplexed_async_connection_with_config(&probe_config)
                .await?;
            redis::cmd("PING").query_async::<String>(&mut probe).await?;
            ConnectionManager::new_with_config(client, config).await
        };
        let conn = match tokio::time::timeout(TIMEOUT, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(StoreError::Redis(format!(
                    "cannot connect to {shown}: {}",
                    scrub(url, &e)
                )))
            }
            Err(_) => {
                return Err(StoreError::Redis(format!(
                    "no answer from {shown} within {} s",
                    TIMEOUT.as_secs()
                )))
            }
        };
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

/// `url` with its password replaced, fit for logs and errors.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(an unparsable URL)".to_owned(),
    }
}

/// `e` as text, without the password of `url` should the error quote it.
fn scrub(url: &str, e: &redis::RedisError) -> String {
    let text = e.to_string();
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    {
        Some(password) if !password.is_empty() => text.replace(&password, "***"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redact("redis://user:s3cret@example.com:6379/0"),
            "redis://user:***@example.com:6379/0"
        );
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact("not a url s3cret"), "(an unparsable URL)");
    }

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
