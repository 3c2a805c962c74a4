//! Tests of the load tester's flags: defaults, validation and the derived configuration.

use super::*;

fn args(extra: &[&str]) -> Result<Config, String> {
    let argv = std::iter::once("loadtest").chain(extra.iter().copied());
    let args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
    Config::from_args(args).map_err(|e| e.to_string())
}

#[test]
fn defaults_and_url_forms() {
    let c = args(&[]).expect("defaults are valid");
    assert_eq!(c.ws_url, "ws://127.0.0.1:7880/rtc");
    assert_eq!(
        c.metrics.map(|m| m.to_string()),
        Some("http://127.0.0.1:7880/metrics".into())
    );
    assert_eq!(c.duration, Duration::from_secs(30));
    let c = args(&["--url", "ws://h:1/custom", "--rooms", "3"]).expect("valid");
    assert_eq!(
        (c.ws_url.as_str(), c.participants()),
        ("ws://h:1/custom", 6)
    );
    let c = args(&["--url", "wss://example.test"]).expect("valid");
    assert!(c.metrics.is_none() && c.http.is_none());
}

#[test]
fn an_idle_run_has_no_publishers() {
    let c = args(&["--publishers", "0", "--subscribers", "200"]).expect("valid");
    assert_eq!((c.publishers, c.participants()), (0, 200));
}

#[test]
fn bad_flags_are_errors_not_panics() {
    for bad in [
        &["--rooms", "0"][..],
        &["--publishers", "0"],
        &["--publishers", "1", "--subscribers", "0"],
        &["--duration", "abc"],
        &["--duration", "5x"],
        &["--duration", "0.5s"],
        &["--duration", "-3s"],
        &["--url", "http://127.0.0.1:7880"],
        &["--url", "ws://"],
        &["--subscriber-quality", "low"],
        &["--subscriber-quality", "best", "--simulcast"],
        &["--simulcast", "--video-bitrate", "5k"],
        &["--rooms", "999999999999999999999"],
        &["--rooms", "100000"],
        &["--video-bitrate", "1G"],
        &["--api-key", "k"],
        &["--api-key", "k", "--api-secret", "short"],
        &["--metrics-url", "ftp://x"],
        &["--join-concurrency", "0"],
        &["--room-prefix", "a b"],
        &["--room-prefix", "x&y"],
        &["--pacing-factor", "-1"],
        &["--pacing-factor", "1000"],
        &["--pacing-factor", "NaN"],
    ] {
        assert!(args(bad).is_err(), "{bad:?} should be refused");
    }
    let err = args(&["--subscriber-quality", "mixed"]).expect_err("refused");
    assert!(err.contains("needs --simulcast"), "{err}");
}

#[test]
fn simulcast_layers_and_the_bitrate_rule() {
    let c = args(&[]).expect("valid");
    assert_eq!((c.video_bitrate, c.simulcast.len()), (500_000, 0));
    let c = args(&["--video-bitrate", "800k"]).expect("valid");
    assert_eq!((c.video_bitrate, c.simulcast.len()), (800_000, 0));
    assert_eq!(
        c.media_options().pacing_factor,
        2.5,
        "browser-like by default"
    );
    let c = args(&["--pacing-factor", "0"]).expect("valid");
    assert_eq!(c.media_options().pacing_factor, 0.0);

    let c = args(&["--simulcast"]).expect("valid");
    let layers: Vec<_> = c
        .simulcast
        .iter()
        .map(|l| (l.rid.as_str(), l.width, l.bitrate_bps))
        .collect();
    assert_eq!(
        layers,
        [
            ("q", 320, 150_000),
            ("h", 640, 500_000),
            ("f", 1280, 1_700_000)
        ]
    );
    assert_eq!(c.video_bitrate, 1_700_000);
    let c = args(&["--simulcast", "--video-bitrate", "3.4M"]).expect("valid");
    let rates: Vec<_> = c.simulcast.iter().map(|l| l.bitrate_bps).collect();
    assert_eq!(rates, [300_000, 1_000_000, 3_400_000]);

    let c = args(&["--simulcast", "--subscriber-quality", "mixed"]).expect("valid");
    let wants: Vec<_> = (0..4)
        .map(|i| c.subscriber_quality.for_subscriber(i))
        .collect();
    use chorus_client::VideoQuality::{Low, Medium};
    assert_eq!(wants, [Some(Low), Some(Medium), None, Some(Low)]);
}

#[test]
fn durations_and_bitrates() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
    assert!(parse_duration("").is_err());
    assert!(parse_duration("1e400s").is_err());
    assert_eq!(parse_bitrate("500k"), Ok(500_000));
    assert_eq!(parse_bitrate("1.7M"), Ok(1_700_000));
    assert!(parse_bitrate("k").is_err());
}
