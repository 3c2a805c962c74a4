//! `/v1/node`: the state of the node that answers (its id, URL, rooms, whether it drains, and the live nodes of
//! its cluster) and `POST /v1/node/drain`, which stops it taking new rooms while its calls go on. Both need the
//! `nodeAdmin` grant; `chorus drain` calls the second.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::error::ApiError;
use super::extract::Admin;
use crate::auth::AdminGrant;
use crate::cluster::NodeInfo;
use crate::server::AppState;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    pub id: String,
    pub url: String,
    pub draining: bool,
    /// Rooms open on this node.
    pub rooms: usize,
    /// Whether the node shares state with others (Redis).
    pub clustered: bool,
    /// Live nodes of the cluster as of the last heartbeats (this one included once it has announced itself).
    pub nodes: Vec<NodeInfo>,
}

async fn state_of(state: &AppState) -> Result<NodeState, ApiError> {
    let nodes = state
        .cluster
        .registry
        .nodes()
        .await
        .map_err(|e| ApiError::Cluster(e.to_string()))?;
    Ok(NodeState {
        id: state.cluster.node.id.clone(),
        url: state.cluster.node.url.clone(),
        draining: state.cluster.is_draining(),
        rooms: state.registry.len(),
        clustered: state.cluster.shared,
        nodes,
    })
}

pub async fn get(admin: Admin, State(state): State<AppState>) -> Result<Json<NodeState>, ApiError> {
    admin.require(AdminGrant::NodeAdmin, None)?;
    Ok(Json(state_of(&state).await?))
}

pub async fn drain(
    admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<NodeState>, ApiError> {
    admin.require(AdminGrant::NodeAdmin, None)?;
    state.cluster.start_draining();
    Ok(Json(state_of(&state).await?))
}
