//! Webhooks: room events (`room::RoomEvent`) become CloudEvents (`event.rs`), are queued durably in the store for
//! every configured endpoint, and are delivered signed (`sign.rs`), at least once, in order per (endpoint, room),
//! with exponential backoff and a dead letter after the last attempt (`delivery.rs`). Endpoints pointing at
//! private addresses are refused unless allowed (`address.rs`).
//!
//! Owns outgoing HTTP for events; knows nothing of rooms beyond the events they report.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch, Notify};

use crate::auth::ApiKey;
use crate::room::{RoomEvent, RoomObserver};
use crate::store::{NewDelivery, Store};

pub(crate) mod address;
mod counters;
mod delivery;
pub mod event;
pub mod sign;

pub use address::{check_url, forbidden_ip, UrlError};
pub use counters::{WebhookCounters, WebhookTotals};

/// Webhook configuration, validated.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Endpoints that receive every event (none: webhooks are off).
    pub urls: Vec<String>,
    /// Allow loopback/private/link-local endpoints (tests, trusted networks).
    pub allow_private_urls: bool,
    /// Attempts per event before it becomes a dead letter.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles per attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            urls: Vec::new(),
            allow_private_urls: false,
            max_attempts: 10,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl WebhookSettings {
    /// Checks every URL against the address policy.
    pub fn validate(&self) -> Result<(), UrlError> {
        for url in &self.urls {
            check_url(url, self.allow_private_urls)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The room observer that queues events; see [`start`].
struct Enqueuer {
    tx: mpsc::UnboundedSender<(String, String)>,
}

impl RoomObserver for Enqueuer {
    fn event(&self, event: RoomEvent) {
        let id = crate::ids::random_string(24);
        let body = event::cloud_event(&event, &id, SystemTime::now()).to_string();
        let _ = self.tx.send((event.room().name.clone(), body));
    }
}

/// Starts the queue writer and the delivery loop (both stop when `shutdown` turns true) and returns the observer
/// the rooms report to. Events are signed with `key`. Deliveries left in the store by an earlier run go out too.
/// Outcomes are counted in `counters`.
pub fn start(
    settings: WebhookSettings,
    key: ApiKey,
    store: Store,
    counters: Arc<WebhookCounters>,
    shutdown: watch::Receiver<bool>,
) -> Result<Arc<dyn RoomObserver>, WebhookError> {
    settings.validate()?;
    let wake = Arc::new(Notify::new());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(write_queue(
        rx,
        settings.urls.clone(),
        store.clone(),
        wake.clone(),
    ));
    let sender = delivery::Sender::new(settings, key, store, wake, counters)?;
    tokio::spawn(sender.run(shutdown));
    Ok(Arc::new(Enqueuer { tx }))
}

/// Appends events to the store in the order the rooms reported them, one row per endpoint.
async fn write_queue(
    mut rx: mpsc::UnboundedReceiver<(String, String)>,
    urls: Vec<String>,
    store: Store,
    wake: Arc<Notify>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let deliveries: Vec<NewDelivery> = batch
            .iter()
            .flat_map(|(room, body)| {
                urls.iter().map(move |url| NewDelivery {
                    endpoint: url.clone(),
                    room: room.clone(),
                    payload: body.clone(),
                })
            })
            .collect();
        if deliveries.is_empty() {
            continue;
        }
        if let Err(e) = store.webhooks.enqueue(deliveries, delivery::now_ms()).await {
            tracing::error!(error = %e, events = batch.len(), "cannot queue webhook events; they are lost");
        }
        wake.notify_one();
    }
}
