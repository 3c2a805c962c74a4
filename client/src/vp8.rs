//! Reading the resolution of a VP8 keyframe from the first RTP packet of the frame (RFC 7741 payload
//! descriptor, then the VP8 frame tag and keyframe header of RFC 6386 §9.1).
//!
//! The subscriber uses it to tell which simulcast layer it receives: every layer of a synthetic Chorus track
//! writes its own size into its keyframes, and the SFU switches layers only at a keyframe, so the size of the
//! last keyframe names the layer of the packets that follow. Any byte string is accepted: bad or short input
//! gives `None`, never a panic.

/// The VP8 keyframe start code (RFC 6386 §9.1).
const START_CODE: [u8; 3] = [0x9d, 0x01, 0x2a];

/// `(width, height)` if `payload` (an RTP payload of a VP8 stream) is the first packet of a keyframe.
pub fn keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    let first = *payload.first()?;
    let extended = first & 0x80 != 0;
    let start_of_partition = first & 0x10 != 0;
    let partition = first & 0x07;
    if !start_of_partition || partition != 0 {
        return None;
    }
    let mut at = 1;
    if extended {
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            // PictureID: 7 bits, or 15 with the M bit.
            let m = *payload.get(at)? & 0x80 != 0;
            at += if m { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            at += 1; // TID / Y / KEYIDX
        }
    }
    let frame = payload.get(at..)?;
    let tag = frame.get(..3)?;
    if tag[0] & 0x01 != 0 {
        return None; // an interframe
    }
    if frame.get(3..6)? != START_CODE {
        return None;
    }
    let size = frame.get(6..10)?;
    let width = u16::from_le_bytes([size[0], size[1]]) & 0x3FFF;
    let height = u16::from_le_bytes([size[2], size[3]]) & 0x3FFF;
    Some((width, height))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::media::{video_frame, MediaOptions};

    fn opts(width: u16, height: u16) -> MediaOptions {
        MediaOptions {
            video_width: width,
            video_height: height,
            ..MediaOptions::default()
        }
    }

    #[test]
    fn reads_the_size_of_synthetic_keyframes_behind_any_descriptor() {
        let key = video_frame(1, 2000, true, &opts(320, 180), SystemTime::now());
        for descriptor in [
            &[0x10][..],                     // S, no extension
            &[0x90, 0x80, 0x05],             // X, I with a 7-bit PictureID
            &[0x90, 0x80, 0x81, 0x23],       // X, I with a 15-bit PictureID
            &[0x90, 0xF0, 0x81, 0x23, 7, 0], // X, I, L, T and K
        ] {
            let mut payload = descriptor.to_vec();
            payload.extend_from_slice(&key[..1000]);
            assert_eq!(keyframe_size(&payload), Some((320, 180)), "{descriptor:?}");
        }
    }

    #[test]
    fn no_size_for_interframes_continuations_or_garbage() {
        let delta = video_frame(2, 500, false, &opts(1280, 720), SystemTime::now());
        let mut payload = vec![0x10];
        payload.extend_from_slice(&delta);
        assert_eq!(keyframe_size(&payload), None, "interframe");

        let key = video_frame(3, 3000, true, &opts(1280, 720), SystemTime::now());
        let mut continuation = vec![0x00];
        continuation.extend_from_slice(&key[..100]);
        assert_eq!(
            keyframe_size(&continuation),
            None,
            "not the start of the frame"
        );
        let mut other_partition = vec![0x11];
        other_partition.extend_from_slice(&key[..100]);
        assert_eq!(keyframe_size(&other_partition), None, "partition 1");

        for garbage in [
            &[][..],
            &[0x10],
            &[0x90],
            &[0x90, 0x80],
            &[0x90, 0x80, 0x81],
            &[0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x40],
            &[
                0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2b, 0x40, 0x01, 0xb4, 0x00,
            ],
        ] {
            assert_eq!(keyframe_size(garbage), None, "{garbage:?}");
        }
        let mut whole = vec![0x10];
        whole.extend_from_slice(&key[..10]);
        assert_eq!(
            keyframe_size(&whole),
            Some((1280, 720)),
            "header alone is enough"
        );
    }
}
