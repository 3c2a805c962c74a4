//! Targets over the pure parsers and per-packet logic: no I/O, no state beyond one input.

use std::time::{Duration, Instant};

use chorus_protocol::data::{IncomingData, OutgoingData};
use chorus_protocol::{parse_client_message, DEFAULT_MAX_MESSAGE_BYTES};
use chorus_sfu::keyframe::{is_keyframe_start, VideoCodec};
use chorus_sfu::ssrc_guard::RtpFields;
use chorus_sfu::vp8::{parse_fields, Vp8Rewriter};
use chorus_sfu::{Forward, Forwarder, SourcePacket};

/// A signaling message as the server reads it from a WebSocket. What parses must survive a round trip: the
/// server and the SDKs share these types, so a message the server accepts must mean the same once re-encoded.
pub fn client_message(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(msg) = parse_client_message(&text, DEFAULT_MAX_MESSAGE_BYTES) else {
        return;
    };
    // Serializing can refuse a value JSON has no form for; that is not the parser's concern.
    if let Ok(again) = serde_json::to_string(&msg) {
        let reparsed = parse_client_message(&again, usize::MAX);
        assert_eq!(
            reparsed.as_ref(),
            Ok(&msg),
            "round trip of {text:?} via {again:?}"
        );
    }
}

/// A data-channel envelope, both directions. What decodes re-encodes to a frame that decodes the same.
pub fn data_frames(data: &[u8]) {
    if let Ok(out) = OutgoingData::decode(data) {
        let mut frame = Vec::new();
        out.encode(&mut frame);
        assert_eq!(OutgoingData::decode(&frame), Ok(out), "outgoing {data:?}");
    }
    if let Ok(incoming) = IncomingData::decode(data) {
        let mut frame = Vec::new();
        incoming.encode(&mut frame);
        assert_eq!(
            IncomingData::decode(&frame),
            Ok(incoming),
            "incoming {data:?}"
        );
    }
}

/// VP8 payload descriptors from a publisher whose source switches: each 8-byte chunk is one packet, its first
/// byte choosing among four sources. The rewritten PictureID keeps the descriptor's width.
pub fn vp8_descriptors(data: &[u8]) {
    let mut rewriter = Vp8Rewriter::default();
    for packet in data.chunks(8) {
        let Some((&source, descriptor)) = packet.split_first() else {
            continue;
        };
        if source & 0x80 != 0 {
            rewriter.reset();
        }
        let Some(fields) = parse_fields(descriptor) else {
            continue;
        };
        let (picture_id, tl0) = rewriter.rewrite(u32::from(source & 3), &fields);
        match (fields.picture_id, picture_id) {
            (Some((_, wide)), Some(out)) => {
                let max = if wide { 0x7fff } else { 0x7f };
                assert!(out <= max, "PictureID {out} wider than its field");
            }
            (None, None) => {}
            (input, output) => panic!("PictureID {input:?} rewritten as {output:?}"),
        }
        assert_eq!(fields.tl0_pic_idx.is_some(), tl0.is_some());
    }
}

/// An RTP payload as each codec's keyframe check reads it. A VP8 packet taken for a keyframe's start has a
/// well-formed payload descriptor (the forwarder anchors on it and the rewriter then reads that descriptor).
pub fn keyframes(data: &[u8]) {
    for codec in [
        VideoCodec::Vp9,
        VideoCodec::H264,
        VideoCodec::Av1,
        VideoCodec::Other,
    ] {
        is_keyframe_start(codec, data);
    }
    if is_keyframe_start(VideoCodec::Vp8, data) {
        assert!(
            parse_fields(data).is_some(),
            "VP8 keyframe with a malformed descriptor: {data:?}"
        );
    }
}

/// An RTP header and its extension block, as the media core's SSRC guard reads them before str0m does. A
/// string value found is one of the values found for that id.
pub fn rtp_extensions(data: &[u8]) {
    let Some(rtp) = RtpFields::parse(data) else {
        return;
    };
    for id in 0..=16 {
        if let Some(s) = rtp.extension_str(id) {
            assert!(
                rtp.elements().any(|(i, v)| i == id && v == s.as_bytes()),
                "{s:?} for id {id} is not one of its values"
            );
        }
    }
}

/// A subscriber's forwarder fed arbitrary packets (12 bytes each: source, sequence number, timestamp, arrival
/// step, keyframe and reset flags). Checks the numbering contract: a new source starts only on a keyframe,
/// and its first packet goes out right after the highest sequence number sent so far, with a new timestamp.
pub fn forwarder(data: &[u8]) {
    let Some((head, packets)) = data.split_at_checked(6) else {
        return;
    };
    let initial_seq = u16::from_be_bytes([head[0], head[1]]);
    let initial_ts = u32::from_be_bytes([head[2], head[3], head[4], head[5]]);
    let mut f = Forwarder::new(initial_seq, initial_ts);
    let start = Instant::now();
    let mut elapsed = Duration::ZERO;
    // The model: which source the forwarder follows, and the highest sequence number sent with its timestamp.
    let mut following: Option<u32> = None;
    let mut highest: Option<(u64, u32)> = None;
    for p in packets.chunks_exact(12) {
        let flags = p[0];
        if flags & 0x40 != 0 {
            f.reset_source();
            following = None;
        }
        let ssrc = u32::from(flags & 3);
        // Extended sequence numbers as str0m gives them: 16 bits of rollover counter above the 16-bit number
        // reach 2^32; allow up to 2^48 here.
        let seq = u64::from_be_bytes([0, 0, p[1], p[2], p[3], p[4], p[5], p[6]]);
        let timestamp = u32::from_be_bytes([p[7], p[8], p[9], p[10]]);
        elapsed += Duration::from_micros(u64::from(p[11]) * 997);
        let packet = SourcePacket {
            ssrc,
            seq,
            timestamp,
            arrival: start + elapsed,
            keyframe: flags & 0x04 != 0,
            clock_rate: if flags & 0x08 != 0 { 48_000 } else { 90_000 },
        };
        let decision = f.forward(&packet);
        let switching = following != Some(ssrc);
        match decision {
            Forward::Send {
                seq: out,
                timestamp: ts,
            } => {
                if switching {
                    assert!(packet.keyframe, "a new source started without a keyframe");
                    match highest {
                        None => assert_eq!(out, u64::from(initial_seq & 0x7fff).max(1)),
                        Some((last, last_ts)) => {
                            assert_eq!(
                                out,
                                last + 1,
                                "a new source does not continue the numbering"
                            );
                            assert_ne!(
                                ts, last_ts,
                                "a new source reuses the last frame's timestamp"
                            );
                        }
                    }
                    following = Some(ssrc);
                }
                if highest.is_none_or(|(h, _)| out > h) {
                    highest = Some((out, ts));
                }
            }
            Forward::Drop(_) => {
                if switching {
                    assert!(!packet.keyframe, "a keyframe of a new source was dropped");
                }
            }
        }
    }
}
