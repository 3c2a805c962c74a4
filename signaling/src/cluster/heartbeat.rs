//! The heartbeat: every [`HEARTBEAT`] this node announces itself with its load and renews its rooms; on shutdown
//! it withdraws and gives its rooms up, so other nodes need not wait for the time to live.

use std::sync::Arc;

use tokio::sync::watch;

use super::{Cluster, NodeLoad, HEARTBEAT, NODE_TTL, ROOM_TTL};

/// What the heartbeat reports: implemented by the server, which knows the rooms and the media workers.
pub trait LoadSource: Send + Sync {
    /// The load now (called once per heartbeat).
    fn load(&self) -> NodeLoad;
    /// Names of the rooms open on this node.
    fn rooms(&self) -> Vec<String>;
}

/// Runs the heartbeat until `shutdown` turns true. The first beat goes out at once.
pub fn spawn_heartbeat(
    cluster: Arc<Cluster>,
    source: Arc<dyn LoadSource>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
            match beat(&cluster, source.as_ref()).await {
                Ok(()) if failing => {
                    tracing::info!("cluster heartbeat works again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "cluster heartbeat failed; retrying");
                    failing = true;
                }
                Err(_) => {}
            }
        }
        let node = &cluster.node.id;
        for room in source.rooms() {
            let _ = cluster.directory.release(&room, node).await;
        }
        let _ = cluster.registry.withdraw(node).await;
    })
}

async fn beat(cluster: &Cluster, source: &dyn LoadSource) -> Result<(), super::ClusterError> {
    let info = cluster.info(source.load());
    cluster.registry.announce(&info, NODE_TTL).await?;
    let rooms = source.rooms();
    if !rooms.is_empty() {
        let lost = cluster
            .directory
            .renew(&rooms, &cluster.node.id, ROOM_TTL)
            .await?;
        for room in lost {
            tracing::warn!(room, "room open here is owned by another node now");
        }
    }
    Ok(())
}
