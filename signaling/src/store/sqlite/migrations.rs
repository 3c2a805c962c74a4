//! Schema migrations: an ordered list of SQL scripts; `PRAGMA user_version` records how many have run. Append new
//! migrations at the end; never edit one that has shipped.

use rusqlite::Connection;

use crate::store::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: identities, revocations, the webhook queue and its dead letters.
    "CREATE TABLE identities (
         id TEXT PRIMARY KEY NOT NULL,
         name TEXT NOT NULL,
         metadata TEXT NOT NULL,
         created_at INTEGER NOT NULL
     );
     CREATE TABLE revocations (
         identity TEXT PRIMARY KEY NOT NULL,
         revoked_at INTEGER NOT NULL
     );
     CREATE TABLE webhook_queue (
         id INTEGER PRIMARY KEY AUTOINCREMENT,
         endpoint TEXT NOT NULL,
         room TEXT NOT NULL,
         payload TEXT NOT NULL,
         attempts INTEGER NOT NULL DEFAULT 0,
         next_attempt_ms INTEGER NOT NULL,
         last_error TEXT,
         created_ms INTEGER NOT NULL
     );
     CREATE INDEX webhook_queue_by_key ON webhook_queue (endpoint, room, id);
     CREATE TABLE webhook_dead_letters (
         id INTEGER PRIMARY KEY NOT NULL,
         endpoint TEXT NOT NULL,
         room TEXT NOT NULL,
         payload TEXT NOT NULL,
         attempts INTEGER NOT NULL,
         last_error TEXT NOT NULL,
         created_ms INTEGER NOT NULL,
         failed_ms INTEGER NOT NULL
     );",
    // 2: chat history, the newest messages of each room in `seq` order (see `chat.rs`).
    "CREATE TABLE chat_messages (
         seq INTEGER PRIMARY KEY AUTOINCREMENT,
         room TEXT NOT NULL,
         id TEXT NOT NULL UNIQUE,
         timestamp_ms INTEGER NOT NULL,
         identity TEXT NOT NULL,
         name TEXT NOT NULL,
         text TEXT NOT NULL,
         edited_ms INTEGER
     );
     CREATE INDEX chat_messages_by_room ON chat_messages (room, seq);",
];

/// The schema version this server writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Runs every migration the database has not seen, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "store schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_schemas() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("first run");
        migrate(&mut conn).expect("second run is a no-op");
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(v, SCHEMA_VERSION);
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        assert!(matches!(
            migrate(&mut conn),
            Err(StoreError::SchemaTooNew { .. })
        ));
    }
}
