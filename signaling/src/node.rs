//! This server as a node of the cluster: the load its heartbeat reports, acting on what other nodes say on the
//! bus (revocations), and draining (no new rooms; optionally waiting for the last call to end).
//!
//! The cluster mechanics live in `cluster/`; this file only connects them to the rooms and media workers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use crate::cluster::{ClusterEvent, LoadSource, NodeLoad};
use crate::metrics::Snapshot;
use crate::server::AppState;

/// Reads rooms, participants, tracks, CPU and inbound bitrate for the heartbeat.
pub struct NodeLoadReporter {
    state: AppState,
    /// CPU seconds and bytes received at the previous heartbeat, and when.
    last: Mutex<Option<(Instant, f64, u64)>>,
}

impl NodeLoadReporter {
    pub fn new(state: AppState) -> Arc<Self> {
        Arc::new(NodeLoadReporter {
            state,
            last: Mutex::new(None),
        })
    }
}

impl LoadSource for NodeLoadReporter {
    fn load(&self) -> NodeLoad {
        let snap = Snapshot::read(&self.state);
        let cpu_now = crate::metrics::process_cpu_seconds().unwrap_or(0.0);
        let bytes_now = snap.stats.bytes_in;
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let (cpu, bitrate_bps) = match *last {
            Some((at, cpu_then, bytes_then)) => {
                let secs = now.duration_since(at).as_secs_f64().max(0.001);
                let bits = bytes_now.saturating_sub(bytes_then) as f64 * 8.0;
                (((cpu_now - cpu_then) / secs).max(0.0), (bits / secs) as u64)
            }
            None => (0.0, 0),
        };
        *last = Some((now, cpu_now, bytes_now));
        NodeLoad {
            cpu,
            rooms: snap.rooms,
            participants: snap.gauges.participants,
            tracks: snap.gauges.tracks_published,
            bitrate_bps,
        }
    }

    fn rooms(&self) -> Vec<String> {
        self.state
            .registry
            .rooms()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }
}

/// Acts on cluster events until `shutdown`: a revocation published by any node disconnects the participants it
/// covers on this one.
pub fn spawn_event_listener(
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut events = state.cluster.bus.subscribe();
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                e = events.recv() => e,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            match event {
                Ok(ClusterEvent::Revoked { identity, at }) => {
                    crate::api::revocation::disconnect_revoked(&state.registry, &identity, at)
                        .await;
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "cluster events came too fast; some were missed");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}

/// Starts draining and waits until this node hosts no room, or `timeout` passes; returns whether it emptied.
pub async fn drain(state: &AppState, timeout: Duration) -> bool {
    state.cluster.start_draining();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if state.registry.is_empty() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::info!(
                rooms = state.registry.len(),
                "drain timeout reached with rooms still open"
            );
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
