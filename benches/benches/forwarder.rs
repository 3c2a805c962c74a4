//! One forwarding decision (`Forwarder::forward`): the per-(subscriber, packet) arithmetic on the hot path,
//! steady state (anchored, same source) and a source switch (re-anchor on a keyframe).
//! Layer selection has its own bench (`layers.rs`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use chorus_sfu::{Forward, Forwarder, SourcePacket};
use criterion::{criterion_group, criterion_main, Criterion};

fn packet(ssrc: u32, seq: u64, arrival: Instant, keyframe: bool) -> SourcePacket {
    SourcePacket {
        ssrc,
        seq,
        timestamp: (seq as u32).wrapping_mul(3000),
        arrival,
        keyframe,
        clock_rate: 90_000,
    }
}

fn forwarder(c: &mut Criterion) {
    let start = Instant::now();
    c.bench_function("forwarder/steady", |b| {
        let mut f = Forwarder::new(1000, 0);
        let _ = f.forward(&packet(1, 0, start, true));
        let mut seq = 1;
        b.iter(|| {
            seq += 1;
            let p = packet(1, seq, start, false);
            let out = f.forward(black_box(&p));
            debug_assert!(matches!(out, Forward::Send { .. }));
            black_box(out)
        })
    });
    c.bench_function("forwarder/switch_source", |b| {
        let mut f = Forwarder::new(1000, 0);
        let mut seq = 0;
        let mut ssrc = 1;
        b.iter(|| {
            seq += 1;
            ssrc ^= 3; // alternate between two sources: every packet re-anchors
            let p = packet(ssrc, seq, start + Duration::from_millis(seq), true);
            black_box(f.forward(black_box(&p)))
        })
    });
}

criterion_group!(benches, forwarder);
criterion_main!(benches);
