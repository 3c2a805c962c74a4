//! Applying the signaling side's [`Command`]s to the worker: rooms, participants, negotiation, subscriptions,
//! preferences, mutes and queries. Each command is one call from `WorkerCore::handle_command`.

use std::time::Instant;

use super::WorkerCore;
use crate::api::{Command, Event, PcKind};
use crate::room::RoomMedia;

impl WorkerCore {
    pub(super) fn apply_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::CreateRoom { room, events } => {
                self.rooms.entry(room).or_insert(RoomMedia {
                    events,
                    participants: Vec::new(),
                    speakers: Default::default(),
                });
            }
            Command::RemoveRoom { room, done } => {
                if let Some(r) = self.rooms.get(&room) {
                    for pk in r.participants.clone() {
                        self.remove_participant(now, pk);
                    }
                }
                self.rooms.remove(&room);
                if let Some(done) = done {
                    done();
                }
            }
            Command::AddParticipant {
                room,
                participant,
                identity,
                can_publish_data,
            } => self.add_participant(now, room, participant, identity, can_publish_data),
            Command::SetCanPublishData {
                participant,
                allowed,
            } => self.set_can_publish_data(participant, allowed),
            Command::SendData { room, message } => self.send_server_data(now, room, &message),
            Command::PublisherOffer {
                participant,
                sdp,
                tracks,
            } => self.publisher_offer(participant, &sdp, &tracks),
            Command::SubscriberAnswer { participant, sdp } => {
                let Some(p) = self.participants.get_mut(&participant) else {
                    return;
                };
                self.current = Some(participant);
                match p.accept_subscriber_answer(&sdp) {
                    Ok(next) => {
                        self.mark_dirty(participant, PcKind::Subscriber);
                        if let Some(offer) = next {
                            self.emit_for(participant, offer);
                        }
                    }
                    Err(reason) => self.emit_for(
                        participant,
                        Event::NegotiationFailed {
                            participant,
                            pc: PcKind::Subscriber,
                            reason,
                        },
                    ),
                }
            }
            Command::RemoteCandidate {
                participant,
                pc,
                candidate,
            } => {
                let Some(p) = self.participants.get_mut(&participant) else {
                    return;
                };
                self.current = Some(participant);
                match p.add_remote_candidate(pc, &candidate) {
                    Ok(()) => self.mark_dirty(participant, pc),
                    Err(reason) => tracing::debug!(%participant, %reason, "ignored candidate"),
                }
            }
            Command::SetSubscribed {
                subscriber,
                track,
                subscribed,
            } => {
                self.set_subscribed(subscriber, track, subscribed);
                self.allocate_for(now, subscriber);
                self.update_dynacast(now, track);
            }
            Command::SetPreference {
                subscriber,
                track,
                preference,
            } => self.set_preference(now, subscriber, track, preference),
            Command::SetEstimateCap {
                participant,
                cap_bps,
            } => self.set_estimate_cap(now, participant, cap_bps),
            Command::QueryStats { participant, reply } => {
                reply(self.participant_stats(now, participant))
            }
            Command::SetTrackMuted { track, muted } => self.set_muted(now, track, muted),
            Command::UnpublishTrack { track } => self.unpublish(track),
            Command::ResendSubscriberOffer { participant } => {
                if let Some(offer) = self
                    .participants
                    .get(&participant)
                    .and_then(|p| p.outstanding_offer())
                {
                    self.emit_for(participant, offer);
                }
            }
            Command::RemoveParticipant { participant } => self.remove_participant(now, participant),
            Command::Shutdown => {}
        }
    }
}
