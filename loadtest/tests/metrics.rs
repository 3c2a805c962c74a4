//! `/metrics` after a real call: two Rust clients on an in-process server (loopback) exchange media, and the
//! server's Prometheus metrics show it — forwarded packets, packets by kind, gauges — plus the process CPU; and
//! with two media workers, the per-worker gauges show where new rooms are placed.

use std::time::Duration;

use anyhow::{bail, Context};
use chorus_client::{Client, ConnectOptions, TrackKind};
use chorus_signaling::testing::TestServer;
use loadtest::http::HttpUrl;
use loadtest::scrape::{scrape, Metrics};

const DEADLINE: Duration = Duration::from_secs(30);

fn received(client: &Client, kind: TrackKind) -> u64 {
    client
        .received()
        .iter()
        .filter(|t| t.kind == kind)
        .map(|t| t.packets)
        .sum()
}

/// Scrapes until `ok` holds (gauges are published every 100 ms), or fails with the last scrape.
async fn scrape_until(
    url: &HttpUrl,
    what: &str,
    ok: impl Fn(&Metrics) -> bool,
) -> anyhow::Result<Metrics> {
    let start = tokio::time::Instant::now();
    loop {
        let m = scrape(url).await.context("GET /metrics")?;
        if ok(&m) {
            return Ok(m);
        }
        if start.elapsed() > DEADLINE {
            bail!("/metrics never showed {what}: {m:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_call() -> anyhow::Result<()> {
    // The room closes as soon as it is empty: the end of the call is checked without waiting out the default
    // 20 s empty timeout (which took most of the deadline, and failed the test once on a busy machine).
    let ts = TestServer::start_with(|s| s.room_empty_timeout = Duration::ZERO)
        .await
        .context("start test server")?;
    let url = HttpUrl::parse(&format!("{}/metrics", ts.http_url())).map_err(anyhow::Error::msg)?;
    let before = scrape(&url).await.context("GET /metrics")?;
    assert_eq!(before.get("chorus_forwarded_packets_total"), Some(0.0));
    assert_eq!(before.get("chorus_rooms"), Some(0.0));

    let alice = Client::connect(
        &ts.ws_url(),
        &ts.token("call", "alice"),
        ConnectOptions::default(),
    )
    .await?;
    let bob = Client::connect(
        &ts.ws_url(),
        &ts.token("call", "bob"),
        ConnectOptions::default(),
    )
    .await?;
    alice.publish_audio().await?;
    alice.publish_video().await?;
    bob.publish_video().await?;
    let start = tokio::time::Instant::now();
    while !(received(&bob, TrackKind::Video) > 30
        && received(&bob, TrackKind::Audio) > 10
        && received(&alice, TrackKind::Video) > 30)
    {
        if start.elapsed() > DEADLINE {
            bail!(
                "media did not flow: alice {:?}, bob {:?}",
                alice.received(),
                bob.received()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let m = scrape_until(&url, "the call's gauges", |m| {
        m.get("chorus_participants") == Some(2.0)
            && m.get("chorus_tracks_published") == Some(3.0)
            && m.get("chorus_tracks_subscribed") == Some(3.0)
    })
    .await?;
    assert_eq!(m.get("chorus_rooms"), Some(1.0));
    assert_eq!(m.get("chorus_media_workers"), Some(1.0));
    let forwarded = m.get("chorus_forwarded_packets_total").unwrap_or(0.0);
    let video_out = m
        .get("chorus_media_packets_out_total{kind=\"video\"}")
        .unwrap_or(0.0);
    let audio_out = m
        .get("chorus_media_packets_out_total{kind=\"audio\"}")
        .unwrap_or(0.0);
    assert!(forwarded > 0.0, "forwarded {forwarded}");
    assert!(
        video_out > 0.0 && audio_out > 0.0,
        "video {video_out}, audio {audio_out}"
    );
    assert_eq!(
        forwarded,
        video_out + audio_out,
        "every forwarded packet is audio or video"
    );
    assert!(
        m.get("chorus_media_bytes_in_total{kind=\"video\"}")
            .unwrap_or(0.0)
            > 0.0
    );
    assert!(m.get("chorus_rtp_packets_in_total").unwrap_or(0.0) > 0.0);
    assert!(m.get("chorus_udp_datagrams_out_total").unwrap_or(0.0) >= forwarded);
    assert_eq!(m.get("chorus_participant_faults_total"), Some(0.0));
    assert!(
        m.get("process_cpu_seconds_total").is_some_and(|s| s > 0.0),
        "process CPU exported"
    );
    assert!(m
        .get("process_resident_memory_bytes")
        .is_some_and(|b| b > 0.0));
    // The media worker's own CPU time and sleeps: it forwarded the call, and waited for input in between.
    let media_cpu = m.get("chorus_media_thread_cpu_seconds_total");
    assert!(
        media_cpu.is_some_and(|s| s > 0.0),
        "media CPU {media_cpu:?}"
    );
    let sleeps = m.get("chorus_media_thread_sleeps_total");
    assert!(sleeps.is_some_and(|n| n > 0.0), "media sleeps {sleeps:?}");
    // The one worker's own families carry the same figures as the totals (both from one scrape).
    assert_eq!(m.get("chorus_worker_participants{worker=\"0\"}"), Some(2.0));
    assert_eq!(m.get("chorus_worker_rooms{worker=\"0\"}"), Some(1.0));
    assert_eq!(
        m.get("chorus_worker_forwarded_packets_total{worker=\"0\"}"),
        Some(forwarded)
    );
    assert_eq!(
        m.get("chorus_worker_cpu_seconds_total{worker=\"0\"}"),
        media_cpu
    );
    assert_eq!(m.get("chorus_worker_participants{worker=\"1\"}"), None);
    // It ran its connections' timers (reports, feedback, pacing), and says how late.
    let timer_rounds = m.get("chorus_media_timer_lateness_seconds_count");
    assert!(
        timer_rounds.is_some_and(|n| n > 0.0),
        "timer lateness count {timer_rounds:?}"
    );

    alice.leave().await;
    bob.leave().await;
    scrape_until(&url, "the call's end", |m| {
        m.get("chorus_participants") == Some(0.0) && m.get("chorus_rooms") == Some(0.0)
    })
    .await?;
    Ok(())
}

/// The participants of each media worker, from one scrape.
fn per_worker_participants(m: &Metrics) -> [Option<f64>; 2] {
    [0, 1].map(|i| m.get(&format!("chorus_worker_participants{{worker=\"{i}\"}}")))
}

/// With two workers, a new room goes to the least loaded one: after the second room has closed, the third goes
/// to the worker it left empty, not to the next one in turn (round-robin, or the key-modulo placement this
/// replaced, would put it beside the first room). The per-worker gauges show where each participant is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_go_to_the_least_loaded_worker() -> anyhow::Result<()> {
    let ts = TestServer::start_with(|s| {
        s.room_empty_timeout = Duration::ZERO;
        s.sfu.workers = 2;
    })
    .await
    .context("start test server")?;
    let url = HttpUrl::parse(&format!("{}/metrics", ts.http_url())).map_err(anyhow::Error::msg)?;
    let ws_url = ts.ws_url();
    let join = |room: &str, who: &str| {
        let token = ts.token(room, who);
        let ws_url = ws_url.clone();
        async move { Client::connect(&ws_url, &token, ConnectOptions::default()).await }
    };
    let alice = join("first", "alice").await?;
    scrape_until(&url, "alice on worker 0", |m| {
        per_worker_participants(m) == [Some(1.0), Some(0.0)]
    })
    .await?;
    let bob = join("second", "bob").await?;
    scrape_until(&url, "bob on worker 1", |m| {
        per_worker_participants(m) == [Some(1.0), Some(1.0)]
    })
    .await?;
    bob.leave().await;
    scrape_until(&url, "the second room closed", |m| {
        per_worker_participants(m) == [Some(1.0), Some(0.0)]
            && m.get("chorus_worker_rooms{worker=\"1\"}") == Some(0.0)
    })
    .await?;
    let carol = join("third", "carol").await?;
    scrape_until(&url, "carol on the worker left empty", |m| {
        per_worker_participants(m) == [Some(1.0), Some(1.0)]
    })
    .await?;
    alice.leave().await;
    carol.leave().await;
    Ok(())
}
