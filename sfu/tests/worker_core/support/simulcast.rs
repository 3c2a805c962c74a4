//! Simulcast on the virtual network: alice publishes one VP8 track in three layers (`q`, `h`, `f`), each
//! layer's frames bigger than the one below (so layers differ in bitrate, and bob's received sizes say which
//! layer reached him). Delta frames stay below and keyframes above [`KEYFRAME_BYTES`] in every layer.

use std::time::Duration;

use chorus_sfu::{TrackKey, TrackSpec};
use str0m::format::Codec;
use str0m::media::{MediaTime, Mid, Rid, Simulcast, SimulcastLayer};

use super::{frame_with_padding, Harness, KEYFRAME_BYTES};

pub const RIDS: [&str; 3] = ["q", "h", "f"];

/// Extra payload bytes of a layer's frames.
pub fn layer_padding(layer: usize) -> usize {
    layer * 90
}

/// Which layer a received payload of `len` bytes came from.
pub fn layer_of(len: usize) -> usize {
    // Frames are 1 header byte + 300 (delta) or 800 (key) + padding, plus the VP8 descriptor str0m adds.
    let base = if len > KEYFRAME_BYTES { 800 } else { 300 };
    (0..RIDS.len())
        .rev()
        .find(|&l| len >= base + 1 + layer_padding(l))
        .unwrap_or(0)
}

impl Harness {
    /// Alice offers one sendonly VP8 track with three simulcast layers; the SFU answers; bob subscribes.
    pub fn publish_simulcast_to_bob(&mut self, track: TrackKey) -> Mid {
        let mut sim = Simulcast::new();
        for r in RIDS {
            sim.add_send_layer(SimulcastLayer::new(r));
        }
        let mid = self.alice_publishes_with(
            track,
            Some(sim),
            TrackSpec {
                layers: RIDS.iter().map(|r| r.to_string()).collect(),
                full_size: Some((1280, 720)),
                priority: 1,
                ..Default::default()
            },
        );
        self.bob_subscribes(track);
        mid
    }

    /// Alice sends `n` frames at 30 fps in each layer whose bit is set in `layers`; a layer's frame is a
    /// keyframe when `keyframe(frame index, layer)` says so.
    pub fn alice_sends_simulcast(
        &mut self,
        mid: Mid,
        n: u32,
        start_ts: u64,
        layers: u8,
        keyframe: impl Fn(u32, usize) -> bool,
    ) {
        for i in 0..n {
            for (l, rid) in RIDS.iter().enumerate() {
                if layers & (1 << l) == 0 {
                    continue;
                }
                let writer = self.alice.rtc.writer(mid).expect("writer");
                let pt = writer
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::Vp8)
                    .expect("VP8 negotiated")
                    .pt();
                let data = frame_with_padding(Codec::Vp8, keyframe(i, l), layer_padding(l));
                let writer = self.alice.rtc.writer(mid).expect("writer");
                writer
                    .rid(Rid::from(*rid))
                    .write(
                        pt,
                        self.now,
                        MediaTime::from_90khz(start_ts + u64::from(i) * 3000),
                        data,
                    )
                    .expect("write frame");
                // Drain before the next layer's write, as an application's poll loop would.
                self.drain_client(true);
            }
            self.run(Duration::from_millis(33));
        }
    }

    /// The layers of the packets bob received from index `from` on.
    pub fn bob_layers_since(&self, from: usize) -> Vec<usize> {
        self.bob.sizes[from..]
            .iter()
            .map(|&s| layer_of(s))
            .collect()
    }
}
