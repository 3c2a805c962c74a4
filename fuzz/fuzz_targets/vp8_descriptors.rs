//! libFuzzer entry point for `chorus_fuzz::vp8_descriptors` (`cargo fuzz run --features libfuzzer vp8_descriptors`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chorus_fuzz::vp8_descriptors(data));
