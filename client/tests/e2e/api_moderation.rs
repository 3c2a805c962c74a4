//! Server-API moderation with real media (two webrtc-rs clients on loopback): muting a participant's track and
//! revoking `canPublish` mid-call, which unpublishes its tracks and stops its media.
//!
//! Run: `cargo test -p chorus-client --release --test e2e api_moderation::`.

use std::time::Duration;

use crate::support::{packets_from, wait_event};
use anyhow::{bail, ensure, Context};
use chorus_client::{Client, ClientError, ClientEvent, ConnectOptions, ErrorCode, TrackKind};
use chorus_signaling::testing::TestServer;
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(30);

async fn api(
    ts: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    chorus_signaling::tls::install_crypto_provider();
    let resp = reqwest::Client::new()
        .request(method, format!("{}{path}", ts.api_url()))
        .bearer_auth(ts.admin_token())
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_mutes_tracks_and_revoking_can_publish_unpublishes_them() -> anyhow::Result<()> {
    let ts = TestServer::start().await.context("start test server")?;
    let url = ts.ws_url();
    let alice = Client::connect(&url, &ts.token("mod", "alice"), ConnectOptions::default()).await?;
    let bob = Client::connect(&url, &ts.token("mod", "bob"), ConnectOptions::default()).await?;
    let alice_sid = alice.participant_sid().to_owned();
    let audio = alice.publish_audio().await?;
    let video = alice.publish_video().await?;
    let start = tokio::time::Instant::now();
    while packets_from(&bob, &alice_sid, None) < 50 {
        ensure!(start.elapsed() < DEADLINE, "no media from alice");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The server mutes alice's video: bob is told.
    let (status, track) = api(
        &ts,
        reqwest::Method::POST,
        &format!(
            "/rooms/mod/participants/alice/tracks/{}/mute",
            video.track_sid
        ),
        json!({"muted": true}),
    )
    .await?;
    ensure!(status == 200, "mute answered {status}: {track}");
    ensure!(track["muted"] == true && track["sid"] == video.track_sid.as_str());
    wait_event(&bob, "trackMuted", DEADLINE, |e| {
        matches!(e, ClientEvent::TrackMuted { track_sid, muted: true, .. } if *track_sid == video.track_sid)
    })
    .await?;

    // canPublish revoked mid-call: both tracks are unpublished and alice's media stops reaching bob.
    let (status, participant) = api(
        &ts,
        reqwest::Method::PATCH,
        "/rooms/mod/participants/alice",
        json!({"grants": {"canPublish": false}}),
    )
    .await?;
    ensure!(status == 200, "update answered {status}: {participant}");
    ensure!(participant["grants"]["canPublish"] == false);
    ensure!(
        participant["tracks"]
            .as_array()
            .is_some_and(|t| t.is_empty()),
        "no tracks left: {participant}"
    );
    let mut unpublished = Vec::new();
    while unpublished.len() < 2 {
        if let ClientEvent::TrackUnpublished { track_sid, .. } =
            wait_event(&bob, "trackUnpublished", DEADLINE, |e| {
                matches!(e, ClientEvent::TrackUnpublished { .. })
            })
            .await?
        {
            unpublished.push(track_sid);
        }
    }
    unpublished.sort();
    let mut expected = vec![audio.track_sid.clone(), video.track_sid.clone()];
    expected.sort();
    ensure!(unpublished == expected, "{unpublished:?} != {expected:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = packets_from(&bob, &alice_sid, None);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = packets_from(&bob, &alice_sid, None);
    ensure!(
        after == before,
        "media still flows after canPublish was revoked: {before} -> {after}"
    );
    match alice.publish(chorus_client::PublishOptions::audio()).await {
        Err(ClientError::Server { code, .. }) => ensure!(code == ErrorCode::PermissionDenied),
        other => bail!("expected permission_denied, got {other:?}"),
    }

    // Granted again: alice publishes and bob receives.
    let (status, _) = api(
        &ts,
        reqwest::Method::PATCH,
        "/rooms/mod/participants/alice",
        json!({"grants": {"canPublish": true}}),
    )
    .await?;
    ensure!(status == 200);
    let again = alice.publish_audio().await?;
    wait_event(&bob, "trackPublished", DEADLINE, |e| {
        matches!(e, ClientEvent::TrackPublished { track, .. } if track.sid == again.track_sid && track.kind == TrackKind::Audio)
    })
    .await?;
    alice.leave().await;
    bob.leave().await;
    Ok(())
}
