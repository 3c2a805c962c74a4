//! Webhooks end to end: a receiver on loopback (explicitly allowed, `support/hooks.rs`) checks every signature, sees each room's
//! events in order, gets retries after answering 500, receives events that were still queued when the server
//! restarted, and the store keeps a dead letter after the last attempt.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::hooks::{kinds, webhook_settings, Hit, Receiver, CALL};
use crate::support::{join, left_reason, metrics, sample, send, TempDir};
use chorus_signaling::auth::ApiKey;
use chorus_signaling::store::Store;
use chorus_signaling::testing::TestServer;

/// Two participants come and go in `room`: six events.
async fn short_call(ts: &TestServer, room: &str) {
    let (mut a, _) = join(ts, room, "alice").await;
    let (mut b, _) = join(ts, room, "bob").await;
    send(&mut b, r#"{"type":"leave"}"#).await;
    assert_eq!(left_reason(&mut b).await, "left");
    send(&mut a, r#"{"type":"leave"}"#).await;
    assert_eq!(left_reason(&mut a).await, "left");
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
