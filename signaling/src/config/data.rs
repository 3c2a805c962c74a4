//! The `[data]` section of the configuration: data-channel message size limits, the per-participant rate
//! limit and the bound on what a slow receiver may have queued.

use anyhow::ensure;
use chorus_sfu::DataLimits;
use serde::Deserialize;

/// Data-channel limits. Every field has a default (see [`DataLimits::default`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Largest message on the `reliable` channel, envelope included (64 B-256 KiB). Default 65536.
    pub max_reliable_bytes: usize,
    /// Largest message on the `lossy` channel, envelope included (64 B-64 KiB). Default 1200 (one packet).
    pub max_lossy_bytes: usize,
    /// Messages per second one participant may send on average; bursts of twice that pass. 0 = unlimited.
    /// Default 200.
    pub messages_per_sec: u64,
    /// Bytes per second one participant may send on average; bursts of twice that pass. 0 = unlimited.
    /// Default 1048576.
    pub bytes_per_sec: u64,
    /// Bytes of data messages the server holds for one receiver (64 KiB-64 MiB). A receiver whose reliable
    /// messages no longer fit is disconnected (reason `dataBacklog`). Default 1048576.
    pub receiver_buffer_bytes: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        let d = DataLimits::default();
        DataConfig {
            max_reliable_bytes: d.max_reliable_bytes,
            max_lossy_bytes: d.max_lossy_bytes,
            messages_per_sec: d.messages_per_sec,
            bytes_per_sec: d.bytes_per_sec,
            receiver_buffer_bytes: d.receiver_buffer_bytes,
        }
    }
}

impl DataConfig {
    pub fn into_limits(self) -> anyhow::Result<DataLimits> {
        ensure!(
            (64..=256 * 1024).contains(&self.max_reliable_bytes),
            "data.max_reliable_bytes must be between 64 and 262144, not {}",
            self.max_reliable_bytes
        );
        ensure!(
            (64..=64 * 1024).contains(&self.max_lossy_bytes),
            "data.max_lossy_bytes must be between 64 and 65536, not {}",
            self.max_lossy_bytes
        );
        ensure!(
            (64 * 1024..=64 * 1024 * 1024).contains(&self.receiver_buffer_bytes),
            "data.receiver_buffer_bytes must be between 65536 and 67108864, not {}",
            self.receiver_buffer_bytes
        );
        ensure!(
            self.receiver_buffer_bytes >= self.max_reliable_bytes,
            "data.receiver_buffer_bytes ({}) must hold at least one reliable message ({})",
            self.receiver_buffer_bytes,
            self.max_reliable_bytes
        );
        Ok(DataLimits {
            max_reliable_bytes: self.max_reliable_bytes,
            max_lossy_bytes: self.max_lossy_bytes,
            messages_per_sec: self.messages_per_sec,
            bytes_per_sec: self.bytes_per_sec,
            receiver_buffer_bytes: self.receiver_buffer_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_refused() {
        assert_eq!(
            DataConfig::default().into_limits().ok(),
            Some(DataLimits::default())
        );
        let bad = DataConfig {
            max_reliable_bytes: 10,
            ..DataConfig::default()
        };
        assert!(bad.into_limits().is_err());
        let bad = DataConfig {
            receiver_buffer_bytes: 100,
            ..DataConfig::default()
        };
        assert!(bad.into_limits().is_err());
    }
}
