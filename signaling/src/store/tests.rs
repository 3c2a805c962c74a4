//! Store behaviour through the traits, on in-memory SQLite and on a file reopened like after a restart.

use super::*;

fn identity(id: &str) -> Identity {
    Identity {
        id: id.into(),
        name: format!("{id} name"),
        metadata: "{}".into(),
        created_at: 1_700_000_000,
    }
}

fn delivery(endpoint: &str, room: &str, payload: &str) -> NewDelivery {
    NewDelivery {
        endpoint: endpoint.into(),
        room: room.into(),
        payload: payload.into(),
    }
}

async fn memory() -> Store {
    Store::open_sqlite(None).await.expect("in-memory store")
}

#[tokio::test]
async fn identities_insert_get_delete() {
    let store = memory().await;
    assert!(store
        .identities
        .insert_identity(identity("u1"))
        .await
        .expect("insert"));
    assert!(
        !store
            .identities
            .insert_identity(identity("u1"))
            .await
            .expect("insert again"),
        "a duplicate id is refused"
    );
    assert_eq!(
        store.identities.get_identity("u1").await.expect("get"),
        Some(identity("u1"))
    );
    assert_eq!(
        store.identities.get_identity("u2").await.expect("get"),
        None
    );
    assert!(store
        .identities
        .delete_identity("u1")
        .await
        .expect("delete"));
    assert!(!store
        .identities
        .delete_identity("u1")
        .await
        .expect("delete"));
    assert_eq!(
        store.identities.get_identity("u1").await.expect("get"),
        None
    );
}

#[tokio::test]
async fn revocations_keep_the_latest_time() {
    let store = memory().await;
    assert_eq!(store.revocations.revoked_at("u").await.expect("get"), None);
    store.revocations.revoke("u", 100).await.expect("revoke");
    store.revocations.revoke("u", 50).await.expect("revoke");
    assert_eq!(
        store.revocations.revoked_at("u").await.expect("get"),
        Some(100)
    );
    store.revocations.revoke("u", 200).await.expect("revoke");
    assert_eq!(
        store.revocations.revoked_at("u").await.expect("get"),
        Some(200)
    );
}

#[tokio::test]
async fn webhook_queue_hands_out_one_head_per_endpoint_and_room() {
    let store = memory().await;
    let q = &store.webhooks;
    q.enqueue(
        vec![
            delivery("e1", "a", "a1"),
            delivery("e1", "b", "b1"),
            delivery("e1", "a", "a2"),
            delivery("e2", "a", "a1@e2"),
        ],
        1000,
    )
    .await
    .expect("enqueue");
    assert_eq!(q.pending().await.expect("pending"), 4);
    assert_eq!(
        q.due(999, 10).await.expect("due"),
        Vec::new(),
        "not due yet"
    );
    let due = q.due(1000, 10).await.expect("due");
    let payloads: Vec<&str> = due.iter().map(|d| d.payload.as_str()).collect();
    assert_eq!(payloads, ["a1", "b1", "a1@e2"], "a2 waits behind a1");

    // a1 fails: a2 still waits, the retry is scheduled.
    q.retry_later(due[0].id, 5000, "HTTP 500")
        .await
        .expect("retry");
    q.complete(due[1].id).await.expect("complete");
    q.complete(due[2].id).await.expect("complete");
    assert_eq!(q.due(4999, 10).await.expect("due"), Vec::new());
    assert_eq!(q.next_due_ms().await.expect("next"), Some(5000));
    let again = q.due(5000, 10).await.expect("due");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].payload, "a1");
    assert_eq!(again[0].attempts, 1);

    // a1 gives up: it becomes a dead letter and a2 is next.
    q.dead_letter(again[0].id, 6000, "HTTP 500")
        .await
        .expect("dead letter");
    let dead = q.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload, "a1");
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(dead[0].last_error, "HTTP 500");
    assert_eq!(dead[0].failed_at_ms, 6000);
    let next = q.due(6000, 10).await.expect("due");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].payload, "a2");
    q.complete(next[0].id).await.expect("complete");
    assert_eq!(q.pending().await.expect("pending"), 0);
    assert_eq!(q.next_due_ms().await.expect("next"), None);
}

#[tokio::test]
async fn a_file_store_survives_reopening() {
    let dir = std::env::temp_dir().join(format!("chorus-store-{}", crate::ids::random_string(10)));
    {
        let store = Store::open_sqlite(Some(&dir)).await.expect("open");
        store
            .identities
            .insert_identity(identity("kept"))
            .await
            .expect("insert");
        store.revocations.revoke("kept", 42).await.expect("revoke");
        store
            .webhooks
            .enqueue(vec![delivery("e", "r", "p")], 1)
            .await
            .expect("enqueue");
    }
    let store = Store::open_sqlite(Some(&dir)).await.expect("reopen");
    assert!(store
        .identities
        .get_identity("kept")
        .await
        .expect("get")
        .is_some());
    assert_eq!(
        store.revocations.revoked_at("kept").await.expect("get"),
        Some(42)
    );
    assert_eq!(store.webhooks.pending().await.expect("pending"), 1);
    assert!(dir.join(DB_FILE).exists());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

fn chat(id: &str, text: &str) -> chorus_protocol::ChatMessage {
    chorus_protocol::ChatMessage {
        id: id.into(),
        timestamp: 1_700_000_000_000,
        identity: "alice".into(),
        name: "Alice".into(),
        text: text.into(),
        edited_at: None,
    }
}

fn ids(history: &[chorus_protocol::ChatMessage]) -> Vec<&str> {
    history.iter().map(|m| m.id.as_str()).collect()
}

#[tokio::test]
async fn chat_history_is_per_room_in_order_and_trimmed_to_keep() {
    let store = memory().await;
    let c = &store.chat;
    for i in 1..=5 {
        c.append_chat("a", chat(&format!("a{i}"), "x"), 3)
            .await
            .expect("append");
    }
    c.append_chat("b", chat("b1", "y"), 3)
        .await
        .expect("append");
    assert_eq!(
        ids(&c.chat_history("a", 100).await.expect("history")),
        ["a3", "a4", "a5"],
        "only the newest 3 are kept, oldest first"
    );
    assert_eq!(
        ids(&c.chat_history("a", 2).await.expect("history")),
        ["a4", "a5"],
        "a limit returns the newest"
    );
    assert_eq!(
        ids(&c.chat_history("b", 100).await.expect("history")),
        ["b1"]
    );
    assert!(c
        .chat_history("none", 100)
        .await
        .expect("history")
        .is_empty());
}

#[tokio::test]
async fn chat_edits_and_deletes_apply_to_the_stored_history() {
    let store = memory().await;
    let c = &store.chat;
    c.append_chat("r", chat("m1", "hello"), 10)
        .await
        .expect("append");
    c.append_chat("r", chat("m2", "world"), 10)
        .await
        .expect("append");
    assert!(c.edit_chat("r", "m1", "hi", 42).await.expect("edit"));
    assert!(
        !c.edit_chat("other", "m1", "no", 43).await.expect("edit"),
        "ids are scoped to their room"
    );
    assert!(!c.edit_chat("r", "nope", "no", 43).await.expect("edit"));
    assert!(c.delete_chat("r", "m2").await.expect("delete"));
    assert!(!c.delete_chat("r", "m2").await.expect("delete again"));
    let history = c.chat_history("r", 10).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].text, "hi");
    assert_eq!(history[0].edited_at, Some(42));
}

#[tokio::test]
async fn chat_history_survives_reopening_the_file() {
    let dir = std::env::temp_dir().join(format!("chorus-chat-{}", crate::ids::random_string(10)));
    {
        let store = Store::open_sqlite(Some(&dir)).await.expect("open");
        store
            .chat
            .append_chat("r", chat("kept", "still here"), 10)
            .await
            .expect("append");
    }
    let store = Store::open_sqlite(Some(&dir)).await.expect("reopen");
    let history = store.chat.chat_history("r", 10).await.expect("history");
    assert_eq!(ids(&history), ["kept"]);
    assert_eq!(history[0].text, "still here");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
