//! libFuzzer entry point for `chorus_fuzz::client_message` (`cargo fuzz run --features libfuzzer client_message`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chorus_fuzz::client_message(data));
