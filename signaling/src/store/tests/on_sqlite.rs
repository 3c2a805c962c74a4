//! The shared behaviour on in-memory SQLite, and a database file reopened like after a restart.

use super::*;

async fn memory() -> Store {
    Store::open_sqlite(None).await.expect("in-memory store")
}

#[tokio::test]
async fn identities_insert_get_delete() {
    behaviour::identities_insert_get_delete(&memory().await).await;
}

#[tokio::test]
async fn revocations_keep_the_latest_time() {
    behaviour::revocations_keep_the_latest_time(&memory().await).await;
}

#[tokio::test]
async fn webhook_queue_hands_out_one_head_per_endpoint_and_room() {
    behaviour::webhook_queue_hands_out_one_head_per_endpoint_and_room(&memory().await).await;
}

#[tokio::test]
async fn chat_history_is_per_room_in_order_and_trimmed_to_keep() {
    behaviour::chat_history_is_per_room_in_order_and_trimmed_to_keep(&memory().await).await;
}

#[tokio::test]
async fn chat_edits_and_deletes_apply_to_the_stored_history() {
    behaviour::chat_edits_and_deletes_apply_to_the_stored_history(&memory().await).await;
}

#[tokio::test]
async fn a_duplicate_message_id_is_refused() {
    behaviour::a_duplicate_message_id_is_refused(&memory().await).await;
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
