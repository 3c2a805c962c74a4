//! The delivery loop: takes due queue heads from the store (one per endpoint and room, so order holds), POSTs
//! each in its own task, and records the outcome: done (2xx), retry later with exponential backoff, or dead letter
//! after `max_attempts`. A slow endpoint delays only its own rooms' events. A delivery interrupted by shutdown stays
//! queued and goes out after the next start (at least once). Redirects are not followed and DNS answers are
//! filtered (`address.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::CONTENT_TYPE;
use tokio::sync::{watch, Notify};
use tokio::task::{Id, JoinError, JoinSet};

use super::address::GuardedResolver;
use super::sign::{signature, KEY_HEADER, SIGNATURE_HEADER};
use super::{WebhookCounters, WebhookError, WebhookSettings};
use crate::auth::ApiKey;
use crate::store::{PendingDelivery, Store};

/// Most deliveries in flight at once (each to a different endpoint/room).
const MAX_IN_FLIGHT: usize = 32;
/// Longest sleep between queue checks when nothing wakes the loop.
const IDLE_POLL: Duration = Duration::from_secs(1);

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Wait before retry number `attempt` (1 = after the first failure): `initial * 2^(attempt-1)`, capped.
pub fn backoff(settings: &WebhookSettings, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
    settings
        .initial_backoff
        .saturating_mul(factor)
        .min(settings.max_backoff)
}

pub struct Sender {
    settings: WebhookSettings,
    key: ApiKey,
    store: Store,
    wake: Arc<Notify>,
    http: reqwest::Client,
    counters: Arc<WebhookCounters>,
}

impl Sender {
    pub fn new(
        settings: WebhookSettings,
        key: ApiKey,
        store: Store,
        wake: Arc<Notify>,
        counters: Arc<WebhookCounters>,
    ) -> Result<Sender, WebhookError> {
        crate::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("chorus-webhooks/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private_urls {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        let http = builder
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        Ok(Sender {
            settings,
            key,
            store,
            wake,
            http,
            counters,
        })
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let this = Arc::new(self);
        // Queue rows being delivered, by task. A row leaves this map only once its task has finished, i.e. after
        // its outcome is in the store, and only before the next `due` query: so a query never hands out again a
        // row whose delivery already ended.
        let mut in_flight: HashMap<Id, i64> = HashMap::new();
        // Dropped on shutdown, which aborts deliveries in flight (their rows stay queued).
        let mut tasks = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            while let Some(done) = tasks.try_join_next_with_id() {
                finished(&mut in_flight, done);
            }
            let limit = MAX_IN_FLIGHT + in_flight.len();
            let due = match this.store.webhooks.due(now_ms(), limit).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the webhook queue");
                    Vec::new()
                }
            };
            let mut started = 0;
            for d in due {
                if in_flight.len() >= MAX_IN_FLIGHT || in_flight.values().any(|id| *id == d.id) {
                    continue;
                }
                started += 1;
                let (sender, id) = (this.clone(), d.id);
                let task = tasks.spawn(async move { sender.deliver(d).await });
                in_flight.insert(task.id(), id);
            }
            if started > 0 {
                continue;
            }
            // Nothing new to start: sleep until the next retry is due, an event is queued or a delivery ends.
            let wait = match this.store.webhooks.next_due_ms().await {
                Ok(Some(at)) if at > now_ms() => {
                    Duration::from_millis(at.saturating_sub(now_ms())).min(IDLE_POLL)
                }
                _ => IDLE_POLL,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = this.wake.notified() => {}
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    finished(&mut in_flight, done);
                }
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        tasks.abort_all();
        tracing::debug!("webhook delivery stopped");
    }

    async fn deliver(&self, d: PendingDelivery) {
        let outcome = self.post(&d).await;
        let result = match outcome {
            Ok(()) => {
                self.counters.delivered();
                self.store.webhooks.complete(d.id).await
            }
            Err(error) => {
                let attempt = d.attempts + 1;
                let last = attempt >= self.settings.max_attempts;
                self.counters.failed(last);
                if last {
                    tracing::warn!(endpoint = %d.endpoint, room = %d.room, attempt, %error,
                        "webhook delivery failed for the last time; dead-lettered");
                    self.store
                        .webhooks
                        .dead_letter(d.id, now_ms(), &error)
                        .await
                } else {
                    let wait = backoff(&self.settings, attempt);
                    tracing::info!(endpoint = %d.endpoint, room = %d.room, attempt, %error, ?wait,
                        "webhook delivery failed; will retry");
                    let next = now_ms().saturating_add(wait.as_millis() as u64);
                    self.store.webhooks.retry_later(d.id, next, &error).await
                }
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot record a webhook delivery outcome");
        }
    }

    async fn post(&self, d: &PendingDelivery) -> Result<(), String> {
        let timestamp = now_ms() / 1000;
        let body = d.payload.clone().into_bytes();
        let resp = self
            .http
            .post(&d.endpoint)
            .header(CONTENT_TYPE, "application/cloudevents+json")
            .header(KEY_HEADER, &self.key.key)
            .header(
                SIGNATURE_HEADER,
                signature(&self.key.secret, timestamp, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }
}

/// Forgets a finished delivery task (a panicked one too: its row stays queued and is tried again).
fn finished(in_flight: &mut HashMap<Id, i64>, done: Result<(Id, ()), JoinError>) {
    let id = match done {
        Ok((id, ())) => id,
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery task failed");
            e.id()
        }
    };
    in_flight.remove(&id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = WebhookSettings {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            ..WebhookSettings::default()
        };
        let waits: Vec<u64> = (1..=8).map(|a| backoff(&s, a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(&s, 1000), Duration::from_secs(60));
    }
}
