//! The client's integration tests against an in-process server, as one test binary: each file is a module, so
//! webrtc-rs and the server are compiled into and linked with one executable instead of one per file (most of
//! what these tests cost CI). Run one file's tests with `cargo test -p chorus-client --test e2e chat::`.

mod support;

mod api_moderation;
mod call_quality;
mod chat;
mod cluster;
mod data_channels;
mod simulcast;
mod subscription_control;
mod two_participants;
