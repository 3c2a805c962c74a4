//! The Rust SDK's chat against a real server: a bot sends, edits and deletes; a late joiner gets the history;
//! refusals come back as `ClientError::Server` with the protocol code.
//!
//! Run: `cargo test -p chorus-client --release --test e2e chat::`.

use std::time::Duration;

use crate::support::wait_event;
use anyhow::ensure;
use chorus_client::{Client, ClientError, ClientEvent, ConnectOptions, ErrorCode};
use chorus_signaling::testing::TestServer;

const DEADLINE: Duration = Duration::from_secs(15);

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> Option<ErrorCode> {
    match result {
        Err(ClientError::Server { code, .. }) => Some(code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_send_edit_delete_and_late_joiners_get_history() -> anyhow::Result<()> {
    let ts = TestServer::start().await?;
    let url = ts.ws_url();
    let alice = Client::connect(&url, &ts.token("r", "alice"), ConnectOptions::default()).await?;
    let bob = Client::connect(&url, &ts.token("r", "bob"), ConnectOptions::default()).await?;

    let first = alice.chat().send("hello").await?;
    ensure!(first.identity == "alice" && first.text == "hello" && first.id.starts_with("CM_"));
    let second = alice.chat().send("second").await?;
    let got = wait_event(
        &bob,
        "alice's message",
        DEADLINE,
        |e| matches!(e, ClientEvent::ChatMessage(m) if m.id == second.id),
    )
    .await?;
    ensure!(matches!(got, ClientEvent::ChatMessage(ref m) if m.text == "second"));

    // Bob may not edit Alice's message; empty text is refused.
    ensure!(code(bob.chat().edit(&first.id, "mine now").await) == Some(ErrorCode::ChatNotAuthor));
    ensure!(code(bob.chat().send(" ").await) == Some(ErrorCode::ChatEmpty));

    let edited = alice.chat().edit(&first.id, "hello!").await?;
    ensure!(edited.text == "hello!" && edited.edited_at.is_some());
    alice.chat().delete(&second.id).await?;
    wait_event(
        &bob,
        "the delete",
        DEADLINE,
        |e| matches!(e, ClientEvent::ChatDeleted { id, by } if *id == second.id && by == "alice"),
    )
    .await?;
    let texts: Vec<String> = bob.chat().history().into_iter().map(|m| m.text).collect();
    ensure!(texts == ["hello!"], "bob's history {texts:?}");

    // A late joiner gets the history as an event and in `history()`.
    let carol = Client::connect(&url, &ts.token("r", "carol"), ConnectOptions::default()).await?;
    let event = wait_event(&carol, "chat history", DEADLINE, |e| {
        matches!(e, ClientEvent::ChatHistory(_))
    })
    .await?;
    let ClientEvent::ChatHistory(history) = event else {
        unreachable!()
    };
    ensure!(history.len() == 1 && history[0].id == first.id && history[0].text == "hello!");
    ensure!(carol.chat().history() == history);

    // Typing reaches the others.
    carol.chat().set_typing(true)?;
    wait_event(&alice, "carol typing", DEADLINE, |e| matches!(e, ClientEvent::ChatTyping { identity, typing: true, .. } if identity == "carol")).await?;
    ensure!(alice.chat().typing() == ["carol"]);

    for c in [&alice, &bob, &carol] {
        c.leave().await;
    }
    Ok(())
}
