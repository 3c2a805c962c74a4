//! Revoking an identity's tokens: record the time in the store (so new joins are refused, also after a restart)
//! and disconnect its live participants in every room, on every node (the cluster bus). `check_not_revoked` is the join-time check the WebSocket
//! session calls.

use chorus_protocol::{ErrorCode, ErrorMessage};

use crate::auth::{now_unix_secs, VerifiedToken};
use crate::cluster::{Cluster, ClusterEvent};
use crate::room::{AdminMsg, Registry};
use crate::store::{Store, StoreError};

/// Whether a token issued at `issued_at` is revoked by a revocation at `revoked_at`. Tokens without `iat` count
/// as issued at the beginning of time; a token issued in the same second as the revocation is revoked too.
pub fn is_revoked(issued_at: Option<u64>, revoked_at: Option<u64>) -> bool {
    match revoked_at {
        None => false,
        Some(revoked) => issued_at.is_none_or(|iat| iat <= revoked),
    }
}

/// Refuses a join whose token was revoked (`unauthorized`); fails closed when the store cannot answer.
pub async fn check_not_revoked(store: &Store, token: &VerifiedToken) -> Result<(), ErrorMessage> {
    let revoked_at = store
        .revocations
        .revoked_at(&token.identity)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot check token revocation");
            // The store (in a cluster: Redis) is unreachable: a passing condition, which clients retry.
            ErrorMessage::new(
                ErrorCode::Unavailable,
                "cannot check the token right now (the shared store is unreachable); try again shortly",
            )
        })?;
    if is_revoked(token.issued_at, revoked_at) {
        return Err(ErrorMessage::new(
            ErrorCode::Unauthorized,
            "this token was revoked",
        ));
    }
    Ok(())
}

/// Revokes every token of `identity` issued up to now and disconnects its participants: here at once, on other
/// nodes of a cluster when they hear of it on the bus. Returns the revocation time and how many participants this
/// node disconnected.
pub async fn revoke(
    store: &Store,
    registry: &Registry,
    cluster: &Cluster,
    identity: &str,
) -> Result<(u64, usize), StoreError> {
    let previous = store.revocations.revoked_at(identity).await?;
    let at = revocation_time(now_unix_secs(), previous);
    store.revocations.revoke(identity, at).await?;
    let disconnected = disconnect_revoked(registry, identity, at).await;
    let event = ClusterEvent::Revoked {
        identity: identity.to_string(),
        at,
    };
    if let Err(e) = cluster.bus.publish(&event).await {
        // The revocation is stored: other nodes refuse new joins; only their live sessions stay until they hear.
        tracing::warn!(identity, error = %e, "cannot tell other nodes about a revocation");
    }
    Ok((at, disconnected))
}

/// Disconnects the participants of `identity` on this node whose tokens were issued at or before `at`; returns
/// how many.
pub async fn disconnect_revoked(registry: &Registry, identity: &str, at: u64) -> usize {
    let mut disconnected = 0;
    for (name, _) in registry.rooms() {
        let identity = identity.to_string();
        disconnected += registry
            .ask(&name, |reply| AdminMsg::Revoke {
                identity,
                issued_before: at,
                reply,
            })
            .await
            .unwrap_or(0);
    }
    if disconnected > 0 {
        tracing::info!(
            identity,
            disconnected,
            "revoked tokens; participants disconnected"
        );
    }
    disconnected
}

/// The time to record for a revocation at `now`: also after every token issued since the previous revocation
/// (those are dated `previous + 1` by [`issue_time`] when issued in the same second), so it covers them.
pub fn revocation_time(now: u64, previous: Option<u64>) -> u64 {
    match previous {
        Some(previous) => now.max(previous + 1),
        None => now,
    }
}

/// The `iat` for a new token of an identity revoked at `revoked_at`: after the revocation, so the token works.
pub fn issue_time(now: u64, revoked_at: Option<u64>) -> u64 {
    match revoked_at {
        Some(revoked) if revoked >= now => revoked + 1,
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_covers_tokens_up_to_and_including_its_second() {
        assert!(!is_revoked(Some(100), None));
        assert!(!is_revoked(None, None));
        assert!(is_revoked(Some(99), Some(100)));
        assert!(is_revoked(Some(100), Some(100)));
        assert!(!is_revoked(Some(101), Some(100)));
        assert!(
            is_revoked(None, Some(100)),
            "no iat: cannot prove it is newer"
        );
        assert_eq!(issue_time(100, Some(100)), 101);
        assert_eq!(issue_time(100, Some(50)), 100);
        assert_eq!(issue_time(100, None), 100);
        assert!(!is_revoked(Some(issue_time(100, Some(100))), Some(100)));
        // Revoke, issue, revoke again within one second: the second revocation covers the new token.
        let first = revocation_time(100, None);
        let token = issue_time(100, Some(first));
        let second = revocation_time(100, Some(first));
        assert!(is_revoked(Some(token), Some(second)));
        assert_eq!(revocation_time(200, Some(first)), 200);
    }
}
