//! One publisher packet fanned out to 10 and 100 subscribers through the sans-IO worker core: SRTP decrypt,
//! routing, the forwarding decision and header rewrite per subscriber, str0m's RTP write and SRTP encrypt per
//! subscriber (AES-GCM, as negotiated between str0m peers), and draining the transmits. No sockets: kernel
//! send costs are not in these figures (the load test has them).

use std::time::{Duration, Instant};

use chorus_sfu::testkit::FanoutNet;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Publisher packets made ahead per timed batch (untimed), then fed to the core one by one (timed).
const BATCH: usize = 500;

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));
    for subscribers in [10usize, 100] {
        let mut net = FanoutNet::new(subscribers);
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_with_input(
            BenchmarkId::new("packet_to_subscribers", subscribers),
            &subscribers,
            |b, &subscribers| {
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    let mut left = iters as usize;
                    while left > 0 {
                        let packets = net.publisher_packets(left.min(BATCH));
                        let start = Instant::now();
                        let mut sent = 0;
                        for p in &packets {
                            sent += net.forward(p);
                        }
                        timed += start.elapsed();
                        // RTP, not the publisher's RTCP (payload types 192..=223 in the second byte).
                        let rtp = packets
                            .iter()
                            .filter(|p| !(192..224).contains(&p.contents[1]))
                            .count();
                        assert!(
                            sent >= rtp.saturating_sub(1) * subscribers,
                            "fan-out stopped: {} packets made {sent} datagrams ({} made by this net; \
                             failures {:?})",
                            packets.len(),
                            net.packets_made(),
                            net.failures
                        );
                        left = left.saturating_sub(packets.len().max(1));
                        // Untimed: let RTCP and ICE consent flow so every subscriber stays connected.
                        net.settle(Duration::from_millis(20));
                    }
                    timed
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
