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
    pub fn select_layer(&mut self, rid: Option<&str>, now: Instant) -> LayerDecision {
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
        let current_ok = self
            .selected_rid
            .as_deref()
            .is_some_and(|s| alive(s) && s == best);
        if current_ok {
            return if self.selected_rid.as_deref() == Some(rid) {
                LayerDecision::Forward
            } else {
                LayerDecision::Skip
            };
        }
        if best == rid {
            self.selected_rid = Some(rid.to_string());
            LayerDecision::Switched
        } else {
            LayerDecision::Skip
        }
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
    fn prefers_the_middle_layer_and_falls_back_when_it_stops() {
        let mut r = route();
        let t0 = Instant::now();
        assert_eq!(r.select_layer(Some("q"), t0), LayerDecision::Switched);
        assert_eq!(r.select_layer(Some("h"), t0), LayerDecision::Switched);
        assert_eq!(r.select_layer(Some("q"), t0), LayerDecision::Skip);
        assert_eq!(r.select_layer(Some("f"), t0), LayerDecision::Skip);
        assert_eq!(r.select_layer(Some("h"), t0), LayerDecision::Forward);
        // "h" stops; after the timeout the next "f" packet takes over.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(r.select_layer(Some("f"), t1), LayerDecision::Switched);
        assert_eq!(r.select_layer(Some("f"), t1), LayerDecision::Forward);
    }

    #[test]
    fn without_simulcast_everything_is_forwarded() {
        let mut r = route();
        assert_eq!(r.select_layer(None, Instant::now()), LayerDecision::Forward);
    }
}
