//! Two Rust clients in one room on an in-process Chorus server (loopback only): each publishes synthetic audio
//! and video and receives the other's; presence events flow; leaving is seen by the other.
//!
//! Run: `cargo test -p chorus-client --release --test e2e two_participants::` (add `RUST_LOG=debug` to see signaling
//! and webrtc-rs logs). Timeouts are generous and only bound the wait; nothing here measures performance.

use std::time::Duration;

use crate::support::{init_logs, packets_from, room_name, wait_event};
use anyhow::{bail, Context};
use chorus_client::{Client, ClientError, ClientEvent, ConnectOptions, ErrorCode, TrackKind};
use chorus_signaling::testing::TestServer;

const MEDIA_DEADLINE: Duration = Duration::from_secs(30);
const EVENT_DEADLINE: Duration = Duration::from_secs(15);

fn has_media_from(receiver: &Client, from: &str) -> bool {
    packets_from(receiver, from, Some(TrackKind::Video)) > 50
        && packets_from(receiver, from, Some(TrackKind::Audio)) > 20
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_participants_exchange_audio_and_video() -> anyhow::Result<()> {
    init_logs();
    let ts = TestServer::start().await.context("start test server")?;
    let room = room_name("it");
    let url = ts.ws_url();

    let alice = Client::connect(&url, &ts.token(&room, "alice"), ConnectOptions::default())
        .await
        .context("alice joins")?;
    let bob = Client::connect(&url, &ts.token(&room, "bob"), ConnectOptions::default())
        .await
        .context("bob joins")?;
    let alice_sid = alice.participant_sid().to_owned();
    let bob_sid = bob.participant_sid().to_owned();
    assert_ne!(alice_sid, bob_sid);
    assert_eq!(alice.room().name, room);

    // Bob joined second: alice is in his `joined` list; alice hears about bob.
    assert!(
        bob.participants()
            .iter()
            .any(|p| p.sid == alice_sid && p.identity == "alice"),
        "bob's joined list has alice: {:?}",
        bob.participants()
    );
    wait_event(&alice, "participantJoined(bob)", EVENT_DEADLINE, |e| {
        matches!(e, ClientEvent::ParticipantJoined(p) if p.sid == bob_sid && p.identity == "bob")
    })
    .await?;

    for client in [&alice, &bob] {
        let audio = client.publish_audio().await.context("publish audio")?;
        let video = client.publish_video().await.context("publish video")?;
        assert!(!audio.track_sid.is_empty() && !video.track_sid.is_empty());
        assert_ne!(audio.track_sid, video.track_sid);
    }

    let start = tokio::time::Instant::now();
    while !(has_media_from(&bob, &alice_sid) && has_media_from(&alice, &bob_sid)) {
        if start.elapsed() > MEDIA_DEADLINE {
            bail!(
                "media did not flow within {MEDIA_DEADLINE:?}\n alice sent {:?}\n alice received {:?}\n \
                 bob sent {:?}\n bob received {:?}",
                alice.published(),
                alice.received(),
                bob.published(),
                bob.received()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::info!(elapsed = ?start.elapsed(), "media flows both ways");
    for (receiver, sender) in [(&bob, &alice), (&alice, &bob)] {
        let published: Vec<_> = sender
            .published()
            .into_iter()
            .map(|t| t.track_sid)
            .collect();
        for t in receiver
            .received()
            .iter()
            .filter(|t| t.participant_sid == sender.participant_sid())
        {
            assert!(
                published.contains(&t.track_sid),
                "{} is one of {published:?}",
                t.track_sid
            );
            assert!(
                t.stamped_frames > 0,
                "synthetic frames arrive intact: {t:?}"
            );
        }
    }

    alice.leave().await;
    assert!(!alice.is_connected());
    wait_event(&bob, "participantLeft(alice)", EVENT_DEADLINE, |e| {
        matches!(e, ClientEvent::ParticipantLeft { participant_sid, .. } if *participant_sid == alice_sid)
    })
    .await?;
    assert!(bob.participants().iter().all(|p| p.sid != alice_sid));
    assert!(bob.is_connected());
    bob.leave().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused() -> anyhow::Result<()> {
    init_logs();
    let ts = TestServer::start().await.context("start test server")?;
    match Client::connect(&ts.ws_url(), "not-a-jwt", ConnectOptions::default()).await {
        Err(ClientError::Server { code, .. }) => assert_eq!(code, ErrorCode::Unauthorized),
        other => bail!("expected unauthorized, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_without_the_grant_is_denied() -> anyhow::Result<()> {
    init_logs();
    let ts = TestServer::start().await.context("start test server")?;
    let grants = chorus_signaling::auth::Grants {
        can_publish: false,
        ..Default::default()
    };
    let token = ts.token_with(&room_name("it"), "viewer", grants);
    let viewer = Client::connect(&ts.ws_url(), &token, ConnectOptions::default()).await?;
    match viewer.publish_audio().await {
        Err(ClientError::Server { code, .. }) => assert_eq!(code, ErrorCode::PermissionDenied),
        other => bail!("expected permission_denied, got {other:?}"),
    }
    assert!(viewer.is_connected(), "a refused offer is not fatal");
    viewer.leave().await;
    Ok(())
}
