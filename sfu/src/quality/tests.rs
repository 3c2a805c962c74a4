use std::time::{Duration, Instant};

use str0m::media::Mid;
use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats, RemoteIngressStats};

use super::*;

fn peer(at: Instant, rx: u64, tx: u64) -> PeerStats {
    PeerStats {
        peer_bytes_rx: rx,
        peer_bytes_tx: tx,
        bytes_rx: 0,
        bytes_tx: 0,
        timestamp: at,
        bwe_tx: None,
        egress_loss_fraction: None,
        ingress_loss_fraction: None,
        rtt: None,
        selected_candidate_pair: None,
    }
}

fn ingress(at: Instant, jitter: u32, loss: Option<f32>) -> MediaIngressStats {
    MediaIngressStats {
        mid: Mid::from("0"),
        rid: None,
        bytes: 1,
        packets: 1,
        firs: 0,
        plis: 0,
        nacks: 0,
        jitter,
        rtt: None,
        loss,
        timestamp: at,
        remote: None,
    }
}

fn egress(at: Instant, rtt_ms: Option<u64>, jitter: u32, loss: Option<f32>) -> MediaEgressStats {
    MediaEgressStats {
        mid: Mid::from("1"),
        rid: None,
        bytes: 1,
        packets: 1,
        firs: 0,
        plis: 0,
        nacks: 0,
        rtt: rtt_ms.map(Duration::from_millis),
        loss,
        timestamp: at,
        remote: Some(RemoteIngressStats {
            jitter,
            maximum_sequence_number: 100u64.into(),
            packets_lost: 0,
        }),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn a_perfect_network_scores_about_4_4() {
    let m = mos(0.0, 0.0, 0.0);
    assert!((4.35..=4.45).contains(&m), "{m}");
    // Loopback-like numbers barely move it.
    let m = mos(1.0, 0.5, 0.0);
    assert!((4.35..=4.45).contains(&m), "{m}");
}

#[test]
fn loss_lowers_the_score_noticeably() {
    let perfect = mos(20.0, 5.0, 0.0);
    let one = mos(20.0, 5.0, 0.01);
    let five = mos(20.0, 5.0, 0.05);
    assert!(one < perfect - 0.1, "1% loss: {one} vs {perfect}");
    assert!(five < one - 0.3, "5% loss: {five} vs {one}");
    assert!(five < 3.5, "5% loss without FEC is a poor call: {five}");
    assert!(five > 2.5, "but not a hopeless one: {five}");
}

#[test]
fn long_round_trips_lower_the_score() {
    let short = mos(50.0, 0.0, 0.0);
    let long = mos(400.0, 0.0, 0.0);
    let huge = mos(1000.0, 0.0, 0.0);
    assert!(long < short - 0.1, "{long} vs {short}");
    assert!(huge < long - 0.5, "{huge} vs {long}");
    // Jitter counts twice, as latency.
    assert!(close(mos(100.0, 25.0, 0.0), mos(200.0, 0.0, 0.0)));
}

#[test]
fn the_score_is_clamped_and_tolerates_nonsense() {
    assert_eq!(mos(10_000.0, 1000.0, 1.0), 1.0);
    assert_eq!(mos(f64::INFINITY, 0.0, 0.0), 1.0);
    assert!(close(mos(-5.0, -1.0, -0.2), mos(0.0, 0.0, 0.0)));
    assert!(close(mos(f64::NAN, f64::NAN, f64::NAN), mos(0.0, 0.0, 0.0)));
    assert!(close(mos(0.0, 0.0, 7.0), mos(0.0, 0.0, 1.0)));
    for rtt in [0.0, 10.0, 100.0, 300.0, 800.0] {
        for loss in [0.0, 0.001, 0.02, 0.2, 1.0] {
            let m = mos(rtt, 3.0, loss);
            assert!((1.0..=4.5).contains(&m), "mos({rtt}, 3, {loss}) = {m}");
        }
    }
}

#[test]
fn a_new_meter_knows_nothing() {
    let t0 = Instant::now();
    let m = QualityMeter::new(t0);
    assert_eq!(m.report(t0), QualityReport::default());
    let s = m.summary(t0 + Duration::from_secs(3));
    assert_eq!(s.duration, Duration::from_secs(3));
    assert_eq!(s.samples, 0);
    assert_eq!((s.mos_mean, s.rtt_max_ms, s.loss_mean), (None, None, None));
    assert_eq!((s.bytes_in, s.bytes_out), (0, 0));
}

#[test]
fn bitrates_come_from_byte_deltas_of_both_connections() {
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_secs(1);
    let t2 = t0 + Duration::from_millis(1500);
    let mut m = QualityMeter::new(t0);
    m.on_peer_stats(PcKind::Publisher, &peer(t0, 1_000, 50));
    // One reading is no rate yet: unknown, not zero.
    assert_eq!(m.report(t0).bitrate_in_bps, None);
    m.on_peer_stats(PcKind::Publisher, &peer(t1, 126_000, 50 + 1_250));
    let r = m.report(t1);
    assert_eq!(r.bitrate_in_bps, Some(1_000_000));
    assert_eq!(r.uplink.bitrate_bps, Some(1_000_000));
    assert_eq!(r.bitrate_out_bps, Some(10_000));
    // The subscriber connection's rate adds to it once it has two readings.
    m.on_peer_stats(PcKind::Subscriber, &peer(t0, 0, 0));
    m.on_peer_stats(PcKind::Subscriber, &peer(t2, 3_000, 150_000));
    let r = m.report(t2);
    assert_eq!(r.bitrate_in_bps, Some(1_000_000 + 16_000));
    assert_eq!(r.bitrate_out_bps, Some(10_000 + 800_000));
    let s = m.summary(t2);
    assert_eq!(
        (s.bytes_in, s.bytes_out),
        (126_000 + 3_000, 1_300 + 150_000)
    );
    // Rates go stale when the stats stop.
    let late = t2 + STALE_AFTER + Duration::from_secs(1);
    assert_eq!(m.report(late).bitrate_in_bps, None);
}

#[test]
fn jitter_and_loss_take_the_worst_stream_of_a_tick_and_prefer_audio_jitter() {
    let t0 = Instant::now();
    let mut m = QualityMeter::new(t0);
    // Uplink: audio 480 units at 48 kHz = 10 ms, another audio stream 20 ms; video 100 ms is ignored while
    // audio is known.
    m.on_ingress(MediaKind::Audio, &ingress(t0, 480, Some(0.01)));
    m.on_ingress(MediaKind::Audio, &ingress(t0, 960, None));
    m.on_ingress(MediaKind::Video, &ingress(t0, 9_000, Some(0.04)));
    let up = m.report(t0).uplink;
    assert!(close(up.jitter_ms.expect("jitter"), 20.0), "{up:?}");
    assert!(close(up.loss.expect("loss"), f64::from(0.04f32)), "{up:?}");
    // The next tick replaces the values instead of keeping the old maximum.
    let t1 = t0 + Duration::from_secs(1);
    m.on_ingress(MediaKind::Audio, &ingress(t1, 48, Some(0.0)));
    let up = m.report(t1).uplink;
    assert!(close(up.jitter_ms.expect("jitter"), 1.0), "{up:?}");
    assert_eq!(up.loss, Some(0.0));
    // Video only: its jitter at 90 kHz counts.
    let mut v = QualityMeter::new(t0);
    v.on_egress(MediaKind::Video, &egress(t0, None, 900, None));
    let down = v.report(t0).downlink;
    assert!(close(down.jitter_ms.expect("jitter"), 10.0), "{down:?}");
    assert_eq!(down.loss, None, "no report of loss yet");
}

#[test]
fn transport_wide_loss_counts_when_it_is_worse() {
    let t0 = Instant::now();
    let mut m = QualityMeter::new(t0);
    m.on_egress(MediaKind::Audio, &egress(t0, Some(40), 96, Some(0.01)));
    let mut s = peer(t0, 0, 0);
    s.egress_loss_fraction = Some(0.03);
    m.on_peer_stats(PcKind::Subscriber, &s);
    assert!(close(
        m.report(t0).downlink.loss.expect("loss"),
        f64::from(0.03f32)
    ));
    let mut s = peer(t0, 0, 0);
    s.ingress_loss_fraction = Some(0.002);
    m.on_peer_stats(PcKind::Publisher, &s);
    let r = m.report(t0);
    assert!(close(r.uplink.loss.expect("loss"), f64::from(0.002f32)));
    // The overall loss is the worse direction.
    assert!(close(r.loss.expect("loss"), f64::from(0.03f32)));
}

#[test]
fn the_score_needs_rtt_jitter_and_loss_and_uses_the_worse_direction() {
    let t0 = Instant::now();
    let mut m = QualityMeter::new(t0);
    m.on_ingress(MediaKind::Audio, &ingress(t0, 240, Some(0.0)));
    assert_eq!(m.report(t0).mos, None, "no RTT yet");
    assert_eq!(m.report(t0).rtt_ms, None);
    // TWCC round trip first; the receiver reports' RTT wins once there is one.
    let mut s = peer(t0, 0, 0);
    s.rtt = Some(Duration::from_millis(80));
    m.on_peer_stats(PcKind::Subscriber, &s);
    assert_eq!(m.report(t0).rtt_ms, Some(80.0));
    m.on_egress(MediaKind::Audio, &egress(t0, Some(30), 1_440, Some(0.05)));
    let r = m.report(t0);
    assert_eq!(r.rtt_ms, Some(30.0));
    // Downlink is worse on both counts: 30 ms jitter, 5% loss.
    assert!(close(r.jitter_ms.expect("jitter"), 30.0));
    let expected = mos(30.0, 30.0, f64::from(0.05f32));
    assert!(close(r.mos.expect("mos"), expected), "{r:?}");
    assert!(r.mos.expect("mos") < 3.5);
}

#[test]
fn the_session_summary_averages_one_sample_per_second() {
    let t0 = Instant::now();
    let mut m = QualityMeter::new(t0);
    let mut samples = 0;
    for i in 0..10u64 {
        let at = t0 + Duration::from_secs(i);
        // Both connections report each second, half a second apart: still one sample per second.
        let rtt = if i < 5 { 20 } else { 60 };
        m.on_egress(MediaKind::Audio, &egress(at, Some(rtt), 48, Some(0.0)));
        m.on_ingress(MediaKind::Audio, &ingress(at, 48, Some(0.0)));
        samples += usize::from(
            m.on_peer_stats(PcKind::Publisher, &peer(at, i * 10_000, i * 100))
                .is_some(),
        );
        let half = at + Duration::from_millis(500);
        samples += usize::from(
            m.on_peer_stats(PcKind::Subscriber, &peer(half, i * 100, i * 20_000))
                .is_some(),
        );
    }
    assert_eq!(samples, 10);
    let end = t0 + Duration::from_secs(10);
    let s = m.summary(end);
    assert_eq!(s.samples, 10);
    assert_eq!(s.duration, Duration::from_secs(10));
    assert!(close(s.rtt_mean_ms.expect("rtt"), 40.0), "{s:?}");
    assert_eq!(s.rtt_max_ms, Some(60.0));
    assert_eq!((s.loss_mean, s.loss_max), (Some(0.0), Some(0.0)));
    assert!(close(s.jitter_mean_ms.expect("jitter"), 1.0));
    let (lo, hi) = (mos(60.0, 1.0, 0.0), mos(20.0, 1.0, 0.0));
    assert!(close(s.mos_min.expect("min"), lo));
    let mean = s.mos_mean.expect("mean");
    assert!(mean > lo && mean < hi, "{mean} within ({lo}, {hi})");
    assert_eq!((s.bytes_in, s.bytes_out), (90_000 + 900, 900 + 180_000));
}
