//! Server-side control of a room (the REST API's room endpoints): read its state, remove a participant, mute a
//! track, change grants or cap the downlink mid-call, revoke an identity's tokens, close the room, read a participant's call quality. Requests arrive as
//! [`AdminMsg`]s on the room's own queue, so they are ordered with everything else the room does.

use chorus_protocol::{ServerMessage, TrackInfo};
use chorus_sfu::{Command, ParticipantKey};
use serde::Serialize;
use tokio::sync::oneshot;

use super::actor::Room;
use super::member::Member;
use crate::auth::Grants;

/// Reason given to participants removed by the API.
pub const REASON_REMOVED: &str = "removed";
/// Reason given to participants whose tokens were revoked.
pub const REASON_REVOKED: &str = "revoked";
/// Reason given to everyone when the room is deleted.
pub const REASON_ROOM_CLOSED: &str = "roomClosed";

pub enum AdminMsg {
    Info(oneshot::Sender<RoomSnapshot>),
    Participants(oneshot::Sender<Vec<ParticipantSnapshot>>),
    /// Remove the participant with this identity; replies whether there was one.
    Remove {
        identity: String,
        reply: oneshot::Sender<bool>,
    },
    Mute {
        identity: String,
        track_sid: String,
        muted: bool,
        reply: oneshot::Sender<Result<TrackInfo, AdminError>>,
    },
    UpdateGrants {
        identity: String,
        update: GrantsUpdate,
        reply: oneshot::Sender<Result<ParticipantSnapshot, AdminError>>,
    },
    /// Cap what the server sends the participant with this identity at `max_bps` (None: lift the cap); its
    /// simulcast layers are chosen to fit, as if its downlink were that narrow.
    LimitDownlink {
        identity: String,
        max_bps: Option<u64>,
        reply: oneshot::Sender<Result<ParticipantSnapshot, AdminError>>,
    },
    /// Disconnect every participant of `identity` whose token was issued at or before `issued_before` (or has no
    /// `iat`); replies how many.
    Revoke {
        identity: String,
        issued_before: u64,
        reply: oneshot::Sender<usize>,
    },
    /// End the call: everyone leaves with `roomClosed`, the room closes.
    Close(oneshot::Sender<()>),
    /// Send a data message from the server to the room's participants (all, or `message.to`).
    SendData {
        message: chorus_sfu::ServerData,
        reply: oneshot::Sender<()>,
    },
    /// The room's chat history, oldest first.
    ChatHistory(oneshot::Sender<Vec<chorus_protocol::ChatMessage>>),
    /// The call quality of the participant with this identity (`call_quality.rs`).
    Quality {
        identity: String,
        reply: oneshot::Sender<Result<super::ParticipantQualityReport, AdminError>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error("no such participant in this room")]
    UnknownParticipant,
    #[error("the participant has no such track")]
    UnknownTrack,
}

/// Grants to change; `None` leaves a grant as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrantsUpdate {
    pub can_publish: Option<bool>,
    pub can_subscribe: Option<bool>,
    pub can_publish_data: Option<bool>,
    pub can_chat: Option<bool>,
    pub room_admin: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomSnapshot {
    pub name: String,
    pub sid: String,
    pub created_at: u64,
    /// 0 means no limit.
    pub max_participants: u32,
    pub empty_timeout_secs: u64,
    pub metadata: String,
    pub num_participants: usize,
    pub num_tracks: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantSnapshot {
    pub sid: String,
    pub identity: String,
    pub name: String,
    pub joined_at: u64,
    /// False while its WebSocket is gone (within the resume window).
    pub connected: bool,
    pub grants: Grants,
    pub tracks: Vec<TrackInfo>,
    /// The cap set with `maxDownlinkBps`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_downlink_bps: Option<u64>,
}

impl Room {
    pub(super) fn admin(&mut self, msg: AdminMsg) {
        match msg {
            AdminMsg::Info(reply) => {
                let _ = reply.send(self.room_snapshot());
            }
            AdminMsg::Participants(reply) => {
                let list = self
                    .members
                    .values()
                    .map(|m| self.participant_snapshot(m))
                    .collect();
                let _ = reply.send(list);
            }
            AdminMsg::Remove { identity, reply } => {
                let found = self.member_by_identity(&identity);
                if let Some(key) = found {
                    self.remove_member(key, REASON_REMOVED);
                }
                let _ = reply.send(found.is_some());
            }
            AdminMsg::Mute {
                identity,
                track_sid,
                muted,
                reply,
            } => {
                let _ = reply.send(self.admin_mute(&identity, &track_sid, muted));
            }
            AdminMsg::SendData { message, reply } => {
                self.worker.send(Command::SendData {
                    room: self.key,
                    message,
                });
                let _ = reply.send(());
            }
            AdminMsg::UpdateGrants {
                identity,
                update,
                reply,
            } => {
                let _ = reply.send(self.update_grants(&identity, update));
            }
            AdminMsg::LimitDownlink {
                identity,
                max_bps,
                reply,
            } => {
                let _ = reply.send(self.limit_downlink(&identity, max_bps));
            }
            AdminMsg::Revoke {
                identity,
                issued_before,
                reply,
            } => {
                let revoked: Vec<ParticipantKey> = self
                    .members
                    .values()
                    .filter(|m| {
                        m.identity == identity && m.issued_at.is_none_or(|iat| iat <= issued_before)
                    })
                    .map(|m| m.key)
                    .collect();
                for key in &revoked {
                    self.remove_member(*key, REASON_REVOKED);
                }
                let _ = reply.send(revoked.len());
            }
            AdminMsg::Close(reply) => {
                let keys: Vec<ParticipantKey> = self.members.keys().copied().collect();
                for key in keys {
                    self.remove_member(key, REASON_ROOM_CLOSED);
                }
                self.close_now();
                let _ = reply.send(());
            }
            AdminMsg::ChatHistory(reply) => {
                let _ = reply.send(self.chat_history());
            }
            AdminMsg::Quality { identity, reply } => self.query_quality(&identity, reply),
        }
    }

    fn member_by_identity(&self, identity: &str) -> Option<ParticipantKey> {
        self.members
            .values()
            .find(|m| m.identity == identity)
            .map(|m| m.key)
    }

    pub(super) fn room_snapshot(&self) -> RoomSnapshot {
        RoomSnapshot {
            name: self.name.clone(),
            sid: self.sid.clone(),
            created_at: self.created_at,
            max_participants: self.options.max_participants,
            empty_timeout_secs: self.options.empty_timeout.as_secs(),
            metadata: self.options.metadata.clone(),
            num_participants: self.members.len(),
            num_tracks: self.tracks.values().filter(|t| t.announced).count(),
        }
    }

    fn participant_snapshot(&self, m: &Member) -> ParticipantSnapshot {
        ParticipantSnapshot {
            sid: m.sid.clone(),
            identity: m.identity.clone(),
            name: m.name.clone(),
            joined_at: m.joined_at,
            connected: m.session.is_some(),
            grants: m.grants,
            tracks: self.track_infos(m),
            max_downlink_bps: m.downlink_cap,
        }
    }

    fn admin_mute(
        &mut self,
        identity: &str,
        track_sid: &str,
        muted: bool,
    ) -> Result<TrackInfo, AdminError> {
        let key = self
            .member_by_identity(identity)
            .ok_or(AdminError::UnknownParticipant)?;
        let track = self
            .tracks
            .values()
            .find(|t| t.owner == key && t.sid == track_sid)
            .ok_or(AdminError::UnknownTrack)?;
        let changed = track.info.muted != muted;
        self.mute(key, track_sid, muted);
        if changed {
            // `mute` tells everyone else; the owner learns that the server muted it.
            if let Some(m) = self.members.get(&key) {
                m.send(ServerMessage::TrackMuted {
                    participant_sid: m.sid.clone(),
                    track_sid: track_sid.to_string(),
                    muted,
                });
            }
        }
        self.tracks
            .values()
            .find(|t| t.owner == key && t.sid == track_sid)
            .map(|t| t.info.clone())
            .ok_or(AdminError::UnknownTrack)
    }

    fn update_grants(
        &mut self,
        identity: &str,
        update: GrantsUpdate,
    ) -> Result<ParticipantSnapshot, AdminError> {
        let key = self
            .member_by_identity(identity)
            .ok_or(AdminError::UnknownParticipant)?;
        let member = self
            .members
            .get_mut(&key)
            .ok_or(AdminError::UnknownParticipant)?;
        let before = member.grants;
        let g = &mut member.grants;
        for (field, value) in [
            (&mut g.can_publish, update.can_publish),
            (&mut g.can_subscribe, update.can_subscribe),
            (&mut g.can_publish_data, update.can_publish_data),
            (&mut g.can_chat, update.can_chat),
            (&mut g.room_admin, update.room_admin),
        ] {
            if let Some(v) = value {
                *field = v;
            }
        }
        let after = *g;
        if before.can_publish && !after.can_publish {
            let tracks = member.tracks.clone();
            for track in tracks {
                self.unpublish(track);
            }
        }
        if before.can_publish_data != after.can_publish_data {
            self.worker.send(Command::SetCanPublishData {
                participant: key,
                allowed: after.can_publish_data,
            });
        }
        if before.can_subscribe != after.can_subscribe {
            if after.can_subscribe {
                self.subscribe_newcomer(key);
            } else {
                for (track_key, track) in &self.tracks {
                    if track.announced && track.owner != key {
                        self.worker.send(Command::SetSubscribed {
                            subscriber: key,
                            track: *track_key,
                            subscribed: false,
                        });
                    }
                }
            }
        }
        tracing::info!(room = %self.name, identity, ?after, "grants updated");
        let member = self
            .members
            .get(&key)
            .ok_or(AdminError::UnknownParticipant)?;
        Ok(self.participant_snapshot(member))
    }

    fn limit_downlink(
        &mut self,
        identity: &str,
        max_bps: Option<u64>,
    ) -> Result<ParticipantSnapshot, AdminError> {
        let key = self
            .member_by_identity(identity)
            .ok_or(AdminError::UnknownParticipant)?;
        let member = self
            .members
            .get_mut(&key)
            .ok_or(AdminError::UnknownParticipant)?;
        member.downlink_cap = max_bps;
        self.worker.send(Command::SetEstimateCap {
            participant: key,
            cap_bps: max_bps,
        });
        tracing::info!(room = %self.name, identity, ?max_bps, "downlink cap set");
        let member = self
            .members
            .get(&key)
            .ok_or(AdminError::UnknownParticipant)?;
        Ok(self.participant_snapshot(member))
    }
}
