//! The media core's integration tests as one test binary: the sans-IO `WorkerCore` between str0m clients on a
//! virtual network and clock (`support/`), each former `tests/<name>.rs` a module here, so str0m and the core
//! are linked into one executable instead of one per file. Run one module's tests with
//! `cargo test -p chorus-sfu --test worker_core simulcast::`.

mod support;

mod active_speakers;
mod call_quality;
mod core_forwarding;
mod data_channels;
mod simulcast;
