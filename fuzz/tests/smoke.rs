//! Every fuzz target on its seeds and on deterministic mutations of them, in every `cargo test`: a cheap,
//! reproducible stand-in for a `cargo fuzz` run (see `docs/fuzzing.md` for those).

use chorus_fuzz::mutate::Mutator;
use chorus_fuzz::{
    client_message, data_frames, forwarder, ice_tcp_frames, keyframes, rtp_extensions,
    turn_stream_frames, vp8_descriptors, MediaCore,
};

/// Runs `target` on each seed and on `rounds` mutations of seeds (spliced with other seeds).
fn run(seeds: &[Vec<u8>], rounds: usize, seed: u64, mut target: impl FnMut(&[u8])) {
    for s in seeds {
        target(s);
    }
    let mut m = Mutator::new(seed);
    for _ in 0..rounds {
        let input = &seeds[m.below(seeds.len())];
        let other = &seeds[m.below(seeds.len())];
        target(&m.mutate(input, other));
    }
}

fn seeds(texts: &[&str]) -> Vec<Vec<u8>> {
    texts.iter().map(|t| t.as_bytes().to_vec()).collect()
}

#[test]
fn signaling_messages() {
    let seeds = seeds(&[
        r#"{"type":"join","token":"eyJhbGciOiJIUzI1NiJ9.e30.x","autoSubscribe":false}"#,
        r#"{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n","tracks":[{"mid":"0","kind":"video","source":"camera","simulcast":true}]}"#,
        r#"{"type":"answer","sdp":"v=0\r\n"}"#,
        r#"{"type":"ping","timestamp":42}"#,
        r#"{"type":"mute","trackSid":"TR_abc","muted":true}"#,
        r#"{"type":"subscribe","trackSid":"TR_abc","subscribed":true,"quality":"low"}"#,
        r#"{"type":"chat","text":"hello","nonce":"n1"}"#,
        r#"{"type":"leave"}"#,
        r#"{"type":"resume","token":"t","sessionId":"s"}"#,
        r#"[1, 2.5e300, null, "\u0000", {"type": {}}]"#,
    ]);
    run(&seeds, 30_000, 1, client_message);
}

#[test]
fn data_channel_envelopes() {
    let seeds = vec![
        vec![1, 0, 0, 0, 0, 0, b'h', b'i'],
        vec![
            1, 1, 0, 5, b't', b'o', b'p', b'i', b'c', 0, 2, 0, 3, b'b', b'o', b'b', 0, 1, b'c',
            b'x',
        ],
        vec![1, 2, 0, 0, 0, 0, 0xff],
        vec![
            1, 0, 0, 1, b'x', 0, 5, b'a', b'l', b'i', b'c', b'e', 1, 2, 3,
        ],
        vec![2, 0, 0, 0],
        vec![],
    ];
    run(&seeds, 30_000, 2, data_frames);
}

#[test]
fn vp8_payload_descriptors() {
    // Source byte, then a descriptor: X with I (7- and 15-bit PictureID) and L (TL0PICIDX), and none.
    let seeds = vec![
        vec![
            0, 0x90, 0xc0, 0x81, 0x23, 0x07, 0, 0, 1, 0x90, 0x80, 0x05, 0, 0, 0, 0,
        ],
        vec![
            2, 0x10, 0, 0, 0, 0, 0, 0, 0x82, 0x90, 0x40, 0x09, 0, 0, 0, 0,
        ],
        vec![3, 0x90, 0xc0, 0xff, 0xff, 0xff],
    ];
    run(&seeds, 30_000, 3, vp8_descriptors);
}

#[test]
fn keyframe_checks() {
    let seeds = vec![
        // VP8: extended descriptor with a 15-bit PictureID, then a keyframe header; and a minimal one.
        vec![0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a],
        vec![0x10, 0x00, 0x00, 0x00],
        // H.264: IDR, STAP-A holding an SPS, FU-A starting an IDR.
        vec![0x65, 0x88, 0x84],
        vec![
            0x78, 0x00, 0x04, 0x67, 0x42, 0x00, 0x1f, 0x00, 0x02, 0x68, 0xce,
        ],
        vec![0x7c, 0x85, 0x88],
        // VP9 and AV1 starts.
        vec![0x8e, 0x80, 0x01],
        vec![0x18, 0x0a, 0x0b, 0x00],
    ];
    run(&seeds, 30_000, 6, keyframes);
}

#[test]
fn rtp_header_extensions() {
    // One-byte form with MID, RID and padding; two-byte form; a CSRC before the extensions; none at all.
    let seeds = vec![
        vec![
            0x90, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 9, 0xbe, 0xde, 0, 2, 0x40, b'0', 0xa0, b'f', 0,
            0, 0, 0,
        ],
        vec![
            0x90, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 9, 0x10, 0x00, 0, 2, 4, 1, b'1', 0, 10, 2, b'h',
            b'i',
        ],
        vec![
            0x91, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 7, 0xbe, 0xde, 0, 1, 0x40, b'2', 0,
            0,
        ],
        vec![0x80, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 9, 0xaa],
    ];
    run(&seeds, 30_000, 7, rtp_extensions);
}

#[test]
fn ice_tcp_streams() {
    // Chunking seed and buffer size, then RFC 4571 frames: a STUN binding request with a USERNAME, an RTP
    // packet, a one-byte frame; the same into a 24-byte buffer; and a 1,500-byte frame.
    let stun = [
        0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        0x00, 0x06, 0x00, 0x07, b'0', b'0', b'0', b'a', b':', b'b', b'c', 0,
    ];
    let rtp = [0x80, 0x60, 0, 1, 0, 0, 0, 2, 0, 0, 0, 9, 0xaa, 0xbb];
    let mut frames = Vec::new();
    for f in [&stun[..], &rtp, &[0x42]] {
        frames.extend_from_slice(&(f.len() as u16).to_be_bytes());
        frames.extend_from_slice(f);
    }
    let mut big = vec![9, 0x05, 0xdc, 0x05, 0xdc];
    big.resize(big.len() + 1500, 0);
    let seeds = vec![
        [&[1, 0xff, 0xff][..], &frames].concat(),
        [&[2, 0, 24][..], &frames].concat(),
        big,
        vec![3, 0xff, 0xff],
    ];
    run(&seeds, 30_000, 8, ice_tcp_frames);
}

#[test]
fn turn_streams() {
    // Chunking seed, then frames as a TURN client sends them over TCP: an Allocate request with a
    // REQUESTED-TRANSPORT, a ChannelBind request, ChannelData with 5 bytes (padded to 8) and with 4 (no padding).
    let allocate = [
        0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0,
    ];
    let bind = [
        0x00, 0x09, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1,
        0x00, 0x0c, 0x00, 0x04, 0x40, 0x00, 0, 0,
    ];
    let data5 = [0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0];
    let data4 = [0x40, 0x01, 0x00, 0x04, 6, 7, 8, 9];
    let seeds = vec![
        [&[1][..], &allocate, &bind, &data5, &data4].concat(),
        [&[2][..], &data5, &allocate].concat(),
        [&[3][..], &bind].concat(),
        vec![4, 0x40, 0x00, 0x06, 0x3c],
    ];
    run(&seeds, 30_000, 9, turn_stream_frames);
}

#[test]
fn forwarder_numbering() {
    // Header (initial seq, timestamp), then 12-byte packets: flags (source, keyframe 0x04, audio clock 0x08,
    // reset 0x40), 6-byte sequence number, timestamp, arrival step.
    let mut seed = vec![0x12, 0x34, 0, 0, 0x10, 0];
    for (i, flags) in [0x04u8, 0, 0, 0x01, 0x05, 0x01, 0x44, 0x04, 0x06]
        .iter()
        .enumerate()
    {
        let seq = 1000 + i as u64 * 3;
        seed.push(*flags);
        seed.extend_from_slice(&seq.to_be_bytes()[2..]);
        seed.extend_from_slice(&(90_000 + i as u32 * 3000).to_be_bytes());
        seed.push(33);
    }
    run(&[seed], 30_000, 4, forwarder);
}

#[test]
fn datagrams_into_a_live_call() {
    let mut core = MediaCore::new();
    let seeds = core.seeds().to_vec();
    assert!(core.still_forwards(), "the call works before any garbage");
    let mut m = Mutator::new(5);
    for round in 0..40 {
        for _ in 0..2_500 {
            let input = &seeds[m.below(seeds.len())];
            let other = &seeds[m.below(seeds.len())];
            // Half of the inputs are edited anywhere; half have bits of their first 24 bytes (the RTP header and
            // its extensions, or a STUN or DTLS header) changed, which reaches further than payload edits.
            let datagram = if m.below(2) == 0 {
                m.mutate(input, other)
            } else {
                let mut d = input.clone();
                let n = m.below(24).min(d.len());
                for byte in &mut d[..n] {
                    if m.below(3) == 0 {
                        *byte ^= m.next_u64() as u8;
                    }
                }
                d
            };
            core.inject(m.below(4) != 0, &datagram);
        }
        assert!(
            core.still_forwards(),
            "the call stopped after round {round} of mutated datagrams: {:?} {}",
            core.failures(),
            core.counters()
        );
    }
}
