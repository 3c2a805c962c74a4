//! Chorus server: HTTP + WebSocket signaling in front of the `chorus-sfu` media workers.
//!
//! Owns the outside world — tokens, configuration, the room registry and the JSON protocol — and drives the media
//! workers through `chorus_sfu::Command`s.

pub mod api;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod dev_keys;
pub mod metrics;
pub mod node;
pub mod server;
pub mod store;
pub mod testing;
pub mod tls;
pub mod turn;
pub mod webhooks;

mod assets;
mod ids;
mod redis_conn;
mod room;
mod session;
