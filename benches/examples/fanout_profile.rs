//! A fixed fan-out workload for profilers: one publisher's packets through the sans-IO worker core to N
//! subscribers (the path `benches/fanout.rs` times), with nothing else running. Callgrind counts its
//! instructions reproducibly even on a noisy machine; divide by the copies it prints for instructions per copy.
//!
//! ```text
//! cargo build --release -p chorus-benches --example fanout_profile
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*FanoutNet*forward*' \
//!     target/release/examples/fanout_profile 100 2000
//! callgrind_annotate callgrind.out.<pid> | head -60
//! ```
//!
//! Arguments: subscribers (default 100) and publisher packets (default 2000).

use std::time::Duration;

use chorus_sfu::testkit::FanoutNet;

/// Publisher packets per batch; between batches the net settles (RTCP, consent) outside the profiled function.
const BATCH: usize = 200;

fn arg(n: usize, default: usize) -> usize {
    match std::env::args().nth(n) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("usage: fanout_profile [SUBSCRIBERS] [PACKETS] (not {v:?})");
            std::process::exit(2)
        }),
    }
}

fn main() {
    let subscribers = arg(1, 100).max(1);
    let packets = arg(2, 2000);
    let mut net = FanoutNet::new(subscribers);
    let (mut frames, mut fed, mut copies) = (0, 0, 0);
    while frames < packets {
        let n = BATCH.min(packets - frames);
        for p in net.publisher_packets(n) {
            copies += net.forward(&p);
            fed += 1;
        }
        frames += n;
        net.settle(Duration::from_millis(20));
    }
    println!("{frames} frames, {fed} publisher datagrams to {subscribers} subscribers: {copies} datagrams out");
}
