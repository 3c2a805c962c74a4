//! Room placement: which node a new room goes to ([`NodeSelector`], least loaded by default) and where an existing
//! one lives ([`route`]). A room whose node died is taken over with a compare-and-set on its directory entry, so
//! two nodes racing for it agree on one winner.

use super::{Cluster, ClusterError, NodeInfo, Route, ROOM_TTL};

/// Chooses the node for a new room.
pub trait NodeSelector: Send + Sync {
    /// One of `candidates` (live nodes that are not draining, never empty), or `None` to refuse the room.
    fn select<'a>(&self, candidates: &'a [NodeInfo]) -> Option<&'a NodeInfo>;
}

/// The node with the lowest share of its capacity in use (participants / capacity), then the fewest rooms, then
/// the least CPU; ties go to the lowest id so every node chooses alike.
#[derive(Debug, Default, Clone, Copy)]
pub struct LeastLoaded;

impl LeastLoaded {
    fn usage(n: &NodeInfo) -> f64 {
        n.load.participants as f64 / f64::from(n.capacity.max(1))
    }
}

impl NodeSelector for LeastLoaded {
    fn select<'a>(&self, candidates: &'a [NodeInfo]) -> Option<&'a NodeInfo> {
        candidates.iter().min_by(|a, b| {
            Self::usage(a)
                .total_cmp(&Self::usage(b))
                .then(a.load.rooms.cmp(&b.load.rooms))
                .then(a.load.cpu.total_cmp(&b.load.cpu))
                .then(a.id.cmp(&b.id))
        })
    }
}

/// How often a placement that raced with another node is retried.
const ATTEMPTS: usize = 3;

/// Where `room` lives; places it (this node or another) if no live node owns it. `exists_here`: this node
/// already has the room open (it keeps it, re-claiming the entry if it lapsed).
pub(super) async fn route(
    c: &Cluster,
    room: &str,
    exists_here: bool,
) -> Result<Route, ClusterError> {
    for _ in 0..ATTEMPTS {
        let owner = c.directory.owner(room).await?;
        let nodes = c.registry.nodes().await?;
        let expected = match owner {
            Some(id) if id == c.node.id => return Ok(Route::Local),
            Some(id) => match nodes.iter().find(|n| n.id == id) {
                Some(n) => {
                    if exists_here {
                        tracing::warn!(room, owner = %n.id, "room open here but owned by another node");
                    }
                    return Ok(Route::Remote(n.clone()));
                }
                // Its node is dead: take the room over.
                None => Some(id),
            },
            None => None,
        };
        let target = if exists_here {
            c.node.id.clone()
        } else {
            let mut candidates: Vec<NodeInfo> =
                nodes.iter().filter(|n| !n.draining).cloned().collect();
            // Before this node's first heartbeat lands it is missing from the registry.
            if !c.is_draining() && !nodes.iter().any(|n| n.id == c.node.id) {
                candidates.push(c.info(Default::default()));
            }
            if candidates.is_empty() {
                return Err(ClusterError::NoNode);
            }
            c.selector
                .select(&candidates)
                .ok_or(ClusterError::NoNode)?
                .id
                .clone()
        };
        let now_owner = c
            .directory
            .claim(room, &target, expected.as_deref(), ROOM_TTL)
            .await?;
        if let Some(dead) = &expected {
            if now_owner == target {
                tracing::info!(room, dead = %dead, node = %target, "room taken over from a dead node");
            }
        }
        if now_owner == c.node.id {
            return Ok(Route::Local);
        }
        if let Some(n) = nodes.iter().find(|n| n.id == now_owner) {
            return Ok(Route::Remote(n.clone()));
        }
        // Claimed by a node this one has not seen yet: look again.
    }
    Err(ClusterError::NoNode)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::{LocalBus, LocalDirectory, LocalRegistry, NodeIdentity, NodeLoad, NODE_TTL};
    use super::*;

    fn node(id: &str, participants: u64, capacity: u32, draining: bool) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            url: format!("http://{id}"),
            capacity,
            draining,
            load: NodeLoad {
                participants,
                ..Default::default()
            },
        }
    }

    #[test]
    fn least_loaded_compares_usage_against_capacity() {
        let nodes = [node("a", 50, 100, false), node("b", 60, 200, false)];
        assert_eq!(LeastLoaded.select(&nodes).map(|n| n.id.as_str()), Some("b"));
        let tied = [node("b", 0, 10, false), node("a", 0, 10, false)];
        assert_eq!(LeastLoaded.select(&tied).map(|n| n.id.as_str()), Some("a"));
    }

    /// Two nodes sharing one in-process registry and directory, as two Redis clients would.
    fn pair() -> (Cluster, Cluster) {
        let registry = Arc::new(LocalRegistry::default());
        let directory = Arc::new(LocalDirectory::default());
        let bus = Arc::new(LocalBus::default());
        let make = |id: &str| {
            Cluster::new(
                NodeIdentity {
                    id: id.into(),
                    url: format!("http://{id}"),
                    capacity: 100,
                },
                registry.clone(),
                directory.clone(),
                bus.clone(),
                true,
            )
        };
        (make("a"), make("b"))
    }

    #[tokio::test]
    async fn rooms_are_placed_once_and_routed_to_their_node() {
        let (a, b) = pair();
        a.registry
            .announce(&node("a", 10, 100, false), NODE_TTL)
            .await
            .ok();
        b.registry
            .announce(&node("b", 0, 100, false), NODE_TTL)
            .await
            .ok();
        let route = a.route("r", false).await.expect("route");
        assert!(
            matches!(&route, Route::Remote(n) if n.id == "b"),
            "least loaded: {route:?}"
        );
        assert_eq!(b.route("r", false).await.ok(), Some(Route::Local));
        assert!(matches!(a.route("r", false).await, Ok(Route::Remote(n)) if n.id == "b"));
    }

    #[tokio::test]
    async fn draining_nodes_take_no_new_rooms_but_keep_theirs() {
        let (a, b) = pair();
        a.registry
            .announce(&node("a", 0, 100, false), NODE_TTL)
            .await
            .ok();
        b.registry
            .announce(&node("b", 0, 100, false), NODE_TTL)
            .await
            .ok();
        assert_eq!(a.route("mine", false).await.ok(), Some(Route::Local));
        a.start_draining();
        a.registry
            .announce(&a.info(Default::default()), NODE_TTL)
            .await
            .ok();
        assert_eq!(a.route("mine", true).await.ok(), Some(Route::Local));
        assert!(matches!(a.route("new", false).await, Ok(Route::Remote(n)) if n.id == "b"));
        b.start_draining();
        b.registry
            .announce(&b.info(Default::default()), NODE_TTL)
            .await
            .ok();
        assert!(matches!(
            b.route("newer", false).await,
            Err(ClusterError::NoNode)
        ));
    }

    #[tokio::test]
    async fn a_dead_nodes_rooms_are_taken_over() {
        let (a, b) = pair();
        a.registry
            .announce(&node("a", 0, 100, false), NODE_TTL)
            .await
            .ok();
        b.registry
            .announce(&node("b", 5, 100, false), Duration::ZERO)
            .await
            .ok();
        b.directory.claim("r", "b", None, ROOM_TTL).await.ok();
        // b never heartbeats again: its registry entry is gone, its room entry still there.
        assert_eq!(a.route("r", false).await.ok(), Some(Route::Local));
        assert_eq!(a.directory.owner("r").await.ok(), Some(Some("a".into())));
    }
}
