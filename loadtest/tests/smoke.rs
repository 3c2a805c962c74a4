//! Smoke runs of the load tester against an in-process server on loopback (what `scripts/test.sh` runs): a few
//! seconds of one room with two publishers (audio + video) and one subscriber; the same with a simulcast
//! publisher and three subscribers asking for low, medium and high; and a data-only run. Asserts only that media
//! flowed and that the report and its JSON are well-formed — never a performance figure. (The server runs in this
//! process, so its CPU figures include the clients' and are meaningless here; they only have to be present.)

use std::time::Duration;

use anyhow::Context;
use chorus_signaling::testing::TestServer;
use clap::Parser;
use loadtest::{Args, Config};

/// Runs the load tester against `ts` with `args` after the URL and credentials (at most 60 s), printing its
/// progress and report.
async fn run_load_test(ts: &TestServer, args: &[&str]) -> anyhow::Result<loadtest::Report> {
    let key = ts.api_key().clone();
    let url = ts.ws_url();
    let mut argv = vec![
        "loadtest",
        "--url",
        &url,
        "--api-key",
        &key.key,
        "--api-secret",
        &key.secret,
    ];
    argv.extend_from_slice(args);
    let config = Config::from_args(Args::try_parse_from(argv)?)?;
    let progress = |line: &str| eprintln!("{line}");
    let report = tokio::time::timeout(Duration::from_secs(60), loadtest::run(&config, &progress))
        .await
        .context("load test took over 60 s")??;
    eprintln!("{report}");
    Ok(report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_load_test_reports_flowing_media() -> anyhow::Result<()> {
    let ts = TestServer::start().await.context("start test server")?;
    let json = std::env::temp_dir().join(format!("chorus-loadtest-{}.json", std::process::id()));
    let path = json.display().to_string();
    let report = run_load_test(
        &ts,
        &[
            "--rooms",
            "1",
            "--publishers",
            "2",
            "--subscribers",
            "1",
            "--audio",
            "--duration",
            "5s",
            "--progress-interval",
            "1s",
            "--json",
            &path,
        ],
    )
    .await?;

    assert_eq!((report.participants, report.joined), (3, 3));
    // Each publisher receives the other; the subscriber receives both: 4 video and 4 audio streams.
    assert_eq!((report.video_streams, report.audio_streams), (4, 4));
    assert!(report.received_video_bitrate_bps > 0.0);
    assert!(report.latency_samples > 0 && report.latency_ms_p50.is_some());
    assert!(report.packets_expected >= report.packets_received.min(report.packets_expected));
    let server = report
        .server
        .as_ref()
        .context("server figures from /metrics")?;
    assert!(server.forwarded_packets > 0, "{server:?}");
    assert!(server.forwarded_video_packets.is_some_and(|n| n > 0));
    assert!(server.forwarded_audio_packets.is_some_and(|n| n > 0));
    // The server's own latency histogram saw the forwarded packets (its p50 is far below its 50 ms top bound).
    assert!(server.forwarding_latency_ms_p50.is_some(), "{server:?}");
    assert!(report.server_rss_bytes_before_join.is_some_and(|b| b > 0));
    assert!(report.server_rss_bytes_per_participant.is_some());

    let text = std::fs::read_to_string(&json).context("JSON report written")?;
    let _ = std::fs::remove_file(&json);
    let v: serde_json::Value = serde_json::from_str(&text).context("JSON report parses")?;
    for field in [
        "version",
        "config",
        "participants",
        "joined",
        "join_ms_p50",
        "join_ms_p99",
        "window_secs",
        "video_streams",
        "received_bitrate_bps",
        "received_video_bitrate_bps_per_stream",
        "packets_received",
        "packets_lost",
        "packet_loss_ratio",
        "latency_ms_p50",
        "latency_ms_p99",
        "server",
        "server_cpu_us_per_forwarded_packet",
        "subscriber_video_streams_per_core",
        "server_rss_bytes_before_join",
        "server_rss_bytes_per_participant",
        "video_layers",
        "received_video_bitrate_bps_unknown_layer",
    ] {
        assert!(v.get(field).is_some(), "JSON report lacks {field}: {text}");
    }
    assert_eq!(v["version"], loadtest::REPORT_VERSION);
    assert_eq!(
        v["config"]["pacing_factor"], 2.5,
        "browser-like pacing by default"
    );
    assert_eq!(v["video_streams"], 4);
    // One encoding: one layer (no rid), 640×360, received on all four streams.
    assert_eq!(
        v["video_layers"].as_array().map(Vec::len),
        Some(1),
        "{text}"
    );
    assert!(v["video_layers"][0]["layer"].is_null());
    assert_eq!(v["video_layers"][0]["width"], 640);
    assert_eq!(v["video_layers"][0]["streams"], 4);
    assert!(v["server"]["forwarded_packets"]
        .as_u64()
        .is_some_and(|n| n > 0));
    // The in-process server's media threads forwarded those packets: their own CPU time and sleeps show.
    assert!(
        v["server_media_cpu_us_per_forwarded_packet"]
            .as_f64()
            .is_some_and(|us| us > 0.0),
        "{text}"
    );
    assert!(
        v["forwarded_packets_per_media_sleep"]
            .as_f64()
            .is_some_and(|n| n > 0.0),
        "{text}"
    );
    assert!(
        v["server"]["forwarding_latency_ms_p99"].is_number()
            || v["server"]["forwarding_latency_ms_p99"].is_null()
    );
    // The worker ran its connections' timers during the window (null only above the histogram's top bucket).
    assert!(
        v["server"]["timer_lateness_ms_p50"].is_number(),
        "timer lateness: {text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_load_test_reports_each_layer() -> anyhow::Result<()> {
    let ts = TestServer::start().await.context("start test server")?;
    let report = run_load_test(
        &ts,
        &[
            "--publishers",
            "1",
            "--subscribers",
            "3",
            "--simulcast",
            "--subscriber-quality",
            "mixed",
            // Each frame's packets at once (the default paces them, as a browser does; the first test covers it).
            "--pacing-factor",
            "0",
            "--audio",
            "--duration",
            "3s",
            "--progress-interval",
            "1s",
        ],
    )
    .await?;

    assert_eq!((report.participants, report.joined), (4, 4));
    assert_eq!((report.video_streams, report.audio_streams), (3, 3));
    assert!(report.config.simulcast);
    assert_eq!(report.config.pacing_factor, 0.0);
    assert_eq!(report.config.simulcast_layers.len(), 3);
    // The three layers, smallest first, each received by (at least) the subscriber that asked for it, and
    // sent by the publisher; together with what arrived before a first keyframe they are all the video.
    let layers: Vec<_> = report
        .video_layers
        .iter()
        .map(|l| (l.layer.as_deref(), l.width, l.height))
        .collect();
    assert_eq!(
        layers,
        [
            (Some("q"), 320, 180),
            (Some("h"), 640, 360),
            (Some("f"), 1280, 720)
        ],
        "{:?}",
        report.video_layers
    );
    for l in &report.video_layers {
        assert!(l.streams >= 1 && l.received_bitrate_bps > 0.0, "{l:?}");
        assert!(l.received_bitrate_bps_per_stream.is_some(), "{l:?}");
        assert!(
            l.sent_bitrate_bps_per_publisher.is_some_and(|b| b > 0.0),
            "{l:?}"
        );
        assert!(l.target_bitrate_bps.is_some(), "{l:?}");
    }
    let by_layer: f64 = report
        .video_layers
        .iter()
        .map(|l| l.received_bitrate_bps)
        .sum::<f64>()
        + report.received_video_bitrate_bps_unknown_layer;
    assert!(
        (by_layer - report.received_video_bitrate_bps).abs() < 1.0,
        "layers {by_layer} vs all video {}",
        report.received_video_bitrate_bps
    );

    let v = serde_json::to_value(&report)?;
    assert_eq!(v["config"]["simulcast"], true);
    assert_eq!(v["config"]["subscriber_quality"], "mixed");
    assert_eq!(v["config"]["simulcast_layers"][2]["rid"], "f");
    for field in [
        "layer",
        "width",
        "height",
        "streams",
        "packets",
        "keyframes",
        "received_bitrate_bps",
        "received_bitrate_bps_per_stream",
        "sent_bitrate_bps_per_publisher",
        "target_bitrate_bps",
    ] {
        assert!(
            v["video_layers"][0].get(field).is_some(),
            "video_layers[0] lacks {field}: {v}"
        );
    }
    assert!(v["received_video_bitrate_bps_unknown_layer"].is_number());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_only_load_test_reports_delivery_per_channel() -> anyhow::Result<()> {
    let ts = TestServer::start().await.context("start test server")?;
    let report = run_load_test(
        &ts,
        &[
            "--publishers",
            "0",
            "--subscribers",
            "0",
            "--data-participants",
            "3",
            "--data-rate",
            "20",
            "--data-size",
            "200",
            "--duration",
            "3s",
            "--progress-interval",
            "1s",
        ],
    )
    .await?;
    assert_eq!((report.participants, report.joined), (3, 3));
    let data = report.data.as_ref().context("data figures")?;
    for (name, kind) in [("reliable", &data.reliable), ("lossy", &data.lossy)] {
        let k = kind.as_ref().with_context(|| format!("{name} figures"))?;
        assert!(k.sent > 0, "{name}: {k:?}");
        // Each message goes to the two other participants.
        assert_eq!(k.expected, k.sent * 2, "{name}: {k:?}");
        assert!(
            k.received > 0 && k.latency_ms_p50.is_some(),
            "{name}: {k:?}"
        );
        assert!(k.delivery_ratio.is_some(), "{name}: {k:?}");
    }
    let json = serde_json::to_value(&report)?;
    assert!(json["data"]["reliable"]["delivery_ratio"].is_number());
    assert!(json["data"]["lossy"]["latency_ms_p99"].is_number());
    Ok(())
}
