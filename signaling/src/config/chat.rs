//! The chat options of the configuration (`chat_history_size`, `chat_max_text_bytes`, `chat_rate_per_minute`,
//! `chat_rate_burst`): their bounds, checked when the server's settings are built.

use std::ops::RangeInclusive;

use anyhow::ensure;

use super::{ChatSettings, Config};

const CHAT_HISTORY_RANGE: RangeInclusive<usize> = 0..=10_000;
const CHAT_TEXT_BYTES_RANGE: RangeInclusive<usize> = 1..=32 * 1024;
const MAX_CHAT_RATE_PER_MINUTE: u32 = 60_000;
const CHAT_RATE_BURST_RANGE: RangeInclusive<u32> = 1..=10_000;

/// The validated chat settings of `config`.
pub(super) fn settings(config: &Config) -> anyhow::Result<ChatSettings> {
    ensure!(
        CHAT_HISTORY_RANGE.contains(&config.chat_history_size),
        "chat_history_size must be at most {}, not {}",
        CHAT_HISTORY_RANGE.end(),
        config.chat_history_size
    );
    ensure!(
        CHAT_TEXT_BYTES_RANGE.contains(&config.chat_max_text_bytes),
        "chat_max_text_bytes must be between {} and {}, not {}",
        CHAT_TEXT_BYTES_RANGE.start(),
        CHAT_TEXT_BYTES_RANGE.end(),
        config.chat_max_text_bytes
    );
    ensure!(
        config.chat_rate_per_minute <= MAX_CHAT_RATE_PER_MINUTE,
        "chat_rate_per_minute must be at most {MAX_CHAT_RATE_PER_MINUTE}, not {}",
        config.chat_rate_per_minute
    );
    ensure!(
        CHAT_RATE_BURST_RANGE.contains(&config.chat_rate_burst),
        "chat_rate_burst must be between {} and {}, not {}",
        CHAT_RATE_BURST_RANGE.start(),
        CHAT_RATE_BURST_RANGE.end(),
        config.chat_rate_burst
    );
    Ok(ChatSettings {
        history_size: config.chat_history_size,
        max_text_bytes: config.chat_max_text_bytes,
        rate_per_minute: config.chat_rate_per_minute,
        rate_burst: config.chat_rate_burst,
    })
}
