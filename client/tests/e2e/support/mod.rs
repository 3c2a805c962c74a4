//! Helpers shared by the client integration tests (each module uses a different subset): unique room
//! names, log output, waiting for an event or a condition, the server's stats, counting received packets.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use chorus_client::{Client, ClientEvent, TrackKind};

/// Logs to the test's output, filtered by `RUST_LOG`.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A room name no other test uses: `prefix` and the time in nanoseconds.
pub fn room_name(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{nanos:x}")
}

/// The first event within `within` for which `want` gives something, skipping the others.
pub async fn next_matching<T>(
    client: &Client,
    what: &str,
    within: Duration,
    mut want: impl FnMut(ClientEvent) -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, client.next_event()).await {
            Err(_) => bail!("{}: timed out waiting for {what}", client.identity()),
            Ok(None) => bail!("{}: session ended before {what}", client.identity()),
            Ok(Some(event)) => {
                tracing::trace!(client = client.identity(), ?event, "event");
                if let Some(t) = want(event) {
                    return Ok(t);
                }
            }
        }
    }
}

/// The first event within `within` matching `want`, skipping the others.
pub async fn wait_event(
    client: &Client,
    what: &str,
    within: Duration,
    want: impl Fn(&ClientEvent) -> bool,
) -> anyhow::Result<ClientEvent> {
    next_matching(client, what, within, |e| want(&e).then_some(e)).await
}

/// Asks the server for `client`'s media stats and waits (up to `within`) for the answer.
pub async fn server_stats(
    client: &Client,
    within: Duration,
) -> anyhow::Result<chorus_protocol::ParticipantStats> {
    client.request_stats()?;
    next_matching(client, "stats", within, |e| match e {
        ClientEvent::Stats(s) => Some(s),
        _ => None,
    })
    .await
}

/// Packets `receiver` has received of the tracks of participant `from` (of `kind` only, if given).
pub fn packets_from(receiver: &Client, from: &str, kind: Option<TrackKind>) -> u64 {
    receiver
        .received()
        .iter()
        .filter(|t| t.participant_sid == from && kind.is_none_or(|k| t.kind == k))
        .map(|t| t.packets)
        .sum()
}

/// Polls `cond` every 100 ms until it holds; an error naming `what` after `within`.
pub async fn wait_until(
    what: &str,
    within: Duration,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
