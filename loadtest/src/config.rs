//! What a load test does: the command-line flags ([`Args`], clap) and the validated [`Config`] the runner uses.
//! Every bad value becomes a [`ConfigError`] with a readable message; nothing here panics.

use std::path::PathBuf;
use std::time::Duration;

use chorus_client::SimulcastLayer;
use clap::Parser;

use crate::data::{Channels, DataLoad, MIN_MESSAGE_BYTES};
use crate::http::HttpUrl;
use crate::layers::SubscriberQuality;

/// Why the flags do not describe a runnable load test.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--{flag}: {reason}")]
    Invalid { flag: &'static str, reason: String },
}

fn invalid(flag: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        flag,
        reason: reason.into(),
    }
}

/// Load-test a Chorus server with real WebRTC participants (chorus-client on webrtc-rs).
#[derive(Debug, Clone, Parser)]
#[command(name = "loadtest", version)]
pub struct Args {
    /// The server's WebSocket URL (`/rtc` is appended when the URL has no path).
    #[arg(long, default_value = "ws://127.0.0.1:7880")]
    pub url: String,
    /// Number of rooms.
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Publishers per room; each publishes synthetic VP8 video (and Opus audio with --audio) and receives the
    /// other publishers, like a participant in a call. 0 (without --data-participants) is an idle run: everyone
    /// connects and nothing flows, which measures the server's memory per connected participant.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Receive-only participants per room.
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    /// Length of the measurement window, after everyone joined (e.g. 30s, 2m, 500ms).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Publishers also send 50 packets/s of Opus-sized audio.
    #[arg(long)]
    pub audio: bool,
    /// Publishers send VP8 simulcast: q 320×180, h 640×360 and f 1280×720 (150 kbit/s, 500 kbit/s and
    /// 1.7 Mbit/s unless --video-bitrate is given).
    #[arg(long)]
    pub simulcast: bool,
    /// Video bitrate per publisher (bits/s; k and M suffixes allowed; default 500k). With --simulcast, the f
    /// layer's bitrate (default 1.7M), q and h being 150/1700 and 500/1700 of it.
    #[arg(long, value_parser = parse_bitrate)]
    pub video_bitrate: Option<u32>,
    /// Publishers send a frame's packets at this multiple of its layer's bitrate, as a browser's pacer does
    /// (Chrome: 2.5); 0 sends each frame's packets at once (a keyframe in one burst, harsher than a browser).
    #[arg(long, default_value_t = DEFAULT_PACING_FACTOR)]
    pub pacing_factor: f64,
    /// Which simulcast layer subscribers ask for: high (the server's default, nothing is sent), medium, low,
    /// or mixed (subscribers take low, medium, high in turn). Publishers always receive the best.
    #[arg(long, value_enum, default_value = "high")]
    pub subscriber_quality: SubscriberQuality,
    /// Write the report as JSON to this file (field names: loadtest/README.md).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// API key to sign tokens with; without it, the dev keys in --data-dir, else the server's /dev/token.
    #[arg(long, env = "CHORUS_API_KEY", requires = "api_secret")]
    pub api_key: Option<String>,
    /// Secret of --api-key.
    #[arg(
        long,
        env = "CHORUS_API_SECRET",
        hide_env_values = true,
        requires = "api_key"
    )]
    pub api_secret: Option<String>,
    /// The server's data directory, to read dev keys (`dev-keys.json`) from.
    #[arg(long, default_value = "./.chorus")]
    pub data_dir: PathBuf,
    /// Where the server's Prometheus metrics are (default: the --url host, `http://HOST/metrics`).
    #[arg(long)]
    pub metrics_url: Option<String>,
    /// Participants joining at the same time.
    #[arg(long, default_value_t = 8)]
    pub join_concurrency: usize,
    /// How often to print a progress line.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub progress_interval: Duration,
    /// Longest wait, after joining, for every subscriber to receive every publisher before measuring.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub settle_timeout: Duration,
    /// Room name prefix (rooms are PREFIX-0, PREFIX-1, …); default: a random one per run.
    #[arg(long)]
    pub room_prefix: Option<String>,
    /// Data-only participants per room (no media; they send data messages and receive everyone's).
    #[arg(long, default_value_t = 0)]
    pub data_participants: usize,
    /// Messages per second each data participant sends (mind the server's `[data]` rate limit, default 200).
    #[arg(long, default_value_t = 10)]
    pub data_rate: u32,
    /// Bytes per data message (payload; at least 8, the send time).
    #[arg(long, default_value_t = 64)]
    pub data_size: usize,
    /// Data channel(s) the data participants send on.
    #[arg(long, value_enum, default_value = "both")]
    pub data_channel: Channels,
}

/// Where to get tokens.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// Sign them with this key and secret.
    Key { key: String, secret: String },
    /// The dev keys of this data directory, or if there are none, the server's `/dev/token`.
    DevKeys(PathBuf),
}

/// A validated load test.
#[derive(Debug, Clone)]
pub struct Config {
    /// The signaling WebSocket (`ws://host:port/rtc`).
    pub ws_url: String,
    /// The server's HTTP base (for `/dev/token`), when the URL is plain `ws://`.
    pub http: Option<HttpUrl>,
    pub metrics: Option<HttpUrl>,
    pub rooms: usize,
    pub publishers: usize,
    pub subscribers: usize,
    pub duration: Duration,
    pub audio: bool,
    /// The single encoding's bitrate, or with simulcast the top layer's.
    pub video_bitrate: u32,
    /// The simulcast layers publishers send, lowest first; empty for one encoding.
    pub simulcast: Vec<SimulcastLayer>,
    /// Publishers' video leaves at this multiple of its bitrate (0: each frame at once).
    pub pacing_factor: f64,
    pub subscriber_quality: SubscriberQuality,
    pub json: Option<PathBuf>,
    pub tokens: TokenSource,
    pub join_concurrency: usize,
    pub progress_interval: Duration,
    pub settle_timeout: Duration,
    pub room_prefix: String,
    /// Data-only participants per room (0: no data load).
    pub data_participants: usize,
    pub data: DataLoad,
}

/// At most this many participants in one run (the load tester's own CPU is the limit long before).
const MAX_PARTICIPANTS: usize = 5000;

/// `--video-bitrate` without simulcast, and for the f layer with it.
const DEFAULT_VIDEO_BPS: u32 = 500_000;
const DEFAULT_TOP_LAYER_BPS: u32 = 1_700_000;
/// Browser-like pacing of publishers' video (Chrome's pacing factor).
const DEFAULT_PACING_FACTOR: f64 = 2.5;

impl Config {
    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        if args.rooms == 0 {
            return Err(invalid("rooms", "must be at least 1"));
        }
        if args.data_participants > 0 {
            if !(1..=10_000).contains(&args.data_rate) {
                return Err(invalid(
                    "data-rate",
                    "must be between 1 and 10000 messages/s",
                ));
            }
            if !(MIN_MESSAGE_BYTES..=256 * 1024).contains(&args.data_size) {
                return Err(invalid(
                    "data-size",
                    format!("must be between {MIN_MESSAGE_BYTES} and 262144 bytes"),
                ));
            }
        }
        let per_room = args
            .publishers
            .checked_add(args.subscribers)
            .and_then(|n| n.checked_add(args.data_participants))
            .ok_or_else(|| invalid("subscribers", "too many"))?;
        let total = per_room
            .checked_mul(args.rooms)
            .filter(|t| *t <= MAX_PARTICIPANTS)
            .ok_or_else(|| {
                invalid(
                    "rooms",
                    format!("at most {MAX_PARTICIPANTS} participants in all"),
                )
            })?;
        if total < 2 {
            return Err(invalid(
                "subscribers",
                "a room needs at least two participants (publishers, subscribers and data participants)",
            ));
        }
        if args.duration < Duration::from_secs(1) {
            return Err(invalid("duration", "must be at least 1s"));
        }
        if args.join_concurrency == 0 {
            return Err(invalid("join-concurrency", "must be at least 1"));
        }
        if args.progress_interval < Duration::from_millis(100) {
            return Err(invalid("progress-interval", "must be at least 100ms"));
        }
        let video_bitrate = args.video_bitrate.unwrap_or(if args.simulcast {
            DEFAULT_TOP_LAYER_BPS
        } else {
            DEFAULT_VIDEO_BPS
        });
        if video_bitrate < 10_000 {
            return Err(invalid("video-bitrate", "must be at least 10k"));
        }
        if !(0.0..=100.0).contains(&args.pacing_factor) {
            return Err(invalid(
                "pacing-factor",
                "must be 0 (unpaced) or a positive multiple up to 100",
            ));
        }
        if args.subscriber_quality != SubscriberQuality::High && !args.simulcast {
            return Err(invalid(
                "subscriber-quality",
                "needs --simulcast (one encoding has one quality)",
            ));
        }
        let simulcast = if args.simulcast {
            SimulcastLayer::defaults_with_top_bitrate(video_bitrate)
        } else {
            Vec::new()
        };
        let (ws_url, http) = normalize_url(&args.url).map_err(|r| invalid("url", r))?;
        let metrics = match &args.metrics_url {
            Some(u) => Some(HttpUrl::parse(u).map_err(|r| invalid("metrics-url", r))?),
            None => http.as_ref().map(|h| h.with_path("/metrics")),
        };
        let tokens = match (args.api_key, args.api_secret) {
            (Some(key), Some(secret)) => {
                if secret.len() < 32 {
                    return Err(invalid("api-secret", "must be at least 32 bytes"));
                }
                TokenSource::Key { key, secret }
            }
            _ => TokenSource::DevKeys(args.data_dir),
        };
        let room_prefix = match args.room_prefix {
            Some(p)
                if p.is_empty()
                    || p.len() > 64
                    || !p
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                return Err(invalid(
                    "room-prefix",
                    "1 to 64 characters of A-Z, a-z, 0-9, - and _",
                ))
            }
            Some(p) => p,
            None => format!("load-{:x}", std::process::id() ^ nanos()),
        };
        Ok(Config {
            ws_url,
            http,
            metrics,
            rooms: args.rooms,
            publishers: args.publishers,
            subscribers: args.subscribers,
            duration: args.duration,
            audio: args.audio,
            video_bitrate,
            simulcast,
            pacing_factor: args.pacing_factor,
            subscriber_quality: args.subscriber_quality,
            json: args.json,
            tokens,
            join_concurrency: args.join_concurrency,
            progress_interval: args.progress_interval,
            settle_timeout: args.settle_timeout,
            room_prefix,
            data_participants: args.data_participants,
            data: DataLoad {
                messages_per_sec: args.data_rate,
                bytes: args.data_size,
                channels: args.data_channel,
            },
        })
    }

    /// The shape of the synthetic media every participant would publish (the one-encoding video's bitrate and
    /// size; simulcast layers take theirs from [`Config::simulcast`]).
    pub fn media_options(&self) -> chorus_client::MediaOptions {
        chorus_client::MediaOptions {
            video_bitrate_bps: self.video_bitrate,
            pacing_factor: self.pacing_factor,
            ..chorus_client::MediaOptions::default()
        }
    }

    /// Participants per room.
    pub fn per_room(&self) -> usize {
        self.publishers + self.subscribers + self.data_participants
    }

    pub fn participants(&self) -> usize {
        self.rooms * self.per_room()
    }
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// `ws://host:port[/path]` → the WebSocket URL (with `/rtc` if no path) and, for `ws://`, the HTTP base.
fn normalize_url(url: &str) -> Result<(String, Option<HttpUrl>), String> {
    let (plain, rest) = if let Some(rest) = url.strip_prefix("ws://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("wss://") {
        (false, rest)
    } else {
        return Err(format!("{url:?} is not a ws:// or wss:// URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let path = if path.is_empty() || path == "/" {
        "/rtc"
    } else {
        path
    };
    let scheme = if plain { "ws" } else { "wss" };
    let http = if plain {
        Some(HttpUrl::parse(&format!("http://{authority}/"))?)
    } else {
        None
    };
    Ok((format!("{scheme}://{authority}{path}"), http))
}

/// `30s`, `2m`, `500ms`, `1h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 2m or 500ms"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?} (use ms, s, m or h)"
            ))
        }
    };
    if !seconds.is_finite() || !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{s:?} is out of range (0 to 24h)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `500000`, `500k`, `1.7M`.
pub fn parse_bitrate(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (number, factor) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1e3),
        Some((i, 'm' | 'M')) => (&s[..i], 1e6),
        _ => (s, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a bitrate like 500k or 1.7M"))?;
    let bps = value * factor;
    if !bps.is_finite() || !(0.0..=100e6).contains(&bps) {
        return Err(format!("{s:?} is out of range (0 to 100M)"));
    }
    Ok(bps as u32)
}

#[cfg(test)]
mod tests;
