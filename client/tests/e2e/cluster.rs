//! Two Rust clients joining one room through different nodes of a two-node cluster (one real `redis-server` on
//! loopback): the node they did not reach redirects them, they meet in one room and exchange audio and video
//! through the room's node. The placement itself is tested in `signaling/tests/server/cluster.rs`.

use std::time::Duration;

use crate::support::{init_logs, packets_from, room_name};
use anyhow::{bail, Context};
use chorus_client::{Client, ConnectOptions, TrackKind};
use chorus_signaling::cluster::ClusterSettings;
use chorus_signaling::testing::{RedisServer, TestServer};

const MEDIA_DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_joining_through_different_nodes_share_one_call() -> anyhow::Result<()> {
    init_logs();
    let redis = RedisServer::start().await.context("redis-server")?;
    let key = TestServer::random_key();
    let mut nodes = Vec::new();
    for id in ["node-a", "node-b"] {
        let url = redis.url.clone();
        nodes.push(
            TestServer::start_with_key(key.clone(), |s| {
                s.cluster = ClusterSettings {
                    redis_url: Some(url),
                    node_id: id.into(),
                    ..ClusterSettings::default()
                };
            })
            .await
            .context("node starts")?,
        );
    }
    let room = room_name("cluster");
    let alice = Client::connect(
        &nodes[0].ws_url(),
        &nodes[0].token(&room, "alice"),
        ConnectOptions::default(),
    )
    .await
    .context("alice joins through node-a")?;
    let bob = Client::connect(
        &nodes[1].ws_url(),
        &nodes[1].token(&room, "bob"),
        ConnectOptions::default(),
    )
    .await
    .context("bob joins through node-b")?;
    assert_eq!(alice.room().sid, bob.room().sid, "one room");
    let hosting: Vec<usize> = nodes
        .iter()
        .map(|n| n.server.state.registry.len())
        .collect();
    assert_eq!(
        hosting.iter().sum::<usize>(),
        1,
        "one node hosts it: {hosting:?}"
    );

    for client in [&alice, &bob] {
        client.publish_audio().await.context("publish audio")?;
        client.publish_video().await.context("publish video")?;
    }
    let (a, b) = (
        alice.participant_sid().to_owned(),
        bob.participant_sid().to_owned(),
    );
    let flows = |rx: &Client, from: &str| {
        packets_from(rx, from, Some(TrackKind::Video)) > 50
            && packets_from(rx, from, Some(TrackKind::Audio)) > 20
    };
    let start = tokio::time::Instant::now();
    while !(flows(&bob, &a) && flows(&alice, &b)) {
        if start.elapsed() > MEDIA_DEADLINE {
            bail!(
                "media did not flow within {MEDIA_DEADLINE:?}: alice received {:?}, bob received {:?}",
                alice.received(),
                bob.received()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    alice.leave().await;
    bob.leave().await;
    Ok(())
}
