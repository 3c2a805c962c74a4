//! The server's integration tests as one test binary: each former `tests/<name>.rs` is a module here, so the
//! server (and, for `failover`, the Rust client with webrtc-rs) is compiled into and linked with one executable
//! instead of one per file. The modules' tests run in parallel threads of this one process: nothing may set
//! process-wide state (environment variables, a global tracing subscriber, fixed ports) that another module's
//! tests would see. Run one module's tests with `cargo test -p chorus-signaling --test server cluster::`.

mod support;

mod api_auth;
mod api_identities;
mod api_rooms;
mod chat;
mod cluster;
mod failover;
mod redis_outage;
mod signaling;
mod turn;
mod webhooks;
