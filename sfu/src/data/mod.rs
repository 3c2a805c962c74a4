//! Data channels: each participant's `reliable` and `lossy` channels on its publisher connection, what it may
//! send (permission, size and rate limits), and the throttled reporting of refused messages.
//!
//! Owns the per-participant policy state ([`DataEndpoint`]) and the limits ([`DataLimits`]); the fan-out
//! itself (decoding the envelope, choosing recipients, writing to their channels) is `core/data.rs`. The
//! envelope format is `chorus_protocol::data`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::channel::ChannelId;

mod rate;

pub use rate::TokenBucket;

/// The label of the ordered, reliable channel.
pub const RELIABLE_LABEL: &str = "reliable";
/// The label of the unordered channel without retransmissions.
pub const LOSSY_LABEL: &str = "lossy";

/// Limits on what participants send and on what a receiver may have queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLimits {
    /// Largest message (envelope included) on the reliable channel, in bytes.
    pub max_reliable_bytes: usize,
    /// Largest message (envelope included) on the lossy channel, in bytes: about one packet.
    pub max_lossy_bytes: usize,
    /// Messages per second one participant may send, averaged; bursts of twice that pass. 0 = unlimited.
    pub messages_per_sec: u64,
    /// Bytes per second one participant may send, averaged; bursts of twice that pass. 0 = unlimited.
    pub bytes_per_sec: u64,
    /// Bytes the server may hold for one receiver's data channels (not yet acknowledged by it). A reliable
    /// message that does not fit disconnects the receiver (it has stopped reading); a lossy one is dropped
    /// once a quarter of this is queued.
    pub receiver_buffer_bytes: usize,
}

impl Default for DataLimits {
    fn default() -> Self {
        DataLimits {
            max_reliable_bytes: 64 * 1024,
            max_lossy_bytes: 1200,
            messages_per_sec: 200,
            bytes_per_sec: 1024 * 1024,
            receiver_buffer_bytes: 1024 * 1024,
        }
    }
}

/// Which of the two channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    Reliable,
    Lossy,
}

impl DataKind {
    pub fn from_label(label: &str) -> Option<DataKind> {
        match label {
            RELIABLE_LABEL => Some(DataKind::Reliable),
            LOSSY_LABEL => Some(DataKind::Lossy),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DataKind::Reliable => RELIABLE_LABEL,
            DataKind::Lossy => LOSSY_LABEL,
        }
    }

    pub fn max_bytes(self, limits: &DataLimits) -> usize {
        match self {
            DataKind::Reliable => limits.max_reliable_bytes,
            DataKind::Lossy => limits.max_lossy_bytes,
        }
    }
}

/// Why a participant's message was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataRejection {
    /// The participant may not publish data (`canPublishData` is false).
    Forbidden,
    /// Bigger than the channel's limit.
    TooLarge,
    /// Over the participant's message or byte rate.
    RateLimited,
    /// Not a valid envelope (`chorus_protocol::data`).
    Malformed,
}

/// At most one refusal report per participant in this interval; the ones in between are counted into the next.
const REJECTION_REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// One participant's data side.
#[derive(Debug)]
pub struct DataEndpoint {
    /// Stamped as `from` on everything this participant sends, and matched against `to` lists.
    pub identity: Arc<str>,
    pub can_publish: bool,
    reliable: Option<ChannelId>,
    lossy: Option<ChannelId>,
    messages: TokenBucket,
    bytes: TokenBucket,
    last_report: Option<Instant>,
    /// Refusals since the last report.
    unreported: u64,
}

impl DataEndpoint {
    pub fn new(identity: Arc<str>, can_publish: bool, limits: &DataLimits) -> Self {
        DataEndpoint {
            identity,
            can_publish,
            reliable: None,
            lossy: None,
            messages: TokenBucket::new(limits.messages_per_sec, limits.messages_per_sec * 2),
            bytes: TokenBucket::new(limits.bytes_per_sec, limits.bytes_per_sec * 2),
            last_report: None,
            unreported: 0,
        }
    }

    /// Records a channel the participant opened; `None` when its label is not one of ours.
    pub fn channel_opened(&mut self, id: ChannelId, label: &str) -> Option<DataKind> {
        let kind = DataKind::from_label(label)?;
        match kind {
            DataKind::Reliable => self.reliable = Some(id),
            DataKind::Lossy => self.lossy = Some(id),
        }
        Some(kind)
    }

    pub fn channel_closed(&mut self, id: ChannelId) {
        if self.reliable == Some(id) {
            self.reliable = None;
        }
        if self.lossy == Some(id) {
            self.lossy = None;
        }
    }

    pub fn kind_of(&self, id: ChannelId) -> Option<DataKind> {
        if self.reliable == Some(id) {
            Some(DataKind::Reliable)
        } else if self.lossy == Some(id) {
            Some(DataKind::Lossy)
        } else {
            None
        }
    }

    pub fn channel(&self, kind: DataKind) -> Option<ChannelId> {
        match kind {
            DataKind::Reliable => self.reliable,
            DataKind::Lossy => self.lossy,
        }
    }

    /// Whether a message of `len` bytes on `kind` may go out now; spends rate tokens when it may.
    pub fn admit(
        &mut self,
        now: Instant,
        kind: DataKind,
        len: usize,
        limits: &DataLimits,
    ) -> Result<(), DataRejection> {
        if !self.can_publish {
            return Err(DataRejection::Forbidden);
        }
        if len > kind.max_bytes(limits) {
            return Err(DataRejection::TooLarge);
        }
        if !self.messages.take(now, 1) || !self.bytes.take(now, len as u64) {
            return Err(DataRejection::RateLimited);
        }
        Ok(())
    }

    /// Counts a refusal; returns how many refusals to report now (this one included), or `None` while
    /// reports are throttled.
    pub fn refusal_to_report(&mut self, now: Instant) -> Option<u64> {
        self.unreported += 1;
        let due = self
            .last_report
            .is_none_or(|t| now.saturating_duration_since(t) >= REJECTION_REPORT_INTERVAL);
        if !due {
            return None;
        }
        self.last_report = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(limits: &DataLimits) -> DataEndpoint {
        DataEndpoint::new("alice".into(), true, limits)
    }

    #[test]
    fn admits_within_limits_and_refuses_outside() {
        let limits = DataLimits::default();
        let t0 = Instant::now();
        let mut e = endpoint(&limits);
        assert_eq!(e.admit(t0, DataKind::Reliable, 64 * 1024, &limits), Ok(()));
        assert_eq!(
            e.admit(t0, DataKind::Reliable, 64 * 1024 + 1, &limits),
            Err(DataRejection::TooLarge)
        );
        assert_eq!(
            e.admit(t0, DataKind::Lossy, 1201, &limits),
            Err(DataRejection::TooLarge)
        );
        e.can_publish = false;
        assert_eq!(
            e.admit(t0, DataKind::Lossy, 10, &limits),
            Err(DataRejection::Forbidden)
        );
    }

    #[test]
    fn the_message_rate_is_enforced() {
        let limits = DataLimits {
            messages_per_sec: 10,
            ..DataLimits::default()
        };
        let t0 = Instant::now();
        let mut e = endpoint(&limits);
        let admitted = (0..100)
            .filter(|_| e.admit(t0, DataKind::Lossy, 10, &limits).is_ok())
            .count();
        assert_eq!(admitted, 20, "a burst of twice the rate");
        assert_eq!(
            e.admit(t0, DataKind::Lossy, 10, &limits),
            Err(DataRejection::RateLimited)
        );
        assert_eq!(
            e.admit(
                t0 + Duration::from_millis(100),
                DataKind::Lossy,
                10,
                &limits
            ),
            Ok(())
        );
    }

    #[test]
    fn refusal_reports_are_throttled_and_counted() {
        let t0 = Instant::now();
        let mut e = endpoint(&DataLimits::default());
        assert_eq!(e.refusal_to_report(t0), Some(1));
        assert_eq!(e.refusal_to_report(t0), None);
        assert_eq!(e.refusal_to_report(t0 + Duration::from_millis(100)), None);
        assert_eq!(
            e.refusal_to_report(t0 + REJECTION_REPORT_INTERVAL),
            Some(3),
            "the throttled ones are reported with the next"
        );
    }
}
