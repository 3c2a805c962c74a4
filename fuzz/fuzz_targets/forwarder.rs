//! libFuzzer entry point for `chorus_fuzz::forwarder` (`cargo fuzz run --features libfuzzer forwarder`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chorus_fuzz::forwarder(data));
