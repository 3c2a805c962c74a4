//! A media worker thread's own CPU time and sleeps, for the metrics: what the media plane costs apart from the
//! rest of the process (signaling, storage), and how often a worker goes to sleep waiting for input. Each sleep
//! and wake-up has a price of its own, high on some virtual machines (`docs/performance.md`), so sleeps per
//! forwarded packet tell an operator how much of that price the load pays.

/// Totals for the calling thread since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadUsage {
    /// User plus system CPU time, in microseconds.
    pub cpu_micros: u64,
    /// Voluntary context switches: times the thread blocked (in `recv`, mostly) and was woken again.
    pub sleeps: u64,
}

/// The calling thread's usage (Linux `getrusage(RUSAGE_THREAD)`); `None` where that is not available.
#[cfg(target_os = "linux")]
pub fn current() -> Option<ThreadUsage> {
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;

    let usage = getrusage(UsageWho::RUSAGE_THREAD).ok()?;
    let micros = usage.user_time().num_microseconds() + usage.system_time().num_microseconds();
    Some(ThreadUsage {
        cpu_micros: u64::try_from(micros).unwrap_or(0),
        sleeps: u64::try_from(usage.voluntary_context_switches()).unwrap_or(0),
    })
}

/// The calling thread's usage; not measured on this platform.
#[cfg(not(target_os = "linux"))]
pub fn current() -> Option<ThreadUsage> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_works_and_sleeps_shows_both() {
        std::thread::spawn(|| {
            let before = current().expect("getrusage");
            let start = std::time::Instant::now();
            let mut x = 0u64;
            while start.elapsed() < std::time::Duration::from_millis(30) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            let after = current().expect("getrusage");
            assert!(
                after.cpu_micros >= before.cpu_micros + 10_000,
                "{before:?} → {after:?}"
            );
            assert!(after.sleeps > before.sleeps, "{before:?} → {after:?}");
        })
        .join()
        .expect("thread");
    }
}
