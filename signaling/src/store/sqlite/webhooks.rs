//! The webhook queue and its dead letters in SQLite. Per (endpoint, room) order: only the oldest row of each pair
//! is ever handed out, so a later event waits until the earlier one is delivered or dead-lettered.

use rusqlite::params;

use super::{to_i64, to_u64, SqliteStore};
use crate::store::{DeadLetter, NewDelivery, PendingDelivery, StoreResult, WebhookQueue};

/// The rows at the head of each (endpoint, room) queue.
const HEADS: &str = "SELECT min(id) FROM webhook_queue GROUP BY endpoint, room";

impl WebhookQueue for SqliteStore {
    fn enqueue(&self, deliveries: Vec<NewDelivery>, now_ms: u64) -> StoreResult<'_, ()> {
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO webhook_queue (endpoint, room, payload, next_attempt_ms, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?4)",
                )?;
                for d in &deliveries {
                    insert.execute(params![d.endpoint, d.room, d.payload, to_i64(now_ms)])?;
                }
            }
            tx.commit()
        }))
    }

    fn due(&self, now_ms: u64, limit: usize) -> StoreResult<'_, Vec<PendingDelivery>> {
        Box::pin(self.call(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT id, endpoint, room, payload, attempts FROM webhook_queue
                 WHERE id IN ({HEADS}) AND next_attempt_ms <= ?1 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![to_i64(now_ms), to_i64(limit as u64)], |row| {
                Ok(PendingDelivery {
                    id: row.get(0)?,
                    endpoint: row.get(1)?,
                    room: row.get(2)?,
                    payload: row.get(3)?,
                    attempts: u32::try_from(row.get::<_, i64>(4)?).unwrap_or(u32::MAX),
                })
            })?;
            rows.collect()
        }))
    }

    fn next_due_ms(&self) -> StoreResult<'_, Option<u64>> {
        Box::pin(self.call(move |conn| {
            let next: Option<i64> = conn.query_row(
                &format!("SELECT min(next_attempt_ms) FROM webhook_queue WHERE id IN ({HEADS})"),
                [],
                |row| row.get(0),
            )?;
            Ok(next.map(to_u64))
        }))
    }

    fn complete(&self, id: i64) -> StoreResult<'_, ()> {
        Box::pin(self.call(move |conn| {
            conn.execute("DELETE FROM webhook_queue WHERE id = ?1", params![id])?;
            Ok(())
        }))
    }

    fn retry_later(&self, id: i64, next_attempt_ms: u64, error: &str) -> StoreResult<'_, ()> {
        let error = error.to_owned();
        Box::pin(self.call(move |conn| {
            conn.execute(
                "UPDATE webhook_queue SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3
                 WHERE id = ?1",
                params![id, to_i64(next_attempt_ms), error],
            )?;
            Ok(())
        }))
    }

    fn dead_letter(&self, id: i64, now_ms: u64, error: &str) -> StoreResult<'_, ()> {
        let error = error.to_owned();
        Box::pin(self.call(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO webhook_dead_letters
                     (id, endpoint, room, payload, attempts, last_error, created_ms, failed_ms)
                 SELECT id, endpoint, room, payload, attempts + 1, ?2, created_ms, ?3
                 FROM webhook_queue WHERE id = ?1",
                params![id, error, to_i64(now_ms)],
            )?;
            tx.execute("DELETE FROM webhook_queue WHERE id = ?1", params![id])?;
            tx.commit()
        }))
    }

    fn pending(&self) -> StoreResult<'_, u64> {
        Box::pin(self.call(|conn| {
            conn.query_row("SELECT count(*) FROM webhook_queue", [], |row| {
                row.get::<_, i64>(0).map(to_u64)
            })
        }))
    }

    fn dead_letters(&self, limit: usize) -> StoreResult<'_, Vec<DeadLetter>> {
        Box::pin(self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, endpoint, room, payload, attempts, last_error, failed_ms
                 FROM webhook_dead_letters ORDER BY failed_ms DESC, id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![to_i64(limit as u64)], |row| {
                Ok(DeadLetter {
                    id: row.get(0)?,
                    endpoint: row.get(1)?,
                    room: row.get(2)?,
                    payload: row.get(3)?,
                    attempts: u32::try_from(row.get::<_, i64>(4)?).unwrap_or(u32::MAX),
                    last_error: row.get(5)?,
                    failed_at_ms: to_u64(row.get(6)?),
                })
            })?;
            rows.collect()
        }))
    }
}
