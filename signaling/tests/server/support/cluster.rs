//! Helpers for cluster tests: several in-process nodes on one throwaway Redis, and joining through a node while
//! following redirects.

use std::time::Duration;

use chorus_protocol::ServerMessage;
use chorus_signaling::auth::ApiKey;
use chorus_signaling::cluster::ClusterSettings;
use chorus_signaling::server::ServerSettings;
use chorus_signaling::testing::{RedisServer, TestServer};
use tokio_tungstenite::connect_async;

use super::{send, Ws};

/// `n` nodes sharing `redis` and one API key, named node-0, node-1, ...
pub async fn cluster(redis: &RedisServer, n: usize) -> Vec<TestServer> {
    cluster_with(redis, n, TestServer::random_key(), |_| {}).await
}

/// Like [`cluster`], with the API key `key` and `tweak` applied to every node's settings.
pub async fn cluster_with(
    redis: &RedisServer,
    n: usize,
    key: ApiKey,
    tweak: impl Fn(&mut ServerSettings),
) -> Vec<TestServer> {
    let mut nodes = Vec::new();
    for i in 0..n {
        let url = redis.url.clone();
        let ts = TestServer::start_with_key(key.clone(), |s| {
            s.cluster = ClusterSettings {
                redis_url: Some(url),
                node_id: format!("node-{i}"),
                ..ClusterSettings::default()
            };
            tweak(s);
        })
        .await
        .expect("node starts");
        nodes.push(ts);
    }
    // Let every node's first heartbeat land, so placement sees them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    nodes
}

/// Joins `room` as `identity` through `via`, following redirects. Returns the socket, the joined response and
/// the URL of the node that took the join.
pub async fn join_via(
    via: &TestServer,
    room: &str,
    identity: &str,
) -> (Ws, chorus_protocol::JoinedResponse, String) {
    let token = via.token(room, identity);
    let mut url = via.ws_url();
    for _ in 0..3 {
        let mut ws = connect_async(url.as_str()).await.expect("connects").0;
        send(&mut ws, &format!(r#"{{"type":"join","token":"{token}"}}"#)).await;
        match super::recv(&mut ws).await.expect("an answer to join") {
            ServerMessage::Joined(j) => return (ws, j, url),
            ServerMessage::Redirect { url: next, .. } => {
                assert!(
                    super::recv(&mut ws).await.is_none(),
                    "the redirecting node closes the connection"
                );
                url = next;
            }
            other => panic!("expected joined or redirect, got {other:?}"),
        }
    }
    panic!("too many redirects");
}

/// Which of `nodes` serves the WebSocket URL `ws_url`.
pub fn node_index(nodes: &[TestServer], ws_url: &str) -> usize {
    nodes
        .iter()
        .position(|n| ws_url.starts_with(&n.ws_url()))
        .unwrap_or_else(|| panic!("{ws_url} is none of the nodes"))
}

/// The index of the node whose registry has `room` open (panics unless exactly one has).
pub fn host_of(nodes: &[TestServer], room: &str) -> usize {
    let hosts: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].server.state.registry.get(room).is_some())
        .collect();
    assert_eq!(hosts.len(), 1, "`{room}` is open on nodes {hosts:?}");
    hosts[0]
}
