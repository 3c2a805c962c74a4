//! Simulcast from the Rust client through the real server: a publisher sends `q`/`h`/`f` (320×180, 640×360,
//! 1280×720 written in each layer's VP8 keyframes), two subscribers ask for `low` and `high` and each receives
//! its layer — seen in the keyframes that arrive and in the server's `stats` — then they swap, and once
//! nobody wants more than `low`, dynacast stops the publisher's `h` and `f`.
//!
//! Correctness only: the deadlines bound the waits and nothing measures speed. The bitrate check compares the
//! two subscribers loosely (`f` is 1.7 Mbit/s, `q` 150 kbit/s).

use std::time::Duration;

use crate::support::{init_logs, next_matching, room_name, server_stats, wait_until};
use anyhow::{ensure, Context};
use chorus_client::{Client, ClientEvent, ConnectOptions};
use chorus_protocol::VideoQuality;
use chorus_signaling::testing::TestServer;

const DEADLINE: Duration = Duration::from_secs(20);
const LOW: (u16, u16) = (320, 180);
const HIGH: (u16, u16) = (1280, 720);

/// The size of the last keyframe `client` received of `track_sid`.
fn frame_size(client: &Client, track_sid: &str) -> Option<(u16, u16)> {
    client
        .received()
        .into_iter()
        .find(|t| t.track_sid == track_sid)?
        .frame_size
}

/// Payload bytes `client` received of `track_sid` after keyframes of `size`.
fn bytes_at(client: &Client, track_sid: &str, (w, h): (u16, u16)) -> u64 {
    client
        .received()
        .iter()
        .find(|t| t.track_sid == track_sid)
        .and_then(|t| t.at_size(w, h))
        .map_or(0, |s| s.bytes)
}

/// Waits until `client` receives `size` of `track_sid` and has got some bytes of it.
async fn receives(client: &Client, track_sid: &str, size: (u16, u16)) -> anyhow::Result<()> {
    let what = format!("{} receiving {}×{}", client.identity(), size.0, size.1);
    let start = bytes_at(client, track_sid, size);
    wait_until(&what, DEADLINE, || {
        frame_size(client, track_sid) == Some(size)
            && bytes_at(client, track_sid, size) > start + 10_000
    })
    .await
}

/// The layer the server says it forwards of `track_sid` to `client`.
async fn current_layer(client: &Client, track_sid: &str) -> anyhow::Result<Option<String>> {
    let stats = server_stats(client, DEADLINE).await?;
    Ok(stats
        .subscriptions
        .into_iter()
        .find(|s| s.track_sid == track_sid)
        .and_then(|s| s.current_layer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_receive_the_layer_they_ask_for_and_dynacast_stops_the_rest(
) -> anyhow::Result<()> {
    init_logs();
    let ts = TestServer::start().await.context("start test server")?;
    let room = room_name("simulcast");
    let url = ts.ws_url();
    let alice = Client::connect(&url, &ts.token(&room, "alice"), ConnectOptions::default()).await?;
    let bob = Client::connect(&url, &ts.token(&room, "bob"), ConnectOptions::default()).await?;
    let carol = Client::connect(&url, &ts.token(&room, "carol"), ConnectOptions::default()).await?;
    let video = alice.publish_simulcast_video().await?;
    let sid = video.track_sid.clone();
    let rids: Vec<_> = video.layers.iter().map(|l| l.rid.as_str()).collect();
    ensure!(rids == ["q", "h", "f"], "layers {:?}", video.layers);

    // Bob wants low, carol the default (the best).
    bob.set_quality(std::slice::from_ref(&sid), Some(VideoQuality::Low))?;
    receives(&bob, &sid, LOW).await?;
    receives(&carol, &sid, HIGH).await?;
    ensure!(current_layer(&bob, &sid).await?.as_deref() == Some("q"));
    ensure!(current_layer(&carol, &sid).await?.as_deref() == Some("f"));

    // What each gets is the size of its layer: over the same second, carol's f carries several times bob's q.
    let (bob0, carol0) = (bytes_at(&bob, &sid, LOW), bytes_at(&carol, &sid, HIGH));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (bob1, carol1) = (bytes_at(&bob, &sid, LOW), bytes_at(&carol, &sid, HIGH));
    let (bob_bytes, carol_bytes) = (bob1 - bob0, carol1 - carol0);
    ensure!(
        bob_bytes > 0 && carol_bytes > 3 * bob_bytes,
        "f {carol_bytes} B/s vs q {bob_bytes} B/s"
    );

    // They swap: each moves to its new layer at a keyframe.
    bob.set_quality(std::slice::from_ref(&sid), Some(VideoQuality::High))?;
    carol.set_quality(std::slice::from_ref(&sid), Some(VideoQuality::Low))?;
    receives(&bob, &sid, HIGH).await?;
    receives(&carol, &sid, LOW).await?;

    // Nobody wants more than low: after the server's hold (3 s) alice is asked for `q` only and stops h and f.
    bob.set_quality(std::slice::from_ref(&sid), Some(VideoQuality::Low))?;
    let layers = next_matching(&alice, "publishLayers [q]", DEADLINE, |e| match e {
        ClientEvent::PublishLayers {
            track_sid,
            enabled: true,
            layers,
        } if track_sid == sid && layers == ["q"] => Some(layers),
        _ => None,
    })
    .await?;
    tracing::info!(?layers, "dynacast");
    let active: Vec<_> = alice.published()[0]
        .layers
        .iter()
        .map(|l| l.active)
        .collect();
    ensure!(active == [true, false, false], "active layers {active:?}");
    let sent = |i: usize| alice.published()[0].layers[i].frames_sent;
    tokio::time::sleep(Duration::from_millis(100)).await; // a frame already being written when it stopped
    let before = (sent(0), sent(2));
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        sent(0) > before.0 && sent(2) == before.1,
        "q goes on, f stopped"
    );
    receives(&bob, &sid, LOW).await?;

    for c in [&alice, &bob, &carol] {
        c.leave().await;
    }
    Ok(())
}
