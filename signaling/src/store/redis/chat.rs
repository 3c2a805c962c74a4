//! Chat history in Redis, three keys per room (see `mod.rs`): the list of message ids in order, the messages as
//! appended, and their latest edits. Each operation is one Lua script, so a history never shows half an append,
//! a trim or a delete, and an edit never revives a deleted message, whichever node writes. Deleted messages are
//! removed (no tombstones); a room whose last message goes leaves no keys behind.
//!
//! Edits are kept apart from the messages so that no script has to parse JSON (Lua's numbers would round
//! millisecond times past 2^53); the reader applies them.

use std::sync::LazyLock;

use chorus_protocol::ChatMessage;
use serde::{Deserialize, Serialize};

use super::{encode, malformed, RedisStore};
use crate::store::{ChatStore, StoreError, StoreResult};

/// A message as stored: its id is the hash field.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredMessage {
    timestamp: u64,
    identity: String,
    name: String,
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    edited_at: Option<u64>,
}

/// The latest edit of a message.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredEdit {
    text: String,
    edited_at: u64,
}

/// KEYS: ids, msgs, edits; ARGV: id, message JSON, keep. Appends, then drops the oldest beyond `keep`.
static APPEND: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return redis.error_reply('ERR chat message ' .. ARGV[1] .. ' already exists in ' .. KEYS[2])
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local keep = tonumber(ARGV[3])
while redis.call('LLEN', KEYS[1]) > keep do
  local old = redis.call('LPOP', KEYS[1])
  redis.call('HDEL', KEYS[2], old)
  redis.call('HDEL', KEYS[3], old)
end
return 0
",
    )
});

/// KEYS: msgs, edits; ARGV: id, edit JSON. 1 if the message exists (and the edit is recorded), else 0.
static EDIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
",
    )
});

/// KEYS: ids, msgs, edits; ARGV: id. 1 if the message existed (and is gone), else 0.
static DELETE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then
  return 0
end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('LREM', KEYS[1], 0, ARGV[1])
return 1
",
    )
});

/// KEYS: ids, msgs, edits; ARGV: limit. The newest `limit` messages, oldest first, as flat triples
/// `id, message JSON, edit JSON or nil`.
static HISTORY: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local n = redis.call('LLEN', KEYS[1])
local start = n - tonumber(ARGV[1])
if start < 0 then start = 0 end
local out = {}
for _, id in ipairs(redis.call('LRANGE', KEYS[1], start, -1)) do
  local msg = redis.call('HGET', KEYS[2], id)
  if msg then
    table.insert(out, id)
    table.insert(out, msg)
    table.insert(out, redis.call('HGET', KEYS[3], id))
  end
end
return out
",
    )
});

impl ChatStore for RedisStore {
    fn append_chat(&self, room: &str, message: ChatMessage, keep: usize) -> StoreResult<'_, ()> {
        let [ids, msgs, edits] = self.keys.chat(room);
        Box::pin(async move {
            let json = encode(&StoredMessage {
                timestamp: message.timestamp,
                identity: message.identity,
                name: message.name,
                text: message.text,
                edited_at: message.edited_at,
            })?;
            let _: i64 = APPEND
                .key(ids)
                .key(msgs)
                .key(edits)
                .arg(&message.id)
                .arg(json)
                .arg(keep)
                .invoke_async(&mut self.conn())
                .await?;
            Ok(())
        })
    }

    fn edit_chat(&self, room: &str, id: &str, text: &str, edited_at: u64) -> StoreResult<'_, bool> {
        let [_, msgs, edits] = self.keys.chat(room);
        let id = id.to_owned();
        let edit = encode(&StoredEdit {
            text: text.to_owned(),
            edited_at,
        });
        Box::pin(async move {
            let edited: bool = EDIT
                .key(msgs)
                .key(edits)
                .arg(&id)
                .arg(edit?)
                .invoke_async(&mut self.conn())
                .await?;
            Ok(edited)
        })
    }

    fn delete_chat(&self, room: &str, id: &str) -> StoreResult<'_, bool> {
        let [ids, msgs, edits] = self.keys.chat(room);
        let id = id.to_owned();
        Box::pin(async move {
            let deleted: bool = DELETE
                .key(ids)
                .key(msgs)
                .key(edits)
                .arg(&id)
                .invoke_async(&mut self.conn())
                .await?;
            Ok(deleted)
        })
    }

    fn chat_history(&self, room: &str, limit: usize) -> StoreResult<'_, Vec<ChatMessage>> {
        let [ids, msgs, edits] = self.keys.chat(room);
        Box::pin(async move {
            let flat: Vec<Option<String>> = HISTORY
                .key(ids)
                .key(&msgs)
                .key(&edits)
                .arg(limit)
                .invoke_async(&mut self.conn())
                .await?;
            flat.chunks(3)
                .map(|triple| decode(triple, &msgs, &edits))
                .collect()
        })
    }
}

/// One `id, message, edit` triple of the history script, the edit applied.
fn decode(triple: &[Option<String>], msgs: &str, edits: &str) -> Result<ChatMessage, StoreError> {
    let [Some(id), Some(json), edit] = triple else {
        return Err(malformed(
            "chat history reply",
            msgs,
            "not id/message/edit triples",
        ));
    };
    let stored: StoredMessage = serde_json::from_str(json)
        .map_err(|e| malformed(&format!("chat message {id:?}"), msgs, e))?;
    let mut message = ChatMessage {
        id: id.clone(),
        timestamp: stored.timestamp,
        identity: stored.identity,
        name: stored.name,
        text: stored.text,
        edited_at: stored.edited_at,
    };
    if let Some(edit) = edit {
        let edit: StoredEdit = serde_json::from_str(edit)
            .map_err(|e| malformed(&format!("edit of chat message {id:?}"), edits, e))?;
        message.text = edit.text;
        message.edited_at = Some(edit.edited_at);
    }
    Ok(message)
}
