//! The command-line flags (and their `CHORUS_*` environment variables) of `chorus serve` and `chorus token`.
//! Each one overrides the config file; [`super::Config`] documents meanings and defaults, and
//! [`super::Config::apply_server_args`] applies them.

use std::net::IpAddr;
use std::path::PathBuf;

use super::LogFormat;

/// Flags shared by `chorus serve` and `chorus token`: where the configuration and keys come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ConfigArgs {
    /// TOML config file (see config/chorus.sample.toml); flags and env override it.
    #[arg(long = "config", value_name = "FILE", env = "CHORUS_CONFIG")]
    pub config_file: Option<PathBuf>,
    /// Directory for server state such as dev keys [default: ./.chorus]
    #[arg(long, value_name = "DIR", env = "CHORUS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// API key id; with --api-secret, adds (or replaces) that key and makes it the default signing key.
    #[arg(long, value_name = "KEY", env = "CHORUS_API_KEY")]
    pub api_key: Option<String>,
    /// API secret for --api-key (at least 32 bytes). Prefer the env variable: flags show up in `ps`.
    #[arg(
        long,
        value_name = "SECRET",
        env = "CHORUS_API_SECRET",
        hide_env_values = true
    )]
    pub api_secret: Option<String>,
}

/// Flags of `chorus serve`. Each one overrides the config file; see [`super::Config`] for meanings and defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// IP address for HTTP/WebSocket [default: 0.0.0.0 with API keys, 127.0.0.1 in dev mode]
    #[arg(long, value_name = "IP", env = "CHORUS_HTTP_BIND")]
    pub http_bind: Option<IpAddr>,
    /// HTTP/WebSocket port [default: 7880]
    #[arg(long, value_name = "PORT", env = "CHORUS_HTTP_PORT")]
    pub http_port: Option<u16>,
    /// First UDP media port; worker i binds rtc-port + i [default: 7882]
    #[arg(long, value_name = "PORT", env = "CHORUS_RTC_PORT")]
    pub rtc_port: Option<u16>,
    /// IP address for the UDP media sockets [default: like --http-bind]
    #[arg(long, value_name = "IP", env = "CHORUS_RTC_BIND")]
    pub rtc_bind: Option<IpAddr>,
    /// IP address advertised in ICE candidates (the host's LAN/public IP) [default: --rtc-bind or 127.0.0.1]
    #[arg(long, value_name = "IP", env = "CHORUS_NODE_IP")]
    pub node_ip: Option<IpAddr>,
    /// Media worker threads [default: number of CPUs]
    #[arg(long, value_name = "N", env = "CHORUS_WORKERS")]
    pub workers: Option<usize>,
    /// Largest accepted signaling frame in bytes [default: 65536]
    #[arg(long, value_name = "BYTES", env = "CHORUS_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Seconds a dropped participant may resume [default: 10]
    #[arg(long, value_name = "SECS", env = "CHORUS_RESUME_WINDOW_SECS")]
    pub resume_window_secs: Option<u64>,
    /// Keepalive interval suggested to clients, in seconds [default: 5]
    #[arg(long, value_name = "SECS", env = "CHORUS_PING_INTERVAL_SECS")]
    pub ping_interval_secs: Option<u64>,
    /// Log filter, e.g. `info,chorus_sfu=debug`; RUST_LOG overrides it [default: info]
    #[arg(long, value_name = "FILTER", env = "CHORUS_LOG")]
    pub log: Option<String>,
    /// Log line format: text or json [default: text]
    #[arg(long, value_name = "FORMAT", env = "CHORUS_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Seconds an empty room stays open (0 = close when the last participant leaves) [default: 20]
    #[arg(long, value_name = "SECS", env = "CHORUS_ROOM_EMPTY_TIMEOUT_SECS")]
    pub room_empty_timeout_secs: Option<u64>,
    /// Webhook endpoint (repeatable; replaces webhooks.urls of the file) [default: none]
    #[arg(
        long = "webhook-url",
        value_name = "URL",
        env = "CHORUS_WEBHOOK_URLS",
        value_delimiter = ','
    )]
    pub webhook_urls: Vec<String>,
    /// Allow webhook endpoints on loopback/private/link-local addresses [default: false]
    #[arg(long, env = "CHORUS_WEBHOOK_ALLOW_PRIVATE_URLS")]
    pub webhook_allow_private_urls: bool,
    /// Chat messages kept per room and replayed to joiners [default: 100]
    #[arg(long, value_name = "N", env = "CHORUS_CHAT_HISTORY_SIZE")]
    pub chat_history_size: Option<usize>,
    /// Longest chat text in UTF-8 bytes [default: 4096]
    #[arg(long, value_name = "BYTES", env = "CHORUS_CHAT_MAX_TEXT_BYTES")]
    pub chat_max_text_bytes: Option<usize>,
    /// Chat sends/edits/deletes per identity and minute (0 = no limit) [default: 60]
    #[arg(long, value_name = "N", env = "CHORUS_CHAT_RATE_PER_MINUTE")]
    pub chat_rate_per_minute: Option<u32>,
    /// Chat messages allowed in a burst [default: 10]
    #[arg(long, value_name = "N", env = "CHORUS_CHAT_RATE_BURST")]
    pub chat_rate_burst: Option<u32>,
    /// TCP port for ICE over TCP (0 = any free port) [default: 7881]
    #[arg(long, value_name = "PORT", env = "CHORUS_RTC_TCP_PORT")]
    pub rtc_tcp_port: Option<u16>,
    /// Offer ICE over TCP: true or false [default: true]
    #[arg(long, value_name = "BOOL", env = "CHORUS_ICE_TCP")]
    pub ice_tcp: Option<bool>,
    /// Send runs of media packets to one client as one UDP GSO message: true or false [default: true]
    #[arg(long, value_name = "BOOL", env = "CHORUS_UDP_GSO")]
    pub udp_gso: Option<bool>,
    /// Run the embedded TURN server: true or false [default: true]
    #[arg(long, value_name = "BOOL", env = "CHORUS_TURN")]
    pub turn: Option<bool>,
    /// UDP and TCP port of the embedded TURN server (0 = free ports) [default: 3478]
    #[arg(long, value_name = "PORT", env = "CHORUS_TURN_PORT")]
    pub turn_port: Option<u16>,
    /// TCP port for TURN over TLS (needs --turn-tls-cert and --turn-tls-key) [default: off]
    #[arg(long, value_name = "PORT", env = "CHORUS_TURN_TLS_PORT")]
    pub turn_tls_port: Option<u16>,
    /// PEM certificate chain for TURN over TLS
    #[arg(long, value_name = "FILE", env = "CHORUS_TURN_TLS_CERT")]
    pub turn_tls_cert: Option<PathBuf>,
    /// PEM private key for TURN over TLS
    #[arg(long, value_name = "FILE", env = "CHORUS_TURN_TLS_KEY")]
    pub turn_tls_key: Option<PathBuf>,
    /// Secret for ephemeral TURN credentials (at least 16 bytes) [default: random per start]
    #[arg(
        long,
        value_name = "SECRET",
        env = "CHORUS_TURN_SECRET",
        hide_env_values = true
    )]
    pub turn_secret: Option<String>,
    /// Lifetime of TURN credentials in seconds [default: 300]
    #[arg(long, value_name = "SECS", env = "CHORUS_TURN_CREDENTIAL_TTL_SECS")]
    pub turn_credential_ttl_secs: Option<u64>,
    /// Peer CIDR the relay may reach although internal (repeatable) [default: none]
    #[arg(
        long = "turn-allow-peer",
        value_name = "CIDR",
        env = "CHORUS_TURN_ALLOW_PEERS",
        value_delimiter = ','
    )]
    pub turn_allow_peers: Vec<String>,
    /// Peer CIDR the relay never reaches (repeatable) [default: none]
    #[arg(
        long = "turn-deny-peer",
        value_name = "CIDR",
        env = "CHORUS_TURN_DENY_PEERS",
        value_delimiter = ','
    )]
    pub turn_deny_peers: Vec<String>,
    /// External TURN/STUN URL handed to clients (repeatable; with --turn-external-secret) [default: none]
    #[arg(
        long = "turn-external-url",
        value_name = "URL",
        env = "CHORUS_TURN_EXTERNAL_URLS",
        value_delimiter = ','
    )]
    pub turn_external_urls: Vec<String>,
    /// Shared secret of the external TURN server (coturn `static-auth-secret`)
    #[arg(
        long,
        value_name = "SECRET",
        env = "CHORUS_TURN_EXTERNAL_SECRET",
        hide_env_values = true
    )]
    pub turn_external_secret: Option<String>,
    /// Redis shared by the nodes of a cluster, e.g. redis://redis:6379/0 [default: none, this node on its own]
    #[arg(
        long,
        value_name = "URL",
        env = "CHORUS_REDIS_URL",
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// This node's id, unique in the cluster (e.g. the pod name) [default: random per start]
    #[arg(long, value_name = "ID", env = "CHORUS_NODE_ID")]
    pub node_id: Option<String>,
    /// URL clients and other nodes use to reach this node's HTTP/WebSocket [default: http://<node-ip>:<http-port>]
    #[arg(long, value_name = "URL", env = "CHORUS_NODE_URL")]
    pub node_url: Option<String>,
    /// Participants this node is meant to host; placement prefers less loaded nodes [default: 500]
    #[arg(long, value_name = "N", env = "CHORUS_NODE_CAPACITY")]
    pub node_capacity: Option<u32>,
    /// After SIGTERM, seconds the node keeps serving its calls (no new rooms) before exiting [default: 0]
    #[arg(long, value_name = "SECS", env = "CHORUS_DRAIN_TIMEOUT_SECS")]
    pub drain_timeout_secs: Option<u64>,
}
