//! The cluster on Redis (`--redis-url`): every node shares the registry, the room directory and the bus.
//!
//! Keys (prefix `chorus:`): `node:<id>` holds a node's JSON [`NodeInfo`] with a time to live and `nodes` the set
//! of ids (stale ones are pruned when read); `room:<name>` holds the owning node's id with a time to live, and
//! each write to it is one Lua script, so a claim, a takeover from a dead node or a renewal is atomic. The bus is
//! the pub/sub channel `bus` carrying JSON [`ClusterEvent`]s; a task keeps one subscription open and reconnects.

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tokio::sync::broadcast;

use super::{
    Bus, ClusterError, ClusterEvent, ClusterResult, NodeInfo, NodeRegistry, RoomDirectory,
};

/// Key prefix of everything Chorus keeps in Redis.
pub const PREFIX: &str = "chorus:";

/// Sets the room's owner if it has none or has the expected one; returns the owner afterwards.
const CLAIM: &str = r"
local cur = redis.call('GET', KEYS[1])
if (not cur) or (ARGV[2] ~= '' and cur == ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return ARGV[1]
end
return cur";

/// Extends the node's rooms (re-claiming lapsed ones); returns the 1-based indexes of rooms others own.
const RENEW: &str = r"
local lost = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if (not cur) or cur == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    table.insert(lost, i)
  end
end
return lost";

/// Deletes the room's entry if the node owns it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

fn redis_err(e: redis::RedisError) -> ClusterError {
    ClusterError::Redis(e.to_string())
}

/// The registry, directory and bus on one Redis.
pub struct RedisCluster {
    conn: ConnectionManager,
    prefix: String,
    events: broadcast::Sender<ClusterEvent>,
    subscriber: tokio::task::JoinHandle<()>,
    claim: Script,
    renew: Script,
    release: Script,
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.subscriber.abort();
    }
}

impl RedisCluster {
    /// Connects to `url` (failing within a few seconds if Redis does not answer) and subscribes to the bus.
    pub async fn connect(url: &str) -> Result<RedisCluster, ClusterError> {
        Self::connect_with_prefix(url, PREFIX).await
    }

    /// Like [`RedisCluster::connect`] with another key prefix (tests sharing one Redis).
    pub async fn connect_with_prefix(
        url: &str,
        prefix: &str,
    ) -> Result<RedisCluster, ClusterError> {
        let (client, conn) = crate::redis_conn::connect(url)
            .await
            .map_err(ClusterError::Redis)?;
        let (events, _) = broadcast::channel(256);
        let channel = format!("{prefix}bus");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let subscriber = tokio::spawn(subscribe(client, channel, events.clone(), ready_tx));
        // Events published after `connect` returns must reach this node: wait for the first subscription.
        let _ = tokio::time::timeout(crate::redis_conn::TIMEOUT, ready_rx).await;
        Ok(RedisCluster {
            conn,
            prefix: prefix.to_string(),
            events,
            subscriber,
            claim: Script::new(CLAIM),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        })
    }

    fn node_key(&self, id: &str) -> String {
        format!("{}node:{id}", self.prefix)
    }

    fn room_key(&self, room: &str) -> String {
        format!("{}room:{room}", self.prefix)
    }

    fn nodes_key(&self) -> String {
        format!("{}nodes", self.prefix)
    }
}

/// Keeps a subscription to `channel` open, forwarding events; reconnects after errors.
async fn subscribe(
    client: redis::Client,
    channel: String,
    events: broadcast::Sender<ClusterEvent>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let payload: String = match msg.get_payload() {
                            Ok(p) => p,
                            Err(e) => {
                                tracing::warn!(error = %e, "unreadable cluster bus message");
                                continue;
                            }
                        };
                        match serde_json::from_str::<ClusterEvent>(&payload) {
                            Ok(event) => {
                                let _ = events.send(event);
                            }
                            Err(e) => tracing::warn!(error = %e, "unknown cluster bus message"),
                        }
                    }
                    tracing::warn!("cluster bus subscription ended; resubscribing");
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to the cluster bus"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot connect to the cluster bus"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl NodeRegistry for RedisCluster {
    fn announce(&self, info: &NodeInfo, ttl: Duration) -> ClusterResult<'_, ()> {
        let mut conn = self.conn.clone();
        let key = self.node_key(&info.id);
        let nodes = self.nodes_key();
        let id = info.id.clone();
        let json = serde_json::to_string(info);
        async move {
            let json = json.map_err(|e| ClusterError::Malformed {
                key: key.clone(),
                reason: e.to_string(),
            })?;
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("PX")
                .arg(millis(ttl))
                .ignore()
                .sadd(&nodes, &id)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(redis_err)
        }
        .boxed()
    }

    fn nodes(&self) -> ClusterResult<'_, Vec<NodeInfo>> {
        let mut conn = self.conn.clone();
        async move {
            let ids: Vec<String> = conn.smembers(self.nodes_key()).await.map_err(redis_err)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = ids.iter().map(|id| self.node_key(id)).collect();
            let values: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .map_err(redis_err)?;
            let mut live = Vec::new();
            let mut stale = Vec::new();
            for ((id, key), value) in ids.iter().zip(&keys).zip(values) {
                match value {
                    None => stale.push(id.clone()),
                    Some(json) => match serde_json::from_str::<NodeInfo>(&json) {
                        Ok(info) => live.push(info),
                        Err(e) => tracing::warn!(key, error = %e, "malformed node record; ignored"),
                    },
                }
            }
            if !stale.is_empty() {
                let _: Result<(), _> = conn.srem(self.nodes_key(), stale).await;
            }
            live.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(live)
        }
        .boxed()
    }

    fn withdraw(&self, id: &str) -> ClusterResult<'_, ()> {
        let mut conn = self.conn.clone();
        let key = self.node_key(id);
        let id = id.to_string();
        async move {
            redis::pipe()
                .del(&key)
                .ignore()
                .srem(self.nodes_key(), &id)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(redis_err)
        }
        .boxed()
    }
}

impl RoomDirectory for RedisCluster {
    fn owner(&self, room: &str) -> ClusterResult<'_, Option<String>> {
        let mut conn = self.conn.clone();
        let key = self.room_key(room);
        async move { conn.get(key).await.map_err(redis_err) }.boxed()
    }

    fn claim(
        &self,
        room: &str,
        node: &str,
        expected: Option<&str>,
        ttl: Duration,
    ) -> ClusterResult<'_, String> {
        let mut conn = self.conn.clone();
        let mut invocation = self.claim.key(self.room_key(room));
        invocation
            .arg(node)
            .arg(expected.unwrap_or(""))
            .arg(millis(ttl));
        async move { invocation.invoke_async(&mut conn).await.map_err(redis_err) }.boxed()
    }

    fn renew(&self, rooms: &[String], node: &str, ttl: Duration) -> ClusterResult<'_, Vec<String>> {
        let mut conn = self.conn.clone();
        let mut invocation = self.renew.prepare_invoke();
        for room in rooms {
            invocation.key(self.room_key(room));
        }
        invocation.arg(node).arg(millis(ttl));
        let rooms = rooms.to_vec();
        async move {
            let lost: Vec<usize> = invocation
                .invoke_async(&mut conn)
                .await
                .map_err(redis_err)?;
            Ok(lost
                .into_iter()
                .filter_map(|i| rooms.get(i.wrapping_sub(1)).cloned())
                .collect())
        }
        .boxed()
    }

    fn release(&self, room: &str, node: &str) -> ClusterResult<'_, ()> {
        let mut conn = self.conn.clone();
        let mut invocation = self.release.key(self.room_key(room));
        invocation.arg(node);
        async move {
            invocation
                .invoke_async::<i64>(&mut conn)
                .await
                .map(|_| ())
                .map_err(redis_err)
        }
        .boxed()
    }
}

impl Bus for RedisCluster {
    fn publish(&self, event: &ClusterEvent) -> ClusterResult<'_, ()> {
        let mut conn = self.conn.clone();
        let channel = format!("{}bus", self.prefix);
        let json = serde_json::to_string(event);
        async move {
            let json = json.map_err(|e| ClusterError::Malformed {
                key: channel.clone(),
                reason: e.to_string(),
            })?;
            conn.publish::<_, _, ()>(channel, json)
                .await
                .map_err(redis_err)
        }
        .boxed()
    }

    fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.events.subscribe()
    }
}
