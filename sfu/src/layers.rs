//! What a publisher's video track offers: its simulcast layers (lowest first), which of them are flowing, how
//! many bits each carries, and when each was last asked for a keyframe.
//!
//! Pure bookkeeping per track, fed every packet by the fan-out. A track without simulcast has one layer. Layers
//! are identified by index (0 = lowest); the order comes from the publisher's track description, so any `rid`
//! naming works. This file owns no str0m calls and no per-subscriber state (that is [`crate::selector`]).

use std::time::{Duration, Instant};

/// Most simulcast layers a track may have.
pub const MAX_LAYERS: usize = 4;

/// A layer not heard from for this long is considered stopped (publisher CPU or uplink limits, or dynacast).
pub const LAYER_TIMEOUT: Duration = Duration::from_millis(1000);

/// Keyframe requests for one layer go to the publisher at most this often.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// Bitrate measurement window.
const METER_WINDOW: Duration = Duration::from_millis(1000);

/// A bit set of layer indexes.
pub type LayerMask = u8;

/// A rate measured over less than this is not trusted yet.
const METER_MIN_SPAN: Duration = Duration::from_millis(200);

/// Measures one layer's bitrate over fixed windows.
#[derive(Debug, Clone, Copy, Default)]
struct Meter {
    window_start: Option<Instant>,
    window_bytes: u64,
    /// Bits per second in the last complete window.
    last_bps: u64,
}

impl Meter {
    fn add(&mut self, now: Instant, bytes: usize) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= METER_WINDOW {
            self.last_bps = self.window_bytes * 8 * 1000 / elapsed.as_millis().max(1) as u64;
            self.window_start = Some(now);
            self.window_bytes = 0;
        }
        self.window_bytes += bytes as u64;
    }

    /// The last complete window's rate; before there is one, the rate so far once it spans
    /// [`METER_MIN_SPAN`]; else 0 (unknown).
    fn bps(&self, now: Instant) -> u64 {
        if self.last_bps > 0 {
            return self.last_bps;
        }
        let Some(start) = self.window_start else {
            return 0;
        };
        let span = now.saturating_duration_since(start);
        if span < METER_MIN_SPAN {
            return 0;
        }
        self.window_bytes * 8 * 1000 / span.as_millis().max(1) as u64
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Layer {
    last_seen: Option<Instant>,
    last_keyframe_request: Option<Instant>,
    meter: Meter,
}

/// The layers of one published track.
#[derive(Debug, Clone)]
pub struct LayerSet {
    /// Simulcast `rid`s, lowest first; empty for a track sent as one encoding.
    rids: Vec<String>,
    layers: [Layer; MAX_LAYERS],
    /// Width and height of the top layer, if the publisher said.
    full_size: Option<(u32, u32)>,
}

impl LayerSet {
    /// `rids` lowest first (at most [`MAX_LAYERS`] are used); empty for no simulcast.
    pub fn new(rids: &[String], full_size: Option<(u32, u32)>) -> Self {
        LayerSet {
            rids: rids.iter().take(MAX_LAYERS).cloned().collect(),
            layers: [Layer::default(); MAX_LAYERS],
            full_size,
        }
    }

    /// How many layers the track has (1 without simulcast).
    pub fn count(&self) -> usize {
        self.rids.len().max(1)
    }

    /// The highest layer index.
    pub fn top(&self) -> u8 {
        (self.count() - 1) as u8
    }

    /// The layer index of a packet with this `rid`. A rid the publisher did not declare is learned as the next
    /// layer up (while there is room), so a client that sends rids without declaring them still works; a
    /// packet without a rid on a simulcast track, or past [`MAX_LAYERS`], has no layer.
    pub fn index_of(&mut self, rid: Option<&str>) -> Option<u8> {
        let Some(r) = rid else {
            return self.rids.is_empty().then_some(0);
        };
        if let Some(i) = self.rids.iter().position(|x| x == r) {
            return Some(i as u8);
        }
        if self.rids.len() >= MAX_LAYERS {
            return None;
        }
        self.rids.push(r.to_string());
        Some((self.rids.len() - 1) as u8)
    }

    /// The `rid` of a layer (`None` without simulcast).
    pub fn rid(&self, layer: u8) -> Option<&str> {
        self.rids.get(usize::from(layer)).map(String::as_str)
    }

    /// Every rid, lowest first.
    pub fn rids(&self) -> &[String] {
        &self.rids
    }

    /// Record a packet of `layer`.
    pub fn on_packet(&mut self, layer: u8, bytes: usize, now: Instant) {
        if let Some(l) = self.layers.get_mut(usize::from(layer)) {
            l.last_seen = Some(now);
            l.meter.add(now, bytes);
        }
    }

    /// The layers heard from within [`LAYER_TIMEOUT`].
    pub fn alive(&self, now: Instant) -> LayerMask {
        let mut mask = 0;
        for (i, l) in self.layers.iter().enumerate().take(self.count()) {
            if l.last_seen
                .is_some_and(|t| now.saturating_duration_since(t) < LAYER_TIMEOUT)
            {
                mask |= 1 << i;
            }
        }
        mask
    }

    /// Whether a keyframe request for `layer` may go out now (and record it if so).
    pub fn allow_keyframe_request(&mut self, layer: u8, now: Instant) -> bool {
        let Some(l) = self.layers.get_mut(usize::from(layer)) else {
            return false;
        };
        match l.last_keyframe_request {
            Some(t) if now.saturating_duration_since(t) < KEYFRAME_REQUEST_INTERVAL => false,
            _ => {
                l.last_keyframe_request = Some(now);
                true
            }
        }
    }

    /// The measured bitrate of a layer in bits per second; 0 while it is too new to tell (a layer just
    /// started is admitted, then corrected once measured).
    pub fn bitrate(&self, layer: u8, now: Instant) -> u64 {
        self.layers
            .get(usize::from(layer))
            .map_or(0, |l| l.meter.bps(now))
    }

    /// The size of a layer, if the publisher gave its full size: each layer below the top halves it (the
    /// browser SDK's `scaleResolutionDownBy` 4, 2, 1).
    pub fn size(&self, layer: u8) -> Option<(u32, u32)> {
        let (w, h) = self.full_size?;
        let shift = u32::from(self.top().saturating_sub(layer));
        Some((w >> shift, h >> shift))
    }

    /// The lowest layer at least `width`×`height`, or the top one if none is; every layer if the sizes are
    /// unknown.
    pub fn layer_for_size(&self, width: u32, height: u32) -> u8 {
        (0..=self.top())
            .find(|&l| self.size(l).is_some_and(|(w, h)| w >= width && h >= height))
            .unwrap_or(self.top())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qhf() -> LayerSet {
        LayerSet::new(
            &["q".to_string(), "h".to_string(), "f".to_string()],
            Some((1280, 720)),
        )
    }

    #[test]
    fn layers_are_indexed_lowest_first() {
        let mut s = qhf();
        assert_eq!(s.count(), 3);
        assert_eq!(s.index_of(Some("q")), Some(0));
        assert_eq!(s.index_of(Some("f")), Some(2));
        assert_eq!(s.index_of(None), None);
        // An undeclared rid is learned as the next layer up, until there is no room.
        assert_eq!(s.index_of(Some("x")), Some(3));
        assert_eq!(s.index_of(Some("y")), None);
        let mut single = LayerSet::new(&[], None);
        assert_eq!(single.index_of(None), Some(0));
        assert_eq!(single.top(), 0);
        let mut undeclared = LayerSet::new(&[], None);
        assert_eq!(undeclared.index_of(Some("a")), Some(0));
        assert_eq!(undeclared.index_of(Some("a")), Some(0));
    }

    #[test]
    fn a_layer_is_alive_until_it_falls_silent() {
        let mut s = qhf();
        let t0 = Instant::now();
        s.on_packet(0, 100, t0);
        s.on_packet(2, 100, t0 + Duration::from_millis(500));
        assert_eq!(s.alive(t0 + Duration::from_millis(600)), 0b101);
        assert_eq!(s.alive(t0 + Duration::from_millis(1200)), 0b100);
        assert_eq!(s.alive(t0 + Duration::from_secs(3)), 0);
    }

    #[test]
    fn bitrate_is_measured_per_layer() {
        let mut s = qhf();
        let t0 = Instant::now();
        assert_eq!(s.bitrate(1, t0), 0, "unknown before any packet");
        s.on_packet(1, 1000, t0);
        assert_eq!(
            s.bitrate(1, t0 + Duration::from_millis(50)),
            0,
            "too early to tell"
        );
        // 100 packets of 1,000 bytes over one second: 800 kbit/s.
        for i in 1..=100 {
            s.on_packet(1, 1000, t0 + Duration::from_millis(i * 10));
        }
        assert_eq!(s.bitrate(1, t0 + Duration::from_secs(1)), 800_000);
        assert_eq!(s.bitrate(0, t0 + Duration::from_secs(1)), 0);
    }

    #[test]
    fn element_size_maps_to_the_smallest_sufficient_layer() {
        let s = qhf();
        assert_eq!(s.size(0), Some((320, 180)));
        assert_eq!(s.layer_for_size(320, 180), 0);
        assert_eq!(s.layer_for_size(321, 100), 1);
        assert_eq!(s.layer_for_size(640, 360), 1);
        assert_eq!(s.layer_for_size(1000, 500), 2);
        assert_eq!(s.layer_for_size(4000, 4000), 2);
        let unknown = LayerSet::new(&["q".to_string(), "h".to_string()], None);
        assert_eq!(unknown.layer_for_size(10, 10), 1);
    }

    #[test]
    fn keyframe_requests_are_throttled_per_layer() {
        let mut s = qhf();
        let t0 = Instant::now();
        assert!(s.allow_keyframe_request(0, t0));
        assert!(!s.allow_keyframe_request(0, t0 + Duration::from_millis(100)));
        assert!(s.allow_keyframe_request(1, t0 + Duration::from_millis(100)));
        assert!(s.allow_keyframe_request(0, t0 + KEYFRAME_REQUEST_INTERVAL));
        assert!(!s.allow_keyframe_request(7, t0));
    }
}
