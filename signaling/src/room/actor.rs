//! The room actor: one task per room owning its members, driving its media worker, and deciding who hears
//! about what. Membership and lifecycle live here; publishing and subscriptions in `media.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use chorus_protocol::{
    ClientMessage, ErrorCode, ErrorMessage, JoinedResponse, RoomInfo, ServerMessage,
    PROTOCOL_VERSION,
};
use chorus_sfu::{Command, ParticipantKey, RoomKey, TrackKey, WorkerHandle};
use tokio::sync::{mpsc, oneshot};

use super::call_quality::QualityLog;
use super::chat::ChatRoom;
use super::media::Track;
use super::member::Member;
use super::quality::PreferenceRequest;
use super::registry::{Registry, RoomOptions, RoomSettings};
use super::{Attached, JoinReply, ParticipantRef, RoomEvent, RoomMsg, RoomRef, SessionTx};
use crate::auth::{now_unix_secs, VerifiedToken};
use crate::ids;

pub struct Room {
    pub(super) name: String,
    pub(super) sid: String,
    pub(super) key: RoomKey,
    pub(super) worker: WorkerHandle,
    pub(super) self_tx: mpsc::UnboundedSender<RoomMsg>,
    registry: Registry,
    settings: RoomSettings,
    pub(super) members: HashMap<ParticipantKey, Member>,
    pub(super) tracks: HashMap<TrackKey, Track>,
    closing: bool,
    pub(super) options: RoomOptions,
    /// Seconds since the Unix epoch.
    pub(super) created_at: u64,
    /// Bumped on every join and every time the room empties; a pending empty timeout only counts if current.
    empty_generation: u64,
    participants_total: u64,
    pub(super) chat: ChatRoom,
    /// Everyone who joined, with their call-quality summaries (for `room_finished`).
    pub(super) quality: QualityLog,
}

impl Room {
    pub(super) fn new(
        RoomRef { name, sid }: RoomRef,
        key: RoomKey,
        worker: WorkerHandle,
        self_tx: mpsc::UnboundedSender<RoomMsg>,
        registry: Registry,
        settings: RoomSettings,
        options: RoomOptions,
    ) -> Self {
        let chat = ChatRoom::new(registry.chat_store(), settings.chat.clone());
        Room {
            name,
            sid,
            key,
            worker,
            self_tx,
            registry,
            settings,
            members: HashMap::new(),
            tracks: HashMap::new(),
            closing: false,
            options,
            created_at: now_unix_secs(),
            empty_generation: 0,
            participants_total: 0,
            chat,
            quality: QualityLog::default(),
        }
    }

    /// Reports `event` to the registry's observer (webhooks).
    pub(super) fn emit(&self, event: RoomEvent) {
        self.registry.observer().event(event);
    }

    pub(super) fn room_ref(&self) -> RoomRef {
        RoomRef {
            name: self.name.clone(),
            sid: self.sid.clone(),
        }
    }

    pub(super) fn participant_ref(member: &Member) -> ParticipantRef {
        ParticipantRef {
            sid: member.sid.clone(),
            identity: member.identity.clone(),
            name: member.name.clone(),
        }
    }

    pub(super) fn emit_track_unpublished(
        &self,
        participant: ParticipantRef,
        track: chorus_protocol::TrackInfo,
    ) {
        self.emit(RoomEvent::TrackUnpublished {
            room: self.room_ref(),
            participant,
            track,
        });
    }

    /// The room has no members: close now (no empty timeout), or when the empty timeout passes unless someone
    /// joins first.
    fn became_empty(&mut self) {
        self.empty_generation += 1;
        let timeout = self.options.empty_timeout;
        if timeout.is_zero() {
            self.closing = true;
            return;
        }
        let generation = self.empty_generation;
        let tx = self.self_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let _ = tx.send(RoomMsg::EmptyTimeout { generation });
        });
    }

    /// Close after the current message (the API deleted the room).
    pub(super) fn close_now(&mut self) {
        self.closing = true;
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<RoomMsg>) {
        self.start_chat().await;
        let sink_tx = self.self_tx.clone();
        self.worker.send(Command::CreateRoom {
            room: self.key,
            events: Arc::new(move |ev| {
                let _ = sink_tx.send(RoomMsg::Media(ev));
            }),
        });
        self.emit(RoomEvent::RoomStarted {
            room: self.room_ref(),
        });
        if !self.options.empty_timeout.is_zero() {
            // Created empty: close if nobody joins within the timeout (a join bumps the generation).
            self.became_empty();
        }
        while let Some(msg) = rx.recv().await {
            self.handle(msg);
            if self.closing {
                break;
            }
        }
        // Closing: release the worker's room (its last quality summaries queue up here), stop taking messages,
        // send queued joins elsewhere.
        self.stop_chat().await;
        self.registry.remove(&self.name, &self.sid);
        self.release_media().await;
        rx.close();
        while let Some(msg) = rx.recv().await {
            match msg {
                RoomMsg::Join { reply, .. } | RoomMsg::Resume { reply, .. } => {
                    let _ = reply.send(JoinReply::Retry);
                }
                RoomMsg::Media(chorus_sfu::Event::QualitySummary {
                    participant,
                    summary,
                }) => self.quality.record(participant, &summary),
                _ => {}
            }
        }
        let participants = std::mem::take(&mut self.quality).finish();
        self.emit(RoomEvent::RoomFinished {
            room: self.room_ref(),
            duration_secs: now_unix_secs().saturating_sub(self.created_at),
            participants_total: self.participants_total,
            participants,
        });
        tracing::info!(room = %self.name, "room closed");
    }

    fn handle(&mut self, msg: RoomMsg) {
        match msg {
            RoomMsg::Join {
                token,
                auto_subscribe,
                session,
                reply,
            } => self.join(token, auto_subscribe, session, reply),
            RoomMsg::Resume {
                token,
                participant_sid,
                resume_token,
                session,
                reply,
            } => self.resume(&token, &participant_sid, &resume_token, session, reply),
            RoomMsg::Client { from, msg } => {
                if self.is_current(from) {
                    self.client_message(from.participant, msg);
                }
            }
            RoomMsg::Detached { from } => self.detached(from),
            RoomMsg::ResumeExpired { from } => {
                let still_detached = self
                    .members
                    .get(&from.participant)
                    .is_some_and(|m| m.epoch == from.epoch && m.session.is_none());
                if still_detached {
                    self.remove_member(from.participant, "disconnected");
                }
            }
            RoomMsg::Media(ev) => self.media_event(ev),
            RoomMsg::Admin(msg) => self.admin(msg),
            RoomMsg::EmptyTimeout { generation } => {
                if generation == self.empty_generation && self.members.is_empty() {
                    tracing::info!(room = %self.name, "empty timeout passed");
                    self.closing = true;
                }
            }
            RoomMsg::ChatTypingExpired {
                participant,
                generation,
            } => self.chat_typing_expired(participant, generation),
        }
    }

    fn is_current(&self, from: Attached) -> bool {
        self.members
            .get(&from.participant)
            .is_some_and(|m| m.epoch == from.epoch)
    }

    fn join(
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

    fn resume(
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

    fn detached(&mut self, from: Attached) {
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

    fn client_message(&mut self, key: ParticipantKey, msg: ClientMessage) {
        match msg {
            ClientMessage::Offer { sdp, tracks } => self.publisher_offer(key, sdp, tracks),
            ClientMessage::Answer { sdp } => {
                self.worker.send(Command::SubscriberAnswer {
                    participant: key,
                    sdp,
                });
            }
            ClientMessage::Candidate { target, candidate } => {
                let pc = match target {
                    chorus_protocol::PcTarget::Publisher => chorus_sfu::PcKind::Publisher,
                    chorus_protocol::PcTarget::Subscriber => chorus_sfu::PcKind::Subscriber,
                };
                self.worker.send(Command::RemoteCandidate {
                    participant: key,
                    pc,
                    candidate,
                });
            }
            ClientMessage::Mute { track_sid, muted } => self.mute(key, &track_sid, muted),
            ClientMessage::Unpublish { track_sid } => self.unpublish_by_sid(key, &track_sid),
            ClientMessage::Subscribe {
                track_sids,
                subscribe,
            } => self.subscribe(key, &track_sids, subscribe),
            ClientMessage::UpdateSubscription {
                track_sids,
                quality,
                width,
                height,
                pinned,
            } => self.update_subscription(
                key,
                PreferenceRequest {
                    track_sids,
                    quality,
                    width,
                    height,
                    pinned,
                },
            ),
            ClientMessage::GetStats => self.get_stats(key),
            ClientMessage::Leave => self.remove_member(key, "left"),
            msg @ (ClientMessage::ChatSend { .. }
            | ClientMessage::ChatEdit { .. }
            | ClientMessage::ChatDelete { .. }
            | ClientMessage::ChatTyping { .. }) => self.chat_request(key, msg),
            // Answered by the session itself.
            ClientMessage::Join(_) | ClientMessage::Ping { .. } => {}
        }
    }

    /// Remove a member for good: its media, its tracks, and tell everyone.
    pub(super) fn remove_member(&mut self, key: ParticipantKey, reason: &str) {
        let Some(mut member) = self.members.remove(&key) else {
            return;
        };
        let participant = Self::participant_ref(&member);
        for track in &member.tracks {
            if let Some(t) = self.tracks.remove(track) {
                if t.announced {
                    self.emit_track_unpublished(participant.clone(), t.info);
                }
            }
        }
        self.emit(RoomEvent::ParticipantLeft {
            room: self.room_ref(),
            participant,
            reason: reason.to_string(),
        });
        self.worker
            .send(Command::RemoveParticipant { participant: key });
        member.close_with(ServerMessage::Left {
            reason: reason.to_string(),
        });
        tracing::info!(room = %self.name, participant = %member.sid, reason, "left");
        if member.visible() {
            self.broadcast(
                key,
                ServerMessage::ParticipantLeft {
                    participant_sid: member.sid.clone(),
                    reason: reason.to_string(),
                },
            );
        }
        self.chat_member_left(&member);
        if self.members.is_empty() {
            self.became_empty();
        }
    }

    /// Send to every member except `except`.
    pub(super) fn broadcast(&self, except: ParticipantKey, msg: ServerMessage) {
        for m in self.members.values().filter(|m| m.key != except) {
            m.send(msg.clone());
        }
    }

    fn snapshot(&self, member: &Member) -> JoinedResponse {
        JoinedResponse {
            protocol: PROTOCOL_VERSION,
            room: RoomInfo {
                name: self.name.clone(),
                sid: self.sid.clone(),
            },
            participant: member.info(self.track_infos(member)),
            participants: self
                .members
                .values()
                .filter(|m| m.key != member.key && m.visible())
                .map(|m| m.info(self.track_infos(m)))
                .collect(),
            resume_token: member.resume_token.clone(),
            resume_window_secs: self.settings.resume_window.as_secs(),
            ping_interval_secs: self.settings.ping_interval.as_secs().max(1),
            ice_servers: self
                .settings
                .ice_servers
                .issue(&member.sid, crate::auth::now_unix_secs()),
        }
    }
}
