//! Identities and token revocations in SQLite.

use rusqlite::{params, OptionalExtension};

use super::{to_i64, to_u64, SqliteStore};
use crate::store::{Identity, IdentityStore, RevocationStore, StoreResult};

impl IdentityStore for SqliteStore {
    fn insert_identity(&self, identity: Identity) -> StoreResult<'_, bool> {
        Box::pin(self.call(move |conn| {
            let n = conn.execute(
                "INSERT INTO identities (id, name, metadata, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO NOTHING",
                params![
                    identity.id,
                    identity.name,
                    identity.metadata,
                    to_i64(identity.created_at)
                ],
            )?;
            Ok(n == 1)
        }))
    }

    fn get_identity(&self, id: &str) -> StoreResult<'_, Option<Identity>> {
        let id = id.to_owned();
        Box::pin(self.call(move |conn| {
            conn.query_row(
                "SELECT id, name, metadata, created_at FROM identities WHERE id = ?1",
                params![id],
                |row| {
                    Ok(Identity {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        metadata: row.get(2)?,
                        created_at: to_u64(row.get(3)?),
                    })
                },
            )
            .optional()
        }))
    }

    fn delete_identity(&self, id: &str) -> StoreResult<'_, bool> {
        let id = id.to_owned();
        Box::pin(self.call(move |conn| {
            Ok(conn.execute("DELETE FROM identities WHERE id = ?1", params![id])? == 1)
        }))
    }
}

impl RevocationStore for SqliteStore {
    fn revoke(&self, identity: &str, at: u64) -> StoreResult<'_, ()> {
        let identity = identity.to_owned();
        Box::pin(self.call(move |conn| {
            conn.execute(
                "INSERT INTO revocations (identity, revoked_at) VALUES (?1, ?2)
                 ON CONFLICT (identity) DO UPDATE SET revoked_at = max(revoked_at, excluded.revoked_at)",
                params![identity, to_i64(at)],
            )?;
            Ok(())
        }))
    }

    fn revoked_at(&self, identity: &str) -> StoreResult<'_, Option<u64>> {
        let identity = identity.to_owned();
        Box::pin(self.call(move |conn| {
            conn.query_row(
                "SELECT revoked_at FROM revocations WHERE identity = ?1",
                params![identity],
                |row| row.get::<_, i64>(0).map(to_u64),
            )
            .optional()
        }))
    }
}
