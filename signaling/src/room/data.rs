//! The signaling side of data channels: telling a participant its channels are ready on the server, and a
//! sender why its data messages were refused.
//!
//! Messages themselves never pass through here: the media worker terminates the data channels and fans
//! messages out (`chorus_sfu`'s `core/data.rs`); it reports refusals as [`chorus_sfu::Event::DataRejected`].

use chorus_protocol::{DataChannelKind, ErrorCode, ErrorMessage, ServerMessage};
use chorus_sfu::{DataKind, DataRejection, ParticipantKey};

use super::actor::Room;

impl Room {
    pub(super) fn data_ready(&self, key: ParticipantKey, kind: DataKind) {
        let Some(member) = self.members.get(&key) else {
            return;
        };
        let channel = match kind {
            DataKind::Reliable => DataChannelKind::Reliable,
            DataKind::Lossy => DataChannelKind::Lossy,
        };
        member.send(ServerMessage::DataReady { channel });
    }

    pub(super) fn data_rejected(
        &mut self,
        key: ParticipantKey,
        reason: DataRejection,
        count: u64,
        detail: String,
    ) {
        let Some(member) = self.members.get(&key) else {
            return;
        };
        tracing::debug!(room = %self.name, participant = %member.sid, ?reason, count, %detail, "data refused");
        let code = match reason {
            DataRejection::Forbidden => ErrorCode::PermissionDenied,
            DataRejection::TooLarge => ErrorCode::DataTooLarge,
            DataRejection::RateLimited => ErrorCode::RateLimited,
            DataRejection::Malformed => ErrorCode::BadRequest,
        };
        let message = if count > 1 {
            format!(
                "data message refused: {detail} ({count} messages refused since the last report)"
            )
        } else {
            format!("data message refused: {detail}")
        };
        member.send(ServerMessage::Error(ErrorMessage::new(code, message)));
    }
}
