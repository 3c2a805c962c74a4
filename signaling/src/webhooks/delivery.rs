//! The delivery loop: takes due queue heads from the store (one per endpoint and room, so order holds), POSTs
//! them signed, and records the outcome: done (2xx), retry later with exponential backoff, or dead letter after
//! `max_attempts`. A delivery interrupted by shutdown stays queued and goes out after the next start
//! (at least once). Redirects are not followed and DNS answers are filtered (`address.rs`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use reqwest::header::CONTENT_TYPE;
use tokio::sync::{watch, Notify};

use super::address::GuardedResolver;
use super::sign::{signature, KEY_HEADER, SIGNATURE_HEADER};
use super::{WebhookError, WebhookSettings};
use crate::auth::ApiKey;
use crate::store::{PendingDelivery, Store};

/// Most deliveries attempted at once (each to a different endpoint/room).
const BATCH: usize = 32;
/// Longest sleep between queue checks when nothing wakes the loop.
const IDLE_POLL: Duration = Duration::from_secs(5);

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
}

impl Sender {
    pub fn new(
        settings: WebhookSettings,
        key: ApiKey,
        store: Store,
        wake: Arc<Notify>,
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
        })
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            let due = match self.store.webhooks.due(now_ms(), BATCH).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the webhook queue");
                    Vec::new()
                }
            };
            if !due.is_empty() {
                tokio::select! {
                    _ = join_all(due.into_iter().map(|d| self.deliver(d))) => {}
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
                continue;
            }
            let wait = match self.store.webhooks.next_due_ms().await {
                Ok(Some(at)) => Duration::from_millis(at.saturating_sub(now_ms())).min(IDLE_POLL),
                _ => IDLE_POLL,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        tracing::debug!("webhook delivery stopped");
    }

    async fn deliver(&self, d: PendingDelivery) {
        let outcome = self.post(&d).await;
        let result = match outcome {
            Ok(()) => self.store.webhooks.complete(d.id).await,
            Err(error) => {
                let attempt = d.attempts + 1;
                if attempt >= self.settings.max_attempts {
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
