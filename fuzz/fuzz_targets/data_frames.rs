//! libFuzzer entry point for `chorus_fuzz::data_frames` (`cargo fuzz run --features libfuzzer data_frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chorus_fuzz::data_frames(data));
