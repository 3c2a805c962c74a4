//! What the media-core fuzz target found: forged RTP on a publisher's address could stop its media, through
//! str0m's SSRC mapping (`docs/fuzzing.md`); Chorus's guard (`chorus_sfu::ssrc_guard`) now holds such packets
//! back. The smallest reproduction the fuzzer's finding shrank to.

use chorus_fuzz::MediaCore;

/// str0m 0.25 maps an RTP packet's SSRC to its stream (by the MID header extension and payload type) before it
/// authenticates the packet. Two forged packets from the publisher's address, which fail authentication,
/// re-mapped its stream: one with a new SSRC took over the main stream, one with the real SSRC and a repair
/// payload type made the real SSRC the repair stream, and the publisher's media stopped reaching anyone.
/// Without the guard this fails on every run.
#[test]
fn two_forged_packets_from_the_publishers_address_do_not_stop_its_media() {
    let mut core = MediaCore::new();
    assert!(core.still_forwards());
    let seeds = core.seeds().to_vec();
    // A real media packet with another SSRC, sequence number and timestamp, its MID extension untouched.
    let mut takeover = seeds[127].clone();
    takeover[3] ^= 0xd8;
    takeover[5] ^= 0xe5;
    takeover[7] ^= 0xfe;
    takeover[10] ^= 0xe8;
    // A real media packet (the real SSRC) whose payload type is a repair type (115, a retransmission PT in
    // str0m's default codecs), with another sequence number and timestamp.
    let mut repair = seeds[83].clone();
    repair[1] = (repair[1] & 0x80) | 115;
    repair[3] ^= 0xc3;
    repair[5] ^= 0xb1;
    repair[7] ^= 0x5a;
    core.inject(true, &takeover);
    core.inject(true, &repair);
    assert!(
        core.still_forwards(),
        "two forged packets stopped the publisher's media"
    );
    assert!(
        core.counters().contains("rtp_remaps_refused: 2,"),
        "both held back: {}",
        core.counters()
    );
}
