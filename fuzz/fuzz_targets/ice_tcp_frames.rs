//! libFuzzer entry point for `chorus_fuzz::ice_tcp_frames` (`cargo fuzz run --features libfuzzer ice_tcp_frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chorus_fuzz::ice_tcp_frames(data));
