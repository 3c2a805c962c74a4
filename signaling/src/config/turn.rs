//! The `[turn]` section of the configuration: the embedded TURN server (ports, TLS, credentials, relay policy)
//! and external TURN servers handed to clients. Validation turns it into [`TurnSettings`]; a malformed CIDR or a
//! TLS port without a certificate stops startup here.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::ensure;
use serde::Deserialize;

use crate::turn::{ExternalTurn, PeerPolicy, TurnSettings, TurnTls};

pub const DEFAULT_TURN_PORT: u16 = 3478;
pub const DEFAULT_CREDENTIAL_TTL_SECS: u64 = 300;
pub const DEFAULT_ALLOCATIONS_PER_PARTICIPANT: usize = 10;

/// Embedded TURN and external TURN servers. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// Run the embedded TURN server. Default true.
    pub enabled: bool,
    /// UDP and TCP port of the embedded TURN server (0 picks free ports). Default 3478.
    pub port: u16,
    /// Also accept TURN over TCP on `port`. Default true.
    pub tcp: bool,
    /// TURN over TLS (`turns:`) on this TCP port, e.g. 443 or 5349; needs `tls_cert` and `tls_key`.
    /// Default: off.
    pub tls_port: Option<u16>,
    /// PEM certificate chain for TURN over TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TURN over TLS.
    pub tls_key: Option<PathBuf>,
    /// Host name put in `turns:` URLs (must match the certificate). Default: `node_ip`.
    pub tls_host: Option<String>,
    /// Secret for the ephemeral credentials (HMAC-SHA1). Default: random at every start, which is right unless
    /// several processes must accept each other's credentials.
    pub secret: Option<String>,
    /// Lifetime of the credentials in the join response, in seconds (60-86400). Default 300. Allocations made
    /// before expiry live on while refreshed.
    pub credential_ttl_secs: u64,
    /// Relay allocations one participant may hold at once (1-100). Default 10.
    pub allocations_per_participant: usize,
    /// Peer CIDRs the relay may reach although they are loopback/private/link-local. Default: none.
    pub allow_peers: Vec<String>,
    /// Peer CIDRs the relay never reaches (wins over `allow_peers`). Default: none.
    pub deny_peers: Vec<String>,
    /// TURN servers run elsewhere (e.g. coturn) also given to clients (`[[turn.external]]`). Default: none.
    pub external: Vec<ExternalTurnConfig>,
}

/// An external TURN server: its URLs and either a shared secret (TURN REST API, coturn's
/// `use-auth-secret`/`static-auth-secret`) or fixed credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExternalTurnConfig {
    pub urls: Vec<String>,
    pub secret: Option<String>,
    pub username: Option<String>,
    pub credential: Option<String>,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            enabled: true,
            port: DEFAULT_TURN_PORT,
            tcp: true,
            tls_port: None,
            tls_cert: None,
            tls_key: None,
            tls_host: None,
            secret: None,
            credential_ttl_secs: DEFAULT_CREDENTIAL_TTL_SECS,
            allocations_per_participant: DEFAULT_ALLOCATIONS_PER_PARTICIPANT,
            allow_peers: Vec::new(),
            deny_peers: Vec::new(),
            external: Vec::new(),
        }
    }
}

impl TurnConfig {
    /// Validates the section. `bind`/`node_ip` are the media addresses' (the relay binds and advertises them).
    pub fn into_settings(self, bind: IpAddr, node_ip: IpAddr) -> anyhow::Result<TurnSettings> {
        ensure!(
            (60..=86_400).contains(&self.credential_ttl_secs),
            "turn.credential_ttl_secs must be between 60 and 86400, not {}",
            self.credential_ttl_secs
        );
        ensure!(
            (1..=100).contains(&self.allocations_per_participant),
            "turn.allocations_per_participant must be between 1 and 100, not {}",
            self.allocations_per_participant
        );
        // Parsed now so that a typo stops startup; the SFU's addresses are added once its sockets are bound.
        let policy = PeerPolicy::new(Vec::new(), &self.allow_peers, &self.deny_peers)?;
        let tls = match (self.tls_port, self.tls_cert, self.tls_key) {
            (None, None, None) => None,
            (Some(port), Some(cert), Some(key)) => Some(TurnTls {
                addr: SocketAddr::new(bind, port),
                cert,
                key,
                host: self.tls_host.unwrap_or_else(|| url_host(node_ip)),
            }),
            _ => {
                anyhow::bail!("turn.tls_port, turn.tls_cert and turn.tls_key must be set together")
            }
        };
        if let Some(secret) = &self.secret {
            ensure!(secret.len() >= 16, "turn.secret must be at least 16 bytes");
        }
        let mut external = Vec::new();
        for (i, e) in self.external.into_iter().enumerate() {
            ensure!(!e.urls.is_empty(), "turn.external[{i}] has no urls");
            for u in &e.urls {
                ensure!(
                    ["stun:", "turn:", "turns:"]
                        .iter()
                        .any(|p| u.starts_with(p)),
                    "turn.external[{i}]: `{u}` is not a stun:, turn: or turns: URL"
                );
            }
            ensure!(
                e.secret.is_none() || (e.username.is_none() && e.credential.is_none()),
                "turn.external[{i}]: give either secret or username/credential"
            );
            external.push(ExternalTurn {
                urls: e.urls,
                secret: e.secret,
                username: e.username,
                credential: e.credential,
            });
        }
        Ok(TurnSettings {
            enabled: self.enabled,
            udp_addr: SocketAddr::new(bind, self.port),
            tcp: self.tcp,
            tls,
            public_ip: node_ip,
            secret: self.secret.map(String::into_bytes),
            credential_ttl: Duration::from_secs(self.credential_ttl_secs),
            allocations_per_participant: self.allocations_per_participant,
            policy,
            external,
        })
    }
}

/// An IP as the host part of a URL (IPv6 in brackets).
pub fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

impl TurnConfig {
    /// Applies the `--turn-*` flags that were given.
    pub fn apply_args(&mut self, args: &super::ServerArgs) {
        if let Some(v) = args.turn {
            self.enabled = v;
        }
        if let Some(v) = args.turn_port {
            self.port = v;
        }
        if args.turn_tls_port.is_some() {
            self.tls_port = args.turn_tls_port;
        }
        if args.turn_tls_cert.is_some() {
            self.tls_cert.clone_from(&args.turn_tls_cert);
        }
        if args.turn_tls_key.is_some() {
            self.tls_key.clone_from(&args.turn_tls_key);
        }
        if args.turn_secret.is_some() {
            self.secret.clone_from(&args.turn_secret);
        }
        if let Some(v) = args.turn_credential_ttl_secs {
            self.credential_ttl_secs = v;
        }
        if !args.turn_allow_peers.is_empty() {
            self.allow_peers.clone_from(&args.turn_allow_peers);
        }
        if !args.turn_deny_peers.is_empty() {
            self.deny_peers.clone_from(&args.turn_deny_peers);
        }
        if !args.turn_external_urls.is_empty() {
            self.external = vec![ExternalTurnConfig {
                urls: args.turn_external_urls.clone(),
                secret: args.turn_external_secret.clone(),
                username: None,
                credential: None,
            }];
        }
    }
}
