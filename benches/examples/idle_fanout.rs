//! What idling between packets costs the media core: the sans-IO fan-out of `worker_scaling` (one publisher,
//! N subscribers, SRTP in and out, no sockets), fed one publisher packet at a time with a pause before each,
//! as a live worker is fed by a publisher that paces its packets. Only the forwarding is timed (the thread's
//! CPU time around each packet), not the pause, so the figure is the same work as back to back; what changes
//! is the state the caches (and the CPU) are in when the packet arrives.
//!
//! ```text
//! cargo run --release -p chorus-benches --example idle_fanout -- [subscribers] [packets] [gap µs] [sleep|spin|evict]
//! ```
//! Defaults: 50 subscribers, 500 packets per round, a 3,000 µs pause (about the gap between a 1.7 Mbit/s
//! layer's packets when paced like a browser), `sleep`. `sleep` gives the core back to the OS for the pause
//! (the thread blocks, as the worker does in `recv`); `spin` busy-waits instead (the thread keeps its core); a
//! gap of 0 runs back to back. `evict` ignores the gap and instead writes over a buffer larger than the caches
//! ([`EVICT_BYTES`]) before each packet: the coldest case, and the same on every machine, so that a change to
//! the state walked per copy can be measured without this VM's idle behaviour (and counted under
//! `valgrind --tool=callgrind --cache-sim=yes`, which then reports each function's cache misses per packet).
//! First [`WARM_UP_PACKETS`] go through back to back and untimed, so that str0m's per-subscriber buffers
//! (the resend cache grows to its size over the first thousand packets) are in their steady state. Then
//! three rounds; each prints the CPU µs per forwarded copy. Pinned to CPU 0.
//!
//! The cache misses per copy, deterministic (only the timed forwarding, [`timed_forward`], is counted):
//! ```text
//! valgrind --tool=callgrind --cache-sim=yes --D1=49152,12,64 --I1=32768,8,64 --LL=33554432,16,64 \
//!     --collect-atstart=no --toggle-collect='*timed_forward*' target/release/examples/idle_fanout 50 20 0 evict
//! callgrind_annotate --show=Ir,DLmr,DLmw callgrind.out.<pid>      # divide by the copies printed
//! ```

use std::time::{Duration, Instant};

use chorus_sfu::testkit::{Datagram, FanoutNet};

#[path = "support/threads.rs"]
mod threads;
use threads::{pin, thread_cpu};

const ROUNDS: usize = 3;

/// What `evict` writes before each packet: more than this machine's last-level cache (48 MiB) and than
/// callgrind's simulated one.
const EVICT_BYTES: usize = 64 << 20;

/// Publisher packets forwarded untimed before the first round.
const WARM_UP_PACKETS: usize = 1_500;

fn usage(bad: &str) -> ! {
    eprintln!(
        "usage: idle_fanout [SUBSCRIBERS] [PACKETS] [GAP_US] [sleep|spin|evict] (not {bad:?})"
    );
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
    /// Write over [`EVICT_BYTES`] (in `scratch`), so that nothing the core touched is still cached.
    Evict,
}

fn pause(how: Pause, gap: Duration, scratch: &mut [u8]) {
    if how == Pause::Evict {
        // A different byte each time, so the writes cannot be skipped; one per cache line is enough.
        let fill = scratch[0].wrapping_add(1);
        for line in scratch.chunks_mut(64) {
            line[0] = fill;
        }
        std::hint::black_box(&scratch);
        return;
    }
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
        Pause::Evict => {}
    }
}

/// The measured work, a function of its own so that callgrind can count it alone.
#[inline(never)]
fn timed_forward(net: &mut FanoutNet, d: &Datagram) -> usize {
    net.forward(d)
}

fn main() {
    let subscribers = arg(1, 50).max(1) as usize;
    let packets = arg(2, 500).max(1) as usize;
    let gap = Duration::from_micros(arg(3, 3000));
    let how = match std::env::args().nth(4).as_deref() {
        None | Some("sleep") => Pause::Sleep,
        Some("spin") => Pause::Spin,
        Some("evict") => Pause::Evict,
        Some(other) => usage(other),
    };
    let mut scratch = if how == Pause::Evict {
        vec![0u8; EVICT_BYTES]
    } else {
        Vec::new()
    };
    pin(0);
    let mut net = FanoutNet::new(subscribers);
    println!(
        "idle fan-out: 1 publisher → {subscribers} subscribers, {packets} packets per round, {} µs {} before each",
        gap.as_micros(),
        match how {
            Pause::Sleep => "asleep",
            Pause::Spin => "spinning",
            Pause::Evict => "evicting the caches (not a pause)",
        }
    );
    for chunk in net.publisher_packets(WARM_UP_PACKETS).chunks(100) {
        for d in chunk {
            net.forward(d);
        }
        net.settle(Duration::from_millis(20));
    }
    for round in 0..ROUNDS {
        // Made outside the timed part: the publisher's encryption is the client's work.
        let input = net.publisher_packets(packets);
        let mut cpu = Duration::ZERO;
        let mut copies = 0;
        for d in &input {
            pause(how, gap, &mut scratch);
            let start = thread_cpu();
            copies += timed_forward(&mut net, d);
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
