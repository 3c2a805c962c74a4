//! The room actor: one task per room owning its members, driving its media worker, and deciding who hears
//! about what. Lifecycle and leaving live here; joining and resuming in `joining.rs`; publishing and
//! subscriptions in `media.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use chorus_protocol::{ClientMessage, JoinedResponse, RoomInfo, ServerMessage, PROTOCOL_VERSION};
use chorus_sfu::{Command, ParticipantKey, RoomKey, RoomPlacement, TrackKey, WorkerHandle};
use tokio::sync::mpsc;

use super::call_quality::QualityLog;
use super::chat::ChatRoom;
use super::media::Track;
use super::member::Member;
use super::quality::PreferenceRequest;
use super::registry::{Registry, RoomOptions, RoomSettings};
use super::{JoinReply, ParticipantRef, RoomEvent, RoomMsg, RoomRef};
use crate::auth::now_unix_secs;

pub struct Room {
    pub(super) name: String,
    pub(super) sid: String,
    pub(super) key: RoomKey,
    pub(super) worker: WorkerHandle,
    /// Counts this room on its worker (for placing the next rooms) until the room ends.
    _placement: RoomPlacement,
    pub(super) self_tx: mpsc::UnboundedSender<RoomMsg>,
    registry: Registry,
    pub(super) settings: RoomSettings,
    pub(super) members: HashMap<ParticipantKey, Member>,
    pub(super) tracks: HashMap<TrackKey, Track>,
    pub(super) closing: bool,
    pub(super) options: RoomOptions,
    /// Seconds since the Unix epoch.
    pub(super) created_at: u64,
    /// Bumped on every join and every time the room empties; a pending empty timeout only counts if current.
    pub(super) empty_generation: u64,
    pub(super) participants_total: u64,
    pub(super) chat: ChatRoom,
    /// Everyone who joined, with their call-quality summaries (for `room_finished`).
    pub(super) quality: QualityLog,
}

impl Room {
    pub(super) fn new(
        RoomRef { name, sid }: RoomRef,
        key: RoomKey,
        placement: RoomPlacement,
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
            worker: placement.worker().clone(),
            _placement: placement,
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
    pub(super) fn became_empty(&mut self) {
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

    pub(super) fn snapshot(&self, member: &Member) -> JoinedResponse {
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
