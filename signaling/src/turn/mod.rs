//! Connectivity for clients behind firewalls: the embedded TURN server (on webrtc-rs's `turn` crate) and the
//! ICE servers each participant gets in its join response.
//!
//! - `credentials.rs`: ephemeral TURN REST API credentials (HMAC-SHA1 of `<expiry>:<participant sid>`).
//! - `policy.rs`: which peer addresses the relay may reach.
//! - `guard.rs`: refuses CreatePermission/ChannelBind for refused peers before the TURN crate sees them, and
//!   wraps relay sockets so nothing is ever sent to a refused peer.
//! - `relay.rs`: the relay address generator with the per-participant allocation quota, and the auth handler.
//! - `stream.rs`: TURN over TCP and TLS (RFC 5766 §2.1 framing) as a packet connection the crate can serve.
//! - `server.rs`: binds the listeners and starts the crate's server on each.
//! - `counters.rs`: refused credentials and relayed traffic, for `/metrics`.
//!
//! Nothing here touches media: the SFU is just another peer for the relay. `docs/connectivity.md` is the
//! operator's view of this module.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chorus_protocol::IceServer;

mod counters;
pub mod credentials;
mod guard;
pub mod policy;
mod relay;
mod release;
mod server;
mod stream;

pub use counters::RelayedTraffic;
pub use policy::PeerPolicy;
pub use server::{RunningTurn, TurnError, TurnTotals};

/// (Feature `testkit`, for `chorus-fuzz`; never part of the server.) The framing of TURN over TCP and TLS,
/// otherwise private to `stream.rs`.
#[cfg(feature = "testkit")]
pub mod stream_framing {
    pub use super::stream::{frame_len, read_frame, stream_frame, MAX_FRAME};
}

/// The validated `[turn]` configuration.
#[derive(Debug, Clone)]
pub struct TurnSettings {
    /// Run the embedded server.
    pub enabled: bool,
    /// Where TURN over UDP listens (TCP listens on the same address when `tcp`). Port 0 picks free ports.
    pub udp_addr: SocketAddr,
    pub tcp: bool,
    pub tls: Option<TurnTls>,
    /// The address clients reach the TURN server and relays at (the node IP).
    pub public_ip: IpAddr,
    /// Credential secret; `None` = random per start.
    pub secret: Option<Vec<u8>>,
    pub credential_ttl: Duration,
    pub allocations_per_participant: usize,
    /// Peer policy from the configuration (the SFU's media addresses are added at start).
    pub policy: PeerPolicy,
    pub external: Vec<ExternalTurn>,
}

impl TurnSettings {
    /// No embedded TURN and no external servers: `iceServers` stays empty.
    pub fn disabled() -> Self {
        TurnSettings {
            enabled: false,
            udp_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tcp: true,
            tls: None,
            public_ip: IpAddr::from([127, 0, 0, 1]),
            secret: None,
            credential_ttl: Duration::from_secs(300),
            allocations_per_participant: 10,
            policy: PeerPolicy::default(),
            external: Vec::new(),
        }
    }

    /// The embedded server on free loopback ports (tests).
    pub fn loopback_ephemeral() -> Self {
        TurnSettings {
            enabled: true,
            ..Self::disabled()
        }
    }
}

/// TURN over TLS.
#[derive(Debug, Clone)]
pub struct TurnTls {
    pub addr: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Host name in `turns:` URLs.
    pub host: String,
}

/// A TURN server run elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalTurn {
    pub urls: Vec<String>,
    /// Shared secret for REST API credentials, or...
    pub secret: Option<String>,
    /// ...fixed credentials (or none, for STUN).
    pub username: Option<String>,
    pub credential: Option<String>,
}

/// Issues the ICE servers of a join response: the embedded TURN URLs and external servers, with fresh
/// credentials for one participant.
#[derive(Debug)]
pub struct IceServerSource {
    /// `turn:`/`turns:` URLs of the embedded server (empty when it is off).
    embedded_urls: Vec<String>,
    secret: Vec<u8>,
    ttl: Duration,
    external: Vec<ExternalTurn>,
}

impl IceServerSource {
    /// Nothing to hand out.
    pub fn none() -> Arc<Self> {
        Arc::new(IceServerSource {
            embedded_urls: Vec::new(),
            secret: Vec::new(),
            ttl: Duration::from_secs(300),
            external: Vec::new(),
        })
    }

    /// ICE servers for participant `sid`, credentials valid from `now_unix` for the configured lifetime.
    pub fn issue(&self, sid: &str, now_unix: u64) -> Vec<IceServer> {
        let ttl = self.ttl.as_secs();
        let mut out = Vec::new();
        if !self.embedded_urls.is_empty() {
            let c = credentials::issue(&self.secret, sid, now_unix, ttl);
            out.push(IceServer {
                urls: self.embedded_urls.clone(),
                username: Some(c.username),
                credential: Some(c.password),
            });
        }
        for e in &self.external {
            let (username, credential) = match &e.secret {
                Some(secret) => {
                    let c = credentials::issue(secret.as_bytes(), sid, now_unix, ttl);
                    (Some(c.username), Some(c.password))
                }
                None => (e.username.clone(), e.credential.clone()),
            };
            out.push(IceServer {
                urls: e.urls.clone(),
                username,
                credential,
            });
        }
        out
    }
}
