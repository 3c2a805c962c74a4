//! Fuzz targets for what Chorus reads from the network: signaling messages, data-channel envelopes, VP8 payload
//! descriptors, the forwarder's numbering across arbitrary packet sequences, whole datagrams into a media
//! core with a live call, and the length-prefixed framing of ICE-TCP and TURN-over-TCP streams. Each target is
//! a plain function of the fuzzer's bytes that panics only on a bug (an input that makes the code under test
//! panic, or breaks a property the target checks).
//!
//! Two drivers run them: `cargo fuzz` (libFuzzer, nightly; `fuzz_targets/`) for deep, coverage-guided runs,
//! and `tests/smoke.rs`, which runs every target on its seeds and thousands of deterministic mutations of them
//! (`mutate.rs`) in every `cargo test`. `docs/fuzzing.md` has the commands and what the runs found.

mod framing;
pub mod media;
pub mod mutate;
mod parsers;

pub use framing::{ice_tcp_frames, turn_stream_frames};
pub use media::MediaCore;
pub use parsers::{
    client_message, data_frames, forwarder, keyframes, rtp_extensions, vp8_descriptors,
};
