//! Helpers shared by the client integration tests (each module uses a different subset): unique room
//! names, log output, waiting for an event, counting received packets.
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

/// Packets `receiver` has received of the tracks of participant `from` (of `kind` only, if given).
pub fn packets_from(receiver: &Client, from: &str, kind: Option<TrackKind>) -> u64 {
    receiver
        .received()
        .iter()
        .filter(|t| t.participant_sid == from && kind.is_none_or(|k| t.kind == k))
        .map(|t| t.packets)
        .sum()
}
