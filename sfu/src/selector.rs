//! Which simulcast layer of one track one subscriber receives: a pure decision per packet.
//!
//! A [`LayerSelector`] holds the subscriber's wish (the highest layer it wants, from its requested quality or
//! rendered size), the bandwidth allocator's cap (a highest layer, or paused), and the layer being forwarded.
//! Its target is the highest live layer within both limits. It moves to the target only at a keyframe of the
//! target layer, and keeps forwarding the current layer until then, so the picture never freezes waiting;
//! if the current layer stops, it drops until the target's keyframe (the caller asks the publisher for one).
//! Sequence numbers, timestamps and codec picture ids stay continuous across the switch because the
//! [`crate::Forwarder`] and [`crate::vp8::Vp8Rewriter`] re-anchor on the new layer's keyframe.
//!
//! No I/O, no str0m types, no clock reads: layers are indexes (0 = lowest) and liveness is a bit mask.

use crate::layers::LayerMask;

/// The quality a subscriber asks for; maps onto the lowest, middle and top layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quality {
    Low,
    Medium,
    High,
}

impl Quality {
    /// The highest layer index this quality allows for a track whose top layer is `top` (`High` allows any,
    /// including layers the track gains later).
    pub fn max_layer(self, top: u8) -> u8 {
        match self {
            Quality::Low => 0,
            Quality::Medium => top.min(1),
            Quality::High => u8::MAX,
        }
    }
}

/// Why a subscription receives less than its top layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReason {
    /// It receives what it asked for.
    Requested,
    /// The subscriber's downlink estimate cannot carry more (or any, when paused).
    Bandwidth,
    /// The publisher does not send the wanted layer now.
    Unavailable,
}

/// The selector's decision for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forward it in the current layer.
    Forward,
    /// Forward it: it is the keyframe that starts a new layer (or resumes after a pause).
    Switch,
    /// Do not forward it; if `keyframe_for` is set, a keyframe of that layer is needed.
    Drop { keyframe_for: Option<u8> },
}

/// Layer choice for one (subscriber, track).
#[derive(Debug, Clone)]
pub struct LayerSelector {
    /// The highest layer the subscriber wants.
    wanted: u8,
    /// The highest layer the bandwidth allows; `None` pauses the track.
    allowed: Option<u8>,
    /// The layer being forwarded.
    current: Option<u8>,
    /// Layer switches made, for stats.
    pub switches: u64,
}

impl LayerSelector {
    /// A selector that wants up to layer `wanted` (`u8::MAX`: the top, whatever it is), with no bandwidth cap.
    pub fn new(wanted: u8) -> Self {
        LayerSelector {
            wanted,
            allowed: Some(u8::MAX),
            current: None,
            switches: 0,
        }
    }

    pub fn wanted(&self) -> u8 {
        self.wanted
    }

    pub fn set_wanted(&mut self, layer: u8) {
        self.wanted = layer;
    }

    /// The bandwidth cap (`None` = paused).
    pub fn allowed(&self) -> Option<u8> {
        self.allowed
    }

    pub fn set_allowed(&mut self, allowed: Option<u8>) {
        self.allowed = allowed;
    }

    pub fn is_paused(&self) -> bool {
        self.allowed.is_none()
    }

    /// The layer being forwarded.
    pub fn current(&self) -> Option<u8> {
        self.current
    }

    /// Forget the forwarded layer: the next packet must be a keyframe of the target.
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// The layer to forward given which layers are live: the highest live one within the wish and the
    /// bandwidth cap; if none is live that low, the lowest live one above the wish (never above the cap).
    pub fn target(&self, alive: LayerMask) -> Option<u8> {
        let cap = self.allowed?;
        let limit = self.wanted.min(cap);
        let below = (0..=limit.min(7)).rev().find(|l| alive & (1 << l) != 0);
        below.or_else(|| (limit..=cap.min(7)).find(|l| alive & (1 << l) != 0))
    }

    /// Why the subscription gets less than it asked for (or [`LimitReason::Requested`]), on a track whose
    /// highest layer is `top`.
    pub fn reason(&self, alive: LayerMask, top: u8) -> LimitReason {
        let wanted = self.wanted.min(top);
        match self.allowed {
            None => LimitReason::Bandwidth,
            Some(cap) if cap < wanted => LimitReason::Bandwidth,
            Some(_) if self.target(alive).is_none_or(|t| t < wanted) && alive != 0 => {
                LimitReason::Unavailable
            }
            Some(_) => LimitReason::Requested,
        }
    }

    /// Decide about one packet of `layer`; `keyframe` if it starts a keyframe, `alive` the live layers.
    pub fn decide(&mut self, layer: u8, keyframe: bool, alive: LayerMask) -> Decision {
        let Some(target) = self.target(alive) else {
            self.current = None;
            return Decision::Drop { keyframe_for: None };
        };
        if self.current == Some(target) {
            return if layer == target {
                Decision::Forward
            } else {
                Decision::Drop { keyframe_for: None }
            };
        }
        if layer == target && keyframe {
            self.current = Some(target);
            self.switches += 1;
            return Decision::Switch;
        }
        match self.current {
            // Keep the current layer flowing until the target's keyframe arrives.
            Some(c) if alive & (1 << c) != 0 => {
                if layer == c {
                    Decision::Forward
                } else {
                    Decision::Drop {
                        keyframe_for: Some(target),
                    }
                }
            }
            _ => {
                self.current = None;
                Decision::Drop {
                    keyframe_for: Some(target),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: LayerMask = 0b111;

    #[test]
    fn quality_maps_to_a_layer() {
        assert_eq!(Quality::Low.max_layer(2), 0);
        assert_eq!(Quality::Medium.max_layer(2), 1);
        assert_eq!(Quality::High.max_layer(2), u8::MAX);
        assert_eq!(Quality::Medium.max_layer(0), 0);
    }

    #[test]
    fn starts_on_a_keyframe_of_the_wanted_layer() {
        let mut s = LayerSelector::new(2);
        assert_eq!(
            s.decide(2, false, ALL),
            Decision::Drop {
                keyframe_for: Some(2)
            }
        );
        assert_eq!(
            s.decide(0, true, ALL),
            Decision::Drop {
                keyframe_for: Some(2)
            }
        );
        assert_eq!(s.decide(2, true, ALL), Decision::Switch);
        assert_eq!(s.decide(2, false, ALL), Decision::Forward);
        assert_eq!(
            s.decide(1, true, ALL),
            Decision::Drop { keyframe_for: None }
        );
        assert_eq!(s.current(), Some(2));
    }

    #[test]
    fn switches_up_and_down_only_at_a_keyframe_of_the_new_layer() {
        let mut s = LayerSelector::new(0);
        assert_eq!(s.decide(0, true, ALL), Decision::Switch);
        s.set_wanted(2);
        // Layer 0 keeps flowing until layer 2 has a keyframe.
        assert_eq!(s.decide(0, false, ALL), Decision::Forward);
        assert_eq!(
            s.decide(2, false, ALL),
            Decision::Drop {
                keyframe_for: Some(2)
            }
        );
        assert_eq!(s.decide(2, true, ALL), Decision::Switch);
        assert_eq!(
            s.decide(0, false, ALL),
            Decision::Drop { keyframe_for: None }
        );
        // Bandwidth caps it to layer 1: layer 2 flows until layer 1's keyframe.
        s.set_allowed(Some(1));
        assert_eq!(s.decide(2, false, ALL), Decision::Forward);
        assert_eq!(s.decide(1, true, ALL), Decision::Switch);
        assert_eq!(
            s.decide(2, false, ALL),
            Decision::Drop { keyframe_for: None }
        );
        assert_eq!(s.switches, 3);
        assert_eq!(s.reason(ALL, 2), LimitReason::Bandwidth);
    }

    #[test]
    fn falls_back_when_the_forwarded_layer_stops_and_returns_when_it_is_back() {
        let mut s = LayerSelector::new(2);
        assert_eq!(s.decide(2, true, ALL), Decision::Switch);
        // Layer 2 stops: the target becomes layer 1, and nothing flows until its keyframe.
        let without_top = 0b011;
        assert_eq!(
            s.decide(1, false, without_top),
            Decision::Drop {
                keyframe_for: Some(1)
            }
        );
        assert_eq!(s.reason(without_top, 2), LimitReason::Unavailable);
        assert_eq!(s.decide(1, true, without_top), Decision::Switch);
        assert_eq!(s.decide(1, false, without_top), Decision::Forward);
        // It comes back: switch up at its keyframe.
        assert_eq!(s.decide(1, false, ALL), Decision::Forward);
        assert_eq!(s.decide(2, true, ALL), Decision::Switch);
        assert_eq!(s.reason(ALL, 2), LimitReason::Requested);
    }

    #[test]
    fn takes_a_higher_layer_when_the_wanted_one_is_not_sent() {
        let mut s = LayerSelector::new(0);
        let only_top = 0b100;
        assert_eq!(s.target(only_top), Some(2));
        assert_eq!(s.decide(2, true, only_top), Decision::Switch);
        // ...but never above the bandwidth cap.
        s.set_allowed(Some(1));
        assert_eq!(s.target(only_top), None);
    }

    #[test]
    fn a_paused_subscription_forwards_nothing_and_resumes_on_a_keyframe() {
        let mut s = LayerSelector::new(2);
        assert_eq!(s.decide(2, true, ALL), Decision::Switch);
        s.set_allowed(None);
        assert!(s.is_paused());
        assert_eq!(
            s.decide(2, true, ALL),
            Decision::Drop { keyframe_for: None }
        );
        assert_eq!(s.current(), None);
        s.set_allowed(Some(0));
        assert_eq!(
            s.decide(0, false, ALL),
            Decision::Drop {
                keyframe_for: Some(0)
            }
        );
        assert_eq!(s.decide(0, true, ALL), Decision::Switch);
    }

    #[test]
    fn a_single_layer_track_is_forwarded_as_is() {
        let mut s = LayerSelector::new(0);
        assert_eq!(s.decide(0, true, 0b1), Decision::Switch);
        assert_eq!(s.decide(0, false, 0b1), Decision::Forward);
    }
}
