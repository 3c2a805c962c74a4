//! Node failure with real processes: two `chorus` nodes (this package's binary) on one real `redis-server`,
//! behind an entry proxy standing in for the load balancer. Two Rust clients (`chorus-client`) join one room
//! through the entry and exchange media; the node hosting the room is killed with SIGKILL (no drain, no
//! goodbye); both clients must join again by themselves through the entry, land on the surviving node, publish
//! again, and receive each other's audio and video. The browser SDK's side of this is
//! `tests/browser/cluster.test.mjs`.

use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use chorus_client::{Client, ClientEvent, ConnectOptions, TrackKind};
use chorus_signaling::auth::{ApiKey, Grants, KeyStore, TokenRequest};
use chorus_signaling::testing::{RedisServer, TestServer};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const MEDIA_DEADLINE: Duration = Duration::from_secs(30);
/// A dead node's registration expires after 6 s; then joining, ICE and the first keyframe.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(45);

/// One `chorus serve` process on free loopback ports.
struct Node {
    id: String,
    http_port: u16,
    child: Child,
    dir: PathBuf,
}

impl Node {
    async fn start(id: &str, key: &ApiKey, redis_url: &str) -> anyhow::Result<Node> {
        let dir = std::env::temp_dir().join(format!("chorus-failover-{}-{id}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let log = File::create(dir.join("log"))?;
        let http_port = free_tcp_port()?;
        let ports = [
            ("--http-port", http_port),
            ("--rtc-port", free_udp_port()?),
            ("--rtc-tcp-port", free_tcp_port()?),
            ("--turn-port", free_tcp_port()?),
        ];
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
        cmd.arg("serve")
            .args(["--data-dir".as_ref(), dir.as_os_str()])
            .args([
                "--http-bind",
                "127.0.0.1",
                "--node-ip",
                "127.0.0.1",
                "--workers",
                "1",
            ])
            .args([
                "--api-key",
                &key.key,
                "--redis-url",
                redis_url,
                "--node-id",
                id,
            ]);
        for (flag, port) in ports {
            cmd.args([flag, &port.to_string()]);
        }
        let child = cmd
            .env("CHORUS_API_SECRET", &key.secret)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("spawn chorus")?;
        let node = Node {
            id: id.to_owned(),
            http_port,
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while node.health().await.is_err() {
            if Instant::now() > deadline {
                bail!("{id} did not come up:\n{}", node.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(node)
    }

    /// `/healthz`: `{status, node, rooms, ...}`.
    async fn health(&self) -> anyhow::Result<serde_json::Value> {
        let url = format!("http://127.0.0.1:{}/healthz", self.http_port);
        let response = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await?;
        Ok(serde_json::from_str(&response.text().await?)?)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP proxy on a free loopback port in front of `backends`: each connection goes to the next backend in
/// turn, skipping those that refuse it, as a load balancer would.
async fn entry_proxy(backends: Vec<u16>) -> anyhow::Result<(u16, JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        let mut next = 0;
        while let Ok((mut client, _)) = listener.accept().await {
            let order: Vec<u16> = (0..backends.len())
                .map(|i| backends[(next + i) % backends.len()])
                .collect();
            next += 1;
            tokio::spawn(async move {
                for port in order {
                    if let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        return;
                    }
                }
            });
        }
    });
    Ok((port, task))
}

fn token(keys: &KeyStore, room: &str, identity: &str) -> String {
    keys.issue(&TokenRequest {
        api_key: None,
        identity: identity.to_owned(),
        name: None,
        room: room.to_owned(),
        ttl: Duration::from_secs(600),
        grants: Grants::default(),
        not_before: None,
    })
    .expect("token")
}

fn packets_from(receiver: &Client, from: &str, kind: TrackKind) -> u64 {
    receiver
        .received()
        .iter()
        .filter(|t| t.participant_sid == from && t.kind == kind)
        .map(|t| t.packets)
        .sum()
}

/// Waits until each client receives video and audio from the other's current session.
async fn wait_for_media(alice: &Client, bob: &Client, what: &str) -> anyhow::Result<()> {
    let flows = |rx: &Client, tx: &Client| {
        let from = tx.participant_sid();
        packets_from(rx, &from, TrackKind::Video) > 50
            && packets_from(rx, &from, TrackKind::Audio) > 20
    };
    let start = Instant::now();
    while !(flows(alice, bob) && flows(bob, alice)) {
        if start.elapsed() > MEDIA_DEADLINE {
            bail!(
                "{what}: media did not flow within {MEDIA_DEADLINE:?}: alice received {:?}, bob received {:?}",
                alice.received(),
                bob.received()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Reads `client`'s events until `Rejoined`; fails on `Disconnected` or at `deadline`.
async fn wait_for_rejoin(client: &Client, deadline: Instant) -> anyhow::Result<Vec<ClientEvent>> {
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout_at(deadline, client.next_event())
            .await
            .with_context(|| format!("no rejoin in time; events: {seen:?}"))?
            .with_context(|| format!("events ended; events: {seen:?}"))?;
        match &event {
            ClientEvent::Rejoined { .. } => {
                seen.push(event);
                return Ok(seen);
            }
            ClientEvent::Disconnected { reason } => bail!("gave up: {reason}; events: {seen:?}"),
            _ => seen.push(event),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_rejoin_on_the_surviving_node_when_the_room_node_is_killed() -> anyhow::Result<()> {
    chorus_signaling::tls::install_crypto_provider(); // for reqwest
    let redis = RedisServer::start().await.context("redis-server")?;
    let key = TestServer::random_key();
    let keys = KeyStore::new(vec![key.clone()])?;
    let mut nodes = vec![
        Node::start("node-a", &key, &redis.url).await?,
        Node::start("node-b", &key, &redis.url).await?,
    ];
    let result = failover(&keys, &mut nodes).await;
    if result.is_err() {
        for node in &nodes {
            eprintln!("--- {} log ---\n{}", node.id, node.log());
        }
    }
    result
}

async fn failover(keys: &KeyStore, nodes: &mut [Node]) -> anyhow::Result<()> {
    let (entry_port, _entry) = entry_proxy(nodes.iter().map(|n| n.http_port).collect()).await?;
    let entry = format!("ws://127.0.0.1:{entry_port}/rtc");
    let room = format!("failover-{}", std::process::id());
    // The entry hands alice's WebSocket to one node and bob's to the other: one of them is redirected.
    let alice = Client::connect(
        &entry,
        &token(keys, &room, "alice"),
        ConnectOptions::default(),
    )
    .await?;
    let bob = Client::connect(
        &entry,
        &token(keys, &room, "bob"),
        ConnectOptions::default(),
    )
    .await?;
    assert_eq!(alice.room().sid, bob.room().sid, "one room");
    for client in [&alice, &bob] {
        client.publish_audio().await.context("publish audio")?;
        client.publish_video().await.context("publish video")?;
    }
    wait_for_media(&alice, &bob, "before the failure").await?;

    let mut rooms = Vec::new();
    for node in nodes.iter() {
        rooms.push(node.health().await?["rooms"].as_u64().unwrap_or(0));
    }
    let host = rooms
        .iter()
        .position(|&r| r == 1)
        .context("a node hosts the room")?;
    assert_eq!(rooms.iter().sum::<u64>(), 1, "one node hosts it: {rooms:?}");
    let survivor = 1 - host;
    let sids_before = (alice.participant_sid(), bob.participant_sid());
    while alice.try_next_event().is_some() || bob.try_next_event().is_some() {}

    let killed_at = Instant::now();
    nodes[host]
        .child
        .kill()
        .await
        .context("kill the host node")?;
    let deadline = killed_at + RECOVERY_DEADLINE;
    let (alice_events, bob_events) = tokio::try_join!(
        wait_for_rejoin(&alice, deadline),
        wait_for_rejoin(&bob, deadline)
    )?;
    let rejoined = killed_at.elapsed();
    for (name, events) in [("alice", &alice_events), ("bob", &bob_events)] {
        assert!(
            matches!(events.first(), Some(ClientEvent::Reconnecting { .. })),
            "{name} first says it is reconnecting: {events:?}"
        );
    }
    assert_ne!(
        alice.participant_sid(),
        sids_before.0,
        "alice has a new session"
    );
    assert_ne!(
        bob.participant_sid(),
        sids_before.1,
        "bob has a new session"
    );
    assert_eq!(alice.room().sid, bob.room().sid, "one room again");
    wait_for_media(&alice, &bob, "after the failover").await?;
    let flowing = killed_at.elapsed();
    assert_eq!(
        nodes[survivor].health().await?["rooms"].as_u64(),
        Some(1),
        "the surviving node hosts the room now"
    );
    println!(
        "killed {}: both clients rejoined on {} after {rejoined:?}, media flowing both ways after {flowing:?}",
        nodes[host].id, nodes[survivor].id
    );
    alice.leave().await;
    bob.leave().await;
    Ok(())
}

fn free_tcp_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn free_udp_port() -> std::io::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
