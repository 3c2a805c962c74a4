//! Call quality end to end with two webrtc-rs clients on loopback: after a few seconds of audio and video,
//! `GET /v1/rooms/{room}/participants/{identity}/stats` reports RTT, jitter, loss, bitrates and a MOS, `getStats`
//! carries the same quality, `/metrics` has counts in the RTT/jitter/loss/MOS histograms, and the
//! `room_finished` webhook summarizes every participant's session.
//!
//! Run: `cargo test -p chorus-client --release --test e2e call_quality:: -- --nocapture` (prints the figures seen).
//! Deadlines only bound the waits; nothing here measures performance.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::packets_from;
use anyhow::{bail, ensure, Context};
use axum::body::Bytes;
use axum::extract::State;
use chorus_client::{Client, ClientEvent, ConnectOptions};
use chorus_signaling::testing::TestServer;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(40);

/// A loopback webhook receiver that keeps every event body.
#[derive(Clone, Default)]
struct Hooks(Arc<Mutex<Vec<Value>>>);

impl Hooks {
    async fn start() -> anyhow::Result<(Hooks, String)> {
        let hooks = Hooks::default();
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(|State(h): State<Hooks>, body: Bytes| async move {
                    let event = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    h.0.lock().expect("lock").push(event);
                    "ok"
                }),
            )
            .with_state(hooks.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((hooks, url))
    }

    async fn wait_for(&self, kind: &str, room: &str) -> anyhow::Result<Value> {
        let start = tokio::time::Instant::now();
        loop {
            let found = self
                .0
                .lock()
                .expect("lock")
                .iter()
                .find(|e| e["type"] == kind && e["subject"] == room)
                .cloned();
            if let Some(e) = found {
                return Ok(e);
            }
            ensure!(start.elapsed() < DEADLINE, "no {kind} webhook for {room}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn get(ts: &TestServer, url: &str) -> anyhow::Result<(u16, String)> {
    chorus_signaling::tls::install_crypto_provider();
    let resp = reqwest::Client::new()
        .get(url)
        .bearer_auth(ts.admin_token())
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

async fn quality(ts: &TestServer, room: &str, identity: &str) -> anyhow::Result<(u16, Value)> {
    let url = format!(
        "{}/rooms/{room}/participants/{identity}/stats",
        ts.api_url()
    );
    let (status, body) = get(ts, &url).await?;
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// The value of an unlabelled sample line `name value` in a Prometheus text body.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn in_range(v: &Value, lo: f64, hi: f64) -> bool {
    v.as_f64().is_some_and(|x| (lo..=hi).contains(&x))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quality_is_reported_by_the_api_metrics_and_room_finished() -> anyhow::Result<()> {
    let (hooks, hook_url) = Hooks::start().await?;
    let ts = TestServer::start_with(|s| {
        s.webhooks.urls = vec![hook_url.clone()];
        s.webhooks.allow_private_urls = true;
        s.webhooks.initial_backoff = Duration::from_millis(50);
        s.room_empty_timeout = Duration::ZERO;
    })
    .await
    .context("start test server")?;
    let room = "quality";
    let url = ts.ws_url();
    let alice = Client::connect(&url, &ts.token(room, "alice"), ConnectOptions::default()).await?;
    let bob = Client::connect(&url, &ts.token(room, "bob"), ConnectOptions::default()).await?;
    for c in [&alice, &bob] {
        c.publish_audio().await?;
        c.publish_video().await?;
    }
    let start = tokio::time::Instant::now();
    while packets_from(&bob, &alice.participant_sid(), None) < 100
        || packets_from(&alice, &bob.participant_sid(), None) < 100
    {
        ensure!(start.elapsed() < DEADLINE, "media did not flow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The RTT comes from the subscribers' receiver reports (every 5 s from this client): wait for a score now
    // and in at least one of the once-a-second session samples.
    let mut reports = Vec::new();
    for who in ["alice", "bob"] {
        let report = loop {
            let (status, q) = quality(&ts, room, who).await?;
            ensure!(status == 200, "stats of {who} answered {status}: {q}");
            let complete = ["mosMean", "rttMeanMs", "lossPercentMean", "jitterMeanMs"]
                .iter()
                .all(|k| !q["session"][k].is_null());
            if complete && !q["mos"].is_null() && !q["uplink"]["jitterMs"].is_null() {
                break q;
            }
            if start.elapsed() > DEADLINE {
                bail!("no complete quality for {who}: {q}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        println!("{who}: {report}");
        reports.push(report);
    }
    for (q, who) in reports.iter().zip(["alice", "bob"]) {
        ensure!(q["identity"] == who && q["sid"].as_str().is_some_and(|s| s.starts_with("PA")));
        ensure!(in_range(&q["mos"], 1.0, 4.5), "{q}");
        ensure!(
            in_range(&q["mos"], 4.0, 4.5),
            "loopback scores above 4: {q}"
        );
        ensure!(in_range(&q["rttMs"], 0.0, 100.0), "{q}");
        ensure!(in_range(&q["bitrateInBps"], 10_000.0, 1e9), "{q}");
        ensure!(in_range(&q["bitrateOutBps"], 10_000.0, 1e9), "{q}");
        ensure!(q["bitrateInBps"] == q["uplink"]["bitrateBps"], "{q}");
        ensure!(in_range(&q["lossPercent"], 0.0, 5.0), "{q}");
        ensure!(in_range(&q["jitterMs"], 0.0, 100.0), "{q}");
        ensure!(in_range(&q["session"]["samples"], 2.0, 1e6), "{q}");
        ensure!(in_range(&q["session"]["bytesIn"], 1.0, 1e12), "{q}");
    }

    // Unknown participant or room: 404 with the JSON error body.
    let (status, body) = quality(&ts, room, "nobody").await?;
    ensure!(
        status == 404 && body["code"] == "not_found",
        "{status} {body}"
    );
    let (status, body) = quality(&ts, "no-such-room", "alice").await?;
    ensure!(
        status == 404 && body["code"] == "not_found",
        "{status} {body}"
    );

    // The participant's own getStats carries its quality too.
    alice.request_stats()?;
    let stats = loop {
        match tokio::time::timeout(DEADLINE, alice.next_event()).await {
            Ok(Some(ClientEvent::Stats(s))) => break s,
            Ok(Some(_)) => {}
            _ => bail!("no stats for alice"),
        }
    };
    let q = stats.quality.context("getStats has quality")?;
    ensure!(q.bitrate_in_bps.is_some_and(|b| b > 0), "{q:?}");

    // /metrics: the histograms counted participant-seconds (and forwarded datagrams).
    let (status, metrics) = get(&ts, &format!("{}/metrics", ts.http_url())).await?;
    ensure!(status == 200);
    for name in [
        "chorus_participant_rtt_seconds_count",
        "chorus_participant_jitter_seconds_count",
        "chorus_participant_loss_ratio_count",
        "chorus_participant_mos_count",
        "chorus_forwarding_latency_seconds_count",
    ] {
        let n = sample(&metrics, name).unwrap_or(0.0);
        println!("{name} {n}");
        ensure!(n > 0.0, "{name} is {n}");
    }
    ensure!(metrics.contains("# TYPE chorus_participant_rtt_seconds histogram"));
    let latency_sum = sample(&metrics, "chorus_forwarding_latency_seconds_sum").unwrap_or(0.0);
    let latency_count = sample(&metrics, "chorus_forwarding_latency_seconds_count").unwrap_or(1.0);
    println!(
        "mean forwarding latency {:.1} µs",
        latency_sum / latency_count * 1e6
    );

    // Both leave: the room closes and room_finished summarizes each session.
    alice.leave().await;
    bob.leave().await;
    let finished = hooks.wait_for("room_finished", room).await?;
    println!("room_finished: {}", finished["data"]);
    let participants = finished["data"]["participants"]
        .as_array()
        .context("participants")?;
    ensure!(participants.len() == 2, "{finished}");
    for (p, who) in participants.iter().zip(["alice", "bob"]) {
        ensure!(p["identity"] == who, "join order: {p}");
        let q = &p["quality"];
        ensure!(in_range(&q["samples"], 2.0, 1e6), "{p}");
        ensure!(in_range(&q["durationSecs"], 1.0, 1e6), "{p}");
        ensure!(in_range(&q["mosMean"], 4.0, 4.5), "{p}");
        ensure!(in_range(&q["mosMin"], 1.0, 4.5), "{p}");
        ensure!(in_range(&q["rttMaxMs"], 0.0, 1000.0), "{p}");
        ensure!(in_range(&q["lossPercentMean"], 0.0, 5.0), "{p}");
        ensure!(in_range(&q["jitterMeanMs"], 0.0, 100.0), "{p}");
        ensure!(in_range(&q["bytesIn"], 10_000.0, 1e12), "{p}");
        ensure!(in_range(&q["bytesOut"], 10_000.0, 1e12), "{p}");
    }
    Ok(())
}
