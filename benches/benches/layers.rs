//! Simulcast layer selection, the per-packet and per-tick parts:
//! - `layers/decide`: one subscriber's [`LayerSelector`] deciding about each packet of a three-layer track
//!   (steady on the top layer: one in three forwarded), and while switching between layers on keyframes;
//! - `layers/on_packet_alive`: the publisher side, recording a packet in its layer's meter and reading which
//!   layers are live, as the fan-out does once per packet;
//! - `layers/allocate`: sharing one subscriber's downlink estimate among its tracks (done per allocation tick,
//!   not per packet), for 4 and 25 video tracks plus audio.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chorus_sfu::allocator::{allocate, Demand};
use chorus_sfu::layers::LayerSet;
use chorus_sfu::selector::{Decision, LayerSelector};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const ALL_LAYERS: u8 = 0b111;

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("layers/decide");
    group.bench_function("steady_top", |b| {
        let mut s = LayerSelector::new(2);
        let _ = s.decide(2, true, ALL_LAYERS);
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            let layer = (i % 3) as u8;
            black_box(s.decide(black_box(layer), false, ALL_LAYERS))
        })
    });
    group.bench_function("switching", |b| {
        // The wish alternates between the lowest and top layer every 30 packets; each layer sends a keyframe
        // every 30 packets, so the selector keeps moving.
        let mut s = LayerSelector::new(2);
        let mut i = 0u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            if i.is_multiple_of(30) {
                s.set_wanted(if s.wanted() == 2 { 0 } else { 2 });
            }
            let layer = (i % 3) as u8;
            let keyframe = (i / 3).is_multiple_of(10);
            let d = s.decide(black_box(layer), keyframe, ALL_LAYERS);
            black_box(matches!(d, Decision::Forward | Decision::Switch))
        })
    });
    group.finish();
}

fn on_packet_alive(c: &mut Criterion) {
    let rids: Vec<String> = ["q", "h", "f"].iter().map(|r| r.to_string()).collect();
    let mut set = LayerSet::new(&rids, Some((1280, 720)));
    let start = Instant::now();
    let mut i = 0u64;
    c.bench_function("layers/on_packet_alive", |b| {
        b.iter(|| {
            i += 1;
            let now = start + Duration::from_micros(i * 100);
            let layer = (i % 3) as u8;
            set.on_packet(layer, 1000, now);
            black_box(set.alive(now))
        })
    });
}

fn demands(video: usize) -> Vec<Demand> {
    let mut d = vec![Demand {
        priority: 0,
        audio: true,
        wanted: 0,
        alive: 1,
        bitrates: [32_000, 0, 0, 0],
    }];
    d.extend((0..video).map(|i| Demand {
        priority: u8::from(i == 0) * 2,
        audio: false,
        wanted: 2,
        alive: ALL_LAYERS,
        bitrates: [150_000, 500_000, 1_700_000, 0],
    }));
    d
}

fn allocation(c: &mut Criterion) {
    let mut group = c.benchmark_group("layers/allocate");
    for video in [4usize, 25] {
        let d = demands(video);
        // Enough for everyone's middle layer and a few top layers: the round-robin runs several rounds.
        let budget = 32_000 + video as u64 * 500_000 + 3 * 1_200_000;
        group.bench_with_input(BenchmarkId::from_parameter(video), &d, |b, d| {
            b.iter(|| black_box(allocate(black_box(budget), d)))
        });
    }
    group.finish();
}

criterion_group!(benches, decide, on_packet_alive, allocation);
criterion_main!(benches);
