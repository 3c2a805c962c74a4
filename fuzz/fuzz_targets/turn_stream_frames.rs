//! libFuzzer entry point for `chorus_fuzz::turn_stream_frames` (`cargo fuzz run --features libfuzzer turn_stream_frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chorus_fuzz::turn_stream_frames(data));
