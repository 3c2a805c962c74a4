//! What every backend must do, through the traits: each function gets a fresh, empty [`Store`] and is called by
//! `on_sqlite.rs` and `on_redis.rs`.

use super::*;

pub(super) async fn identities_insert_get_delete(store: &Store) {
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

pub(super) async fn revocations_keep_the_latest_time(store: &Store) {
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

pub(super) async fn webhook_queue_hands_out_one_head_per_endpoint_and_room(store: &Store) {
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

pub(super) async fn chat_history_is_per_room_in_order_and_trimmed_to_keep(store: &Store) {
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
    assert!(c.chat_history("a", 0).await.expect("history").is_empty());
    assert_eq!(
        ids(&c.chat_history("a", usize::MAX).await.expect("history")),
        ["a3", "a4", "a5"]
    );

    // A smaller `keep` trims further; 0 keeps nothing, not even the new message.
    c.append_chat("a", chat("a6", "x"), 1)
        .await
        .expect("append");
    assert_eq!(
        ids(&c.chat_history("a", 100).await.expect("history")),
        ["a6"]
    );
    assert!(
        !c.edit_chat("a", "a5", "gone", 1).await.expect("edit"),
        "a trimmed message is gone"
    );
    c.append_chat("a", chat("a7", "x"), 0)
        .await
        .expect("append");
    assert!(c.chat_history("a", 100).await.expect("history").is_empty());
}

pub(super) async fn chat_edits_and_deletes_apply_to_the_stored_history(store: &Store) {
    let c = &store.chat;
    c.append_chat("r", chat("m1", "hello"), 10)
        .await
        .expect("append");
    c.append_chat("r", chat("m2", "world"), 10)
        .await
        .expect("append");
    assert!(c.edit_chat("r", "m1", "hey", 41).await.expect("edit"));
    assert!(c.edit_chat("r", "m1", "hi", 42).await.expect("edit again"));
    assert!(
        !c.edit_chat("other", "m1", "no", 43).await.expect("edit"),
        "ids are scoped to their room"
    );
    assert!(!c.edit_chat("r", "nope", "no", 43).await.expect("edit"));
    assert!(c.delete_chat("r", "m2").await.expect("delete"));
    assert!(!c.delete_chat("r", "m2").await.expect("delete again"));
    assert!(
        !c.edit_chat("r", "m2", "back?", 44).await.expect("edit"),
        "a deleted message cannot be edited"
    );
    assert!(!c.delete_chat("other", "m1").await.expect("delete"));
    let history = c.chat_history("r", 10).await.expect("history");
    assert_eq!(
        history,
        [ChatMessage {
            text: "hi".into(),
            edited_at: Some(42),
            ..chat("m1", "hello")
        }],
        "the latest edit, every other field as appended"
    );

    // The last message of a room deleted: the room is empty, and takes new messages.
    assert!(c.delete_chat("r", "m1").await.expect("delete"));
    assert!(c.chat_history("r", 10).await.expect("history").is_empty());
    c.append_chat("r", chat("m3", "again"), 10)
        .await
        .expect("append");
    assert_eq!(
        ids(&c.chat_history("r", 10).await.expect("history")),
        ["m3"]
    );
}

pub(super) async fn a_duplicate_message_id_is_refused(store: &Store) {
    store
        .chat
        .append_chat("r", chat("m", "first"), 10)
        .await
        .expect("append");
    store
        .chat
        .append_chat("r", chat("m", "second"), 10)
        .await
        .expect_err("the id exists");
    let history = store.chat.chat_history("r", 10).await.expect("history");
    assert_eq!(ids(&history), ["m"]);
    assert_eq!(history[0].text, "first");
}
