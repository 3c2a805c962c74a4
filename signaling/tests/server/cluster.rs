//! Several nodes on one real Redis (`redis-server` on loopback, as CI installs it), in this process: a room is
//! placed on one node and joins through any node are redirected there; a drained node takes no new rooms but
//! keeps its own; a revocation issued on one node disconnects the participant on another; when a node dies, its
//! rooms are placed again elsewhere. The server API works alike through any node (calls about a room reach its
//! node; create places the room like a join; the list covers every node), and a call's webhooks arrive once.

use std::time::Duration;

use crate::support::cluster::{cluster, cluster_with, host_of, join_via, node_index};
use crate::support::hooks::{kinds, webhook_settings, Receiver, CALL};
use crate::support::{self, left_reason, recv_until, send, Api};
use chorus_protocol::{ErrorCode, ServerMessage};
use chorus_signaling::cluster::HEARTBEAT;
use chorus_signaling::testing::{RedisServer, TestServer};
use serde_json::json;
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
        tokio::time::sleep(HEARTBEAT + Duration::from_millis(300)).await;
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
    tokio::time::sleep(HEARTBEAT + Duration::from_millis(500)).await;

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
    tokio::time::sleep(HEARTBEAT + Duration::from_millis(500)).await;
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

#[tokio::test(flavor = "multi_thread")]
async fn calls_about_a_room_through_another_node_reach_the_rooms_node() {
    let redis = RedisServer::start().await.expect("redis-server");
    let nodes = cluster(&redis, 3).await;
    // A name that must be escaped in the path: forwarding keeps the path as sent.
    let (mut alice, aj, url) = join_via(&nodes[0], "daily sync", "alice").await;
    let host = node_index(&nodes, &url);
    let via = (host + 1) % nodes.len();
    let (mut bob, _, _) = join_via(&nodes[via], "daily sync", "bob").await;
    let api = Api::admin(&nodes[via]);
    let room = "/v1/rooms/daily%20sync";

    let info = api.expect(200, "GET", room, None).await;
    assert_eq!(info["sid"], aj.room.sid.as_str());
    assert_eq!(info["numParticipants"], 2);
    let list = api
        .expect(200, "GET", &format!("{room}/participants"), None)
        .await;
    assert_eq!(list["participants"].as_array().map(Vec::len), Some(2));
    let alice_path = format!("{room}/participants/alice");
    let alice_json = api.expect(200, "GET", &alice_path, None).await;
    assert_eq!(alice_json["sid"], aj.participant.sid.as_str());
    api.expect(200, "GET", &format!("{alice_path}/stats"), None)
        .await;
    api.expect(
        202,
        "POST",
        &format!("{room}/data"),
        Some(json!({"text": "hi"})),
    )
    .await;

    // The room's node's errors come back unchanged.
    let missing = api
        .expect(
            404,
            "POST",
            &format!("{alice_path}/tracks/TR_nope/mute"),
            Some(json!({"muted": true})),
        )
        .await;
    assert!(
        missing["message"]
            .as_str()
            .is_some_and(|m| m.contains("has no track")),
        "{missing}"
    );
    let bad = api
        .expect(
            400,
            "PATCH",
            &alice_path,
            Some(json!({"grants": {"hidden": true}})),
        )
        .await;
    assert_eq!(bad["field"], "grants.hidden");
    // A bad token is refused by the node that took the call.
    Api::with_token(&nodes[via], Some("not-a-token".into()))
        .expect(401, "GET", room, None)
        .await;
    // A forwarded request is answered where it lands: no second hop, so 404 on a node without the room.
    let token = nodes[via].admin_token();
    let direct = api
        .raw(reqwest::Method::GET, room)
        .bearer_auth(token)
        .header("x-chorus-forwarded-by", "node-test")
        .send()
        .await
        .expect("HTTP request");
    assert_eq!(direct.status().as_u16(), 404);

    // Grants change mid-call on the room's node: alice may no longer publish.
    let updated = api
        .expect(
            200,
            "PATCH",
            &alice_path,
            Some(json!({"grants": {"canPublish": false}})),
        )
        .await;
    assert_eq!(updated["grants"]["canPublish"], false);
    send(
        &mut alice,
        r#"{"type":"offer","sdp":"v=0","tracks":[{"mid":"0","kind":"audio","source":"microphone"}]}"#,
    )
    .await;
    let reply = recv_until(&mut alice, |m| matches!(m, ServerMessage::Error(_))).await;
    assert!(
        matches!(&reply, ServerMessage::Error(e) if e.code == ErrorCode::PermissionDenied),
        "{reply:?}"
    );

    // Removing bob disconnects him from the room's node; deleting the room ends the call.
    api.expect(204, "DELETE", &format!("{room}/participants/bob"), None)
        .await;
    assert_eq!(left_reason(&mut bob).await, "removed");
    api.expect(204, "DELETE", room, None).await;
    assert_eq!(left_reason(&mut alice).await, "roomClosed");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while api.call("GET", room, None).await.0 != 404 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room stays open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rooms_are_created_where_placement_says_and_listed_through_any_node() {
    let redis = RedisServer::start().await.expect("redis-server");
    let nodes = cluster(&redis, 3).await;
    let (_alice, _, url) = join_via(&nodes[0], "busy", "alice").await;
    let busy = node_index(&nodes, &url);
    // Let the heartbeats report the busy node's participant.
    tokio::time::sleep(HEARTBEAT + Duration::from_millis(500)).await;

    let api = Api::admin(&nodes[busy]);
    let created = api
        .expect(
            201,
            "POST",
            "/v1/rooms",
            Some(json!({"name": "planned", "maxParticipants": 5, "metadata": "m"})),
        )
        .await;
    assert_eq!(created["name"], "planned");
    assert_eq!(created["maxParticipants"], 5);
    assert_eq!(created["metadata"], "m");
    let host = host_of(&nodes, "planned");
    assert_ne!(host, busy, "placed on a less loaded node");
    let owner = nodes[busy]
        .server
        .state
        .cluster
        .directory
        .owner("planned")
        .await
        .expect("directory");
    assert_eq!(
        owner,
        Some(format!("node-{host}")),
        "the directory names it"
    );
    let third = (0..3)
        .find(|i| *i != busy && *i != host)
        .expect("three nodes");
    Api::admin(&nodes[third])
        .expect(409, "POST", "/v1/rooms", Some(json!({"name": "planned"})))
        .await;
    let invalid = api
        .expect(400, "POST", "/v1/rooms", Some(json!({"name": ""})))
        .await;
    assert_eq!(invalid["field"], "name");

    for (i, n) in nodes.iter().enumerate() {
        let list = Api::admin(n).expect(200, "GET", "/v1/rooms", None).await;
        let names: Vec<&str> = list["rooms"]
            .as_array()
            .expect("rooms")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(names, ["busy", "planned"], "listed through node-{i}");
    }
    // A join goes to the node that holds the created room.
    let (_bob, joined, bob_url) = join_via(&nodes[third], "planned", "bob").await;
    assert_eq!(node_index(&nodes, &bob_url), host);
    assert_eq!(joined.room.sid, created["sid"].as_str().unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_room_node_makes_calls_unavailable() {
    let redis = RedisServer::start().await.expect("redis-server");
    let nodes = cluster(&redis, 2).await;
    let (_alice, _, url) = join_via(&nodes[0], "stranded", "alice").await;
    let host = node_index(&nodes, &url);
    let api = Api::admin(&nodes[1 - host]);
    // The node stops answering but stays in the registry until its announcement expires.
    nodes[host].server.crash();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let (status, body) = loop {
        let (status, body) = api.call("GET", "/v1/rooms/stranded", None).await;
        if status != 200 || tokio::time::Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let name = format!("node-{host}");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "unavailable");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains(&name)),
        "{body}"
    );
    let (status, body) = api.call("GET", "/v1/rooms", None).await;
    assert_eq!(status, 503, "no partial list: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains(&name)),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_calls_webhooks_arrive_once_when_its_participants_join_through_different_nodes() {
    let redis = RedisServer::start().await.expect("redis-server");
    let key = TestServer::random_key();
    let (receiver, url) = Receiver::start(&key.secret).await;
    let nodes = cluster_with(&redis, 3, key, |s| webhook_settings(&url, s)).await;
    let (mut alice, _, alice_url) = join_via(&nodes[1], "once", "alice").await;
    let (mut bob, _, bob_url) = join_via(&nodes[2], "once", "bob").await;
    assert_eq!(node_index(&nodes, &alice_url), node_index(&nodes, &bob_url));
    send(&mut bob, r#"{"type":"leave"}"#).await;
    assert_eq!(left_reason(&mut bob).await, "left");
    send(&mut alice, r#"{"type":"leave"}"#).await;
    assert_eq!(left_reason(&mut alice).await, "left");

    let delivered = receiver.wait_for("once", CALL.len()).await;
    assert_eq!(kinds(&delivered), CALL, "{delivered:?}");
    // Long enough for a duplicate from another node, or a retry, to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hits: Vec<_> = receiver
        .hits()
        .into_iter()
        .filter(|h| h.subject == "once")
        .collect();
    assert_eq!(hits.len(), CALL.len(), "each event exactly once: {hits:?}");
    assert!(
        hits.iter().all(|h| h.signed && h.answered == 200),
        "{hits:?}"
    );
    let mut ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), CALL.len(), "unique ids");
}
