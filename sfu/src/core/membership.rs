//! Participants and tracks coming and going on a worker: peer creation, publisher offers, subscriptions,
//! mute, unpublish, removal. Each change queues the subscriber offers it needs; `WorkerCore::settle` sends them.

use super::WorkerCore;
use crate::api::{Event, ParticipantKey, PcKind, RoomKey, TrackKey, TrackSpec};
use crate::participant::Participant;
use crate::peer::Peer;
use crate::room::TrackRoute;
use std::sync::Arc;
use std::time::Instant;

use crate::data::DataEndpoint;

/// Where a subscriber connection's bandwidth estimate starts, before feedback refines it (bits per second).
const INITIAL_ESTIMATE_BPS: u64 = 1_000_000;

impl WorkerCore {
    pub(super) fn add_participant(
        &mut self,
        now: Instant,
        room: RoomKey,
        pk: ParticipantKey,
        identity: Arc<str>,
        can_publish_data: bool,
    ) {
        if self.participants.contains_key(&pk) {
            return;
        }
        let Some(r) = self.rooms.get_mut(&room) else {
            tracing::warn!(participant = %pk, ?room, "participant for an unknown room");
            return;
        };
        let sctp_buffer = self.data_limits.receiver_buffer_bytes;
        let peers = Peer::new(now, &self.endpoint, None, sctp_buffer).and_then(|p| {
            Ok((
                p,
                Peer::new(now, &self.endpoint, Some(INITIAL_ESTIMATE_BPS), sctp_buffer)?,
            ))
        });
        let (publisher, subscriber) = match peers {
            Ok(peers) => peers,
            Err(e) => {
                (r.events)(Event::MediaFailed {
                    participant: pk,
                    reason: format!("could not create peer connection: {e}"),
                });
                return;
            }
        };
        r.participants.push(pk);
        let data = DataEndpoint::new(identity, can_publish_data, &self.data_limits);
        self.next_tick.get_or_insert(now);
        self.router
            .add_ufrag(publisher.ufrag().to_string(), (pk, PcKind::Publisher));
        self.router
            .add_ufrag(subscriber.ufrag().to_string(), (pk, PcKind::Subscriber));
        self.participants.insert(
            pk,
            Participant::new(now, pk, room, (publisher, subscriber), data),
        );
        self.mark_dirty(pk, PcKind::Publisher);
        self.mark_dirty(pk, PcKind::Subscriber);
    }

    pub(super) fn publisher_offer(&mut self, pk: ParticipantKey, sdp: &str, specs: &[TrackSpec]) {
        let Some(p) = self.participants.get_mut(&pk) else {
            return;
        };
        self.current = Some(pk);
        let room = p.room;
        match p.accept_publisher_offer(sdp, specs) {
            Ok((answer, gone)) => {
                for spec in specs {
                    self.tracks
                        .entry(spec.track)
                        .or_insert_with(|| TrackRoute::new(room, pk, spec));
                }
                for track in gone {
                    self.unpublish(track);
                }
                self.mark_dirty(pk, PcKind::Publisher);
                self.emit(
                    room,
                    Event::PublisherAnswer {
                        participant: pk,
                        sdp: answer,
                    },
                );
            }
            Err(reason) => self.emit(
                room,
                Event::NegotiationFailed {
                    participant: pk,
                    pc: PcKind::Publisher,
                    reason,
                },
            ),
        }
    }

    pub(super) fn set_subscribed(&mut self, sub: ParticipantKey, track: TrackKey, on: bool) {
        let Some(route) = self.tracks.get_mut(&track) else {
            return;
        };
        let Some(p) = self.participants.get_mut(&sub) else {
            return;
        };
        if p.room != route.room || route.publisher == sub {
            return;
        }
        if on {
            if !route.subscribers.contains(&sub) {
                route.subscribers.push(sub);
            }
            p.add_out_track(track, route.kind, route.publisher, u8::MAX);
        } else {
            route.subscribers.retain(|s| *s != sub);
            p.remove_out_track(track);
        }
        self.queue_offer(sub);
    }

    pub(super) fn set_muted(&mut self, now: Instant, track: TrackKey, muted: bool) {
        let Some(route) = self.tracks.get_mut(&track) else {
            return;
        };
        if route.muted == muted {
            return;
        }
        route.muted = muted;
        if !muted {
            // Packets were dropped while muted: re-anchor every outgoing stream on the next (key)frame.
            for sub in &route.subscribers {
                if let Some(out) = self
                    .participants
                    .get_mut(sub)
                    .and_then(|p| p.out.get_mut(&track))
                {
                    out.reset_source();
                }
            }
            self.request_keyframe(now, track, None);
        }
    }

    pub(super) fn unpublish(&mut self, track: TrackKey) {
        let Some(route) = self.tracks.remove(&track) else {
            return;
        };
        if let Some(p) = self.participants.get_mut(&route.publisher) {
            p.published.retain(|_, t| *t != track);
        }
        for sub in route.subscribers {
            let Some(p) = self.participants.get_mut(&sub) else {
                continue;
            };
            p.remove_out_track(track);
            self.queue_offer(sub);
        }
    }

    /// Forget a participant, first reporting its [`Event::QualitySummary`].
    pub(super) fn remove_participant(&mut self, now: Instant, pk: ParticipantKey) {
        let Some(p) = self.participants.get(&pk) else {
            return;
        };
        let room = p.room;
        let summary = p.quality.summary(now);
        self.emit(
            room,
            Event::QualitySummary {
                participant: pk,
                summary,
            },
        );
        let published: Vec<TrackKey> = p.published.values().copied().collect();
        for track in published {
            self.unpublish(track);
        }
        // Tracks published by mids not yet in `published` (offer pending) are routed by publisher.
        let orphans: Vec<TrackKey> = self
            .tracks
            .iter()
            .filter(|(_, r)| r.publisher == pk)
            .map(|(k, _)| *k)
            .collect();
        for track in orphans {
            self.unpublish(track);
        }
        for route in self.tracks.values_mut() {
            route.subscribers.retain(|s| *s != pk);
        }
        if let Some(mut p) = self.participants.remove(&pk) {
            p.publisher.rtc().disconnect();
            p.subscriber.rtc().disconnect();
        }
        self.connected_subscribers.remove(&pk);
        self.router.remove_participant(pk);
        self.dirty.retain(|(k, _)| *k != pk);
        self.needs_offer.retain(|k| *k != pk);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.participants.retain(|k| *k != pk);
        }
        self.forget_speaker(room, pk);
    }

    pub(super) fn fail_participant(&mut self, now: Instant, pk: ParticipantKey, reason: String) {
        let Some(room) = self.participants.get(&pk).map(|p| p.room) else {
            return;
        };
        tracing::info!(participant = %pk, %reason, "participant media failed");
        self.remove_participant(now, pk);
        self.emit(
            room,
            Event::MediaFailed {
                participant: pk,
                reason,
            },
        );
    }
}
