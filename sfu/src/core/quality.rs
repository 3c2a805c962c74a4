//! Call quality on the worker: str0m's stats events go to the participant's [`crate::quality::QualityMeter`],
//! with the kind of track each stream carries, and each once-a-second sample goes into the worker's histograms.
//! Streams of mids that carry no track right now (a freed subscriber slot, a publisher mid not yet announced)
//! are left out: their last reports would otherwise linger.

use str0m::stats::{MediaEgressStats, MediaIngressStats, PeerStats};

use super::WorkerCore;
use crate::api::{ParticipantKey, PcKind};

impl WorkerCore {
    pub(super) fn on_peer_stats(&mut self, pk: ParticipantKey, pc: PcKind, s: &PeerStats) {
        let Some(p) = self.participants.get_mut(&pk) else {
            return;
        };
        if let Some(sample) = p.quality.on_peer_stats(pc, s) {
            self.histograms.observe_quality(&sample);
        }
    }

    pub(super) fn on_ingress_stats(&mut self, pk: ParticipantKey, s: &MediaIngressStats) {
        let Some(p) = self.participants.get_mut(&pk) else {
            return;
        };
        let kind = p
            .published
            .get(&s.mid)
            .and_then(|t| self.tracks.get(t))
            .map(|route| route.kind);
        if let Some(kind) = kind {
            p.quality.on_ingress(kind, s);
        }
    }

    pub(super) fn on_egress_stats(&mut self, pk: ParticipantKey, s: &MediaEgressStats) {
        let Some(p) = self.participants.get_mut(&pk) else {
            return;
        };
        let kind = p
            .out_by_mid
            .get(&s.mid)
            .and_then(|t| p.out.get(t))
            .map(|out| out.kind);
        if let Some(kind) = kind {
            p.quality.on_egress(kind, s);
        }
    }
}
