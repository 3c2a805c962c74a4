//! What the worker does with str0m's events from a participant's peer connections (connected, ICE state,
//! RTP to forward, keyframe requests, bandwidth estimates, stats, data channels, close), and ending
//! participants whose connection stayed ICE-disconnected past the grace period.

use std::time::Instant;

use str0m::bwe::BweKind;
use str0m::{Event as RtcEvent, IceConnectionState};

use super::{WorkerCore, ICE_DISCONNECT_GRACE};
use crate::api::{Event, ParticipantKey, PcKind};

impl WorkerCore {
    /// End participants whose connection stayed ICE-disconnected past the grace period.
    pub(super) fn expire_disconnected(&mut self, now: Instant) {
        let gone: Vec<(ParticipantKey, PcKind)> = self
            .participants
            .iter_mut()
            .flat_map(|(k, p)| {
                [PcKind::Publisher, PcKind::Subscriber]
                    .into_iter()
                    .filter(|pc| {
                        p.ice_disconnected_since(*pc).is_some_and(|t| {
                            now.saturating_duration_since(t) >= ICE_DISCONNECT_GRACE
                        })
                    })
                    .map(|pc| (*k, pc))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (pk, pc) in gone {
            self.fail_participant(now, pk, format!("{pc:?} connection: ICE disconnected"));
        }
    }

    pub(super) fn handle_rtc_event(
        &mut self,
        now: Instant,
        pk: ParticipantKey,
        pc: PcKind,
        e: RtcEvent,
    ) {
        match e {
            RtcEvent::Connected => {
                if pc == PcKind::Subscriber {
                    self.connected_subscribers.insert(pk);
                }
                self.emit_for(
                    pk,
                    Event::Connected {
                        participant: pk,
                        pc,
                    },
                );
            }
            // Disconnected is transient in ICE (a pair not yet confirmed, a pause of consent): give the
            // connection a grace period to come back before treating it as gone (see `expire_disconnected`).
            RtcEvent::IceConnectionStateChange(state) => {
                if let Some(p) = self.participants.get_mut(&pk) {
                    let since = p.ice_disconnected_since(pc);
                    *since = match state {
                        IceConnectionState::Disconnected => Some(since.unwrap_or(now)),
                        _ => None,
                    };
                }
            }
            RtcEvent::RtpPacket(pkt) if pc == PcKind::Publisher => {
                self.stats.rtp_in += 1;
                self.forward(now, pk, pkt);
            }
            RtcEvent::KeyframeRequest(req) if pc == PcKind::Subscriber => {
                self.stats.keyframe_requests_received += 1;
                // A keyframe of the layer this subscriber receives.
                let wanted = self.participants.get(&pk).and_then(|p| {
                    let track = *p.out_by_mid.get(&req.mid)?;
                    Some((track, p.out.get(&track)?.selector.current()?))
                });
                if let Some((track, layer)) = wanted {
                    self.request_keyframe(now, track, Some(layer));
                }
            }
            RtcEvent::EgressBitrateEstimate(BweKind::Twcc {
                estimate,
                can_probe,
            }) if pc == PcKind::Subscriber => {
                self.on_estimate(now, pk, estimate.as_u64(), can_probe);
            }
            RtcEvent::MediaEgressStats(s) if pc == PcKind::Subscriber => {
                self.egress.record(now, pk, &s, &mut self.stats);
                self.on_egress_stats(pk, &s);
            }
            RtcEvent::MediaIngressStats(s) if pc == PcKind::Publisher => {
                self.on_ingress_stats(pk, &s)
            }
            RtcEvent::PeerStats(s) => self.on_peer_stats(pk, pc, &s),
            RtcEvent::ChannelOpen(id, label) if pc == PcKind::Publisher => {
                self.on_channel_open(pk, id, &label)
            }
            RtcEvent::ChannelData(data) if pc == PcKind::Publisher => {
                self.on_channel_data(now, pk, data)
            }
            RtcEvent::ChannelClose(id) if pc == PcKind::Publisher => self.on_channel_close(pk, id),
            RtcEvent::Closed => {
                self.fail_participant(now, pk, format!("{pc:?} connection closed by the client"));
            }
            _ => {}
        }
    }
}
