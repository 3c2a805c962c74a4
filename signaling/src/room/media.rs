//! Publishing, muting and subscriptions in a room, and the media worker's events.
//!
//! A track gets its key and sid when it first appears in a publisher offer, and is announced to others
//! (`trackPublished`) once the worker accepted the offer. Subscriptions follow each member's wishes
//! ([`Member::wants`]) and are applied by the worker, which renegotiates the subscriber connection.

use chorus_protocol::{
    AssignedTrack, ErrorCode, ErrorMessage, PublishTrack, ServerMessage, SubscribedTrack,
    TrackInfo, TrackKind, TrackSource,
};
use chorus_sfu::{Command, Event, MediaKind, ParticipantKey, TrackKey, TrackSpec};

use super::actor::Room;
use super::member::Member;
use crate::ids;

/// Most tracks one publisher offer may carry.
const MAX_TRACKS_PER_PARTICIPANT: usize = 16;
/// Longest accepted track name or mid.
const MAX_LABEL_LEN: usize = 256;

pub struct Track {
    pub sid: String,
    pub owner: ParticipantKey,
    /// The publisher connection's mid.
    pub mid: String,
    pub info: TrackInfo,
    /// Whether others have been told (`trackPublished`).
    pub announced: bool,
}

fn error(code: ErrorCode, message: impl Into<String>) -> ServerMessage {
    ServerMessage::Error(ErrorMessage::new(code, message))
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Result<(), ErrorMessage> {
    Err(ErrorMessage::new(code, message))
}

impl Room {
    pub(super) fn track_infos(&self, member: &Member) -> Vec<TrackInfo> {
        member
            .tracks
            .iter()
            .filter_map(|k| self.tracks.get(k))
            .filter(|t| t.announced)
            .map(|t| t.info.clone())
            .collect()
    }

    fn validate_offer(member: &Member, specs: &[PublishTrack]) -> Result<(), ErrorMessage> {
        if !specs.is_empty() && !member.grants.can_publish {
            return refuse(
                ErrorCode::PermissionDenied,
                "this token does not allow publishing (canPublish is false)",
            );
        }
        if !specs.is_empty() && member.grants.hidden {
            return refuse(
                ErrorCode::PermissionDenied,
                "hidden participants cannot publish",
            );
        }
        if specs.len() > MAX_TRACKS_PER_PARTICIPANT {
            return refuse(
                ErrorCode::BadRequest,
                format!("an offer may carry at most {MAX_TRACKS_PER_PARTICIPANT} tracks"),
            );
        }
        for (i, s) in specs.iter().enumerate() {
            if s.mid.is_empty() || s.mid.len() > MAX_LABEL_LEN || s.name.len() > MAX_LABEL_LEN {
                return refuse(
                    ErrorCode::BadRequest,
                    format!("tracks[{i}]: mid must be 1-{MAX_LABEL_LEN} chars and name at most {MAX_LABEL_LEN}"),
                );
            }
            if specs[..i].iter().any(|o| o.mid == s.mid) {
                return refuse(
                    ErrorCode::BadRequest,
                    format!("tracks[{i}]: mid {:?} listed twice", s.mid),
                );
            }
        }
        Ok(())
    }

    pub(super) fn publisher_offer(
        &mut self,
        key: ParticipantKey,
        sdp: String,
        specs: Vec<PublishTrack>,
    ) {
        let Some(member) = self.members.get(&key) else {
            return;
        };
        if let Err(e) = Self::validate_offer(member, &specs) {
            member.send(ServerMessage::Error(e));
            return;
        }
        let existing: Vec<TrackKey> = member.tracks.clone();
        let mut assigned = Vec::new();
        let mut worker_specs = Vec::new();
        let mut keep = Vec::new();
        for spec in specs {
            let reuse = existing
                .iter()
                .copied()
                .find(|k| self.tracks.get(k).is_some_and(|t| t.mid == spec.mid));
            let track_key = match reuse {
                Some(k) => k,
                None => {
                    let k = TrackKey(ids::next_key());
                    let sid = ids::sid("TR");
                    self.tracks.insert(
                        k,
                        Track {
                            sid: sid.clone(),
                            owner: key,
                            mid: spec.mid.clone(),
                            info: TrackInfo {
                                sid,
                                kind: spec.kind,
                                source: spec.source,
                                name: spec.name.clone(),
                                muted: spec.muted,
                                layers: spec.layers.clone(),
                                width: spec.width,
                                height: spec.height,
                            },
                            announced: false,
                        },
                    );
                    k
                }
            };
            keep.push(track_key);
            if let Some(t) = self.tracks.get(&track_key) {
                assigned.push(AssignedTrack {
                    mid: spec.mid.clone(),
                    track_sid: t.sid.clone(),
                });
            }
            worker_specs.push(TrackSpec {
                track: track_key,
                kind: match spec.kind {
                    TrackKind::Audio => MediaKind::Audio,
                    TrackKind::Video => MediaKind::Video,
                },
                full_size: spec.width.zip(spec.height),
                priority: match spec.source {
                    TrackSource::ScreenShare | TrackSource::ScreenShareAudio => 2,
                    _ => 1,
                },
                layers: spec.layers,
                mid: spec.mid,
            });
        }
        for gone in existing.iter().filter(|k| !keep.contains(k)) {
            self.unpublish(*gone);
        }
        if let Some(member) = self.members.get_mut(&key) {
            member.tracks = keep;
            member.send(ServerMessage::TracksAssigned { tracks: assigned });
        }
        self.worker.send(Command::PublisherOffer {
            participant: key,
            sdp,
            tracks: worker_specs,
        });
    }

    /// The worker accepted an offer: answer it, and announce and distribute its new tracks.
    fn publisher_answered(&mut self, key: ParticipantKey, sdp: String) {
        let Some(member) = self.members.get(&key) else {
            return;
        };
        member.send(ServerMessage::Answer { sdp });
        let participant_sid = member.sid.clone();
        let fresh: Vec<TrackKey> = member
            .tracks
            .iter()
            .copied()
            .filter(|k| self.tracks.get(k).is_some_and(|t| !t.announced))
            .collect();
        for track_key in fresh {
            let Some(track) = self.tracks.get_mut(&track_key) else {
                continue;
            };
            track.announced = true;
            if track.info.muted {
                self.worker.send(Command::SetTrackMuted {
                    track: track_key,
                    muted: true,
                });
            }
            let msg = ServerMessage::TrackPublished {
                participant_sid: participant_sid.clone(),
                track: track.info.clone(),
            };
            let info = track.info.clone();
            if let Some(owner) = self.members.get(&key) {
                self.emit(super::RoomEvent::TrackPublished {
                    room: self.room_ref(),
                    participant: Self::participant_ref(owner),
                    track: info,
                });
            }
            self.broadcast(key, msg);
            let subscribers: Vec<ParticipantKey> = self
                .members
                .values()
                .filter(|m| m.key != key && m.wants(track_key))
                .map(|m| m.key)
                .collect();
            for sub in subscribers {
                self.send_subscribed(sub, track_key, true);
            }
        }
    }

    /// Subscribe a newly joined member to every announced track it wants.
    pub(super) fn subscribe_newcomer(&self, key: ParticipantKey) {
        let Some(member) = self.members.get(&key) else {
            return;
        };
        for (track_key, track) in &self.tracks {
            if track.announced && track.owner != key && member.wants(*track_key) {
                self.send_subscribed(key, *track_key, true);
            }
        }
    }

    fn own_track(&self, key: ParticipantKey, track_sid: &str) -> Option<TrackKey> {
        self.tracks
            .iter()
            .find(|(_, t)| t.owner == key && t.sid == track_sid)
            .map(|(k, _)| *k)
    }

    fn unknown_track(&self, key: ParticipantKey, track_sid: &str) {
        if let Some(m) = self.members.get(&key) {
            m.send(error(
                ErrorCode::UnknownTrack,
                format!("no track {track_sid:?} of yours in this room"),
            ));
        }
    }

    pub(super) fn mute(&mut self, key: ParticipantKey, track_sid: &str, muted: bool) {
        let Some(track_key) = self.own_track(key, track_sid) else {
            return self.unknown_track(key, track_sid);
        };
        let Some(track) = self.tracks.get_mut(&track_key) else {
            return;
        };
        if track.info.muted == muted {
            return;
        }
        track.info.muted = muted;
        let announced = track.announced;
        self.worker.send(Command::SetTrackMuted {
            track: track_key,
            muted,
        });
        if announced {
            if let Some(sid) = self.members.get(&key).map(|m| m.sid.clone()) {
                self.broadcast(
                    key,
                    ServerMessage::TrackMuted {
                        participant_sid: sid,
                        track_sid: track_sid.to_string(),
                        muted,
                    },
                );
            }
        }
    }

    pub(super) fn unpublish_by_sid(&mut self, key: ParticipantKey, track_sid: &str) {
        match self.own_track(key, track_sid) {
            Some(track_key) => self.unpublish(track_key),
            None => self.unknown_track(key, track_sid),
        }
    }

    pub(super) fn unpublish(&mut self, track_key: TrackKey) {
        let Some(track) = self.tracks.remove(&track_key) else {
            return;
        };
        self.worker
            .send(Command::UnpublishTrack { track: track_key });
        let Some(owner) = self.members.get_mut(&track.owner) else {
            return;
        };
        owner.tracks.retain(|k| *k != track_key);
        let owner_sid = owner.sid.clone();
        if track.announced {
            let participant = Self::participant_ref(owner);
            self.emit_track_unpublished(participant, track.info.clone());
            self.broadcast(
                track.owner,
                ServerMessage::TrackUnpublished {
                    participant_sid: owner_sid,
                    track_sid: track.sid,
                },
            );
        }
    }

    pub(super) fn subscribe(
        &mut self,
        key: ParticipantKey,
        track_sids: &[String],
        subscribe: bool,
    ) {
        let Some(member) = self.members.get_mut(&key) else {
            return;
        };
        if !member.grants.can_subscribe {
            member.send(error(
                ErrorCode::PermissionDenied,
                "this token does not allow subscribing (canSubscribe is false)",
            ));
            return;
        }
        let mut unknown = Vec::new();
        let mut changes = Vec::new();
        for sid in track_sids {
            let found = self
                .tracks
                .iter()
                .find(|(_, t)| &t.sid == sid && t.owner != key);
            let Some((track_key, track)) = found else {
                unknown.push(sid.clone());
                continue;
            };
            member.set_wants(*track_key, subscribe);
            if track.announced {
                changes.push((*track_key, member.wants(*track_key)));
            }
        }
        if !unknown.is_empty() {
            member.send(error(
                ErrorCode::UnknownTrack,
                format!("no such remote tracks in this room: {}", unknown.join(", ")),
            ));
        }
        for (track, on) in changes {
            self.send_subscribed(key, track, on);
        }
    }

    pub(super) fn media_event(&mut self, ev: Event) {
        match ev {
            Event::PublisherAnswer { participant, sdp } => {
                self.publisher_answered(participant, sdp)
            }
            Event::SubscriberOffer {
                participant,
                sdp,
                tracks,
            } => {
                let Some(member) = self.members.get(&participant) else {
                    return;
                };
                let tracks = tracks
                    .into_iter()
                    .filter_map(|(mid, k)| {
                        let t = self.tracks.get(&k)?;
                        let owner = self.members.get(&t.owner)?;
                        Some(SubscribedTrack {
                            mid,
                            track_sid: t.sid.clone(),
                            participant_sid: owner.sid.clone(),
                        })
                    })
                    .collect();
                member.send(ServerMessage::Offer { sdp, tracks });
            }
            Event::NegotiationFailed {
                participant,
                pc,
                reason,
            } => {
                tracing::info!(room = %self.name, %participant, ?pc, %reason, "negotiation failed");
                if pc == chorus_sfu::PcKind::Publisher {
                    self.forget_unannounced(participant);
                }
                if let Some(m) = self.members.get(&participant) {
                    m.send(error(ErrorCode::NegotiationFailed, reason));
                }
            }
            Event::Connected { participant, pc } => {
                tracing::debug!(room = %self.name, %participant, ?pc, "media connected");
            }
            Event::StreamPaused {
                participant,
                track,
                paused,
            } => self.stream_paused(participant, track, paused),
            Event::PublishLayers {
                participant,
                track,
                enabled,
                rids,
            } => self.publish_layers(participant, track, enabled, rids),
            Event::ActiveSpeakers { speakers } => self.active_speakers(&speakers),
            Event::DataReady { participant, kind } => self.data_ready(participant, kind),
            Event::DataRejected {
                participant,
                reason,
                count,
                detail,
            } => self.data_rejected(participant, reason, count, detail),
            Event::DataBacklog {
                participant,
                buffer_bytes,
            } => {
                tracing::info!(room = %self.name, %participant, buffer_bytes, "reliable data backlog full");
                self.remove_member(participant, "dataBacklog");
            }
            Event::QualitySummary {
                participant,
                summary,
            } => self.quality.record(participant, &summary),
            Event::MediaFailed {
                participant,
                reason,
            } => {
                tracing::info!(room = %self.name, %participant, %reason, "media failed");
                self.remove_member(participant, "mediaFailed");
            }
        }
    }

    /// Tells everyone who is talking (members the room no longer knows are left out).
    fn active_speakers(&self, speakers: &[(ParticipantKey, u8)]) {
        let speakers = speakers
            .iter()
            .filter_map(|&(key, level)| {
                Some(chorus_protocol::SpeakerInfo {
                    participant_sid: self.members.get(&key)?.sid.clone(),
                    level,
                })
            })
            .collect();
        let msg = ServerMessage::ActiveSpeakers { speakers };
        for member in self.members.values() {
            member.send(msg.clone());
        }
    }

    /// Tracks of a rejected offer were never published: forget them.
    fn forget_unannounced(&mut self, key: ParticipantKey) {
        let Some(member) = self.members.get_mut(&key) else {
            return;
        };
        let tracks = &mut self.tracks;
        member.tracks.retain(|k| {
            let announced = tracks.get(k).is_some_and(|t| t.announced);
            if !announced {
                tracks.remove(k);
            }
            announced
        });
    }
}
