//! The shared behaviour on a throwaway `redis-server`, and what a cluster adds: several nodes on one Redis, racing
//! writers, an unreachable server, values this server did not write. Needs `redis-server` on the PATH.

use std::time::{Duration, Instant};

use super::*;
use crate::testing::RedisServer;

/// One Redis and a key prefix of its own; each [`Cluster::node`] is a [`Store`] as one node of a cluster holds it.
struct Cluster {
    server: RedisServer,
    prefix: String,
}

impl Cluster {
    async fn start() -> Cluster {
        Cluster {
            server: RedisServer::start().await.expect("redis-server"),
            prefix: format!("chorus:test-{}:", crate::ids::random_string(8)),
        }
    }

    /// A node: the shared Redis under this cluster's prefix, and its own in-memory webhook queue.
    async fn node(&self) -> Store {
        self.node_with_prefix(&self.prefix).await
    }

    async fn node_with_prefix(&self, prefix: &str) -> Store {
        let shared = RedisStore::connect_with_prefix(&self.server.url, prefix)
            .await
            .expect("connect to Redis");
        let webhooks = SqliteStore::open_in_memory().await.expect("sqlite");
        Store::from_redis(shared, webhooks)
    }

    /// A plain connection, to write what a Chorus node would not.
    async fn raw(&self) -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(self.server.url.as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection")
    }

    async fn raw_command(&self, args: &[&str]) {
        let mut cmd = ::redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        let _: ::redis::Value = cmd
            .query_async(&mut self.raw().await)
            .await
            .expect("raw command");
    }
}

#[tokio::test]
async fn identities_insert_get_delete() {
    let cluster = Cluster::start().await;
    behaviour::identities_insert_get_delete(&cluster.node().await).await;
}

#[tokio::test]
async fn revocations_keep_the_latest_time() {
    let cluster = Cluster::start().await;
    behaviour::revocations_keep_the_latest_time(&cluster.node().await).await;
}

#[tokio::test]
async fn webhook_queue_hands_out_one_head_per_endpoint_and_room() {
    let cluster = Cluster::start().await;
    behaviour::webhook_queue_hands_out_one_head_per_endpoint_and_room(&cluster.node().await).await;
}

#[tokio::test]
async fn chat_history_is_per_room_in_order_and_trimmed_to_keep() {
    let cluster = Cluster::start().await;
    behaviour::chat_history_is_per_room_in_order_and_trimmed_to_keep(&cluster.node().await).await;
}

#[tokio::test]
async fn chat_edits_and_deletes_apply_to_the_stored_history() {
    let cluster = Cluster::start().await;
    behaviour::chat_edits_and_deletes_apply_to_the_stored_history(&cluster.node().await).await;
}

#[tokio::test]
async fn a_duplicate_message_id_is_refused() {
    let cluster = Cluster::start().await;
    behaviour::a_duplicate_message_id_is_refused(&cluster.node().await).await;
}

#[tokio::test]
async fn two_nodes_see_each_others_writes_and_queue_webhooks_apart() {
    let cluster = Cluster::start().await;
    let (a, b) = (cluster.node().await, cluster.node().await);

    assert!(a
        .identities
        .insert_identity(identity("u"))
        .await
        .expect("insert"));
    assert_eq!(
        b.identities.get_identity("u").await.expect("get"),
        Some(identity("u"))
    );
    assert!(
        !b.identities
            .insert_identity(identity("u"))
            .await
            .expect("insert"),
        "the id is taken, whichever node asks"
    );

    b.revocations.revoke("u", 7).await.expect("revoke");
    assert_eq!(a.revocations.revoked_at("u").await.expect("get"), Some(7));

    a.chat
        .append_chat("r", chat("m1", "from a"), 10)
        .await
        .expect("append");
    b.chat
        .append_chat("r", chat("m2", "from b"), 10)
        .await
        .expect("append");
    assert!(b
        .chat
        .edit_chat("r", "m1", "edited by b", 9)
        .await
        .expect("edit"));
    let history = a.chat.chat_history("r", 10).await.expect("history");
    assert_eq!(ids(&history), ["m1", "m2"]);
    assert_eq!(history[0].text, "edited by b");
    assert!(a.chat.delete_chat("r", "m2").await.expect("delete"));
    assert!(!b.chat.delete_chat("r", "m2").await.expect("delete"));

    assert!(b.identities.delete_identity("u").await.expect("delete"));
    assert_eq!(a.identities.get_identity("u").await.expect("get"), None);

    a.webhooks
        .enqueue(vec![delivery("e", "r", "from a")], 1)
        .await
        .expect("enqueue");
    assert_eq!(a.webhooks.pending().await.expect("pending"), 1);
    assert_eq!(
        b.webhooks.pending().await.expect("pending"),
        0,
        "each node delivers the events it produced"
    );
}

#[tokio::test]
async fn another_prefix_is_another_store() {
    let cluster = Cluster::start().await;
    let (a, other) = (
        cluster.node().await,
        cluster.node_with_prefix("chorus:elsewhere:").await,
    );
    a.identities
        .insert_identity(identity("u"))
        .await
        .expect("insert");
    a.revocations.revoke("u", 1).await.expect("revoke");
    a.chat
        .append_chat("r", chat("m", "x"), 10)
        .await
        .expect("append");
    assert_eq!(other.identities.get_identity("u").await.expect("get"), None);
    assert_eq!(other.revocations.revoked_at("u").await.expect("get"), None);
    assert!(other
        .chat
        .chat_history("r", 10)
        .await
        .expect("history")
        .is_empty());
}

#[tokio::test]
async fn concurrent_revocations_from_two_nodes_keep_the_latest() {
    let cluster = Cluster::start().await;
    let (a, b) = (cluster.node().await, cluster.node().await);
    // Node a counts up through the even times while node b counts down through the odd ones, all at once: a
    // read-then-write revocation would let an earlier time overwrite a later one.
    let mut tasks = Vec::new();
    for i in 0..100u64 {
        let (a, b) = (a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            a.revocations.revoke("u", 2 * i + 2).await.expect("revoke");
        }));
        tasks.push(tokio::spawn(async move {
            b.revocations
                .revoke("u", 199 - 2 * i)
                .await
                .expect("revoke");
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(a.revocations.revoked_at("u").await.expect("get"), Some(200));
    assert_eq!(b.revocations.revoked_at("u").await.expect("get"), Some(200));
}

#[tokio::test]
async fn times_beyond_2_pow_53_are_kept_exactly() {
    let cluster = Cluster::start().await;
    let store = cluster.node().await;
    // Lua numbers are doubles: these two are the same double, so only an exact comparison keeps the later.
    store
        .revocations
        .revoke("u", u64::MAX - 1)
        .await
        .expect("revoke");
    store
        .revocations
        .revoke("u", u64::MAX - 2)
        .await
        .expect("revoke");
    assert_eq!(
        store.revocations.revoked_at("u").await.expect("get"),
        Some(u64::MAX - 1)
    );
    store.revocations.revoke("v", 9).await.expect("revoke");
    store.revocations.revoke("v", 10).await.expect("revoke");
    assert_eq!(
        store.revocations.revoked_at("v").await.expect("get"),
        Some(10),
        "10 is later than 9 (numbers, not text)"
    );

    let message = ChatMessage {
        timestamp: u64::MAX - 1,
        ..chat("m", "x")
    };
    store
        .chat
        .append_chat("r", message, 10)
        .await
        .expect("append");
    assert!(store
        .chat
        .edit_chat("r", "m", "y", u64::MAX - 3)
        .await
        .expect("edit"));
    let history = store.chat.chat_history("r", 10).await.expect("history");
    assert_eq!(history[0].timestamp, u64::MAX - 1);
    assert_eq!(history[0].edited_at, Some(u64::MAX - 3));
}

#[tokio::test]
async fn an_unreachable_redis_fails_fast_with_a_clear_error() {
    // Nothing listens on a port just released: connection refused.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let started = Instant::now();
    let err = RedisStore::connect(&format!("redis://user:hunter2@127.0.0.1:{port}/0"))
        .await
        .expect_err("nothing listens");
    let text = err.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a refusal fails at once, not after retries: {:?}",
        started.elapsed()
    );
    assert!(
        text.starts_with("Redis: cannot connect to redis://user:***@127.0.0.1:"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "the password stays out: {text}");

    let err = RedisStore::connect("http://127.0.0.1/")
        .await
        .expect_err("not Redis");
    assert!(err.to_string().starts_with("Redis: invalid URL"), "{err}");
}

#[tokio::test]
async fn a_silent_redis_times_out() {
    // A listener that never accepts: the TCP handshake completes, no answer ever comes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let started = Instant::now();
    let err = RedisStore::connect(&format!("redis://127.0.0.1:{port}/0"))
        .await
        .expect_err("no answer");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().starts_with("Redis: "), "{err}");
    drop(listener);
}

#[tokio::test]
async fn values_this_server_did_not_write_are_errors_not_panics() {
    let cluster = Cluster::start().await;
    let store = cluster.node().await;
    let p = cluster.prefix.as_str();

    cluster
        .raw_command(&["HSET", &format!("{p}identities"), "u", "not json"])
        .await;
    let err = store
        .identities
        .get_identity("u")
        .await
        .expect_err("garbage");
    assert!(matches!(err, StoreError::Redis(_)), "{err:?}");
    assert!(err.to_string().contains("malformed identity"), "{err}");

    cluster
        .raw_command(&["HSET", &format!("{p}revocations"), "u", "soon"])
        .await;
    let err = store
        .revocations
        .revoked_at("u")
        .await
        .expect_err("garbage");
    assert!(err.to_string().contains("malformed revocation"), "{err}");
    let err = store.revocations.revoke("u", 5).await.expect_err("garbage");
    assert!(err.to_string().contains("malformed revocation"), "{err}");

    cluster
        .raw_command(&["RPUSH", &format!("{p}chat:ids:r"), "m"])
        .await;
    cluster
        .raw_command(&["HSET", &format!("{p}chat:msgs:r"), "m", "{\"timestamp\":"])
        .await;
    let err = store.chat.chat_history("r", 10).await.expect_err("garbage");
    assert!(err.to_string().contains("malformed chat message"), "{err}");
    cluster
        .raw_command(&[
            "HSET",
            &format!("{p}chat:msgs:r"),
            "m",
            "{\"timestamp\":1,\"identity\":\"a\",\"name\":\"A\",\"text\":\"t\"}",
        ])
        .await;
    cluster
        .raw_command(&["HSET", &format!("{p}chat:edits:r"), "m", "[]"])
        .await;
    let err = store.chat.chat_history("r", 10).await.expect_err("garbage");
    assert!(err.to_string().contains("malformed edit"), "{err}");

    // A key of the wrong type: Redis refuses, the store reports it.
    cluster
        .raw_command(&["SET", &format!("{p}chat:ids:s"), "a string"])
        .await;
    let err = store
        .chat
        .append_chat("s", chat("m", "x"), 10)
        .await
        .expect_err("wrong type");
    assert!(matches!(err, StoreError::Redis(_)), "{err:?}");

    // Everything else still works.
    assert!(store
        .identities
        .insert_identity(identity("v"))
        .await
        .expect("insert"));
    store
        .chat
        .append_chat("t", chat("m", "x"), 10)
        .await
        .expect("append");
}
