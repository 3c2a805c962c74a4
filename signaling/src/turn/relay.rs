//! The two hooks the `turn` crate calls while it serves an Allocate request: the [`Auth`] handler (checks the
//! ephemeral credentials) and the [`RelayGenerator`] (binds the relay socket, enforces the per-participant
//! allocation quota, wraps the socket in the relay policy).
//!
//! The crate does not tell the generator who is allocating. Each listener has its own server instance whose
//! read loop handles one request at a time, and an Allocate request is authenticated just before its relay is
//! generated, so the listener's `Auth` leaves the participant it last authenticated in a slot that the same
//! listener's generator takes. A listener never interleaves two requests, so the slot is never another
//! request's.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use turn::auth::{generate_auth_key, AuthHandler};
use turn::relay::RelayAddressGenerator;
use webrtc_util::Conn;

use super::counters::TurnCounters;
use super::credentials;
use super::guard::PolicyRelayConn;
use super::policy::PeerPolicy;

/// Live allocations per participant sid, shared by every listener.
#[derive(Debug, Default)]
pub struct Quota {
    limit: usize,
    live: Mutex<HashMap<String, usize>>,
    /// Allocations refused because the participant had `limit` already (since start).
    refused: AtomicU64,
}

impl Quota {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Quota {
            limit,
            live: Mutex::default(),
            refused: AtomicU64::new(0),
        })
    }

    /// Live allocations of every participant.
    pub fn live_total(&self) -> u64 {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.values().map(|&n| n as u64).sum()
    }

    /// Allocations refused for the quota since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// One more allocation for `id`, if under the limit.
    fn take(self: &Arc<Self>, id: &str) -> Option<QuotaSlot> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let n = live.entry(id.to_string()).or_default();
        if *n >= self.limit {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *n += 1;
        Some(QuotaSlot {
            quota: Arc::clone(self),
            id: id.to_string(),
            released: AtomicBool::new(false),
        })
    }

    #[cfg(test)]
    fn live(&self, id: &str) -> usize {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.get(id).copied().unwrap_or(0)
    }
}

/// One allocation counted against a participant's quota; released once, on close or drop.
#[derive(Debug)]
pub struct QuotaSlot {
    quota: Arc<Quota>,
    id: String,
    released: AtomicBool,
}

impl QuotaSlot {
    pub fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut live = self.quota.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = live.get_mut(&self.id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                live.remove(&self.id);
            }
        }
    }
}

impl Drop for QuotaSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// The participant this listener last authenticated, and whether its credentials had expired (see the module
/// docs).
pub type LastAuthenticated = Arc<Mutex<Option<(String, bool)>>>;

/// How long after their expiry credentials still authenticate requests on an existing allocation (refreshes,
/// permissions, channel bindings). New allocations need unexpired credentials.
const EXPIRED_GRACE_SECS: u64 = 12 * 3600;

/// [`credentials::check`], accepting credentials up to [`EXPIRED_GRACE_SECS`] past their expiry; also says
/// whether they had expired.
pub fn check_with_grace<'a>(
    secret: &[u8],
    username: &'a str,
    now: u64,
) -> Result<((&'a str, String), bool), credentials::CredentialError> {
    match credentials::check(secret, username, now) {
        Ok(ok) => Ok((ok, false)),
        Err(credentials::CredentialError::Expired(at)) if now - at <= EXPIRED_GRACE_SECS => {
            credentials::check(secret, username, at).map(|ok| (ok, true))
        }
        Err(e) => Err(e),
    }
}

/// Checks TURN REST API credentials against the secret. Expiry is enforced on allocation (by
/// [`RelayGenerator`]): browsers keep refreshing an allocation with the credentials they got at the start, so
/// refusing those after a few minutes would cut a running call.
pub struct Auth {
    pub secret: Arc<Vec<u8>>,
    pub last: LastAuthenticated,
    /// Counts requests refused for bad, forged or long-expired credentials (shared by every listener).
    pub counters: Arc<TurnCounters>,
}

impl AuthHandler for Auth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        src_addr: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        let checked = check_with_grace(&self.secret, username, crate::auth::now_unix_secs());
        match checked {
            Ok(((id, password), expired)) => {
                *self.last.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((id.to_string(), expired));
                Ok(generate_auth_key(username, realm, &password))
            }
            Err(e) => {
                self.counters.auth_refused();
                tracing::info!(client = %src_addr, username, error = %e, "TURN credentials refused");
                Err(turn::Error::Other(e.to_string()))
            }
        }
    }
}

/// Binds relay sockets on the media bind IP and advertises them at the node IP.
pub struct RelayGenerator {
    pub bind_ip: IpAddr,
    pub public_ip: IpAddr,
    pub policy: Arc<PeerPolicy>,
    pub quota: Arc<Quota>,
    pub last: LastAuthenticated,
    /// Where the relay sockets count what they carry.
    pub counters: Arc<TurnCounters>,
}

#[async_trait]
impl RelayAddressGenerator for RelayGenerator {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let (id, expired) = self
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| turn::Error::Other("allocation without authentication".into()))?;
        if expired {
            tracing::info!(participant = %id, error = "credentials expired", "TURN credentials refused for a new allocation");
            return Err(turn::Error::Other("credentials expired".into()));
        }
        if use_ipv4 != self.bind_ip.is_ipv4() {
            return Err(turn::Error::Other(
                "relay address family not supported".into(),
            ));
        }
        let Some(slot) = self.quota.take(&id) else {
            tracing::info!(participant = %id, limit = self.quota.limit, "TURN allocation quota reached");
            return Err(turn::Error::Other("allocation quota reached".into()));
        };
        let socket = tokio::net::UdpSocket::bind(SocketAddr::new(self.bind_ip, requested_port))
            .await
            .map_err(|e| turn::Error::Other(format!("cannot bind relay: {e}")))?;
        let port = socket
            .local_addr()
            .map_err(|e| turn::Error::Other(e.to_string()))?
            .port();
        tracing::debug!(participant = %id, port, "TURN relay allocated");
        let conn = PolicyRelayConn::new(
            socket,
            Arc::clone(&self.policy),
            slot,
            Arc::clone(&self.counters),
        );
        Ok((Arc::new(conn), SocketAddr::new(self.public_ip, port)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_counts_live_slots() {
        let q = Quota::new(2);
        let a = q.take("p").expect("first");
        let b = q.take("p").expect("second");
        assert!(q.take("p").is_none());
        assert!(q.take("other").is_some());
        a.release();
        a.release();
        assert_eq!(q.live("p"), 1);
        drop(b);
        assert_eq!(q.live("p"), 0);
        assert!(q.take("p").is_some());
    }
}
