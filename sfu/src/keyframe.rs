//! Recognising the first packet of a keyframe from an RTP payload, per codec, without decoding.
//!
//! Used to re-anchor a forwarded video stream only where a decoder can start. Every function reads only the
//! bytes it is given and returns `false` on anything too short or malformed.

/// Video codecs whose keyframes we can recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    Vp8,
    Vp9,
    H264,
    Av1,
    /// A codec we cannot inspect: every packet is treated as a possible start.
    Other,
}

/// Whether `payload` (an RTP payload) starts a keyframe in `codec`.
pub fn is_keyframe_start(codec: VideoCodec, payload: &[u8]) -> bool {
    match codec {
        VideoCodec::Vp8 => vp8_keyframe(payload),
        VideoCodec::Vp9 => vp9_keyframe(payload),
        VideoCodec::H264 => h264_keyframe(payload),
        VideoCodec::Av1 => av1_keyframe(payload),
        VideoCodec::Other => true,
    }
}

/// RFC 7741: payload descriptor, then the VP8 header whose P bit is 0 on a keyframe.
fn vp8_keyframe(p: &[u8]) -> bool {
    let Some(&b0) = p.first() else { return false };
    let start_of_partition = b0 & 0x10 != 0;
    let partition_id = b0 & 0x07;
    if !start_of_partition || partition_id != 0 {
        return false;
    }
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let Some(&x) = p.get(i) else { return false };
        i += 1;
        if x & 0x80 != 0 {
            // Picture id: 7 or 15 bits.
            let Some(&pid) = p.get(i) else { return false };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            i += 1; // TID/Y/KEYIDX
        }
    }
    p.get(i).is_some_and(|h| h & 0x01 == 0)
}

/// VP9 RTP descriptor: P (inter-picture predicted) clear and B (start of frame) set.
fn vp9_keyframe(p: &[u8]) -> bool {
    p.first().is_some_and(|b| b & 0x40 == 0 && b & 0x08 != 0)
}

/// H.264 (RFC 6184): an IDR slice or SPS, alone, aggregated (STAP-A) or as the start of a fragment (FU-A).
fn h264_keyframe(p: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    let is_key = |t: u8| t == IDR || t == SPS;
    let Some(&b0) = p.first() else { return false };
    match b0 & 0x1f {
        24 => {
            let mut i = 1;
            while i + 2 < p.len() {
                let size = usize::from(u16::from_be_bytes([p[i], p[i + 1]]));
                let Some(&nal) = p.get(i + 2) else {
                    return false;
                };
                if size > 0 && is_key(nal & 0x1f) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => p
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && is_key(fu & 0x1f)),
        t => is_key(t),
    }
}

/// AV1 RTP aggregation header: N marks the first packet of a coded video sequence.
fn av1_keyframe(p: &[u8]) -> bool {
    p.first().is_some_and(|b| b & 0x08 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_with_extended_descriptor() {
        // X=1,S=1,PID=0 | I=1,L=1 | 15-bit picture id | TL0PICIDX | VP8 header with P=0.
        let key = [0x90, 0xC0, 0x81, 0x23, 0x05, 0x10];
        assert!(is_keyframe_start(VideoCodec::Vp8, &key));
        let delta = [0x90, 0xC0, 0x81, 0x23, 0x05, 0x11];
        assert!(!is_keyframe_start(VideoCodec::Vp8, &delta));
        // Not the start of partition 0.
        assert!(!is_keyframe_start(VideoCodec::Vp8, &[0x80, 0x00, 0x10]));
    }

    #[test]
    fn vp8_minimal_descriptor() {
        assert!(is_keyframe_start(VideoCodec::Vp8, &[0x10, 0x00]));
        assert!(!is_keyframe_start(VideoCodec::Vp8, &[0x10, 0x01]));
    }

    #[test]
    fn h264_forms() {
        assert!(is_keyframe_start(VideoCodec::H264, &[0x65, 0x88]));
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x41, 0x9a]));
        // STAP-A with SPS, PPS.
        assert!(is_keyframe_start(
            VideoCodec::H264,
            &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]
        ));
        // FU-A start of an IDR, and a continuation.
        assert!(is_keyframe_start(VideoCodec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!is_keyframe_start(VideoCodec::H264, &[0x7c, 0x05, 0x00]));
    }

    #[test]
    fn vp9_and_av1() {
        assert!(is_keyframe_start(VideoCodec::Vp9, &[0x08]));
        assert!(!is_keyframe_start(VideoCodec::Vp9, &[0x48]));
        assert!(is_keyframe_start(VideoCodec::Av1, &[0x08]));
        assert!(!is_keyframe_start(VideoCodec::Av1, &[0x00]));
    }

    #[test]
    fn malformed_payloads_never_panic() {
        let inputs: [&[u8]; 6] = [
            &[],
            &[0xff],
            &[0x90],
            &[0x90, 0x80],
            &[0x78, 0xff, 0xff],
            &[0x7c],
        ];
        for codec in [
            VideoCodec::Vp8,
            VideoCodec::Vp9,
            VideoCodec::H264,
            VideoCodec::Av1,
        ] {
            for p in inputs {
                let _ = is_keyframe_start(codec, p);
            }
        }
    }
}
