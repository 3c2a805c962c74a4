//! The cluster: which nodes are alive and how loaded, which node hosts each room, and the bus nodes tell each other
//! things on. Three small traits ([`NodeRegistry`], [`RoomDirectory`], [`Bus`]) with two implementations: in
//! process (`local.rs`, one node: the default) and Redis (`redis.rs`, `--redis-url`: every node shares them).
//! [`Cluster`] bundles them with this node's identity and answers the one question signaling asks: where does
//! room X live ([`Cluster::route`], placement in `placement.rs`).
//!
//! Owns cluster state and nothing else: no HTTP, no rooms, no media (see docs/cluster.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

mod heartbeat;
mod local;
mod placement;
mod redis;

pub use heartbeat::{spawn_heartbeat, LoadSource};
pub use local::{LocalBus, LocalDirectory, LocalRegistry};
pub use placement::{LeastLoaded, NodeSelector};
pub use redis::RedisCluster;

/// How often a node re-announces itself and renews its rooms.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node that has not announced itself for this long is dead: it drops out of the registry.
pub const NODE_TTL: Duration = Duration::from_secs(6);
/// A room whose node stops renewing it is free again after this long (a dead node's rooms are taken over
/// sooner: as soon as the node itself has expired).
pub const ROOM_TTL: Duration = Duration::from_secs(10);

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("Redis: {0}")]
    Redis(String),
    #[error("malformed cluster record {key}: {reason}")]
    Malformed { key: String, reason: String },
    #[error("no node accepts new rooms (all are draining or full)")]
    NoNode,
}

pub type ClusterResult<'a, T> = BoxFuture<'a, Result<T, ClusterError>>;

/// What a node says about itself on every heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub id: String,
    /// Where clients and other nodes reach its HTTP/WebSocket, e.g. `http://10.0.0.5:7880`.
    pub url: String,
    /// Participants it is meant to host; placement prefers nodes further below theirs.
    pub capacity: u32,
    /// Draining nodes keep their rooms but take no new ones.
    pub draining: bool,
    pub load: NodeLoad,
}

/// A node's live load.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLoad {
    /// Process CPU use over the last heartbeat, in cores (1.0 = one core busy).
    pub cpu: f64,
    pub rooms: u64,
    pub participants: u64,
    pub tracks: u64,
    /// Media received from publishers over the last heartbeat, bits per second.
    pub bitrate_bps: u64,
}

/// Live nodes: each announces itself with a time to live and disappears when it stops.
pub trait NodeRegistry: Send + Sync {
    /// Records (or refreshes) `info` for `ttl`.
    fn announce(&self, info: &NodeInfo, ttl: Duration) -> ClusterResult<'_, ()>;
    /// Every node whose announcement has not expired.
    fn nodes(&self) -> ClusterResult<'_, Vec<NodeInfo>>;
    /// Removes a node at once (clean shutdown).
    fn withdraw(&self, id: &str) -> ClusterResult<'_, ()>;
}

/// Which node hosts each room. Every write is atomic, so two nodes never both own a room.
pub trait RoomDirectory: Send + Sync {
    /// The node that owns `room`, if any.
    fn owner(&self, room: &str) -> ClusterResult<'_, Option<String>>;
    /// Makes `node` the owner of `room` for `ttl` if the room has no owner, or if its owner is `expected`
    /// (taking a room over from a dead node). Returns the owner afterwards.
    fn claim(
        &self,
        room: &str,
        node: &str,
        expected: Option<&str>,
        ttl: Duration,
    ) -> ClusterResult<'_, String>;
    /// Extends `node`'s ownership of each of `rooms` by `ttl` (re-claiming any that expired); returns the rooms
    /// another node owns now.
    fn renew(&self, rooms: &[String], node: &str, ttl: Duration) -> ClusterResult<'_, Vec<String>>;
    /// Gives `room` up if `node` owns it.
    fn release(&self, room: &str, node: &str) -> ClusterResult<'_, ()>;
}

/// Something every node must hear about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClusterEvent {
    /// Every token of `identity` issued at or before `at` (Unix seconds) is revoked: disconnect its sessions.
    #[serde(rename_all = "camelCase")]
    Revoked { identity: String, at: u64 },
}

/// Cluster-wide publish/subscribe. Delivery is best effort: a node that is down misses events (what must survive
/// lives in the store; events only prompt nodes to act on it at once).
pub trait Bus: Send + Sync {
    fn publish(&self, event: &ClusterEvent) -> ClusterResult<'_, ()>;
    /// Events published by any node (including this one) from now on.
    fn subscribe(&self) -> broadcast::Receiver<ClusterEvent>;
}

/// Cluster settings of a server, validated (see `config/cluster.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Shared Redis; `None`: this node on its own.
    pub redis_url: Option<String>,
    pub node_id: String,
    /// `None`: `http://<bound HTTP address>`, filled in at start.
    pub node_url: Option<String>,
    pub capacity: u32,
    /// How long SIGTERM lets calls go on before exiting.
    pub drain_timeout: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            redis_url: None,
            node_id: format!("ND_{}", crate::ids::random_string(10)),
            node_url: None,
            capacity: crate::config::ClusterConfig::default().node_capacity,
            drain_timeout: Duration::ZERO,
        }
    }
}

/// This node's place in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub id: String,
    pub url: String,
    pub capacity: u32,
}

/// Where a room lives, as seen from this node.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Here.
    Local,
    /// On another live node.
    Remote(NodeInfo),
}

/// The cluster as this node sees it.
pub struct Cluster {
    pub node: NodeIdentity,
    pub registry: Arc<dyn NodeRegistry>,
    pub directory: Arc<dyn RoomDirectory>,
    pub bus: Arc<dyn Bus>,
    pub selector: Arc<dyn NodeSelector>,
    /// Whether cluster state is shared with other nodes (Redis) or in this process only.
    pub shared: bool,
    draining: AtomicBool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// One node on its own: in-process registry, directory and bus.
    pub fn single(node: NodeIdentity) -> Cluster {
        Cluster::new(
            node,
            Arc::new(LocalRegistry::default()),
            Arc::new(LocalDirectory::default()),
            Arc::new(LocalBus::default()),
            false,
        )
    }

    /// Shares state with every node on the Redis at `url`.
    pub async fn redis(node: NodeIdentity, url: &str) -> Result<Cluster, ClusterError> {
        let redis = Arc::new(RedisCluster::connect(url).await?);
        Ok(Cluster::new(
            node,
            redis.clone(),
            redis.clone(),
            redis,
            true,
        ))
    }

    pub fn new(
        node: NodeIdentity,
        registry: Arc<dyn NodeRegistry>,
        directory: Arc<dyn RoomDirectory>,
        bus: Arc<dyn Bus>,
        shared: bool,
    ) -> Cluster {
        Cluster {
            node,
            registry,
            directory,
            bus,
            selector: Arc::new(LeastLoaded),
            shared,
            draining: AtomicBool::new(false),
        }
    }

    /// Stop taking new rooms (the rooms here keep running). Announced with the next heartbeat.
    pub fn start_draining(&self) {
        if !self.draining.swap(true, Ordering::SeqCst) {
            tracing::info!(node = %self.node.id, "draining: this node takes no new rooms");
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// This node's announcement with `load`.
    pub fn info(&self, load: NodeLoad) -> NodeInfo {
        NodeInfo {
            id: self.node.id.clone(),
            url: self.node.url.clone(),
            capacity: self.node.capacity,
            draining: self.is_draining(),
            load,
        }
    }

    /// Where `room` lives, placing it if no live node hosts it (`exists_here` says whether this node has it
    /// open already). See `placement.rs`.
    pub async fn route(&self, room: &str, exists_here: bool) -> Result<Route, ClusterError> {
        placement::route(self, room, exists_here).await
    }
}
