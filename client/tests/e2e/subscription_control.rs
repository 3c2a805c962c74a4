//! Subscription control over the real protocol with Rust clients: `updateSubscription` reaches the media
//! worker (seen in `getStats`), bad preferences are refused with a clear error, and the session goes on.

use std::time::Duration;

use crate::support::{next_matching, room_name, server_stats};
use anyhow::{bail, Context};
use chorus_client::{Client, ClientEvent, ConnectOptions, ErrorCode};
use chorus_protocol::{ClientMessage, LayerReason, ParticipantStats, VideoQuality};
use chorus_signaling::testing::TestServer;

const DEADLINE: Duration = Duration::from_secs(20);

async fn stats(client: &Client) -> anyhow::Result<ParticipantStats> {
    server_stats(client, DEADLINE).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_preferences_reach_the_worker_and_bad_ones_are_refused() -> anyhow::Result<()> {
    let ts = TestServer::start().await.context("start test server")?;
    let room = room_name("sub");
    let url = ts.ws_url();
    let alice = Client::connect(&url, &ts.token(&room, "alice"), ConnectOptions::default()).await?;
    let bob = Client::connect(&url, &ts.token(&room, "bob"), ConnectOptions::default()).await?;
    let video = alice.publish_video().await?;

    // Bob receives alice's video; by default he wants the best layer and gets it (the Rust client sends no
    // congestion feedback, so nothing limits him).
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let sub = loop {
        let s = stats(&bob).await?;
        if let Some(sub) = s
            .subscriptions
            .into_iter()
            .find(|x| x.track_sid == video.track_sid && x.current_layer.is_some())
        {
            break sub;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("bob's subscription to alice's video never started forwarding");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(sub.reason, LayerReason::Requested);
    assert!(!sub.paused);

    // A preference for the camera track is accepted (its one layer is both low and high).
    bob.set_quality(
        std::slice::from_ref(&video.track_sid),
        Some(VideoQuality::Low),
    )?;
    let s = stats(&bob).await?;
    let sub = s
        .subscriptions
        .iter()
        .find(|x| x.track_sid == video.track_sid)
        .context("still subscribed")?;
    assert_eq!(sub.wanted_layer.as_deref(), Some("0"));

    // Width without height, and an unknown track: clear errors, and the session goes on.
    bob.send_raw(ClientMessage::UpdateSubscription {
        track_sids: vec![video.track_sid.clone()],
        quality: None,
        width: Some(640),
        height: None,
        pinned: false,
    })?;
    let code = next_matching(&bob, "an error", DEADLINE, |e| match e {
        ClientEvent::Error { code, .. } => Some(code),
        _ => None,
    })
    .await?;
    assert_eq!(code, ErrorCode::BadRequest);
    bob.set_quality(&["TR_nope".to_string()], Some(VideoQuality::High))?;
    let code = next_matching(&bob, "an error", DEADLINE, |e| match e {
        ClientEvent::Error { code, .. } => Some(code),
        _ => None,
    })
    .await?;
    assert_eq!(code, ErrorCode::UnknownTrack);
    assert!(
        !stats(&bob).await?.subscriptions.is_empty(),
        "still in the call"
    );

    alice.leave().await;
    bob.leave().await;
    Ok(())
}
