//! Simulcast control off the packet path: what each subscriber wants of each track, the downlink estimate and
//! the bandwidth allocation that caps it, dynacast towards publishers, and per-participant stats.
//!
//! Runs on commands, on str0m's bandwidth estimate events, and on a periodic tick; the per-packet decision
//! itself is each subscription's [`crate::selector::LayerSelector`], called from `fanout.rs`.

use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;

use super::WorkerCore;
use crate::allocator::{self, Demand};
use crate::api::{
    Event, MediaKind, ParticipantKey, ParticipantStats, SubscriptionPreference, SubscriptionStats,
    TrackKey,
};
use crate::layers::{LayerSet, MAX_LAYERS};

/// How often allocation and dynacast are re-evaluated.
pub const TICK_INTERVAL: Duration = Duration::from_millis(250);

/// How long an estimate must stay too low before subscriptions step down (unless it halved).
const DOWNGRADE_HOLD: Duration = Duration::from_millis(1500);

/// Priority boost for a pinned (or active speaker) subscription, on top of the track's own priority.
const PINNED_BOOST: u8 = 4;

/// The highest layer a preference asks for, on a track with these layers.
pub fn wanted_layer(pref: &SubscriptionPreference, layers: &LayerSet) -> u8 {
    let by_quality = pref
        .quality
        .map_or(layers.top(), |q| q.max_layer(layers.top()));
    let by_size = pref
        .max_size
        .map_or(layers.top(), |(w, h)| layers.layer_for_size(w, h));
    by_quality.min(by_size)
}

impl WorkerCore {
    pub(super) fn set_preference(
        &mut self,
        now: Instant,
        sub: ParticipantKey,
        track: TrackKey,
        pref: SubscriptionPreference,
    ) {
        let Some(route) = self.tracks.get(&track) else {
            return;
        };
        let Some(out) = self
            .participants
            .get_mut(&sub)
            .and_then(|p| p.out.get_mut(&track))
        else {
            return;
        };
        out.preference = pref;
        out.selector.set_wanted(wanted_layer(&pref, &route.layers));
        self.allocate_for(now, sub);
        self.update_dynacast(now, track);
    }

    pub(super) fn set_estimate_cap(&mut self, now: Instant, pk: ParticipantKey, cap: Option<u64>) {
        let Some(p) = self.participants.get_mut(&pk) else {
            return;
        };
        p.downlink.cap_bps = cap;
        self.allocate_for(now, pk);
    }

    /// A new estimate from the subscriber connection's congestion controller. Without probing (no feedback
    /// negotiated) the estimate means nothing, and the downlink is not limited by it.
    pub(super) fn on_estimate(
        &mut self,
        now: Instant,
        pk: ParticipantKey,
        bps: u64,
        can_probe: bool,
    ) {
        let Some(p) = self.participants.get_mut(&pk) else {
            return;
        };
        let before = p.downlink.estimate_bps;
        p.downlink.estimate_bps = can_probe.then_some(bps);
        tracing::debug!(participant = %pk, bps, can_probe, "downlink estimate");
        // React at once to a falling estimate; rises wait for the tick (and the probe that confirms them).
        if before.is_some_and(|b| bps < b) {
            self.allocate_for(now, pk);
        }
    }

    /// Periodic re-evaluation: allocation for every participant, dynacast for every track.
    pub(super) fn simulcast_tick(&mut self, now: Instant) {
        if self.next_tick.is_some_and(|t| now < t) {
            return;
        }
        self.next_tick = Some(now + TICK_INTERVAL);
        self.update_speakers(now);
        let participants: Vec<ParticipantKey> = self.participants.keys().copied().collect();
        for pk in participants {
            self.allocate_for(now, pk);
        }
        let tracks: Vec<TrackKey> = self.tracks.keys().copied().collect();
        for track in tracks {
            self.update_dynacast(now, track);
        }
    }

    /// Share `pk`'s downlink budget among the tracks it receives, apply the caps, tell it about pauses, and
    /// point the estimator's probing at what it would like to receive.
    pub(super) fn allocate_for(&mut self, now: Instant, pk: ParticipantKey) {
        let Some(p) = self.participants.get_mut(&pk) else {
            return;
        };
        let mut keys = Vec::with_capacity(p.out.len());
        let mut demands = Vec::with_capacity(p.out.len());
        for (track, out) in &p.out {
            let Some(route) = self.tracks.get(track) else {
                continue;
            };
            let audio = route.kind == MediaKind::Audio;
            let mut bitrates = [0; MAX_LAYERS];
            for (l, b) in bitrates.iter_mut().enumerate().take(route.layers.count()) {
                *b = route.layers.bitrate(l as u8, now);
            }
            let speaking = self
                .rooms
                .get(&route.room)
                .is_some_and(|r| r.speakers.contains(route.publisher));
            keys.push(*track);
            demands.push(Demand {
                priority: route.priority
                    + if out.preference.pinned || speaking {
                        PINNED_BOOST
                    } else {
                        0
                    },
                audio,
                wanted: out.selector.wanted(),
                alive: if route.muted {
                    0
                } else {
                    route.layers.alive(now)
                },
                bitrates,
            });
        }
        let budget = p.downlink.budget_bps();
        let mut allowances = match budget {
            Some(b) => allocator::allocate(b, &demands),
            // No estimate (no congestion control feedback): no cap.
            None => vec![Some(u8::MAX); demands.len()],
        };
        // Estimates dip briefly (a burst, a busy receiver): step down only when a dip lasts, or is deep.
        let current: Vec<_> = keys
            .iter()
            .map(|t| p.out.get(t).map_or(Some(u8::MAX), |o| o.selector.allowed()))
            .collect();
        let lower = allowances.iter().zip(&current).any(|(new, old)| new < old);
        let estimate_bound = p
            .downlink
            .cap_bps
            .is_none_or(|c| Some(c) > p.downlink.estimate_bps);
        if lower && estimate_bound {
            let since = *p.downlink.lower_since.get_or_insert(now);
            let deep = budget.is_some_and(|b| b < allocator::cost(&demands, &current) / 2);
            if !deep && now.saturating_duration_since(since) < DOWNGRADE_HOLD {
                allowances = current;
            }
        } else {
            p.downlink.lower_since = None;
        }
        let mut changes = Vec::new();
        for (track, allowed) in keys.iter().zip(&allowances) {
            let Some(out) = p.out.get_mut(track) else {
                continue;
            };
            let was_paused = out.selector.is_paused();
            out.selector.set_allowed(*allowed);
            if was_paused != allowed.is_none() {
                changes.push((*track, allowed.is_none()));
            }
        }
        let desired = allocator::cost(&demands, &vec![Some(u8::MAX); demands.len()]);
        let allocated = allocator::cost(&demands, &allowances);
        // str0m sends padding only from the timer round after a connection's last packet, which the peer
        // defers while forwarded copies keep coming (`peer.rs`): allowed only while no probing is wanted, that
        // is without an estimate at all, or while everything the subscriber wants fits.
        p.subscriber
            .set_defer_forward_round(budget.is_none() || allocated >= desired);
        if budget.is_some() {
            // Probe towards what the subscriber wants. While the allocation falls short of it, ask for padding
            // up to that rate (str0m caps padding at the estimate), so the estimate can grow into the next
            // layer; when everything wanted fits, send no padding beyond str0m's small floor.
            let minimum = if allocated < desired { desired } else { 0 };
            let mut bwe = p.subscriber.rtc().bwe();
            bwe.set_bitrate(Bitrate::from(minimum), Bitrate::from(desired));
            let estimate = p.downlink.estimate_bps;
            if p.downlink
                .stall
                .check(now, estimate, allocated < desired && estimate_bound)
            {
                // The estimate stopped growing short of what is wanted: start estimating again from it, with
                // the startup probes (see `estimate_stall.rs`).
                if let Some(e) = estimate {
                    bwe.reset(Bitrate::from(e));
                    self.stats.estimate_restarts += 1;
                    tracing::debug!(participant = %pk, bps = e, desired, "estimate stalled: probing restarted");
                }
            }
            self.mark_dirty(pk, crate::api::PcKind::Subscriber);
        }
        for (track, paused) in changes {
            if paused {
                self.stats.streams_paused += 1;
            } else {
                self.stats.streams_resumed += 1;
            }
            self.emit_for(
                pk,
                Event::StreamPaused {
                    participant: pk,
                    track,
                    paused,
                },
            );
        }
    }

    /// Tell the publisher of `track` which layers anyone wants, when that changed.
    pub(super) fn update_dynacast(&mut self, now: Instant, track: TrackKey) {
        let Some(route) = self.tracks.get_mut(&track) else {
            return;
        };
        let wanted = route
            .subscribers
            .iter()
            .filter_map(|s| self.participants.get(s)?.out.get(&track))
            .map(|o| o.selector.wanted().min(route.layers.top()))
            .max();
        let Some(top) = route.dynacast.update(wanted, now) else {
            return;
        };
        let rids = match top {
            Some(t) => {
                route.layers.rids()[..route.layers.rids().len().min(usize::from(t) + 1)].to_vec()
            }
            None => Vec::new(),
        };
        let event = Event::PublishLayers {
            participant: route.publisher,
            track,
            enabled: top.is_some(),
            rids,
        };
        let room = route.room;
        self.emit(room, event);
    }

    /// A participant's media state for stats.
    pub(super) fn participant_stats(
        &self,
        now: Instant,
        pk: ParticipantKey,
    ) -> Option<ParticipantStats> {
        let p = self.participants.get(&pk)?;
        let mut subscriptions: Vec<SubscriptionStats> = p
            .out
            .iter()
            .filter_map(|(track, out)| {
                let route = self.tracks.get(track)?;
                let alive = route.layers.alive(now);
                let name = |l: u8| {
                    route
                        .layers
                        .rid(l)
                        .map_or_else(|| l.to_string(), str::to_string)
                };
                Some(SubscriptionStats {
                    track: *track,
                    current_layer: out.selector.current().map(name),
                    target_layer: out.selector.target(alive).map(name),
                    wanted_layer: Some(name(out.selector.wanted().min(route.layers.top()))),
                    reason: out.selector.reason(alive, route.layers.top()),
                    paused: out.selector.is_paused(),
                    layer_switches: out.selector.switches,
                })
            })
            .collect();
        subscriptions.sort_by_key(|s| s.track);
        Some(ParticipantStats {
            estimate_bps: p.downlink.budget_bps(),
            subscriptions,
            quality: p.quality.report(now),
            session: p.quality.summary(now),
        })
    }
}
