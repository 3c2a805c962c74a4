//! The `[cluster]` section of the configuration: the Redis shared by every node (none: this node is on its own),
//! this node's id and URL, how many participants it is meant to host, and how long it drains on SIGTERM.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::ensure;
use serde::Deserialize;

use super::ServerArgs;
use crate::cluster::ClusterSettings;

pub const DEFAULT_NODE_CAPACITY: u32 = 500;

/// Cluster membership. Every field has a default; without `redis_url` the node runs on its own.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Redis shared by every node, e.g. `redis://redis:6379/0` (`rediss://` for TLS). Default: none.
    pub redis_url: Option<String>,
    /// This node's id, unique in the cluster (e.g. the pod name). Default: random at every start.
    pub node_id: Option<String>,
    /// Where clients and other nodes reach this node's HTTP/WebSocket. Default: `http://<node_ip>:<http_port>`.
    pub node_url: Option<String>,
    /// Participants this node is meant to host; placement prefers nodes further below theirs. Default 500.
    pub node_capacity: u32,
    /// After SIGTERM, how long the node keeps serving its calls (taking no new rooms) before it exits; it exits
    /// sooner when its last room closes. 0 exits at once. Default 0.
    pub drain_timeout_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: None,
            node_id: None,
            node_url: None,
            node_capacity: DEFAULT_NODE_CAPACITY,
            drain_timeout_secs: 0,
        }
    }
}

/// Longest drain (a day): past that, a call is better moved by the client reconnecting.
const MAX_DRAIN_TIMEOUT_SECS: u64 = 86_400;

impl ClusterConfig {
    pub(super) fn apply_args(&mut self, args: &ServerArgs) {
        if args.redis_url.is_some() {
            self.redis_url.clone_from(&args.redis_url);
        }
        if args.node_id.is_some() {
            self.node_id.clone_from(&args.node_id);
        }
        if args.node_url.is_some() {
            self.node_url.clone_from(&args.node_url);
        }
        if let Some(n) = args.node_capacity {
            self.node_capacity = n;
        }
        if let Some(s) = args.drain_timeout_secs {
            self.drain_timeout_secs = s;
        }
    }

    /// Validated settings; `node_ip` and `http_port` make the default node URL.
    pub(super) fn into_settings(
        self,
        dev_mode: bool,
        node_ip: IpAddr,
        http_port: u16,
    ) -> anyhow::Result<ClusterSettings> {
        if let Some(url) = &self.redis_url {
            ensure!(
                url.starts_with("redis://") || url.starts_with("rediss://"),
                "redis_url must start with redis:// or rediss://, not {}",
                crate::redis_conn::redact(url)
            );
            ensure!(
                !dev_mode,
                "a cluster (redis_url) needs API keys shared by every node; dev mode's keys are per node"
            );
        }
        let node_id = self
            .node_id
            .unwrap_or_else(|| format!("ND_{}", crate::ids::random_string(10)));
        ensure!(
            !node_id.is_empty()
                && node_id.len() <= 128
                && node_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "node_id must be 1-128 letters, digits, '-', '_' or '.', not {node_id:?}"
        );
        let node_url = match self.node_url {
            Some(u) => {
                let parsed = url::Url::parse(&u)
                    .map_err(|e| anyhow::anyhow!("node_url {u:?} is not a URL: {e}"))?;
                ensure!(
                    matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some(),
                    "node_url must be an http:// or https:// URL with a host, not {u:?}"
                );
                Some(u.trim_end_matches('/').to_string())
            }
            // Port 0 (a free port) is only known once bound: the server fills it in then.
            None if http_port == 0 => None,
            None => Some(match node_ip {
                IpAddr::V6(ip) => format!("http://[{ip}]:{http_port}"),
                IpAddr::V4(ip) => format!("http://{ip}:{http_port}"),
            }),
        };
        ensure!(
            self.node_capacity >= 1,
            "node_capacity must be at least 1, not {}",
            self.node_capacity
        );
        ensure!(
            self.drain_timeout_secs <= MAX_DRAIN_TIMEOUT_SECS,
            "drain_timeout_secs must be at most {MAX_DRAIN_TIMEOUT_SECS}, not {}",
            self.drain_timeout_secs
        );
        Ok(ClusterSettings {
            redis_url: self.redis_url,
            node_id,
            node_url,
            capacity: self.node_capacity,
            drain_timeout: Duration::from_secs(self.drain_timeout_secs),
        })
    }
}
