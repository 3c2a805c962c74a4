//! The data path: messages arriving on a participant's `reliable` or `lossy` channel (or from the server) are
//! checked, stamped with the sender's identity and written to the same channel of every recipient.
//!
//! Owns the fan-out and what happens to a receiver that cannot keep up: a reliable message that does not fit
//! in its buffer ([`DataLimits::receiver_buffer_bytes`]) ends that receiver (it has stopped reading, and
//! dropping would break the channel's promise); a lossy one is dropped and counted. Policy per participant
//! (permission, limits, rate) is `crate::data`.

use std::time::Instant;

use chorus_protocol::data::{IncomingData, OutgoingData};
use str0m::channel::{ChannelData, ChannelId};

use super::WorkerCore;
use crate::api::{Event, ParticipantKey, PcKind, RoomKey, ServerData};
use crate::data::{DataKind, DataLimits, DataRejection};

/// A message ready to go out: the envelope as recipients see it, and who gets it.
struct Delivery<'a> {
    kind: DataKind,
    frame: &'a [u8],
    /// The sender (never a recipient), if a participant sent it.
    sender: Option<ParticipantKey>,
    /// Identities to deliver to; empty means everyone.
    to: &'a [&'a str],
}

impl WorkerCore {
    pub fn set_data_limits(&mut self, limits: DataLimits) {
        self.data_limits = limits;
    }

    pub(super) fn on_channel_open(&mut self, pk: ParticipantKey, id: ChannelId, label: &str) {
        let Some(p) = self.participants.get_mut(&pk) else {
            return;
        };
        if let Some(kind) = p.data.channel_opened(id, label) {
            tracing::debug!(participant = %pk, label, "data channel open");
            self.emit_for(
                pk,
                Event::DataReady {
                    participant: pk,
                    kind,
                },
            );
        } else {
            tracing::debug!(participant = %pk, label, "ignoring a data channel that is not ours");
        }
    }

    pub(super) fn on_channel_close(&mut self, pk: ParticipantKey, id: ChannelId) {
        if let Some(p) = self.participants.get_mut(&pk) {
            p.data.channel_closed(id);
        }
    }

    pub(super) fn on_channel_data(&mut self, now: Instant, pk: ParticipantKey, data: ChannelData) {
        let limits = self.data_limits;
        let Some(p) = self.participants.get_mut(&pk) else {
            return;
        };
        let Some(kind) = p.data.kind_of(data.id) else {
            return;
        };
        self.stats.data_messages_in += 1;
        if let Err(reason) = p.data.admit(now, kind, data.data.len(), &limits) {
            let detail = admission_detail(reason, kind, data.data.len(), &limits);
            self.refuse_data(now, pk, reason, detail);
            return;
        }
        let message = match OutgoingData::decode(&data.data) {
            Ok(m) => m,
            Err(e) => {
                self.refuse_data(now, pk, DataRejection::Malformed, e.to_string());
                return;
            }
        };
        let identity = p.data.identity.clone();
        let room = p.room;
        let mut frame = Vec::with_capacity(data.data.len() + identity.len());
        IncomingData {
            text: message.text,
            from: Some(&identity),
            topic: message.topic,
            payload: message.payload,
        }
        .encode(&mut frame);
        self.deliver(
            now,
            room,
            Delivery {
                kind,
                frame: &frame,
                sender: Some(pk),
                to: &message.to,
            },
        );
    }

    pub(super) fn send_server_data(&mut self, now: Instant, room: RoomKey, message: &ServerData) {
        let mut frame = Vec::with_capacity(message.payload.len() + message.topic.len() + 8);
        IncomingData {
            text: message.text,
            from: None,
            topic: &message.topic,
            payload: &message.payload,
        }
        .encode(&mut frame);
        let to: Vec<&str> = message.to.iter().map(String::as_str).collect();
        let kind = if message.reliable {
            DataKind::Reliable
        } else {
            DataKind::Lossy
        };
        self.deliver(
            now,
            room,
            Delivery {
                kind,
                frame: &frame,
                sender: None,
                to: &to,
            },
        );
    }

    pub(super) fn set_can_publish_data(&mut self, pk: ParticipantKey, allowed: bool) {
        if let Some(p) = self.participants.get_mut(&pk) {
            p.data.can_publish = allowed;
        }
    }

    fn refuse_data(
        &mut self,
        now: Instant,
        pk: ParticipantKey,
        reason: DataRejection,
        detail: String,
    ) {
        self.stats.data_rejected += 1;
        let Some(p) = self.participants.get_mut(&pk) else {
            return;
        };
        if let Some(count) = p.data.refusal_to_report(now) {
            self.emit_for(
                pk,
                Event::DataRejected {
                    participant: pk,
                    reason,
                    count,
                    detail,
                },
            );
        }
    }

    /// Writes `d.frame` to the `d.kind` channel of every recipient in `room`; ends reliable receivers whose
    /// buffer is full.
    fn deliver(&mut self, now: Instant, room: RoomKey, d: Delivery<'_>) {
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let lossy_cap = self.data_limits.receiver_buffer_bytes / 4;
        let mut backlogged = Vec::new();
        for &rk in &r.participants {
            if Some(rk) == d.sender {
                continue;
            }
            let Some(q) = self.participants.get_mut(&rk) else {
                continue;
            };
            if !d.to.is_empty() && !d.to.contains(&&*q.data.identity) {
                continue;
            }
            let Some(id) = q.data.channel(d.kind) else {
                continue;
            };
            let Some(mut channel) = q.publisher.rtc().channel(id) else {
                continue;
            };
            if d.kind == DataKind::Lossy && channel.buffered_amount() + d.frame.len() > lossy_cap {
                self.stats.data_dropped += 1;
                continue;
            }
            match channel.write(true, d.frame) {
                Ok(true) => {
                    self.stats.data_messages_out += 1;
                    self.stats.data_bytes_out += d.frame.len() as u64;
                    q.mark_dirty(PcKind::Publisher, &mut self.dirty);
                }
                Ok(false) if d.kind == DataKind::Reliable => backlogged.push(rk),
                Ok(false) => self.stats.data_dropped += 1,
                Err(e) => {
                    // The channel is closing or not yet established: nothing was queued.
                    tracing::debug!(participant = %rk, error = %e, "data write failed");
                    self.stats.data_dropped += 1;
                }
            }
        }
        for rk in backlogged {
            self.stats.data_backlog_disconnects += 1;
            tracing::info!(participant = %rk, "reliable data backlog full; removing the participant");
            self.remove_participant(now, rk);
            self.emit(
                room,
                Event::DataBacklog {
                    participant: rk,
                    buffer_bytes: self.data_limits.receiver_buffer_bytes,
                },
            );
        }
    }
}

/// What to tell a sender whose message [`crate::data::DataEndpoint::admit`] refused.
fn admission_detail(
    reason: DataRejection,
    kind: DataKind,
    len: usize,
    limits: &DataLimits,
) -> String {
    match reason {
        DataRejection::Forbidden => {
            "this token does not allow sending data (canPublishData is false)".to_owned()
        }
        DataRejection::TooLarge => format!(
            "a {len} byte message on the {} channel (at most {})",
            kind.label(),
            kind.max_bytes(limits)
        ),
        DataRejection::RateLimited => format!(
            "over the data rate limit ({} messages/s, {} bytes/s)",
            limits.messages_per_sec, limits.bytes_per_sec
        ),
        DataRejection::Malformed => "not a valid data envelope".to_owned(),
    }
}
