//! Simulcast publishing without a Chorus server (the fake server of `loopback_tests.rs`, a plain webrtc-rs
//! peer): the offer carries `a=rid`/`a=simulcast` and the rid header extension, the track description lists the
//! rids lowest first with the top layer's size, every layer's source sends, and mute and dynacast stop the
//! right layers. That the server receives and forwards the layers is `tests/e2e/simulcast.rs`.

use std::time::Duration;

use chorus_protocol::TrackKind;

use crate::local_track::PublishOptions;
use crate::loopback_tests::{loopback_publisher, wait_for, DEADLINE};
use crate::publisher::Publisher;
use crate::{ClientError, SimulcastLayer};

/// Frames sent by each layer of the one published track, lowest first.
fn layer_frames(publisher: &Publisher) -> Vec<u64> {
    publisher.published()[0]
        .layers
        .iter()
        .map(|l| l.frames_sent)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_offer_layers_mute_and_dynacast() {
    let (publisher, server, pump, log) = loopback_publisher().await;

    // Bad requests are refused before anything is negotiated.
    let audio = PublishOptions {
        simulcast: SimulcastLayer::defaults(),
        ..PublishOptions::audio()
    };
    let mut twice = PublishOptions::simulcast_video();
    twice.simulcast[2].rid = "q".into();
    for bad in [audio, twice] {
        let err = publisher.publish(bad).await.expect_err("refused");
        assert!(matches!(err, ClientError::InvalidOptions(_)), "{err}");
    }
    assert!(publisher.published().is_empty());

    let video = tokio::time::timeout(
        DEADLINE,
        publisher.publish(PublishOptions::simulcast_video()),
    )
    .await
    .expect("publish in time")
    .expect("published");
    assert_eq!(video.kind, TrackKind::Video);
    let layers: Vec<_> = video
        .layers
        .iter()
        .map(|l| (l.rid.as_str(), l.width, l.height, l.bitrate_bps, l.active))
        .collect();
    assert_eq!(
        layers,
        [
            ("q", 320, 180, 150_000, true),
            ("h", 640, 360, 500_000, true),
            ("f", 1280, 720, 1_700_000, true)
        ]
    );
    {
        let log = log.lock().expect("lock");
        assert_eq!(log.offers.len(), 1, "refused options sent no offer");
        let (sdp, tracks) = &log.offers[0];
        assert_eq!(tracks.len(), 1);
        assert_eq!(tracks[0].layers, ["q", "h", "f"]);
        assert_eq!((tracks[0].width, tracks[0].height), (Some(1280), Some(720)));
        for line in [
            "a=rid:q send",
            "a=rid:h send",
            "a=rid:f send",
            "a=simulcast:send q;h;f",
            "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        ] {
            assert!(sdp.contains(line), "{line} in the offer:\n{sdp}");
        }
    }

    wait_for("every layer sending", || {
        layer_frames(&publisher).iter().all(|&n| n > 10)
    })
    .await;
    let info = &publisher.published()[0];
    let layer_bytes: u64 = info.layers.iter().map(|l| l.bytes_sent).sum();
    assert_eq!(
        info.bytes_sent, layer_bytes,
        "the track's counters sum its layers"
    );
    assert!(
        info.layers[0].bytes_sent < info.layers[2].bytes_sent,
        "q is smaller than f: {:?}",
        info.layers
    );

    // Dynacast: only `q` wanted; `h` and `f` stop, `q` goes on.
    publisher.on_publish_layers(&video.track_sid, true, &["q".to_string()]);
    let active: Vec<_> = publisher.published()[0]
        .layers
        .iter()
        .map(|l| l.active)
        .collect();
    assert_eq!(active, [true, false, false]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = layer_frames(&publisher);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = layer_frames(&publisher);
    assert!(
        after[0] > before[0],
        "q still sends: {before:?} → {after:?}"
    );
    assert_eq!(after[1..], before[1..], "h and f stopped");

    // Every layer back; then mute stops them all.
    publisher.on_publish_layers(&video.track_sid, true, &[]);
    wait_for("h and f sending again", || {
        let now = layer_frames(&publisher);
        now[1] > after[1] && now[2] > after[2]
    })
    .await;
    publisher.set_muted(&video.track_sid, true).expect("mute");
    assert!(publisher.published()[0].muted);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = layer_frames(&publisher);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(layer_frames(&publisher), before, "muted: no layer sends");

    // Nobody receives it: nothing at all, even unmuted.
    publisher
        .set_muted(&video.track_sid, false)
        .expect("unmute");
    publisher.on_publish_layers(&video.track_sid, false, &[]);
    assert!(publisher.published()[0].layers.iter().all(|l| !l.active));

    publisher.close().await;
    let _ = server.close().await;
    pump.abort();
}
