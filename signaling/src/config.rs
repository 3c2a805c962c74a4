//! Server configuration: one serde struct with documented defaults, read from an optional TOML file, then
//! overridden by CLI flags and `CHORUS_*` environment variables (flag > env > file > default), then turned into
//! the validated [`ServerSettings`] the server runs with.
//!
//! Owns the defaults, the flag/env names and dev mode (no API keys: dev keys from the data dir, loopback only).
//! It does not start anything; `main.rs` does. The checked-in `config/chorus.sample.toml` mirrors [`Config`]:
//! change both together.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use serde::Deserialize;

use crate::auth::{ApiKey, KeyStore};
use crate::dev_keys::{self, DevKeys};
use crate::server::ServerSettings;

pub const DEFAULT_HTTP_PORT: u16 = 7880;
pub const DEFAULT_RTC_PORT: u16 = 7882;
pub const DEFAULT_RTC_TCP_PORT: u16 = 7881;
pub const DEFAULT_DATA_DIR: &str = "./.chorus";
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;
pub const DEFAULT_RESUME_WINDOW_SECS: u64 = 10;
pub const DEFAULT_PING_INTERVAL_SECS: u64 = 5;
pub const DEFAULT_LOG: &str = "info";
pub const DEFAULT_ROOM_EMPTY_TIMEOUT_SECS: u64 = 20;
pub use crate::room::{
    ChatSettings, DEFAULT_CHAT_HISTORY_SIZE, DEFAULT_CHAT_MAX_TEXT_BYTES, DEFAULT_CHAT_RATE_BURST,
    DEFAULT_CHAT_RATE_PER_MINUTE,
};

/// Bounds checked by [`Config::into_settings`].
const MAX_WORKERS: usize = 1024;
const MESSAGE_BYTES_RANGE: std::ops::RangeInclusive<usize> = 4 * 1024..=1024 * 1024;
const MAX_RESUME_WINDOW_SECS: u64 = 3600;
const PING_INTERVAL_RANGE: std::ops::RangeInclusive<u64> = 1..=300;
const MAX_ROOM_EMPTY_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the span fields (participant, room) of each event.
    Json,
}

/// Everything an operator can configure. Every field has a default, so an empty file (or none) is valid.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// IP address HTTP and the WebSocket listen on. Default: `0.0.0.0` when API keys are configured,
    /// `127.0.0.1` in dev mode (which refuses non-loopback addresses).
    pub http_bind: Option<IpAddr>,
    /// HTTP/WebSocket port: REST API, `/rtc`, the demo page. Default 7880; 0 picks a free port.
    pub http_port: u16,
    /// First UDP port for media; worker `i` binds `rtc_port + i`. Default 7882.
    pub rtc_port: u16,
    /// IP address the UDP media sockets bind. Default: same rule as `http_bind`.
    pub rtc_bind: Option<IpAddr>,
    /// IP address advertised in ICE candidates: where clients send media. Default: `rtc_bind` when that is a
    /// specific address, else `127.0.0.1` (with a warning when API keys are configured: set this to the host's
    /// LAN or public IP).
    pub node_ip: Option<IpAddr>,
    /// Media worker threads (one UDP port each). Default: the number of CPUs.
    pub workers: Option<usize>,
    /// Directory for server state: dev keys and the embedded store (`chorus.db`, SQLite). Default `./.chorus`.
    pub data_dir: PathBuf,
    /// API keys whose tokens are accepted; the first one signs `chorus token` by default. Secrets must be at least
    /// 32 bytes. None at all means dev mode. Default: none.
    pub keys: Vec<ApiKey>,
    /// Largest signaling frame accepted, in bytes (4 KiB–1 MiB). Default 65536.
    pub max_message_bytes: usize,
    /// How long a participant whose WebSocket dropped may resume, in seconds (0–3600; 0 disables resuming).
    /// Default 10.
    pub resume_window_secs: u64,
    /// Keepalive interval suggested to clients, in seconds (1–300). Default 5.
    pub ping_interval_secs: u64,
    /// Log filter (`tracing` env-filter syntax, e.g. `info,chorus_sfu=debug`); `RUST_LOG` overrides it.
    /// Default `info`.
    pub log: String,
    /// Log line format: `text` for people, `json` (one object per line) for machines. Default `text`.
    pub log_format: LogFormat,
    /// Seconds a room stays open without participants before it closes (0 = at once when the last one
    /// leaves); also the default for rooms created through the API. Default 20.
    pub room_empty_timeout_secs: u64,
    /// Webhook endpoints and delivery policy (`[webhooks]`). Default: none.
    pub webhooks: WebhookConfig,
    /// Data-channel limits (`[data]`): message sizes, rate, slow-receiver buffer.
    pub data: DataConfig,
    /// Chat messages kept per room in the store and replayed to joiners (0–10000; 0 keeps none). Default 100.
    pub chat_history_size: usize,
    /// Longest chat text, in UTF-8 bytes (1–32768). Default 4096.
    pub chat_max_text_bytes: usize,
    /// Chat sends, edits and deletes allowed per identity and minute, on average (0 = no limit). Default 60.
    pub chat_rate_per_minute: u32,
    /// How many of those may come in a burst (1–10000). Default 10.
    pub chat_rate_burst: u32,
    /// TCP port for ICE over TCP (RFC 4571), a passive host candidate next to the UDP ones; 0 picks a free port.
    /// Default 7881.
    pub rtc_tcp_port: u16,
    /// Offer ICE over TCP at all. Default true.
    pub ice_tcp: bool,
    /// Send a run of media packets to one client as one UDP GSO message (Linux; the kernel cuts it into the
    /// same datagrams, for less CPU per packet). Falls back by itself where the kernel refuses. Default true.
    pub udp_gso: bool,
    /// Embedded TURN server and external TURN servers (`[turn]`).
    pub turn: TurnConfig,
    /// Cluster membership: the shared Redis, this node's id and URL (`[cluster]`).
    pub cluster: ClusterConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            http_bind: None,
            http_port: DEFAULT_HTTP_PORT,
            rtc_port: DEFAULT_RTC_PORT,
            rtc_bind: None,
            node_ip: None,
            workers: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            keys: Vec::new(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            resume_window_secs: DEFAULT_RESUME_WINDOW_SECS,
            ping_interval_secs: DEFAULT_PING_INTERVAL_SECS,
            log: DEFAULT_LOG.to_owned(),
            log_format: LogFormat::Text,
            room_empty_timeout_secs: DEFAULT_ROOM_EMPTY_TIMEOUT_SECS,
            webhooks: WebhookConfig::default(),
            data: DataConfig::default(),
            chat_history_size: DEFAULT_CHAT_HISTORY_SIZE,
            chat_max_text_bytes: DEFAULT_CHAT_MAX_TEXT_BYTES,
            chat_rate_per_minute: DEFAULT_CHAT_RATE_PER_MINUTE,
            chat_rate_burst: DEFAULT_CHAT_RATE_BURST,
            rtc_tcp_port: DEFAULT_RTC_TCP_PORT,
            ice_tcp: true,
            udp_gso: true,
            turn: TurnConfig::default(),
            cluster: ClusterConfig::default(),
        }
    }
}

impl Config {
    /// Parses a TOML document; unknown keys are errors (they are usually typos).
    pub fn from_toml_str(text: &str) -> anyhow::Result<Config> {
        Ok(toml::from_str(text)?)
    }

    /// Reads and parses a TOML config file.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Config::from_toml_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))
    }

    /// The config file named by `args` (or the defaults), with the key and data-dir flags applied.
    pub fn load(args: &ConfigArgs) -> anyhow::Result<Config> {
        let mut config = match &args.config_file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.apply_config_args(args)?;
        Ok(config)
    }

    /// [`load`](Self::load), then every `serve` flag applied.
    pub fn from_server_args(args: &ServerArgs) -> anyhow::Result<Config> {
        let mut config = Config::load(&args.config)?;
        config.apply_server_args(args);
        Ok(config)
    }

    /// Applies `--data-dir` and the `--api-key`/`--api-secret` pair (which must come together). The pair replaces a
    /// configured key of the same id and becomes the first key.
    pub fn apply_config_args(&mut self, args: &ConfigArgs) -> anyhow::Result<()> {
        if let Some(dir) = &args.data_dir {
            self.data_dir = dir.clone();
        }
        match (&args.api_key, &args.api_secret) {
            (Some(key), Some(secret)) => {
                self.keys.retain(|configured| configured.key != *key);
                self.keys.insert(
                    0,
                    ApiKey {
                        key: key.clone(),
                        secret: secret.clone(),
                    },
                );
            }
            (None, None) => {}
            (Some(_), None) => {
                bail!("--api-key (CHORUS_API_KEY) needs --api-secret (CHORUS_API_SECRET)")
            }
            (None, Some(_)) => {
                bail!("--api-secret (CHORUS_API_SECRET) needs --api-key (CHORUS_API_KEY)")
            }
        }
        Ok(())
    }

    /// Applies the `serve` flags that were given (the key/data-dir ones are applied by [`load`](Self::load)).
    pub fn apply_server_args(&mut self, args: &ServerArgs) {
        fn set<T: Clone>(field: &mut T, flag: &Option<T>) {
            if let Some(value) = flag {
                *field = value.clone();
            }
        }
        fn set_opt<T: Clone>(field: &mut Option<T>, flag: &Option<T>) {
            if flag.is_some() {
                field.clone_from(flag);
            }
        }
        set_opt(&mut self.http_bind, &args.http_bind);
        set(&mut self.http_port, &args.http_port);
        set(&mut self.rtc_port, &args.rtc_port);
        set_opt(&mut self.rtc_bind, &args.rtc_bind);
        set_opt(&mut self.node_ip, &args.node_ip);
        set_opt(&mut self.workers, &args.workers);
        set(&mut self.max_message_bytes, &args.max_message_bytes);
        set(&mut self.resume_window_secs, &args.resume_window_secs);
        set(&mut self.ping_interval_secs, &args.ping_interval_secs);
        set(&mut self.log, &args.log);
        set(&mut self.log_format, &args.log_format);
        set(
            &mut self.room_empty_timeout_secs,
            &args.room_empty_timeout_secs,
        );
        set(&mut self.chat_history_size, &args.chat_history_size);
        set(&mut self.chat_max_text_bytes, &args.chat_max_text_bytes);
        set(&mut self.chat_rate_per_minute, &args.chat_rate_per_minute);
        set(&mut self.chat_rate_burst, &args.chat_rate_burst);
        if !args.webhook_urls.is_empty() {
            self.webhooks.urls.clone_from(&args.webhook_urls);
        }
        if args.webhook_allow_private_urls {
            self.webhooks.allow_private_urls = true;
        }
        set(&mut self.rtc_tcp_port, &args.rtc_tcp_port);
        set(&mut self.ice_tcp, &args.ice_tcp);
        set(&mut self.udp_gso, &args.udp_gso);
        self.turn.apply_args(args);
        self.cluster.apply_args(args);
    }

    /// Dev mode: no API keys configured anywhere.
    pub fn is_dev_mode(&self) -> bool {
        self.keys.is_empty()
    }

    /// Validates everything and builds the server's settings. In dev mode this loads or creates the dev keys in
    /// `data_dir` (returned so the caller can print them) and insists on loopback addresses.
    pub fn into_settings(self) -> anyhow::Result<(ServerSettings, Option<DevKeys>)> {
        let dev_mode = self.is_dev_mode();
        let default_bind = if dev_mode {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let http_bind = self.http_bind.unwrap_or(default_bind);
        let rtc_bind = self.rtc_bind.unwrap_or(default_bind);
        let node_ip = match self.node_ip {
            Some(ip) => ip,
            None if !rtc_bind.is_unspecified() => rtc_bind,
            None => {
                if !dev_mode {
                    tracing::warn!(
                    "node_ip is not set: advertising 127.0.0.1 in ICE candidates, so only clients on this host can \
                     connect; set --node-ip (CHORUS_NODE_IP) to this host's LAN or public IP"
                    );
                }
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            }
        };
        ensure!(
            !node_ip.is_unspecified() && !node_ip.is_multicast(),
            "node_ip {node_ip} cannot be advertised to clients; use this host's LAN or public IP"
        );
        if dev_mode {
            for (name, ip) in [
                ("http_bind", http_bind),
                ("rtc_bind", rtc_bind),
                ("node_ip", node_ip),
            ] {
                ensure!(
                    ip.is_loopback(),
                    "{name} is {ip}, but dev mode (no API keys configured) only listens on loopback, because \
                     anyone who can reach it can get tokens; configure API keys (`keys` in the config file or \
                     --api-key/--api-secret) to serve other hosts"
                );
            }
        }

        let workers = match self.workers {
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        ensure!(
            (1..=MAX_WORKERS).contains(&workers),
            "workers must be between 1 and {MAX_WORKERS}, not {workers}"
        );
        if self.rtc_port != 0 {
            let last = u32::from(self.rtc_port) + workers as u32 - 1;
            ensure!(
                last <= u32::from(u16::MAX),
                "rtc_port {} with {workers} workers needs UDP ports up to {last}, past 65535",
                self.rtc_port
            );
        }
        ensure!(
            MESSAGE_BYTES_RANGE.contains(&self.max_message_bytes),
            "max_message_bytes must be between {} and {}, not {}",
            MESSAGE_BYTES_RANGE.start(),
            MESSAGE_BYTES_RANGE.end(),
            self.max_message_bytes
        );
        ensure!(
            self.resume_window_secs <= MAX_RESUME_WINDOW_SECS,
            "resume_window_secs must be at most {MAX_RESUME_WINDOW_SECS}, not {}",
            self.resume_window_secs
        );
        ensure!(
            PING_INTERVAL_RANGE.contains(&self.ping_interval_secs),
            "ping_interval_secs must be between {} and {}, not {}",
            PING_INTERVAL_RANGE.start(),
            PING_INTERVAL_RANGE.end(),
            self.ping_interval_secs
        );

        ensure!(
            self.room_empty_timeout_secs <= MAX_ROOM_EMPTY_TIMEOUT_SECS,
            "room_empty_timeout_secs must be at most {MAX_ROOM_EMPTY_TIMEOUT_SECS}, not {}",
            self.room_empty_timeout_secs
        );

        let chat = chat::settings(&self)?;

        let webhooks = self.webhooks.clone().into_settings()?;
        let data = self.data.clone().into_limits()?;
        let turn = self.turn.clone().into_settings(rtc_bind, node_ip)?;
        let cluster = self
            .cluster
            .clone()
            .into_settings(dev_mode, node_ip, self.http_port)?;

        let (keys, dev_keys) = if dev_mode {
            let dev = dev_keys::load_or_create(&self.data_dir)?;
            let keys = KeyStore::new(vec![dev.api_key.clone()])
                .with_context(|| format!("invalid dev keys in {}", dev.path.display()))?;
            (keys, Some(dev))
        } else {
            let keys = KeyStore::new(self.keys).context("invalid API keys in the configuration")?;
            (keys, None)
        };

        let settings = ServerSettings {
            http_addr: SocketAddr::new(http_bind, self.http_port),
            keys,
            dev_mode,
            sfu: chorus_sfu::SfuConfig {
                bind_ip: rtc_bind,
                port: self.rtc_port,
                advertised_ip: node_ip,
                workers,
                data,
                tcp_port: self.ice_tcp.then_some(self.rtc_tcp_port),
                udp_gso: self.udp_gso,
            },
            max_message_bytes: self.max_message_bytes,
            resume_window: Duration::from_secs(self.resume_window_secs),
            ping_interval: Duration::from_secs(self.ping_interval_secs),
            data_dir: Some(self.data_dir.clone()),
            room_empty_timeout: Duration::from_secs(self.room_empty_timeout_secs),
            webhooks,
            chat,
            turn,
            cluster,
        };
        Ok((settings, dev_keys))
    }
}

mod args;
mod chat;
mod cluster;
mod data;
mod turn;
mod webhooks;

pub use args::{ConfigArgs, ServerArgs};
pub use cluster::ClusterConfig;
pub use data::DataConfig;
pub use turn::{url_host, ExternalTurnConfig, TurnConfig};
pub use webhooks::WebhookConfig;

#[cfg(test)]
mod tests;
