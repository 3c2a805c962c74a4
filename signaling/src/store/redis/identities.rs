//! Identities and token revocations in Redis: one hash each, keyed by identity id (see `mod.rs` for the keys).
//! Inserting is `HSETNX`; revoking keeps the later time in one Lua script, so concurrent revocations from several
//! nodes never lose the latest.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::{encode, malformed, RedisStore};
use crate::store::{Identity, IdentityStore, RevocationStore, StoreResult};

/// An identity as stored: its id is the hash field.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredIdentity {
    name: String,
    metadata: String,
    created_at: u64,
}

/// KEYS[1]: the revocations hash; ARGV[1]: identity; ARGV[2]: time (decimal digits). Sets the time unless the
/// stored one is later. Times are compared as digit strings (by length, then text), which is exact for any u64
/// where Lua's numbers (doubles) are not.
static REVOKE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  cur = string.match(cur, '^0*(%d+)$')
  if not cur then
    return redis.error_reply('ERR malformed revocation time of ' .. ARGV[1] .. ' in ' .. KEYS[1])
  end
end
local new = ARGV[2]
if not cur or #new > #cur or (#new == #cur and new > cur) then
  redis.call('HSET', KEYS[1], ARGV[1], new)
end
return 0
",
    )
});

impl IdentityStore for RedisStore {
    fn insert_identity(&self, identity: Identity) -> StoreResult<'_, bool> {
        Box::pin(async move {
            let stored = StoredIdentity {
                name: identity.name,
                metadata: identity.metadata,
                created_at: identity.created_at,
            };
            let json = encode(&stored)?;
            let inserted: bool = redis::cmd("HSETNX")
                .arg(self.keys.identities())
                .arg(&identity.id)
                .arg(json)
                .query_async(&mut self.conn())
                .await?;
            Ok(inserted)
        })
    }

    fn get_identity(&self, id: &str) -> StoreResult<'_, Option<Identity>> {
        let id = id.to_owned();
        Box::pin(async move {
            let key = self.keys.identities();
            let json: Option<String> = redis::cmd("HGET")
                .arg(&key)
                .arg(&id)
                .query_async(&mut self.conn())
                .await?;
            let Some(json) = json else {
                return Ok(None);
            };
            let stored: StoredIdentity = serde_json::from_str(&json)
                .map_err(|e| malformed(&format!("identity {id:?}"), &key, e))?;
            Ok(Some(Identity {
                id,
                name: stored.name,
                metadata: stored.metadata,
                created_at: stored.created_at,
            }))
        })
    }

    fn delete_identity(&self, id: &str) -> StoreResult<'_, bool> {
        let id = id.to_owned();
        Box::pin(async move {
            let removed: u64 = redis::cmd("HDEL")
                .arg(self.keys.identities())
                .arg(&id)
                .query_async(&mut self.conn())
                .await?;
            Ok(removed == 1)
        })
    }
}

impl RevocationStore for RedisStore {
    fn revoke(&self, identity: &str, at: u64) -> StoreResult<'_, ()> {
        let identity = identity.to_owned();
        Box::pin(async move {
            let _: i64 = REVOKE
                .key(self.keys.revocations())
                .arg(&identity)
                .arg(at.to_string())
                .invoke_async(&mut self.conn())
                .await?;
            Ok(())
        })
    }

    fn revoked_at(&self, identity: &str) -> StoreResult<'_, Option<u64>> {
        let identity = identity.to_owned();
        Box::pin(async move {
            let key = self.keys.revocations();
            let at: Option<String> = redis::cmd("HGET")
                .arg(&key)
                .arg(&identity)
                .query_async(&mut self.conn())
                .await?;
            at.map(|at| {
                at.parse::<u64>()
                    .map_err(|e| malformed(&format!("revocation time of {identity:?}"), &key, e))
            })
            .transpose()
        })
    }
}
