//! Thread pinning and per-thread CPU time for the measurement examples (Linux).

use std::time::Duration;

use nix::sched::{sched_setaffinity, CpuSet};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::Pid;

/// Pin the calling thread to `cpu` (a warning, not a failure, where that is not allowed).
pub fn pin(cpu: usize) {
    let mut set = CpuSet::new();
    if set.set(cpu).is_ok() && sched_setaffinity(Pid::from_raw(0), &set).is_err() {
        eprintln!("could not pin to CPU {cpu}; figures will be noisier");
    }
}

/// CPU time the calling thread has used so far.
pub fn thread_cpu() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}
