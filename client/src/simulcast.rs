//! Simulcast publishing: the layers ([`SimulcastLayer`]) a synthetic video track can be sent in, their
//! defaults (`q`/`h`/`f`, as a browser sends a 720p camera), and the checks a layer list must pass.
//!
//! Only the description lives here, no I/O: `local_track.rs` turns each layer into one webrtc-rs encoding with
//! its own synthetic source.

/// Most layers a track may have (the server uses no more: `sfu/src/layers.rs`).
pub const MAX_SIMULCAST_LAYERS: usize = 4;

/// Longest `rid` accepted (RFC 8851 sets no limit; browsers use one or two characters).
const MAX_RID_LEN: usize = 16;

/// Largest width or height a VP8 keyframe header can carry (14 bits).
const MAX_DIMENSION: u16 = 0x3FFF;

/// One simulcast encoding of a published video track: its `rid`, the resolution written into its VP8
/// keyframe headers, and its average bitrate. A list of them is lowest quality first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulcastLayer {
    pub rid: String,
    pub width: u16,
    pub height: u16,
    /// Average bits per second, keyframes included.
    pub bitrate_bps: u32,
}

/// The default layers' bitrates, lowest first: what Chromium sends for a 720p camera.
const DEFAULT_BPS: [u32; 3] = [150_000, 500_000, 1_700_000];

impl SimulcastLayer {
    pub fn new(rid: impl Into<String>, width: u16, height: u16, bitrate_bps: u32) -> Self {
        SimulcastLayer {
            rid: rid.into(),
            width,
            height,
            bitrate_bps,
        }
    }

    /// `q` 320×180 at 150 kbit/s, `h` 640×360 at 500 kbit/s, `f` 1280×720 at 1.7 Mbit/s: each layer halves the
    /// one above, as the protocol's `width`/`height` assume (`docs/protocol.md`).
    pub fn defaults() -> Vec<SimulcastLayer> {
        Self::defaults_with_top_bitrate(DEFAULT_BPS[2])
    }

    /// The default layers with `f` at `top_bps` and `q`, `h` scaled in the default proportion (150/1700 and
    /// 500/1700 of it).
    pub fn defaults_with_top_bitrate(top_bps: u32) -> Vec<SimulcastLayer> {
        let scaled =
            |bps: u32| (u64::from(top_bps) * u64::from(bps) / u64::from(DEFAULT_BPS[2])) as u32;
        vec![
            SimulcastLayer::new("q", 320, 180, scaled(DEFAULT_BPS[0])),
            SimulcastLayer::new("h", 640, 360, scaled(DEFAULT_BPS[1])),
            SimulcastLayer::new("f", 1280, 720, top_bps),
        ]
    }
}

/// Why a layer list cannot be published, or `Ok` (an empty list means one encoding and is always fine).
pub(crate) fn check_layers(layers: &[SimulcastLayer]) -> Result<(), String> {
    if layers.is_empty() {
        return Ok(());
    }
    if !(2..=MAX_SIMULCAST_LAYERS).contains(&layers.len()) {
        return Err(format!(
            "simulcast needs 2 to {MAX_SIMULCAST_LAYERS} layers, not {}",
            layers.len()
        ));
    }
    for (i, layer) in layers.iter().enumerate() {
        let rid_ok = !layer.rid.is_empty()
            && layer.rid.len() <= MAX_RID_LEN
            && layer
                .rid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !rid_ok {
            return Err(format!(
                "simulcast rid {:?}: 1 to {MAX_RID_LEN} characters of A-Z, a-z, 0-9, - and _",
                layer.rid
            ));
        }
        if layers[..i].iter().any(|l| l.rid == layer.rid) {
            return Err(format!("simulcast rid {:?} appears twice", layer.rid));
        }
        if !(1..=MAX_DIMENSION).contains(&layer.width)
            || !(1..=MAX_DIMENSION).contains(&layer.height)
        {
            return Err(format!(
                "simulcast layer {:?}: size {}×{} is not within 1..={MAX_DIMENSION}",
                layer.rid, layer.width, layer.height
            ));
        }
        if layer.bitrate_bps == 0 {
            return Err(format!("simulcast layer {:?}: bitrate 0", layer.rid));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_q_h_f_lowest_first_and_scale_with_the_top() {
        let d = SimulcastLayer::defaults();
        let rids: Vec<_> = d.iter().map(|l| l.rid.as_str()).collect();
        assert_eq!(rids, ["q", "h", "f"]);
        assert_eq!(
            d.iter()
                .map(|l| (l.width, l.height, l.bitrate_bps))
                .collect::<Vec<_>>(),
            [
                (320, 180, 150_000),
                (640, 360, 500_000),
                (1280, 720, 1_700_000)
            ]
        );
        let half = SimulcastLayer::defaults_with_top_bitrate(850_000);
        assert_eq!(
            half.iter().map(|l| l.bitrate_bps).collect::<Vec<_>>(),
            [75_000, 250_000, 850_000]
        );
        assert_eq!(check_layers(&d), Ok(()));
        assert_eq!(check_layers(&[]), Ok(()));
    }

    #[test]
    fn bad_layer_lists_are_refused() {
        let one = vec![SimulcastLayer::new("q", 320, 180, 1)];
        let mut five = SimulcastLayer::defaults();
        five.extend([
            SimulcastLayer::new("a", 1, 1, 1),
            SimulcastLayer::new("b", 1, 1, 1),
        ]);
        let mut twice = SimulcastLayer::defaults();
        twice[1].rid = "q".into();
        let mut bad_rid = SimulcastLayer::defaults();
        bad_rid[0].rid = "q q".into();
        let mut empty_rid = SimulcastLayer::defaults();
        empty_rid[0].rid.clear();
        let mut zero = SimulcastLayer::defaults();
        zero[2].width = 0;
        let mut huge = SimulcastLayer::defaults();
        huge[2].height = 20_000;
        let mut silent = SimulcastLayer::defaults();
        silent[0].bitrate_bps = 0;
        for bad in [one, five, twice, bad_rid, empty_rid, zero, huge, silent] {
            assert!(check_layers(&bad).is_err(), "{bad:?}");
        }
    }
}
