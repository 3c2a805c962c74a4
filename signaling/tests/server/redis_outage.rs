//! The shared Redis going away under a running cluster (two in-process nodes, a real `redis-server` with its
//! append-only file, killed with SIGKILL and started again on the same port): calls in progress go on, new joins
//! get the retryable `unavailable` within seconds instead of hanging, nothing panics, and once Redis is back the
//! cluster carries on where it was: the room stays on its node and new rooms are placed again.

use std::time::Duration;

use crate::support::cluster::{cluster, host_of, join_via, node_index};
use crate::support::{self, recv, send};
use chorus_protocol::{ErrorCode, ErrorMessage, ServerMessage};
use chorus_signaling::testing::{RedisServer, TestServer};
use tokio::time::Instant;
use tokio_tungstenite::connect_async;

/// Longest a join may take to be answered while Redis is down: a command times out (5 s) or is refused at once.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);
/// How long the cluster may take to recover once Redis is back (reconnect backoff, a heartbeat).
const RECOVERY: Duration = Duration::from_secs(20);

/// One join through `via` (no redirect following): the first answer.
async fn join_once(via: &TestServer, room: &str, identity: &str) -> ServerMessage {
    let token = via.token(room, identity);
    let mut ws = connect_async(via.ws_url()).await.expect("connects").0;
    send(&mut ws, &format!(r#"{{"type":"join","token":"{token}"}}"#)).await;
    tokio::time::timeout(ANSWER_WITHIN, recv(&mut ws))
        .await
        .expect("join answered in time")
        .expect("an answer, not a silent close")
}

/// Joins through `nodes[via]`, following redirects: the joined response and the index of the node that took
/// it, or the refusal.
async fn join_following(
    nodes: &[TestServer],
    via: usize,
    room: &str,
    identity: &str,
) -> Result<(chorus_protocol::JoinedResponse, usize), ErrorMessage> {
    let token = nodes[via].token(room, identity);
    let mut url = nodes[via].ws_url();
    for _ in 0..3 {
        let mut ws = connect_async(url.as_str()).await.expect("connects").0;
        send(&mut ws, &format!(r#"{{"type":"join","token":"{token}"}}"#)).await;
        match recv(&mut ws).await.expect("an answer to join") {
            ServerMessage::Joined(j) => return Ok((j, node_index(nodes, &url))),
            ServerMessage::Redirect { url: next, .. } => url = next,
            ServerMessage::Error(e) => return Err(e),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    panic!("too many redirects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_survive_a_redis_outage_and_the_cluster_recovers_after_it() {
    let mut redis = RedisServer::start_durable().await.expect("redis-server");
    let nodes = cluster(&redis, 2).await;
    let (mut alice, first, _) = join_via(&nodes[0], "standup", "alice").await;
    let host = host_of(&nodes, "standup");
    let other = 1 - host;

    redis.stop();
    let outage = Instant::now();
    // A new room cannot be placed (nor the token checked against revocations): a clear, retryable refusal.
    match join_once(&nodes[other], "retro", "bob").await {
        ServerMessage::Error(e) => {
            assert_eq!(e.code, ErrorCode::Unavailable, "{e:?}");
            assert!(e.fatal);
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    println!(
        "a join during the outage was refused after {:?}",
        outage.elapsed()
    );
    // The call in progress goes on: its signaling still answers.
    send(&mut alice, r#"{"type":"ping","timestamp":7}"#).await;
    match support::recv_until(&mut alice, |m| matches!(m, ServerMessage::Pong { .. })).await {
        ServerMessage::Pong { timestamp } => assert_eq!(timestamp, 7),
        _ => unreachable!(),
    }
    for node in &nodes {
        let health = reqwest::get(format!("{}/healthz", node.http_url()))
            .await
            .expect("healthz answers during the outage");
        assert!(health.status().is_success(), "{}", health.status());
    }
    assert!(
        nodes[host].server.state.registry.get("standup").is_some(),
        "the room is still open on its node"
    );

    redis.restart().await.expect("redis-server again");
    let back = Instant::now();
    // Joins work again: the existing room through the other node reaches the same room on its node ...
    let deadline = back + RECOVERY;
    let joined = loop {
        match join_following(&nodes, other, "standup", "carol").await {
            Ok((j, node)) => {
                assert_eq!(
                    node, host,
                    "joined on the room's node, not a second `standup`"
                );
                break j;
            }
            Err(e) => assert_eq!(e.code, ErrorCode::Unavailable, "{e:?}"),
        }
        assert!(Instant::now() < deadline, "no recovery within {RECOVERY:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        joined.room.sid, first.room.sid,
        "the same room as before the outage"
    );
    println!(
        "joins worked again {:?} after Redis came back",
        back.elapsed()
    );
    // ... and a new room is placed again.
    let (_ws, retro, _) = join_via(&nodes[other], "retro", "bob").await;
    assert_eq!(retro.room.name, "retro");
    assert_eq!(
        nodes
            .iter()
            .map(|n| n.server.state.registry.len())
            .sum::<usize>(),
        2,
        "two rooms, each on one node"
    );
}
