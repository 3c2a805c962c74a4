//! The webhook metric families: deliveries, failed attempts and dead letters since start
//! ([`crate::webhooks::WebhookCounters`]), and the queue depth read from the store at scrape time.

use super::{Builder, Snapshot};

pub(super) fn register(b: &Builder, snap: &Snapshot) -> prometheus::Result<()> {
    let w = &snap.webhooks;
    b.counter(
        "chorus_webhook_deliveries_total",
        "Webhook requests answered with a 2xx status.",
        w.delivered,
    )?;
    b.counter(
        "chorus_webhook_failed_attempts_total",
        "Webhook attempts that failed (error status, timeout, connection failure); each is retried until the last.",
        w.failed_attempts,
    )?;
    b.counter(
        "chorus_webhook_dead_letters_total",
        "Webhook deliveries given up after their last attempt (kept as dead letters in the store).",
        w.dead_lettered,
    )?;
    if let Some(depth) = snap.webhook_queue {
        b.gauge(
            "chorus_webhook_queue_depth",
            "Webhook deliveries waiting in the store, retries included.",
            depth,
        )?;
    }
    Ok(())
}
