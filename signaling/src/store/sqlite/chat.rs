//! Chat history in SQLite: one row per live message, ordered by an autoincrement `seq`; each append trims the
//! room to its newest messages. Deleted messages are removed (no tombstones).

use chorus_protocol::ChatMessage;
use rusqlite::{params, Row};

use super::{to_i64, to_u64, SqliteStore};
use crate::store::{ChatStore, StoreResult};

fn message(row: &Row<'_>) -> rusqlite::Result<ChatMessage> {
    Ok(ChatMessage {
        id: row.get(0)?,
        timestamp: to_u64(row.get(1)?),
        identity: row.get(2)?,
        name: row.get(3)?,
        text: row.get(4)?,
        edited_at: row.get::<_, Option<i64>>(5)?.map(to_u64),
    })
}

impl ChatStore for SqliteStore {
    fn append_chat(&self, room: &str, message: ChatMessage, keep: usize) -> StoreResult<'_, ()> {
        let room = room.to_owned();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO chat_messages (room, id, timestamp_ms, identity, name, text, edited_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    room,
                    message.id,
                    to_i64(message.timestamp),
                    message.identity,
                    message.name,
                    message.text,
                    message.edited_at.map(to_i64)
                ],
            )?;
            // Everything at or below the (keep+1)-th newest goes; nothing when the room has fewer.
            tx.execute(
                "DELETE FROM chat_messages WHERE room = ?1 AND seq <= (
                     SELECT seq FROM chat_messages WHERE room = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                params![room, to_i64(keep as u64)],
            )?;
            tx.commit()
        }))
    }

    fn edit_chat(&self, room: &str, id: &str, text: &str, edited_at: u64) -> StoreResult<'_, bool> {
        let (room, id, text) = (room.to_owned(), id.to_owned(), text.to_owned());
        Box::pin(self.call(move |conn| {
            let n = conn.execute(
                "UPDATE chat_messages SET text = ?3, edited_ms = ?4 WHERE room = ?1 AND id = ?2",
                params![room, id, text, to_i64(edited_at)],
            )?;
            Ok(n == 1)
        }))
    }

    fn delete_chat(&self, room: &str, id: &str) -> StoreResult<'_, bool> {
        let (room, id) = (room.to_owned(), id.to_owned());
        Box::pin(self.call(move |conn| {
            let n = conn.execute(
                "DELETE FROM chat_messages WHERE room = ?1 AND id = ?2",
                params![room, id],
            )?;
            Ok(n == 1)
        }))
    }

    fn chat_history(&self, room: &str, limit: usize) -> StoreResult<'_, Vec<ChatMessage>> {
        let room = room.to_owned();
        Box::pin(self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, timestamp_ms, identity, name, text, edited_ms FROM (
                     SELECT * FROM chat_messages WHERE room = ?1 ORDER BY seq DESC LIMIT ?2)
                 ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![room, to_i64(limit as u64)], message)?;
            rows.collect()
        }))
    }
}
