//! Chat over the signaling WebSocket against a real server: send/edit/delete fan-out, history for late joiners,
//! who may edit and delete, the `canChat` grant, text limits, the rate limit, typing (and its expiry), the
//! server API's history, and history surviving a server restart.
//!
//! Run: `cargo test -p chorus-signaling --release --test server chat::`.

use std::time::Duration;

use crate::support::{join_with, recv_until, recv_within, send, Api, TempDir, Ws};
use chorus_protocol::{ChatMessage, ErrorCode, ErrorMessage, ServerMessage};
use chorus_signaling::auth::Grants;
use chorus_signaling::testing::TestServer;
use serde_json::json;

/// Joins and reads the `chatHistory` that follows `joined` (none means an empty history: a `ping` sent after
/// `joined` is answered after it).
async fn join_chat(ts: &TestServer, token: &str) -> (Ws, Vec<ChatMessage>) {
    let (mut ws, _) = join_with(ts, token).await;
    send(&mut ws, r#"{"type":"ping","timestamp":7}"#).await;
    let mut history = Vec::new();
    loop {
        match recv_until(&mut ws, |m| {
            matches!(
                m,
                ServerMessage::ChatHistory { .. } | ServerMessage::Pong { .. }
            )
        })
        .await
        {
            ServerMessage::ChatHistory { messages } => history = messages,
            _ => return (ws, history),
        }
    }
}

async fn joiner(ts: &TestServer, room: &str, identity: &str) -> (Ws, Vec<ChatMessage>) {
    join_chat(ts, &ts.token(room, identity)).await
}

fn chat_send(text: &str, nonce: &str) -> String {
    json!({"type": "chatSend", "text": text, "nonce": nonce}).to_string()
}

/// The next chat message (ignoring room traffic such as participantJoined).
async fn next_chat(ws: &mut Ws) -> ServerMessage {
    recv_until(ws, |m| {
        matches!(
            m,
            ServerMessage::ChatMessage { .. }
                | ServerMessage::ChatEdited { .. }
                | ServerMessage::ChatDeleted { .. }
                | ServerMessage::ChatTyping { .. }
                | ServerMessage::Error(_)
        )
    })
    .await
}

async fn next_message(ws: &mut Ws) -> (ChatMessage, Option<String>) {
    match next_chat(ws).await {
        ServerMessage::ChatMessage { message, nonce } => (message, nonce),
        other => panic!("expected chatMessage, got {other:?}"),
    }
}

async fn next_error(ws: &mut Ws) -> ErrorMessage {
    match next_chat(ws).await {
        ServerMessage::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Nothing chat-related arrives within `limit`.
async fn no_chat_within(ws: &mut Ws, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        match tokio::time::timeout(left, recv_within(ws, limit + Duration::from_secs(1))).await {
            Err(_) => return,
            Ok(None) => panic!("connection closed"),
            Ok(Some(
                m @ (ServerMessage::ChatMessage { .. }
                | ServerMessage::ChatEdited { .. }
                | ServerMessage::ChatDeleted { .. }
                | ServerMessage::Error(_)),
            )) => panic!("unexpected {m:?}"),
            Ok(Some(_)) => {}
        }
    }
}

#[tokio::test]
async fn messages_edits_and_deletes_reach_everyone_and_late_joiners_get_history() {
    let ts = TestServer::start().await.expect("server");
    let (mut alice, history) = joiner(&ts, "r", "alice").await;
    assert!(history.is_empty(), "a new room has no history");
    let (mut bob, _) = joiner(&ts, "r", "bob").await;

    send(&mut alice, &chat_send("hello all", "a1")).await;
    let (own, nonce) = next_message(&mut alice).await;
    assert_eq!(
        nonce.as_deref(),
        Some("a1"),
        "the sender gets its nonce back"
    );
    assert_eq!(
        (own.identity.as_str(), own.name.as_str(), own.text.as_str()),
        ("alice", "alice", "hello all")
    );
    assert!(own.id.starts_with("CM_") && own.timestamp > 1_600_000_000_000);
    assert_eq!(own.edited_at, None);
    let (seen, nonce) = next_message(&mut bob).await;
    assert_eq!(seen, own);
    assert_eq!(nonce, None, "others do not see the sender's nonce");

    send(&mut bob, &chat_send("hi alice", "b1")).await;
    let (bobs, _) = next_message(&mut bob).await;
    assert_eq!(next_message(&mut alice).await.0, bobs);

    // Bob may not edit or delete Alice's message.
    let edit = json!({"type": "chatEdit", "id": own.id, "text": "hacked", "nonce": "b2"});
    send(&mut bob, &edit.to_string()).await;
    let e = next_error(&mut bob).await;
    assert_eq!(
        (e.code, e.nonce.as_deref()),
        (ErrorCode::ChatNotAuthor, Some("b2"))
    );
    assert!(!e.fatal);
    send(
        &mut bob,
        &json!({"type": "chatDelete", "id": own.id}).to_string(),
    )
    .await;
    assert_eq!(next_error(&mut bob).await.code, ErrorCode::ChatNotAuthor);
    // An id that does not exist.
    send(
        &mut bob,
        &json!({"type": "chatEdit", "id": "CM_nope", "text": "x"}).to_string(),
    )
    .await;
    assert_eq!(
        next_error(&mut bob).await.code,
        ErrorCode::ChatUnknownMessage
    );

    // Alice edits hers: everyone sees the new text.
    let edit = json!({"type": "chatEdit", "id": own.id, "text": "hello everyone", "nonce": "a2"});
    send(&mut alice, &edit.to_string()).await;
    for (ws, want_nonce) in [(&mut alice, Some("a2")), (&mut bob, None)] {
        match next_chat(ws).await {
            ServerMessage::ChatEdited { message, nonce } => {
                assert_eq!(message.id, own.id);
                assert_eq!(message.text, "hello everyone");
                assert!(message.edited_at.is_some());
                assert_eq!(nonce.as_deref(), want_nonce);
            }
            other => panic!("expected chatEdited, got {other:?}"),
        }
    }

    // A late joiner gets both messages, edited, oldest first.
    let (mut carol, history) = joiner(&ts, "r", "carol").await;
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["hello everyone", "hi alice"]);

    // Bob deletes his own message: everyone sees it, and it leaves the history.
    send(
        &mut bob,
        &json!({"type": "chatDelete", "id": bobs.id, "nonce": "b3"}).to_string(),
    )
    .await;
    for (ws, want_nonce) in [
        (&mut bob, Some("b3")),
        (&mut alice, None),
        (&mut carol, None),
    ] {
        match next_chat(ws).await {
            ServerMessage::ChatDeleted { id, by, nonce } => {
                assert_eq!((id.as_str(), by.as_str()), (bobs.id.as_str(), "bob"));
                assert_eq!(nonce.as_deref(), want_nonce);
            }
            other => panic!("expected chatDeleted, got {other:?}"),
        }
    }
    let (_dave, history) = joiner(&ts, "r", "dave").await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, own.id);

    // The server API reads the open room's history.
    let api = Api::admin(&ts);
    let body = api.expect(200, "GET", "/v1/rooms/r/chat", None).await;
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["messages"][0]["text"], "hello everyone");
    assert!(body["messages"][0]["editedAt"].is_u64());
}

#[tokio::test]
async fn a_room_admin_deletes_anyones_message_but_cannot_edit_it() {
    let ts = TestServer::start().await.expect("server");
    let (mut alice, _) = joiner(&ts, "r", "alice").await;
    let admin = Grants {
        room_admin: true,
        ..Grants::default()
    };
    let (mut mod_ws, _) = join_chat(&ts, &ts.token_with("r", "mod", admin)).await;
    send(&mut alice, &chat_send("spam", "1")).await;
    let (msg, _) = next_message(&mut alice).await;
    next_message(&mut mod_ws).await;

    let edit = json!({"type": "chatEdit", "id": msg.id, "text": "clean"});
    send(&mut mod_ws, &edit.to_string()).await;
    assert_eq!(next_error(&mut mod_ws).await.code, ErrorCode::ChatNotAuthor);

    send(
        &mut mod_ws,
        &json!({"type": "chatDelete", "id": msg.id}).to_string(),
    )
    .await;
    for ws in [&mut mod_ws, &mut alice] {
        match next_chat(ws).await {
            ServerMessage::ChatDeleted { id, by, .. } => {
                assert_eq!((id.as_str(), by.as_str()), (msg.id.as_str(), "mod"))
            }
            other => panic!("expected chatDeleted, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn without_can_chat_a_participant_reads_but_cannot_write() {
    let ts = TestServer::start().await.expect("server");
    let (mut alice, _) = joiner(&ts, "r", "alice").await;
    send(&mut alice, &chat_send("before", "1")).await;
    next_message(&mut alice).await;

    let mute = Grants {
        can_chat: false,
        ..Grants::default()
    };
    let (mut reader, history) = join_chat(&ts, &ts.token_with("r", "reader", mute)).await;
    assert_eq!(history.len(), 1, "history is still replayed");
    send(&mut reader, &chat_send("let me talk", "r1")).await;
    let e = next_error(&mut reader).await;
    assert_eq!(
        (e.code, e.nonce.as_deref()),
        (ErrorCode::PermissionDenied, Some("r1"))
    );
    send(&mut reader, r#"{"type":"chatTyping","typing":true}"#).await;
    assert_eq!(
        next_error(&mut reader).await.code,
        ErrorCode::PermissionDenied
    );
    // Alice heard nothing from the reader, and still receives others' chat in the reader's session.
    no_chat_within(&mut alice, Duration::from_millis(300)).await;
    send(&mut alice, &chat_send("after", "2")).await;
    assert_eq!(next_message(&mut reader).await.0.text, "after");
}

#[tokio::test]
async fn empty_and_too_long_texts_are_refused_and_bad_frames_do_no_harm() {
    let ts = TestServer::start_with(|s| s.chat.max_text_bytes = 10)
        .await
        .expect("server");
    let (mut alice, _) = joiner(&ts, "r", "alice").await;
    send(&mut alice, &chat_send("", "e")).await;
    assert_eq!(next_error(&mut alice).await.code, ErrorCode::ChatEmpty);
    send(&mut alice, &chat_send("   \n", "e")).await;
    assert_eq!(next_error(&mut alice).await.code, ErrorCode::ChatEmpty);
    send(&mut alice, &chat_send("01234567890", "l")).await;
    let e = next_error(&mut alice).await;
    assert_eq!(
        (e.code, e.nonce.as_deref()),
        (ErrorCode::ChatTooLong, Some("l"))
    );
    // Multi-byte text counts bytes: 4 × 3 = 12 > 10.
    send(&mut alice, &chat_send("€€€€", "l")).await;
    assert_eq!(next_error(&mut alice).await.code, ErrorCode::ChatTooLong);
    for bad in [
        r#"{"type":"chatSend"}"#,
        r#"{"type":"chatSend","text":["x"]}"#,
        r#"{"type":"chatEdit","id":7,"text":"x"}"#,
        r#"{"type":"chatTyping"}"#,
    ] {
        send(&mut alice, bad).await;
        assert_eq!(
            next_error(&mut alice).await.code,
            ErrorCode::BadRequest,
            "{bad}"
        );
    }
    send(&mut alice, &chat_send("0123456789", "ok")).await;
    assert_eq!(next_message(&mut alice).await.0.text, "0123456789");
}

#[tokio::test]
async fn the_rate_limit_refuses_a_burst_past_its_size() {
    let ts = TestServer::start_with(|s| {
        s.chat.rate_burst = 3;
        s.chat.rate_per_minute = 1;
    })
    .await
    .expect("server");
    let (mut alice, _) = joiner(&ts, "r", "alice").await;
    let (mut bob, _) = joiner(&ts, "r", "bob").await;
    for i in 0..3 {
        send(&mut alice, &chat_send(&format!("m{i}"), &i.to_string())).await;
        next_message(&mut alice).await;
    }
    send(&mut alice, &chat_send("one too many", "x")).await;
    let e = next_error(&mut alice).await;
    assert_eq!(
        (e.code, e.nonce.as_deref()),
        (ErrorCode::ChatRateLimited, Some("x"))
    );
    // Bob got the three, not the refused one; his own budget is separate.
    for i in 0..3 {
        assert_eq!(next_message(&mut bob).await.0.text, format!("m{i}"));
    }
    send(&mut bob, &chat_send("bob is fine", "b")).await;
    assert_eq!(next_message(&mut bob).await.0.text, "bob is fine");
    // Rejoining does not reset the limit (it is per identity).
    drop(alice);
    let (mut again, _) = joiner(&ts, "r", "alice").await;
    send(&mut again, &chat_send("new connection", "y")).await;
    assert_eq!(
        next_error(&mut again).await.code,
        ErrorCode::ChatRateLimited
    );
}

#[tokio::test]
async fn typing_is_shown_to_others_ended_by_a_message_and_expires() {
    let ts = TestServer::start().await.expect("server");
    let (mut alice, _) = joiner(&ts, "r", "alice").await;
    let (mut bob, _) = joiner(&ts, "r", "bob").await;
    let typing = |ws_msg: ServerMessage| match ws_msg {
        ServerMessage::ChatTyping {
            identity, typing, ..
        } => (identity, typing),
        other => panic!("expected chatTyping, got {other:?}"),
    };
    send(&mut bob, r#"{"type":"chatTyping","typing":true}"#).await;
    assert_eq!(typing(next_chat(&mut alice).await), ("bob".into(), true));
    // Sending ends typing.
    send(&mut bob, &chat_send("done", "1")).await;
    assert_eq!(typing(next_chat(&mut alice).await), ("bob".into(), false));
    assert_eq!(next_message(&mut alice).await.0.text, "done");
    // A typing:true nobody renews ends by itself (after ~6 s).
    send(&mut bob, r#"{"type":"chatTyping","typing":true}"#).await;
    assert_eq!(typing(next_chat(&mut alice).await), ("bob".into(), true));
    let started = tokio::time::Instant::now();
    assert_eq!(typing(next_chat(&mut alice).await), ("bob".into(), false));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(9),
        "expired after {waited:?}"
    );
}

#[tokio::test]
async fn history_survives_a_server_restart() {
    let dir = TempDir::new("chat-restart");
    let key = TestServer::random_key();
    let data_dir = dir.0.clone();
    let ts = TestServer::start_with_key(key.clone(), |s| s.data_dir = Some(data_dir))
        .await
        .expect("first server");
    let (mut alice, _) = joiner(&ts, "kept", "alice").await;
    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        send(&mut alice, &chat_send(text, text)).await;
        ids.push(next_message(&mut alice).await.0.id);
    }
    send(
        &mut alice,
        &json!({"type": "chatEdit", "id": ids[0], "text": "one!"}).to_string(),
    )
    .await;
    next_chat(&mut alice).await;
    send(
        &mut alice,
        &json!({"type": "chatDelete", "id": ids[1]}).to_string(),
    )
    .await;
    next_chat(&mut alice).await;

    // Close the room through the API and wait until it is gone (its history is then in the store).
    let api = Api::admin(&ts);
    api.expect(204, "DELETE", "/v1/rooms/kept", None).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while api.call("GET", "/v1/rooms/kept", None).await.0 != 404 {
        assert!(tokio::time::Instant::now() < deadline, "room did not close");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stored = api.expect(200, "GET", "/v1/rooms/kept/chat", None).await;
    assert_eq!(
        stored["messages"].as_array().map(Vec::len),
        Some(2),
        "{stored}"
    );
    drop(alice);
    drop(api);
    drop(ts);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let data_dir = dir.0.clone();
    let ts = TestServer::start_with_key(key, |s| s.data_dir = Some(data_dir))
        .await
        .expect("second server");
    let (_bob, history) = joiner(&ts, "kept", "bob").await;
    let got: Vec<(&str, &str, bool)> = history
        .iter()
        .map(|m| (m.id.as_str(), m.text.as_str(), m.edited_at.is_some()))
        .collect();
    assert_eq!(
        got,
        [
            (ids[0].as_str(), "one!", true),
            (ids[2].as_str(), "three", false)
        ]
    );
    let (_other, history) = joiner(&ts, "another-room", "bob").await;
    assert!(history.is_empty(), "history is per room");
}

#[tokio::test]
async fn history_is_trimmed_to_the_configured_size() {
    let ts = TestServer::start_with(|s| {
        s.chat.history_size = 3;
        s.chat.rate_per_minute = 0;
    })
    .await
    .expect("server");
    let (mut alice, _) = joiner(&ts, "r", "alice").await;
    let mut first = None;
    for i in 0..5 {
        send(&mut alice, &chat_send(&format!("m{i}"), "n")).await;
        let id = next_message(&mut alice).await.0.id;
        first.get_or_insert(id);
    }
    let (_bob, history) = joiner(&ts, "r", "bob").await;
    let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["m2", "m3", "m4"]);
    // A message trimmed away can no longer be edited.
    let edit = json!({"type": "chatEdit", "id": first, "text": "late"});
    send(&mut alice, &edit.to_string()).await;
    assert_eq!(
        next_error(&mut alice).await.code,
        ErrorCode::ChatUnknownMessage
    );
    let api = Api::admin(&ts);
    let body = api.expect(200, "GET", "/v1/rooms/r/chat", None).await;
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(3));
}
