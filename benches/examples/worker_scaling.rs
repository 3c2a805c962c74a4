//! Does the media core scale with worker threads? Each thread owns a complete sans-IO worker core with its own
//! room (one publisher, N subscribers on a virtual network, SRTP included, no sockets), as each media worker
//! owns its rooms; nothing is shared but the allocator. The threads forward the same workload at the same time,
//! pinned one per core, and the example prints the forwarded copies per second of wall time for 1 and for T
//! threads. Close to T times the one-thread figure means the core has no lock or shared state on its packet
//! path, so workers add capacity until the cores (or the kernel's UDP path, which this leaves out) run out.
//!
//! ```text
//! cargo run --release -p chorus-benches --example worker_scaling -- [subscribers] [packets] [threads] [rounds]
//! ```
//! Defaults: 50 subscribers, 1,000 publisher packets per round, one thread per core, 5 rounds (the median
//! round is reported). Run it on an otherwise quiet machine: a busy core shows up as lost scaling.

use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use chorus_sfu::testkit::FanoutNet;

#[path = "support/threads.rs"]
mod threads;
use threads::{pin, thread_cpu};

fn arg(n: usize, default: usize) -> usize {
    match std::env::args().nth(n) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| {
            eprintln!(
                "usage: worker_scaling [SUBSCRIBERS] [PACKETS] [THREADS] [ROUNDS] (not {v:?})"
            );
            std::process::exit(2)
        }),
    }
}

/// One round's outcome on one thread.
#[derive(Clone, Copy, Default)]
struct Round {
    copies: usize,
    cpu: Duration,
}

/// Runs `threads` workers through `rounds` rounds; returns, per round, the wall time from the common start to
/// the last thread's end, and each thread's copies and CPU time.
fn run(
    threads: usize,
    subscribers: usize,
    packets: usize,
    rounds: usize,
) -> Vec<(Duration, Vec<Round>)> {
    let start = Arc::new(Barrier::new(threads + 1));
    let end = Arc::new(Barrier::new(threads + 1));
    let results = Arc::new(Mutex::new(vec![vec![Round::default(); threads]; rounds]));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let (start, end, results) = (start.clone(), end.clone(), results.clone());
            std::thread::spawn(move || {
                pin(i % cores);
                let mut net = FanoutNet::new(subscribers);
                for round in 0..rounds {
                    // Made outside the timed part: the publisher's encryption is the client's work.
                    let input = net.publisher_packets(packets);
                    start.wait();
                    let cpu = thread_cpu();
                    let copies: usize = input.iter().map(|d| net.forward(d)).sum();
                    let cpu = thread_cpu() - cpu;
                    results.lock().expect("results")[round][i] = Round { copies, cpu };
                    end.wait();
                    net.settle(Duration::from_millis(20));
                }
                assert!(net.failures.is_empty(), "worker {i}: {:?}", net.failures);
            })
        })
        .collect();
    let mut walls = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        start.wait();
        let t0 = Instant::now();
        end.wait();
        walls.push(t0.elapsed());
    }
    for w in workers {
        w.join().expect("worker thread");
    }
    let results = results.lock().expect("results").clone();
    walls.into_iter().zip(results).collect()
}

/// The median round: (copies per second of wall time, CPU µs per copy).
fn median(rounds: &[(Duration, Vec<Round>)]) -> (f64, f64) {
    let mut figures: Vec<(f64, f64)> = rounds
        .iter()
        .map(|(wall, threads)| {
            let copies: usize = threads.iter().map(|r| r.copies).sum();
            let cpu: Duration = threads.iter().map(|r| r.cpu).sum();
            (
                copies as f64 / wall.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / copies.max(1) as f64,
            )
        })
        .collect();
    figures.sort_by(|a, b| a.0.total_cmp(&b.0));
    figures[figures.len() / 2]
}

fn main() {
    let subscribers = arg(1, 50).max(1);
    let rounds = arg(4, 5).max(1);
    let packets = arg(2, 1000).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = arg(3, cores).max(1);
    println!(
        "worker scaling: 1 publisher → {subscribers} subscribers per worker, {packets} packets per round, \
         median of {rounds} rounds, {cores} cores"
    );
    println!("threads | copies/s (wall) | vs 1 thread | CPU µs per copy");
    let one = median(&run(1, subscribers, packets, rounds));
    println!(
        "{:>7} | {:>15.0} | {:>11.2} | {:>15.2}",
        1, one.0, 1.0, one.1
    );
    if threads > 1 {
        let many = median(&run(threads, subscribers, packets, rounds));
        println!(
            "{:>7} | {:>15.0} | {:>11.2} | {:>15.2}",
            threads,
            many.0,
            many.0 / one.0,
            many.1
        );
    }
}
