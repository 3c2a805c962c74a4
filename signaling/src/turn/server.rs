//! Starting the embedded TURN server: a UDP listener, a TCP listener on the same port, a TLS listener when
//! configured, each served by its own instance of the `turn` crate's server (see `relay.rs` for why one per
//! listener), all sharing the credential secret, the relay policy and the allocation quota.

use std::net::SocketAddr;
use std::sync::Arc;

use turn::server::config::{ConnConfig, ServerConfig};
use turn::server::Server;
use webrtc_util::Conn;

use super::counters::{RelayedTraffic, TurnCounters};
use super::guard::GuardConn;
use super::relay::{Auth, LastAuthenticated, Quota, RelayGenerator};
use super::stream::StreamConn;
use super::{IceServerSource, PeerPolicy, TurnSettings};

const REALM: &str = "chorus";

/// Why the embedded TURN server could not start.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("cannot bind TURN {proto} {addr}: {source}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TURN TLS certificate or key: {0}")]
    Tls(String),
    #[error("TURN server: {0}")]
    Turn(#[from] turn::Error),
}

/// The running embedded TURN server (if enabled) and the ICE servers to hand out.
pub struct RunningTurn {
    /// Where TURN listens: UDP, TCP, TLS (when running).
    pub udp_addr: Option<SocketAddr>,
    pub tcp_addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
    pub ice_servers: Arc<IceServerSource>,
    servers: Vec<Server>,
    /// The allocation quota shared by the listeners; `None` when the embedded server is off.
    quota: Option<Arc<Quota>>,
    counters: Arc<TurnCounters>,
}

/// What `/metrics` reports about the embedded TURN server (all zero when it is off).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TurnTotals {
    /// Relay allocations alive now, over every listener.
    pub allocations: u64,
    /// Allocations refused because the participant had reached its quota, since start.
    pub quota_refusals: u64,
    /// Requests refused for bad, forged or long-expired credentials, since start.
    pub auth_refusals: u64,
    /// Relayed from clients to peers (the SFU or an allowed address), since start.
    pub relayed_to_peers: RelayedTraffic,
    /// Relayed from peers to clients, since start.
    pub relayed_from_peers: RelayedTraffic,
    /// Relay sends to a peer the policy refuses, since start (none leave).
    pub relay_sends_refused: u64,
}

impl std::fmt::Debug for RunningTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningTurn")
            .field("udp_addr", &self.udp_addr)
            .field("tcp_addr", &self.tcp_addr)
            .field("tls_addr", &self.tls_addr)
            .finish()
    }
}

impl RunningTurn {
    /// Start the listeners of `settings`; `media_addrs` (the SFU's sockets) are the relay's only allowed
    /// internal peers. With TURN disabled, only external servers are handed out.
    pub async fn start(
        settings: &TurnSettings,
        media_addrs: &[SocketAddr],
    ) -> Result<RunningTurn, TurnError> {
        let secret = Arc::new(settings.secret.clone().unwrap_or_else(|| {
            use rand::RngCore;
            let mut s = vec![0u8; 32];
            rand::rng().fill_bytes(&mut s);
            s
        }));
        let mut running = RunningTurn {
            udp_addr: None,
            tcp_addr: None,
            tls_addr: None,
            ice_servers: Arc::new(IceServerSource {
                embedded_urls: Vec::new(),
                secret: secret.to_vec(),
                ttl: settings.credential_ttl,
                external: settings.external.clone(),
            }),
            servers: Vec::new(),
            quota: None,
            counters: Arc::default(),
        };
        if !settings.enabled {
            return Ok(running);
        }
        let policy = Arc::new(PeerPolicy {
            exempt: media_addrs.to_vec(),
            ..settings.policy.clone()
        });
        let quota = Quota::new(settings.allocations_per_participant);
        running.quota = Some(Arc::clone(&quota));
        let counters = Arc::clone(&running.counters);
        let host = crate::config::url_host(settings.public_ip);
        let mut urls = Vec::new();

        let bind = |proto, addr, source| TurnError::Bind {
            proto,
            addr,
            source,
        };
        let udp = tokio::net::UdpSocket::bind(settings.udp_addr)
            .await
            .map_err(|e| bind("UDP", settings.udp_addr, e))?;
        let udp_addr = udp
            .local_addr()
            .map_err(|e| bind("UDP", settings.udp_addr, e))?;
        let start = |conn: Arc<dyn Conn + Send + Sync>| {
            serve(conn, settings, &secret, &policy, &quota, &counters)
        };
        running.servers.push(start(Arc::new(udp)).await?);
        running.udp_addr = Some(udp_addr);
        urls.push(format!("turn:{host}:{}?transport=udp", udp_addr.port()));

        if settings.tcp {
            // Same port as UDP unless UDP's was picked by the OS and is taken for TCP.
            let want = SocketAddr::new(settings.udp_addr.ip(), udp_addr.port());
            let listener = match tokio::net::TcpListener::bind(want).await {
                Ok(l) => l,
                Err(e) if settings.udp_addr.port() == 0 => {
                    tracing::debug!(error = %e, "TURN TCP port differs from UDP");
                    let any = SocketAddr::new(settings.udp_addr.ip(), 0);
                    tokio::net::TcpListener::bind(any)
                        .await
                        .map_err(|e| bind("TCP", any, e))?
                }
                Err(e) => return Err(bind("TCP", want, e)),
            };
            let conn = StreamConn::start(listener, None, Arc::clone(&secret))
                .map_err(|e| bind("TCP", want, e))?;
            let tcp_addr = conn
                .local_addr()
                .map_err(|e| TurnError::Tls(e.to_string()))?;
            running.servers.push(start(conn).await?);
            running.tcp_addr = Some(tcp_addr);
            urls.push(format!("turn:{host}:{}?transport=tcp", tcp_addr.port()));
        }

        if let Some(tls) = &settings.tls {
            let acceptor = tls_acceptor(tls)?;
            let listener = tokio::net::TcpListener::bind(tls.addr)
                .await
                .map_err(|e| bind("TLS", tls.addr, e))?;
            let conn = StreamConn::start(listener, Some(acceptor), Arc::clone(&secret))
                .map_err(|e| bind("TLS", tls.addr, e))?;
            let tls_addr = conn
                .local_addr()
                .map_err(|e| TurnError::Tls(e.to_string()))?;
            running.servers.push(start(conn).await?);
            running.tls_addr = Some(tls_addr);
            urls.push(format!(
                "turns:{}:{}?transport=tcp",
                tls.host,
                tls_addr.port()
            ));
        }
        tracing::info!(
            udp = ?running.udp_addr,
            tcp = ?running.tcp_addr,
            tls = ?running.tls_addr,
            "embedded TURN listening"
        );
        running.ice_servers = Arc::new(IceServerSource {
            embedded_urls: urls,
            secret: secret.to_vec(),
            ttl: settings.credential_ttl,
            external: settings.external.clone(),
        });
        Ok(running)
    }

    /// Live allocations, refusals and relayed traffic, for `/metrics`.
    pub fn totals(&self) -> TurnTotals {
        let counted = self.counters.snapshot();
        TurnTotals {
            allocations: self.quota.as_ref().map_or(0, |q| q.live_total()),
            quota_refusals: self.quota.as_ref().map_or(0, |q| q.refused()),
            auth_refusals: counted.auth_refused,
            relayed_to_peers: counted.to_peers,
            relayed_from_peers: counted.from_peers,
            relay_sends_refused: counted.sends_refused,
        }
    }

    /// Stop every listener and drop every allocation.
    pub async fn close(&self) {
        for s in &self.servers {
            let _ = s.close().await;
        }
    }
}

/// One `turn` server instance on one listener.
async fn serve(
    conn: Arc<dyn Conn + Send + Sync>,
    settings: &TurnSettings,
    secret: &Arc<Vec<u8>>,
    policy: &Arc<PeerPolicy>,
    quota: &Arc<Quota>,
    counters: &Arc<TurnCounters>,
) -> Result<Server, TurnError> {
    let last = LastAuthenticated::default();
    let config = ServerConfig {
        conn_configs: vec![ConnConfig {
            conn: Arc::new(GuardConn::new(conn, Arc::clone(policy))),
            relay_addr_generator: Box::new(RelayGenerator {
                bind_ip: settings.udp_addr.ip(),
                public_ip: settings.public_ip,
                policy: Arc::clone(policy),
                quota: Arc::clone(quota),
                last: Arc::clone(&last),
                counters: Arc::clone(counters),
            }),
        }],
        realm: REALM.to_string(),
        auth_handler: Arc::new(Auth {
            secret: Arc::clone(secret),
            last,
            counters: Arc::clone(counters),
        }),
        channel_bind_timeout: std::time::Duration::ZERO,
        alloc_close_notify: None,
    };
    Ok(Server::new(config).await?)
}

fn tls_acceptor(tls: &super::TurnTls) -> Result<tokio_rustls::TlsAcceptor, TurnError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let err = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        TurnError::Tls(format!("{what} {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(&tls.cert)
        .map_err(|e| err("cannot read certificate", &tls.cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("invalid certificate", &tls.cert, &e))?;
    let key =
        PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| err("invalid key", &tls.key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TurnError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TurnError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
