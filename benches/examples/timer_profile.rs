//! A fixed idle workload for profilers: one room of connected participants and no media, the virtual clock
//! advanced in 5 ms steps, so that all the worker core does is str0m's timers (reports, consent, pacing
//! rounds) and draining the connections they touch. Callgrind counts its instructions reproducibly; collect
//! inside the core's timer entry point only, and divide by the timer rounds it prints.
//!
//! ```text
//! cargo build --release -p chorus-benches --example timer_profile
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*WorkerCore*handle_timeout*' \
//!     target/release/examples/timer_profile 50 10
//! ```
//!
//! Arguments: subscribers (default 50) and virtual seconds (default 10).

use std::time::Duration;

use chorus_sfu::testkit::FanoutNet;

fn arg(n: usize, default: u64) -> u64 {
    match std::env::args().nth(n) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("usage: timer_profile [SUBSCRIBERS] [SECONDS] (not {v:?})");
            std::process::exit(2)
        }),
    }
}

fn main() {
    let subscribers = arg(1, 50).max(1) as usize;
    let seconds = arg(2, 10);
    let mut net = FanoutNet::new(subscribers);
    let before = net.core.stats.rtc_timer_rounds;
    net.settle(Duration::from_secs(seconds));
    let rounds = net.core.stats.rtc_timer_rounds - before;
    assert!(net.failures.is_empty(), "{:?}", net.failures);
    println!("{subscribers} idle subscribers and a publisher, {seconds} virtual s: {rounds} str0m timer rounds");
}
