//! The in-process cluster: the registry, directory and bus of a node on its own (the default, no Redis). Same
//! semantics as the Redis implementation, time to live included, so a single node behaves like a cluster of one.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::broadcast;

use super::{Bus, ClusterEvent, ClusterResult, NodeInfo, NodeRegistry, RoomDirectory};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single map operation: a panic cannot leave the map half-updated.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Live nodes in this process (normally just this one).
#[derive(Default)]
pub struct LocalRegistry {
    nodes: Mutex<HashMap<String, (NodeInfo, Instant)>>,
}

impl NodeRegistry for LocalRegistry {
    fn announce(&self, info: &NodeInfo, ttl: Duration) -> ClusterResult<'_, ()> {
        let expires = Instant::now() + ttl;
        lock(&self.nodes).insert(info.id.clone(), (info.clone(), expires));
        async { Ok(()) }.boxed()
    }

    fn nodes(&self) -> ClusterResult<'_, Vec<NodeInfo>> {
        let now = Instant::now();
        let mut nodes = lock(&self.nodes);
        nodes.retain(|_, (_, expires)| *expires > now);
        let mut live: Vec<NodeInfo> = nodes.values().map(|(info, _)| info.clone()).collect();
        live.sort_by(|a, b| a.id.cmp(&b.id));
        async move { Ok(live) }.boxed()
    }

    fn withdraw(&self, id: &str) -> ClusterResult<'_, ()> {
        lock(&self.nodes).remove(id);
        async { Ok(()) }.boxed()
    }
}

/// Room owners in this process.
#[derive(Default)]
pub struct LocalDirectory {
    rooms: Mutex<HashMap<String, (String, Instant)>>,
}

impl LocalDirectory {
    fn live_owner(rooms: &HashMap<String, (String, Instant)>, room: &str) -> Option<String> {
        rooms
            .get(room)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(node, _)| node.clone())
    }
}

impl RoomDirectory for LocalDirectory {
    fn owner(&self, room: &str) -> ClusterResult<'_, Option<String>> {
        let owner = Self::live_owner(&lock(&self.rooms), room);
        async move { Ok(owner) }.boxed()
    }

    fn claim(
        &self,
        room: &str,
        node: &str,
        expected: Option<&str>,
        ttl: Duration,
    ) -> ClusterResult<'_, String> {
        let mut rooms = lock(&self.rooms);
        let current = Self::live_owner(&rooms, room);
        let owner = if current.is_none() || current.as_deref() == expected {
            rooms.insert(room.to_string(), (node.to_string(), Instant::now() + ttl));
            node.to_string()
        } else {
            current.unwrap_or_default()
        };
        async move { Ok(owner) }.boxed()
    }

    fn renew(&self, names: &[String], node: &str, ttl: Duration) -> ClusterResult<'_, Vec<String>> {
        let mut rooms = lock(&self.rooms);
        let expires = Instant::now() + ttl;
        let mut lost = Vec::new();
        for name in names {
            match Self::live_owner(&rooms, name) {
                Some(other) if other != node => lost.push(name.clone()),
                _ => {
                    rooms.insert(name.clone(), (node.to_string(), expires));
                }
            }
        }
        async move { Ok(lost) }.boxed()
    }

    fn release(&self, room: &str, node: &str) -> ClusterResult<'_, ()> {
        let mut rooms = lock(&self.rooms);
        if rooms.get(room).is_some_and(|(owner, _)| owner == node) {
            rooms.remove(room);
        }
        async { Ok(()) }.boxed()
    }
}

/// The bus of a node on its own: events go back to this node's subscribers.
pub struct LocalBus {
    tx: broadcast::Sender<ClusterEvent>,
}

impl Default for LocalBus {
    fn default() -> Self {
        LocalBus {
            tx: broadcast::channel(256).0,
        }
    }
}

impl Bus for LocalBus {
    fn publish(&self, event: &ClusterEvent) -> ClusterResult<'_, ()> {
        // No subscribers is not an error: nobody needed to hear it.
        let _ = self.tx.send(event.clone());
        async { Ok(()) }.boxed()
    }

    fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_room_has_one_owner_until_it_expires_or_is_released() {
        let d = LocalDirectory::default();
        let ttl = Duration::from_secs(10);
        assert_eq!(d.claim("r", "a", None, ttl).await.ok(), Some("a".into()));
        assert_eq!(d.claim("r", "b", None, ttl).await.ok(), Some("a".into()));
        assert_eq!(
            d.claim("r", "b", Some("c"), ttl).await.ok(),
            Some("a".into()),
            "takes over only from the expected owner"
        );
        assert_eq!(
            d.claim("r", "b", Some("a"), ttl).await.ok(),
            Some("b".into())
        );
        d.release("r", "a").await.ok();
        assert_eq!(
            d.owner("r").await.ok(),
            Some(Some("b".into())),
            "not a's to release"
        );
        assert_eq!(
            d.renew(&["r".into(), "s".into()], "a", ttl).await.ok(),
            Some(vec!["r".into()])
        );
        assert_eq!(
            d.owner("s").await.ok(),
            Some(Some("a".into())),
            "renew re-claims a free room"
        );
        d.release("r", "b").await.ok();
        assert_eq!(d.owner("r").await.ok(), Some(None));
        d.claim("t", "a", None, Duration::ZERO).await.ok();
        assert_eq!(d.owner("t").await.ok(), Some(None), "expired at once");
    }

    #[tokio::test]
    async fn nodes_expire_and_withdraw() {
        let r = LocalRegistry::default();
        let info = |id: &str| NodeInfo {
            id: id.into(),
            url: format!("http://{id}"),
            capacity: 10,
            draining: false,
            load: Default::default(),
        };
        r.announce(&info("a"), Duration::from_secs(10)).await.ok();
        r.announce(&info("b"), Duration::ZERO).await.ok();
        r.announce(&info("c"), Duration::from_secs(10)).await.ok();
        r.withdraw("c").await.ok();
        let ids: Vec<String> = r
            .nodes()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(ids, vec!["a".to_string()]);
    }
}
