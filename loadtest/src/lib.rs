//! Chorus load tester: many real WebRTC participants (`chorus-client`, on webrtc-rs) in many rooms against one
//! server, and a report of what they saw and what it cost the server.
//!
//! Publishers send synthetic VP8 (keyframe every 2 s; with `--simulcast` in three layers, q/h/f) and optionally
//! Opus-sized audio, each frame stamped with its send time; every participant measures what arrives (bitrate —
//! per simulcast layer, told by the resolution in the keyframes that arrive — loss by RTP sequence number,
//! send → receive latency). The server's `/metrics` before and after the measurement window give its CPU seconds and forwarded
//! packets, hence **server CPU µs per forwarded packet** and **subscriber video streams per core**.
//!
//! `config.rs` owns the flags, `run.rs` the sequence, `report.rs` the figures (JSON field names are a stable
//! interface, see `loadtest/README.md`), `layers.rs` the simulcast layers (asked for, sent, received), `scrape.rs` and `http.rs` the `/metrics` reads, `tokens.rs` the tokens, `data.rs` the data-channel load (`--data-participants`), `workers.rs` each media
//! worker's share.

mod config;
pub mod data;
pub mod http;
mod layers;
mod report;
mod run;
pub mod scrape;
mod tokens;
pub mod workers;

pub use config::{parse_bitrate, parse_duration, Args, Config, ConfigError, TokenSource};
pub use layers::{LayerConfig, LayerFigures, SubscriberQuality};
pub use report::{Report, ReportConfig, ServerFigures, REPORT_VERSION};
pub use run::{run, Progress, RunError};
pub use tokens::TokenError;
