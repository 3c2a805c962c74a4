//! libFuzzer entry point for `chorus_fuzz::rtp_extensions` (`cargo fuzz run --features libfuzzer rtp_extensions`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chorus_fuzz::rtp_extensions(data));
