//! A room's media graph on its worker: who is in it, and for each published track, who receives it.
//!
//! Pure bookkeeping (no str0m calls): the worker core consults it on every packet to find the subscribers of a
//! track, and to throttle keyframe requests and choose the forwarded simulcast layer.

use std::time::{Duration, Instant};

use crate::api::{EventSink, MediaKind, ParticipantKey, RoomKey};
use crate::keyframe::VideoCodec;

/// Keyframe requests to one publisher track are sent at most this often.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// A simulcast layer not heard from for this long is considered gone.
const LAYER_TIMEOUT: Duration = Duration::from_millis(1500);

/// Preferred simulcast layer order until per-subscriber layer selection lands: the middle layer first (cheap to
/// decode, good enough for a grid), then full, then quarter.
const LAYER_PREFERENCE: &[&str] = &["h", "f", "q"];

pub struct RoomMedia {
    pub events: EventSink,
    pub participants: Vec<ParticipantKey>,
}

/// The codec of one payload type of a publisher, cached on first sight.
#[derive(Debug, Clone, Copy)]
pub struct PtInfo {
    pub pt: u8,
    /// The publisher's parameters for this payload type, to find the matching one towards each subscriber.
    pub params: str0m::format::PayloadParams,
    pub codec: VideoCodec,
    pub clock_rate: u32,
}

pub struct TrackRoute {
    pub room: RoomKey,
    pub publisher: ParticipantKey,
    /// The publisher connection's mid carrying this track.
    pub mid: str0m::media::Mid,
    pub kind: MediaKind,
    pub muted: bool,
    pub subscribers: Vec<ParticipantKey>,
    pub pt_info: Vec<PtInfo>,
    last_keyframe_request: Option<Instant>,
    /// Simulcast: the layer being forwarded, and when each layer was last heard.
    pub selected_rid: Option<String>,
    /// A better live layer waiting for its keyframe to take over.
    target_rid: Option<String>,
    layers_seen: Vec<(String, Instant)>,
}

/// What the route decided for a packet of one simulcast layer.
#[derive(Debug, PartialEq, Eq)]
pub enum LayerDecision {
    /// Forward it: it is the selected layer.
    Forward,
    /// Forward it, but it starts a new selection: forwarders must re-anchor, and a keyframe is needed.
    Switched,
    /// Not the selected layer.
    Skip,
}

impl TrackRoute {
    pub fn new(
        room: RoomKey,
        publisher: ParticipantKey,
        mid: str0m::media::Mid,
        kind: MediaKind,
    ) -> Self {
        TrackRoute {
            room,
            publisher,
            mid,
            kind,
            muted: false,
            subscribers: Vec::new(),
            pt_info: Vec::new(),
            last_keyframe_request: None,
            selected_rid: None,
            target_rid: None,
            layers_seen: Vec::new(),
        }
    }

    /// Whether a keyframe request may go to the publisher now (and record it if so).
    pub fn allow_keyframe_request(&mut self, now: Instant) -> bool {
        match self.last_keyframe_request {
            Some(t) if now.saturating_duration_since(t) < KEYFRAME_REQUEST_INTERVAL => false,
            _ => {
                self.last_keyframe_request = Some(now);
                true
            }
        }
    }

    /// Track which layers are alive and decide whether a packet of layer `rid` is forwarded.
    ///
    /// While the forwarded layer is alive, a better layer takes over only at one of its keyframes (so no
    /// subscriber's picture freezes waiting for it); until then the current layer keeps flowing. If the
    /// current layer stopped, the best live layer takes over at once and forwarders wait for its keyframe.
    pub fn select_layer(
        &mut self,
        rid: Option<&str>,
        keyframe: bool,
        now: Instant,
    ) -> LayerDecision {
        let Some(rid) = rid else {
            return LayerDecision::Forward;
        };
        match self.layers_seen.iter_mut().find(|(r, _)| r == rid) {
            Some((_, seen)) => *seen = now,
            None => self.layers_seen.push((rid.to_string(), now)),
        }
        let alive = |r: &str| {
            self.layers_seen
                .iter()
                .any(|(l, t)| l == r && now.saturating_duration_since(*t) < LAYER_TIMEOUT)
        };
        let best = LAYER_PREFERENCE
            .iter()
            .copied()
            .find(|r| alive(r))
            .unwrap_or(rid);
        let current = self.selected_rid.as_deref().filter(|c| alive(c));
        // Updated only when it changes: this runs for every packet of a simulcast track.
        if current == Some(best) {
            self.target_rid = None;
        } else if self.target_rid.as_deref() != Some(best) {
            self.target_rid = Some(best.to_string());
        }
        match current {
            Some(c) if c == best || !(rid == best && keyframe) => {
                if c == rid {
                    LayerDecision::Forward
                } else {
                    LayerDecision::Skip
                }
            }
            _ if rid == best => {
                self.selected_rid = Some(rid.to_string());
                self.target_rid = None;
                LayerDecision::Switched
            }
            _ => LayerDecision::Skip,
        }
    }

    /// The layer a keyframe is needed from: the one being switched to, else the one forwarded.
    pub fn keyframe_rid(&self) -> Option<&str> {
        self.target_rid.as_deref().or(self.selected_rid.as_deref())
    }

    /// Whether a better layer is waiting for a keyframe to take over.
    pub fn switch_pending(&self) -> bool {
        self.target_rid.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> TrackRoute {
        TrackRoute::new(
            RoomKey(1),
            ParticipantKey(1),
            str0m::media::Mid::from("0"),
            MediaKind::Video,
        )
    }

    #[test]
    fn keyframe_requests_are_throttled() {
        let mut r = route();
        let t0 = Instant::now();
        assert!(r.allow_keyframe_request(t0));
        assert!(!r.allow_keyframe_request(t0 + Duration::from_millis(100)));
        assert!(r.allow_keyframe_request(t0 + KEYFRAME_REQUEST_INTERVAL));
    }

    #[test]
    fn upgrades_only_on_a_keyframe_of_the_better_layer() {
        let mut r = route();
        let t0 = Instant::now();
        // Only "q" at first: taken at once (nothing else is flowing).
        assert_eq!(
            r.select_layer(Some("q"), false, t0),
            LayerDecision::Switched
        );
        assert_eq!(r.select_layer(Some("q"), false, t0), LayerDecision::Forward);
        // "h" appears: "q" keeps flowing until an "h" keyframe.
        assert_eq!(r.select_layer(Some("h"), false, t0), LayerDecision::Skip);
        assert!(r.switch_pending());
        assert_eq!(r.keyframe_rid(), Some("h"));
        assert_eq!(r.select_layer(Some("q"), false, t0), LayerDecision::Forward);
        assert_eq!(r.select_layer(Some("h"), true, t0), LayerDecision::Switched);
        assert!(!r.switch_pending());
        assert_eq!(r.select_layer(Some("q"), true, t0), LayerDecision::Skip);
        assert_eq!(r.select_layer(Some("f"), true, t0), LayerDecision::Skip);
        assert_eq!(r.select_layer(Some("h"), false, t0), LayerDecision::Forward);
    }

    #[test]
    fn falls_back_at_once_when_the_forwarded_layer_stops() {
        let mut r = route();
        let t0 = Instant::now();
        assert_eq!(r.select_layer(Some("h"), true, t0), LayerDecision::Switched);
        // "h" stops; after the timeout the next "f" packet takes over even without a keyframe.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(
            r.select_layer(Some("f"), false, t1),
            LayerDecision::Switched
        );
        assert_eq!(r.select_layer(Some("f"), false, t1), LayerDecision::Forward);
    }

    #[test]
    fn without_simulcast_everything_is_forwarded() {
        let mut r = route();
        assert_eq!(
            r.select_layer(None, false, Instant::now()),
            LayerDecision::Forward
        );
    }
}
