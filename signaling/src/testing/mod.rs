//! An in-process server on loopback for integration tests (here and in `client/`): random API key, free
//! ports, one media worker; and a throwaway Redis ([`RedisServer`]) for cluster tests.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::auth::{ApiKey, Grants, KeyStore, TokenRequest};

mod redis;

pub use self::redis::RedisServer;
use crate::server::{self, RunningServer, ServerSettings};

pub struct TestServer {
    pub server: RunningServer,
    keys: KeyStore,
    api_key: ApiKey,
}

impl TestServer {
    /// Start a server on 127.0.0.1 with free HTTP and UDP ports.
    pub async fn start() -> anyhow::Result<TestServer> {
        Self::start_with(|_| {}).await
    }

    /// Start a server after letting `tweak` adjust the settings.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerSettings)) -> anyhow::Result<TestServer> {
        Self::start_with_key(Self::random_key(), tweak).await
    }

    /// A fresh random API key (to start several servers with the same key, e.g. across a restart).
    pub fn random_key() -> ApiKey {
        ApiKey {
            key: format!("test-{}", crate::ids::random_string(6)),
            secret: crate::ids::random_string(40),
        }
    }

    /// Start a server with the API key `key` after letting `tweak` adjust the settings. The store is in memory
    /// unless `tweak` sets `data_dir`.
    pub async fn start_with_key(
        key: ApiKey,
        tweak: impl FnOnce(&mut ServerSettings),
    ) -> anyhow::Result<TestServer> {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut settings = ServerSettings {
            http_addr: SocketAddr::new(loopback, 0),
            keys: KeyStore::new(vec![key.clone()])?,
            dev_mode: false,
            sfu: chorus_sfu::SfuConfig {
                udp_gso: true,
                bind_ip: loopback,
                port: 0,
                advertised_ip: loopback,
                workers: 1,
                data: Default::default(),
                tcp_port: None,
            },
            max_message_bytes: chorus_protocol::DEFAULT_MAX_MESSAGE_BYTES,
            resume_window: Duration::from_secs(10),
            ping_interval: Duration::from_secs(5),
            data_dir: None,
            room_empty_timeout: Duration::from_secs(crate::config::DEFAULT_ROOM_EMPTY_TIMEOUT_SECS),
            webhooks: Default::default(),
            chat: Default::default(),
            turn: crate::turn::TurnSettings::disabled(),
            cluster: Default::default(),
        };
        tweak(&mut settings);
        let keys = KeyStore::new(vec![key.clone()])?;
        let server = server::start(settings).await?;
        Ok(TestServer {
            server,
            keys,
            api_key: key,
        })
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.server.http_addr)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/rtc", self.server.http_addr)
    }

    /// A valid token with default grants.
    pub fn token(&self, room: &str, identity: &str) -> String {
        self.token_with(room, identity, Grants::default())
    }

    pub fn token_with(&self, room: &str, identity: &str, grants: Grants) -> String {
        self.keys
            .issue(&TokenRequest {
                api_key: None,
                identity: identity.to_string(),
                name: None,
                room: room.to_string(),
                ttl: Duration::from_secs(600),
                grants,
                not_before: None,
            })
            .unwrap_or_else(|e| panic!("test token: {e}"))
    }

    /// A server-API token with every admin grant (what `chorus token --admin` prints).
    pub fn admin_token(&self) -> String {
        self.keys
            .issue_admin_at(None, Duration::from_secs(600), crate::auth::now_unix_secs())
            .unwrap_or_else(|e| panic!("admin token: {e}"))
    }

    /// The base URL of the server API, e.g. `http://127.0.0.1:1234/v1`.
    pub fn api_url(&self) -> String {
        format!("{}/v1", self.http_url())
    }

    /// The API key and secret, to hand-craft tokens in tests.
    pub fn api_key(&self) -> &ApiKey {
        &self.api_key
    }

    /// The key store, to craft unusual tokens in tests.
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.shutdown();
    }
}
