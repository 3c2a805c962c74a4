//! Joining a room, resuming a dropped connection, and noticing a drop: who becomes a member, and what they and
//! the others are told. The rest of the member lifecycle (leaving, removal) stays in `actor.rs`.

use chorus_protocol::{ErrorCode, ErrorMessage, ServerMessage};
use chorus_sfu::{Command, ParticipantKey};
use tokio::sync::oneshot;

use super::actor::Room;
use super::member::Member;
use super::{Attached, JoinReply, RoomEvent, RoomMsg, SessionTx};
use crate::auth::{now_unix_secs, VerifiedToken};
use crate::ids;

impl Room {
    pub(super) fn is_current(&self, from: Attached) -> bool {
        self.members
            .get(&from.participant)
            .is_some_and(|m| m.epoch == from.epoch)
    }

    pub(super) fn join(
        &mut self,
        token: VerifiedToken,
        auto_subscribe: bool,
        session: SessionTx,
        reply: oneshot::Sender<JoinReply>,
    ) {
        let duplicate = self
            .members
            .values()
            .find(|m| m.identity == token.identity)
            .map(|m| m.key);
        let max = self.options.max_participants as usize;
        let others = self.members.len() - usize::from(duplicate.is_some());
        if max > 0 && others >= max {
            let _ = reply.send(JoinReply::Refused(ErrorMessage::new(
                ErrorCode::RoomFull,
                format!("the room is full ({max} participants)"),
            )));
            return;
        }
        self.empty_generation += 1;
        if let Some(old) = duplicate {
            self.remove_member(old, "duplicateIdentity");
            self.closing = false;
        }
        let key = ParticipantKey(ids::next_key());
        let attached = Attached {
            participant: key,
            epoch: 1,
        };
        if reply.send(JoinReply::Ok(attached)).is_err() {
            // The session went away while waiting.
            if self.members.is_empty() {
                self.became_empty();
            }
            return;
        }
        let member = Member {
            key,
            sid: ids::sid("PA"),
            name: if token.name.is_empty() {
                token.identity.clone()
            } else {
                token.name.clone()
            },
            identity: token.identity,
            grants: token.grants,
            issued_at: token.issued_at,
            joined_at: now_unix_secs(),
            auto_subscribe,
            resume_token: ids::random_string(32),
            session: Some(session),
            epoch: 1,
            tracks: Vec::new(),
            overrides: Default::default(),
            prefs: Default::default(),
            downlink_cap: None,
        };
        tracing::info!(room = %self.name, participant = %member.sid, identity = %member.identity, "joined");
        self.worker.send(Command::AddParticipant {
            room: self.key,
            participant: key,
            identity: member.identity.as_str().into(),
            can_publish_data: member.grants.can_publish_data,
        });
        member.send(ServerMessage::Joined(self.snapshot(&member)));
        self.send_chat_history(&member, false);
        if member.visible() {
            self.broadcast(
                key,
                ServerMessage::ParticipantJoined {
                    participant: member.info(Vec::new()),
                },
            );
        }
        self.participants_total += 1;
        self.quality.joined(key, Self::participant_ref(&member));
        self.emit(RoomEvent::ParticipantJoined {
            room: self.room_ref(),
            participant: Self::participant_ref(&member),
        });
        self.members.insert(key, member);
        self.subscribe_newcomer(key);
    }

    pub(super) fn resume(
        &mut self,
        token: &VerifiedToken,
        participant_sid: &str,
        resume_token: &str,
        session: SessionTx,
        reply: oneshot::Sender<JoinReply>,
    ) {
        let found = self.members.values_mut().find(|m| {
            m.sid == participant_sid
                && m.identity == token.identity
                && ids::constant_time_eq(&m.resume_token, resume_token)
        });
        let Some(member) = found else {
            let _ = reply.send(JoinReply::Refused(ErrorMessage::new(
                ErrorCode::ResumeFailed,
                "no such participant to resume (it left, or the resume window passed)",
            )));
            return;
        };
        if let Some(old) = member.session.take() {
            let _ = old.send(super::Outbound::Close);
        }
        member.epoch += 1;
        let attached = Attached {
            participant: member.key,
            epoch: member.epoch,
        };
        if reply.send(JoinReply::Ok(attached)).is_err() {
            return;
        }
        member.session = Some(session);
        let key = member.key;
        tracing::info!(room = %self.name, participant = %participant_sid, "resumed");
        if let Some(member) = self.members.get(&key) {
            member.send(ServerMessage::Resumed(self.snapshot(member)));
            self.send_chat_history(member, true);
        }
        self.worker
            .send(Command::ResendSubscriberOffer { participant: key });
    }

    pub(super) fn detached(&mut self, from: Attached) {
        let Some(member) = self.members.get_mut(&from.participant) else {
            return;
        };
        if member.epoch != from.epoch {
            return;
        }
        member.session = None;
        tracing::info!(room = %self.name, participant = %member.sid, "connection dropped; waiting for resume");
        let tx = self.self_tx.clone();
        let window = self.settings.resume_window;
        tokio::spawn(async move {
            tokio::time::sleep(window).await;
            let _ = tx.send(RoomMsg::ResumeExpired { from });
        });
    }
}
