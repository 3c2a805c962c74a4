//! Staying in the call when the connection is lost: the supervisor task waits for the current session to end;
//! if the server ended it (`left`, a fatal error) or the client is leaving, that is the end
//! ([`ClientEvent::Disconnected`]). If the connection was lost (closed, failed, silent; e.g. the node died), or
//! the server ended the session because its media path failed (`left {mediaFailed}`) after media had connected
//! (e.g. a network change), it
//! joins again through the URL the client was given, which redirects to wherever the room lives now, retrying
//! with backoff for [`crate::ConnectOptions::rejoin_window`]: a new session with a new participant sid, every
//! track published again with its mute state ([`ClientEvent::Reconnecting`], then [`ClientEvent::Rejoined`]).
//!
//! This client does not resume sessions (`join {resume}`); a rejoin also covers a short network drop, at the
//! cost of a new sid. The server replaces the old participant when the same identity joins again.

use std::sync::Arc;
use std::time::Duration;

use chorus_protocol::ErrorCode;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::connection::SessionEnd;
use crate::error::ClientError;
use crate::session::Session;
use crate::{ClientEvent, Shared};

const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// Runs for the client's lifetime: ends each lost session and replaces it, until one ends for good.
pub(crate) async fn supervise(shared: Arc<Shared>) {
    loop {
        let session = shared.session();
        let Some(reader) = session.take_reader() else {
            return; // `leave` or drop took over
        };
        let end = reader
            .await
            .unwrap_or_else(|_| SessionEnd::ended("signaling task stopped".to_owned()));
        session.close(&end.reason).await;
        if !end.lost || shared.options.rejoin_window.is_zero() || shared.is_leaving() {
            shared.events.disconnected(end.reason);
            return;
        }
        info!(reason = %end.reason, "connection lost; joining again");
        shared.events.emit(ClientEvent::Reconnecting {
            reason: end.reason.clone(),
        });
        match rejoin(&shared, &session).await {
            Ok(new) => {
                let participant_sid = new.joined.participant.sid.clone();
                info!(%participant_sid, "joined again");
                *shared
                    .session
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(new);
                shared
                    .events
                    .emit(ClientEvent::Rejoined { participant_sid });
            }
            Err(err) => {
                shared
                    .events
                    .disconnected(format!("{}; joining again failed: {err}", end.reason));
                return;
            }
        }
    }
}

/// Joins again until it works, the window runs out, the server refuses for good, or the client leaves; then
/// publishes `old`'s tracks on the new session.
async fn rejoin(shared: &Shared, old: &Session) -> Result<Session, ClientError> {
    let deadline = Instant::now() + shared.options.rejoin_window;
    let mut delay = FIRST_RETRY;
    loop {
        if shared.is_leaving() {
            return Err(ClientError::Disconnected("left while joining again".into()));
        }
        match Session::open(
            &shared.entry_url,
            &shared.token,
            &shared.options,
            shared.lasting(true),
        )
        .await
        {
            Ok(new) if shared.is_leaving() => {
                let _ = new.signal.send(chorus_protocol::ClientMessage::Leave);
                new.close("left while joining again").await;
                return Err(ClientError::Disconnected("left while joining again".into()));
            }
            Ok(new) => {
                republish(old, &new).await;
                return Ok(new);
            }
            // Refused for good (bad or expired token, revoked, room full...); `unavailable` means no node
            // can take the room yet, e.g. while a dead node's rooms are placed again.
            Err(err @ ClientError::Server { code, .. }) if code != ErrorCode::Unavailable => {
                return Err(err)
            }
            Err(err) => warn!(%err, "joining again failed; retrying"),
        }
        if Instant::now() + delay >= deadline {
            return Err(ClientError::Timeout("joining again"));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// Publishes on `new` every track `old` published, muted as it was. A failure is logged: the session stands
/// without that track (if the new session is lost too, the supervisor sees to it).
async fn republish(old: &Session, new: &Session) {
    for (options, muted) in old.publisher.track_specs() {
        match new.publisher.publish(options.clone()).await {
            Ok(track) if muted => {
                if let Err(err) = new.publisher.set_muted(&track.track_sid, true) {
                    warn!(%err, track_sid = %track.track_sid, "could not mute a republished track");
                }
            }
            Ok(_) => {}
            Err(err) => warn!(%err, ?options, "could not publish a track again"),
        }
    }
}
