//! Webhooks end to end: a receiver on loopback (explicitly allowed) checks every signature, sees each room's
//! events in order, gets retries after answering 500, receives events that were still queued when the server
//! restarted, and the store keeps a dead letter after the last attempt.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chorus_signaling::auth::{now_unix_secs, ApiKey};
use chorus_signaling::server::ServerSettings;
use chorus_signaling::store::Store;
use chorus_signaling::testing::TestServer;
use chorus_signaling::webhooks::sign;
use serde_json::Value;
use support::{join, left_reason, metrics, sample, send, TempDir};
use tokio::sync::watch;

#[derive(Debug, Clone)]
struct Hit {
    id: String,
    kind: String,
    subject: String,
    signed: bool,
    answered: u16,
}

struct Inner {
    secret: String,
    hits: Mutex<Vec<Hit>>,
    /// Answer 500 to this many more requests.
    fail_next: AtomicU32,
    /// While true, requests wait (the server sees no answer).
    hold: watch::Sender<bool>,
}

#[derive(Clone)]
struct Receiver(Arc<Inner>);

impl Receiver {
    async fn start(secret: &str) -> (Receiver, String) {
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

    fn hits(&self) -> Vec<Hit> {
        self.0.hits.lock().expect("lock").clone()
    }

    /// Successful deliveries of `subject`'s events, in arrival order: (type, id).
    fn delivered(&self, subject: &str) -> Vec<(String, String)> {
        self.hits()
            .into_iter()
            .filter(|h| h.subject == subject && h.answered == 200)
            .map(|h| (h.kind, h.id))
            .collect()
    }

    async fn wait_for(&self, subject: &str, count: usize) -> Vec<(String, String)> {
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

fn webhook_settings(url: &str, s: &mut ServerSettings) {
    s.webhooks.urls = vec![url.to_string()];
    s.webhooks.allow_private_urls = true;
    s.webhooks.initial_backoff = Duration::from_millis(50);
    s.webhooks.max_backoff = Duration::from_millis(200);
    s.webhooks.max_attempts = 5;
    s.room_empty_timeout = Duration::ZERO;
}

/// Two participants come and go in `room`: six events.
async fn short_call(ts: &TestServer, room: &str) {
    let (mut a, _) = join(ts, room, "alice").await;
    let (mut b, _) = join(ts, room, "bob").await;
    send(&mut b, r#"{"type":"leave"}"#).await;
    assert_eq!(left_reason(&mut b).await, "left");
    send(&mut a, r#"{"type":"leave"}"#).await;
    assert_eq!(left_reason(&mut a).await, "left");
}

const CALL: [&str; 6] = [
    "room_started",
    "participant_joined",
    "participant_joined",
    "participant_left",
    "participant_left",
    "room_finished",
];

fn kinds(delivered: &[(String, String)]) -> Vec<&str> {
    delivered.iter().map(|(k, _)| k.as_str()).collect()
}

#[tokio::test]
async fn events_are_signed_ordered_per_room_and_retried_after_500() {
    let key = TestServer::random_key();
    let (receiver, url) = Receiver::start(&key.secret).await;
    receiver.0.fail_next.store(2, Ordering::SeqCst);
    let ts = TestServer::start_with_key(key, |s| webhook_settings(&url, s))
        .await
        .expect("server starts");
    let (first, second) = tokio::join!(short_call(&ts, "w1"), short_call(&ts, "w2"));
    let _ = (first, second);

    for room in ["w1", "w2"] {
        let delivered = receiver.wait_for(room, CALL.len()).await;
        assert_eq!(kinds(&delivered), CALL, "{room}: {delivered:?}");
        let mut ids: Vec<&str> = delivered.iter().map(|(_, id)| id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), CALL.len(), "unique ids");
    }
    let hits = receiver.hits();
    assert!(
        hits.iter().all(|h| h.signed),
        "every request signed: {hits:?}"
    );
    let failed: Vec<&Hit> = hits.iter().filter(|h| h.answered == 500).collect();
    assert_eq!(failed.len(), 2);
    for f in failed {
        assert!(
            hits.iter().any(|h| h.id == f.id && h.answered == 200),
            "{} was retried after its 500 and delivered",
            f.id
        );
    }

    // /metrics: one delivery per 200 answered, two failed attempts, no dead letters (the counters move just
    // after the receiver answers, so poll briefly).
    let answered_ok = hits.iter().filter(|h| h.answered == 200).count() as f64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let body = metrics(&ts).await;
        let seen = [
            "chorus_webhook_deliveries_total",
            "chorus_webhook_failed_attempts_total",
            "chorus_webhook_dead_letters_total",
        ]
        .map(|name| sample(&body, name));
        if seen == [Some(answered_ok), Some(2.0), Some(0.0)] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "webhook metrics {seen:?}, want [{answered_ok}, 2, 0]"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn events_queued_before_a_restart_are_delivered_after_it() {
    let dir = TempDir::new("webhooks-restart");
    let key = TestServer::random_key();
    let (receiver, url) = Receiver::start(&key.secret).await;
    receiver.0.hold.send_replace(true);
    let data_dir = dir.0.clone();
    let mut ts = TestServer::start_with_key(key.clone(), |s| {
        webhook_settings(&url, s);
        s.data_dir = Some(data_dir.clone());
    })
    .await
    .expect("server starts");
    short_call(&ts, "before").await;
    // The first event is stuck in flight; the others queue behind it (same room).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver.hits().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no delivery attempt"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ts.server.shutdown();
    ts.server.wait().await.expect("server stops");
    drop(ts);
    assert!(receiver.delivered("before").is_empty());

    receiver.0.hold.send_replace(false);
    let ts = TestServer::start_with_key(key, |s| {
        webhook_settings(&url, s);
        s.data_dir = Some(data_dir.clone());
    })
    .await
    .expect("server restarts");
    let delivered = receiver.wait_for("before", CALL.len()).await;
    assert_eq!(kinds(&delivered), CALL, "{delivered:?}");
    drop(ts);
}

#[tokio::test]
async fn the_last_failed_attempt_leaves_a_dead_letter() {
    let dir = TempDir::new("webhooks-dead");
    let key: ApiKey = TestServer::random_key();
    let (receiver, url) = Receiver::start(&key.secret).await;
    receiver.0.fail_next.store(u32::MAX, Ordering::SeqCst);
    let data_dir = dir.0.clone();
    let ts = TestServer::start_with_key(key, |s| {
        webhook_settings(&url, s);
        s.webhooks.max_attempts = 2;
        s.data_dir = Some(data_dir.clone());
    })
    .await
    .expect("server starts");
    let (mut a, _) = join(&ts, "dead", "alice").await;
    send(&mut a, r#"{"type":"leave"}"#).await;
    assert_eq!(left_reason(&mut a).await, "left");

    // Four events, two attempts each, then nothing queued and four dead letters (read from the same database).
    let store = Store::open_sqlite(Some(&dir.0)).await.expect("open store");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let dead = store.webhooks.dead_letters(10).await.expect("dead letters");
        let pending = store.webhooks.pending().await.expect("pending");
        if dead.len() == 4 && pending == 0 {
            assert!(dead
                .iter()
                .all(|d| d.attempts == 2 && d.last_error == "HTTP 500"));
            assert!(dead.iter().all(|d| d.endpoint == url && d.room == "dead"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dead letters: {dead:?}, pending {pending}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let attempts = receiver.hits().len();
    assert_eq!(attempts, 8, "two attempts per event");

    // /metrics counts the same: eight failed attempts, four dead letters, nothing delivered or queued.
    let body = metrics(&ts).await;
    for (name, want) in [
        ("chorus_webhook_failed_attempts_total", 8.0),
        ("chorus_webhook_dead_letters_total", 4.0),
        ("chorus_webhook_deliveries_total", 0.0),
        ("chorus_webhook_queue_depth", 0.0),
    ] {
        assert_eq!(sample(&body, name), Some(want), "{name} in:\n{body}");
    }
}

#[tokio::test]
async fn a_stuck_endpoint_does_not_hold_up_another() {
    let key = TestServer::random_key();
    let (stuck, stuck_url) = Receiver::start(&key.secret).await;
    stuck.0.hold.send_replace(true);
    let (healthy, healthy_url) = Receiver::start(&key.secret).await;
    let ts = TestServer::start_with_key(key, |s| {
        webhook_settings(&stuck_url, s);
        s.webhooks.urls.push(healthy_url.clone());
    })
    .await
    .expect("server starts");
    short_call(&ts, "both").await;
    let delivered = healthy.wait_for("both", CALL.len()).await;
    assert_eq!(kinds(&delivered), CALL, "{delivered:?}");
    assert!(stuck.delivered("both").is_empty());
    assert_eq!(
        stuck.hits().len(),
        1,
        "one request waits, the rest queue behind it"
    );
    stuck.0.hold.send_replace(false);
}
