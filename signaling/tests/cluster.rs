//! Several nodes on one real Redis (`redis-server` on loopback, as CI installs it), in this process: a room is
//! placed on one node and joins through any node are redirected there; a drained node takes no new rooms but
//! keeps its own; a revocation issued on one node disconnects the participant on another; when a node dies, its
//! rooms are placed again elsewhere.

mod support;

use std::time::Duration;

use chorus_protocol::ServerMessage;
use chorus_signaling::testing::RedisServer;
use support::cluster::{cluster, join_via, node_index};
use support::{left_reason, recv_until, send, Api};
use tokio_tungstenite::connect_async;

#[tokio::test(flavor = "multi_thread")]
async fn joins_through_any_node_meet_in_one_room_on_one_node() {
    let redis = RedisServer::start().await.expect("redis-server");
    let nodes = cluster(&redis, 3).await;
    let (mut alice, a, alice_url) = join_via(&nodes[0], "standup", "alice").await;
    let host = node_index(&nodes, &alice_url);
    let (_bob, b, bob_url) = join_via(&nodes[1], "standup", "bob").await;
    let (_carol, c, carol_url) = join_via(&nodes[2], "standup", "carol").await;
    assert_eq!(
        node_index(&nodes, &bob_url),
        host,
        "bob is sent to the room's node"
    );
    assert_eq!(node_index(&nodes, &carol_url), host, "carol too");
    assert_eq!(a.room.sid, b.room.sid, "one room");
    assert_eq!(b.room.sid, c.room.sid);
    assert_eq!(c.participants.len(), 2, "carol sees alice and bob");
    recv_until(&mut alice, |m| {
        matches!(m, ServerMessage::ParticipantJoined { participant } if participant.identity == "bob")
    })
    .await;
    for (i, n) in nodes.iter().enumerate() {
        let rooms = n.server.state.registry.len();
        assert_eq!(
            rooms,
            usize::from(i == host),
            "node-{i} hosts {rooms} rooms"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn new_rooms_spread_by_load() {
    let redis = RedisServer::start().await.expect("redis-server");
    let nodes = cluster(&redis, 2).await;
    let mut hosts = Vec::new();
    let mut sockets = Vec::new();
    for i in 0..4 {
        let (ws, _, url) = join_via(&nodes[0], &format!("room-{i}"), "p").await;
        hosts.push(node_index(&nodes, &url));
        sockets.push(ws);
        // The next placement reads the load of the last heartbeat.
        tokio::time::sleep(chorus_signaling::cluster::HEARTBEAT + Duration::from_millis(300)).await;
    }
    assert!(
        hosts.contains(&0) && hosts.contains(&1),
        "both nodes get rooms: {hosts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drained_node_keeps_its_rooms_and_takes_no_new_ones() {
    let redis = RedisServer::start().await.expect("redis-server");
    let nodes = cluster(&redis, 2).await;
    // Find a room that lands on node-0.
    let (_alice, _, url) = join_via(&nodes[0], "kept", "alice").await;
    let host = node_index(&nodes, &url);
    let other = 1 - host;
    let (status, body) = Api::admin(&nodes[host])
        .call("POST", "/v1/node/drain", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["draining"], true);
    tokio::time::sleep(chorus_signaling::cluster::HEARTBEAT + Duration::from_millis(500)).await;

    let (_bob, _, bob_url) = join_via(&nodes[other], "kept", "bob").await;
    assert_eq!(
        node_index(&nodes, &bob_url),
        host,
        "its room stays and takes joins"
    );
    for i in 0..3 {
        let (_ws, _, url) = join_via(&nodes[host], &format!("fresh-{i}"), "carol").await;
        assert_eq!(
            node_index(&nodes, &url),
            other,
            "new rooms go to the other node"
        );
    }
    let (status, body) = Api::admin(&nodes[other])
        .call("GET", "/v1/node", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let listed = body["nodes"].as_array().expect("nodes").len();
    assert_eq!(listed, 2, "both nodes are in the registry: {body}");

    // With every node draining, a new room has nowhere to go.
    Api::admin(&nodes[other])
        .call("POST", "/v1/node/drain", None)
        .await;
    tokio::time::sleep(chorus_signaling::cluster::HEARTBEAT + Duration::from_millis(500)).await;
    let token = nodes[0].token("nowhere", "dave");
    let (_ws, answer) = support::try_join(&nodes[0], &token).await;
    match answer {
        ServerMessage::Error(e) => {
            assert_eq!(e.code, chorus_protocol::ErrorCode::Unavailable);
            assert!(e.fatal);
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_on_one_node_disconnects_the_participant_on_another() {
    let redis = RedisServer::start().await.expect("redis-server");
    let nodes = cluster(&redis, 2).await;
    // The identity is created on one node and known to all (the shared store).
    let (status, body) = Api::admin(&nodes[1])
        .call(
            "POST",
            "/v1/identities",
            Some(serde_json::json!({"id": "mallory"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (mut mallory, _, url) = join_via(&nodes[0], "r", "mallory").await;
    let host = node_index(&nodes, &url);
    let other = 1 - host;
    let old = nodes[host].token("r", "mallory");
    let (status, body) = Api::admin(&nodes[other])
        .call("POST", "/v1/identities/mallory/revoke", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(left_reason(&mut mallory).await, "revoked");
    // The revocation is in the shared store: rejoining with the old token fails on every node.
    for n in &nodes {
        let (_ws, answer) = support::try_join(n, &old).await;
        assert!(
            matches!(&answer, ServerMessage::Error(e) if e.code == chorus_protocol::ErrorCode::Unauthorized),
            "{answer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_nodes_room_is_placed_again_on_a_live_node() {
    let redis = RedisServer::start().await.expect("redis-server");
    let nodes = cluster(&redis, 2).await;
    let (alice, first, url) = join_via(&nodes[0], "survivor", "alice").await;
    let host = node_index(&nodes, &url);
    let other = 1 - host;
    drop(alice);
    nodes[host].server.crash();
    // Until the dead node's registration expires, joins are still sent to it; then the room moves.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let token = nodes[other].token("survivor", "alice");
        let mut ws = connect_async(nodes[other].ws_url())
            .await
            .expect("connects")
            .0;
        send(&mut ws, &format!(r#"{{"type":"join","token":"{token}"}}"#)).await;
        match support::recv(&mut ws).await {
            Some(ServerMessage::Joined(j)) => {
                assert_ne!(j.room.sid, first.room.sid, "a new room on the live node");
                break;
            }
            Some(ServerMessage::Redirect { node, .. }) => {
                assert_eq!(node, format!("node-{host}"), "only the dead node is named")
            }
            other => panic!("unexpected answer {other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room never moved off the dead node"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(nodes[other].server.state.registry.len(), 1);
}
