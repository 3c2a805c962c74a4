//! What idling between packets costs the media core: the sans-IO fan-out of `worker_scaling` (one publisher,
//! N subscribers, SRTP in and out, no sockets), fed one publisher packet at a time with a pause before each,
//! as a live worker is fed by a publisher that paces its packets. Only the forwarding is timed (the thread's
//! CPU time around each packet), not the pause, so the figure is the same work as back to back; what changes
//! is the state the caches (and the CPU) are in when the packet arrives.
//!
//! ```text
//! cargo run --release -p chorus-benches --example idle_fanout -- [subscribers] [packets] [gap µs] [sleep|spin]
//! ```
//! Defaults: 50 subscribers, 500 packets per round, a 3,000 µs pause (about the gap between a 1.7 Mbit/s
//! layer's packets when paced like a browser), `sleep`. `sleep` gives the core back to the OS for the pause
//! (the thread blocks, as the worker does in `recv`); `spin` busy-waits instead (the thread keeps its core); a
//! gap of 0 runs back to back. Three rounds; each prints the CPU µs per forwarded copy. Pinned to CPU 0.

use std::time::{Duration, Instant};

use chorus_sfu::testkit::FanoutNet;

#[path = "support/threads.rs"]
mod threads;
use threads::{pin, thread_cpu};

const ROUNDS: usize = 3;

fn usage(bad: &str) -> ! {
    eprintln!("usage: idle_fanout [SUBSCRIBERS] [PACKETS] [GAP_US] [sleep|spin] (not {bad:?})");
    std::process::exit(2)
}

fn arg(n: usize, default: u64) -> u64 {
    match std::env::args().nth(n) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| usage(&v)),
    }
}

/// How the thread spends the gap before each packet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pause {
    Sleep,
    Spin,
}

fn pause(how: Pause, gap: Duration) {
    if gap.is_zero() {
        return;
    }
    match how {
        Pause::Sleep => std::thread::sleep(gap),
        Pause::Spin => {
            let start = Instant::now();
            while start.elapsed() < gap {
                std::hint::spin_loop();
            }
        }
    }
}

fn main() {
    let subscribers = arg(1, 50).max(1) as usize;
    let packets = arg(2, 500).max(1) as usize;
    let gap = Duration::from_micros(arg(3, 3000));
    let how = match std::env::args().nth(4).as_deref() {
        None | Some("sleep") => Pause::Sleep,
        Some("spin") => Pause::Spin,
        Some(other) => usage(other),
    };
    pin(0);
    let mut net = FanoutNet::new(subscribers);
    println!(
        "idle fan-out: 1 publisher → {subscribers} subscribers, {packets} packets per round, {} µs {} before each",
        gap.as_micros(),
        if how == Pause::Sleep { "asleep" } else { "spinning" }
    );
    for round in 0..ROUNDS {
        // Made outside the timed part: the publisher's encryption is the client's work.
        let input = net.publisher_packets(packets);
        let mut cpu = Duration::ZERO;
        let mut copies = 0;
        for d in &input {
            pause(how, gap);
            let start = thread_cpu();
            copies += net.forward(d);
            cpu += thread_cpu() - start;
        }
        println!(
            "round {round}: {copies} copies, {:.2} µs CPU per copy",
            cpu.as_secs_f64() * 1e6 / copies.max(1) as f64
        );
        net.settle(Duration::from_millis(20));
    }
    assert!(net.failures.is_empty(), "{:?}", net.failures);
}
