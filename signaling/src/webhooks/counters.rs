//! How webhook delivery is going, for `/metrics`: successful deliveries, failed attempts and dead letters since
//! the server started. Written by the delivery tasks (relaxed atomic adds), read at scrape time. The queue depth
//! comes from the store instead (it survives restarts).

use std::sync::atomic::{AtomicU64, Ordering};

/// Totals since start; all zero when no webhook endpoint is configured.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    dead_lettered: AtomicU64,
}

/// A copy of [`WebhookCounters`] at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WebhookTotals {
    /// Requests answered with a 2xx status.
    pub delivered: u64,
    /// Attempts that failed (error status, timeout, connection failure), the last ones included.
    pub failed_attempts: u64,
    /// Deliveries given up after their last attempt.
    pub dead_lettered: u64,
}

impl WebhookCounters {
    pub(crate) fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// One failed attempt; `last` when it was the final one (the delivery becomes a dead letter).
    pub(crate) fn failed(&self, last: bool) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
        if last {
            self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn totals(&self) -> WebhookTotals {
        WebhookTotals {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_failure_is_also_a_dead_letter() {
        let c = WebhookCounters::default();
        c.delivered();
        c.failed(false);
        c.failed(true);
        assert_eq!(
            c.totals(),
            WebhookTotals {
                delivered: 1,
                failed_attempts: 2,
                dead_lettered: 1
            }
        );
    }
}
