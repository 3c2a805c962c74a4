//! A webhook receiver on loopback for tests: it checks every signature, records each request, and can be told
//! to answer 500 or to hold requests.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chorus_signaling::auth::now_unix_secs;
use chorus_signaling::server::ServerSettings;
use chorus_signaling::webhooks::sign;
use serde_json::Value;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Hit {
    pub id: String,
    pub kind: String,
    pub subject: String,
    /// Signed with the secret, a CloudEvents 1.0 body with its content type.
    pub signed: bool,
    /// 200, 500, or 0 while held.
    pub answered: u16,
}

pub struct Inner {
    secret: String,
    hits: Mutex<Vec<Hit>>,
    /// Answer 500 to this many more requests.
    pub fail_next: AtomicU32,
    /// While true, requests wait (the server sees no answer).
    pub hold: watch::Sender<bool>,
}

#[derive(Clone)]
pub struct Receiver(pub Arc<Inner>);

impl Receiver {
    /// Listens on a free loopback port; returns the receiver and its URL.
    pub async fn start(secret: &str) -> (Receiver, String) {
        let (hold, _) = watch::channel(false);
        let receiver = Receiver(Arc::new(Inner {
            secret: secret.to_string(),
            hits: Mutex::new(Vec::new()),
            fail_next: AtomicU32::new(0),
            hold,
        }));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (receiver, url)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.0.hits.lock().expect("lock").clone()
    }

    /// Successful deliveries of `subject`'s events, in arrival order: (type, id).
    pub fn delivered(&self, subject: &str) -> Vec<(String, String)> {
        self.hits()
            .into_iter()
            .filter(|h| h.subject == subject && h.answered == 200)
            .map(|h| (h.kind, h.id))
            .collect()
    }

    /// Waits (up to 15 s) until `count` events of `subject` were delivered.
    pub async fn wait_for(&self, subject: &str, count: usize) -> Vec<(String, String)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let got = self.delivered(subject);
            if got.len() >= count || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signed = headers
        .get(sign::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|h| sign::verify(&r.0.secret, h, &body, now_unix_secs(), 300).is_ok());
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut hold = r.0.hold.subscribe();
    let failing =
        r.0.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let answered = if failing { 500 } else { 200 };
    let held = *hold.borrow();
    r.0.hits.lock().expect("lock").push(Hit {
        id: event["id"].as_str().unwrap_or_default().to_string(),
        kind: event["type"].as_str().unwrap_or_default().to_string(),
        subject: event["subject"].as_str().unwrap_or_default().to_string(),
        signed: signed
            && event["specversion"] == "1.0"
            && headers.get("content-type").and_then(|v| v.to_str().ok())
                == Some("application/cloudevents+json"),
        answered: if held { 0 } else { answered },
    });
    if held {
        let _ = hold.wait_for(|h| !*h).await;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    StatusCode::from_u16(answered).unwrap_or(StatusCode::OK)
}

/// Webhooks to `url` with quick retries; rooms close as soon as they are empty.
pub fn webhook_settings(url: &str, s: &mut ServerSettings) {
    s.webhooks.urls = vec![url.to_string()];
    s.webhooks.allow_private_urls = true;
    s.webhooks.initial_backoff = Duration::from_millis(50);
    s.webhooks.max_backoff = Duration::from_millis(200);
    s.webhooks.max_attempts = 5;
    s.room_empty_timeout = Duration::ZERO;
}

/// The events of a call of two participants, in order.
pub const CALL: [&str; 6] = [
    "room_started",
    "participant_joined",
    "participant_joined",
    "participant_left",
    "participant_left",
    "room_finished",
];

pub fn kinds(delivered: &[(String, String)]) -> Vec<&str> {
    delivered.iter().map(|(k, _)| k.as_str()).collect()
}
