//! libFuzzer entry point for `chorus_fuzz::keyframes` (`cargo fuzz run --features libfuzzer keyframes`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chorus_fuzz::keyframes(data));
