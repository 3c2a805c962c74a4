//! Keeps forged RTP from re-mapping a publisher's streams.
//!
//! str0m 0.25 maps an RTP packet's SSRC to a stream (by its MID and RID header extensions and its payload
//! type) before it authenticates the packet. So two packets forged on a publisher's address, which fail
//! authentication, could still make the stream follow another SSRC and then take the real SSRC for the
//! stream's retransmissions, and the publisher's media would stop (found by fuzzing; `docs/fuzzing.md`). The
//! guard learns which SSRC carries each (MID, RID) from the packets str0m authenticated, and holds back the
//! datagrams that would change that while the stream is live:
//! - an SSRC no authenticated packet has used, with a main (not retransmission) payload type, that names the
//!   MID of a live stream, unless it names a new simulcast layer (a RID none of that MID's streams has);
//! - a live stream's own SSRC with a retransmission payload type, a repaired-RID extension, or another MID or
//!   RID than its own.
//!
//! A stream is live for [`LIVE_FOR`] after its last authenticated packet; after that a new SSRC may take it
//! over, as a track republished on a reused MID does. Retransmission streams, new simulcast layers and new
//! tracks are untouched. The extension ids and retransmission payload types the checks need are read from the
//! session once per negotiation ([`SsrcGuard::session_changed`]), not per datagram. Owns only this
//! bookkeeping and the reading of the header fields it needs.

use std::time::{Duration, Instant};

use str0m::media::{Mid, Rid};
use str0m::rtp::Extension;
use str0m::Rtc;

/// How long a stream counts as live after its last authenticated packet.
pub const LIVE_FOR: Duration = Duration::from_millis(500);

/// One stream of a publisher connection, as its authenticated packets showed it.
#[derive(Debug, Clone, Copy)]
struct Bound {
    ssrc: u32,
    mid: Mid,
    rid: Option<Rid>,
    last: Instant,
}

/// The streams of one publisher connection (a handful: one per track and simulcast layer).
#[derive(Debug, Default)]
pub struct SsrcGuard {
    streams: Vec<Bound>,
    /// What the checks read from the negotiated session, looked up once rather than per datagram; cleared when
    /// a negotiation or a new stream may have changed it.
    session: Option<SessionIds>,
}

/// The header extension ids and retransmission payload types of a publisher connection, as str0m maps them.
#[derive(Debug, Clone, Default, PartialEq)]
struct SessionIds {
    mid: Option<u8>,
    rid: Option<u8>,
    repaired_rid: Option<u8>,
    resend_pts: Vec<u8>,
}

impl SessionIds {
    fn read(streams: &[Bound], rtc: &Rtc) -> SessionIds {
        // BUNDLE: the m-lines of a connection share extension ids, but each media's map lists only the
        // extensions of its kind (no RID on audio): take each id from whichever known media has it.
        let id_of = |e: Extension| {
            streams.iter().find_map(|b| {
                rtc.media(b.mid)
                    .and_then(|m| m.remote_extmap().id_of(e.clone()))
            })
        };
        SessionIds {
            mid: id_of(Extension::RtpMid),
            rid: id_of(Extension::RtpStreamId),
            repaired_rid: id_of(Extension::RepairedRtpStreamId),
            resend_pts: rtc
                .codec_config()
                .params()
                .iter()
                .filter_map(|p| p.resend().map(|r| *r))
                .collect(),
        }
    }
}

/// The MID, RID and repaired-RID values of one packet, each the last UTF-8 occurrence of its id (as str0m
/// reads them), found in one walk over the extension block.
#[derive(Debug, Default)]
struct Claims<'a> {
    mid: Option<&'a str>,
    rid: Option<&'a str>,
    repaired_rid: bool,
}

impl<'a> Claims<'a> {
    fn read(rtp: &RtpFields<'a>, ids: &SessionIds) -> Claims<'a> {
        let mut claims = Claims::default();
        for (id, value) in rtp.elements() {
            let Ok(text) = std::str::from_utf8(value) else {
                continue;
            };
            let is = |wanted: Option<u8>| wanted == Some(id);
            if is(ids.mid) {
                claims.mid = Some(text);
            }
            if is(ids.rid) {
                claims.rid = Some(text);
            }
            if is(ids.repaired_rid) {
                claims.repaired_rid = true;
            }
        }
        claims
    }
}

impl SsrcGuard {
    /// Learns from a packet str0m authenticated: `ssrc` carries (`mid`, `rid`).
    pub fn learn(&mut self, now: Instant, ssrc: u32, mid: Mid, rid: Option<Rid>) {
        if let Some(b) = self.streams.iter_mut().find(|b| b.ssrc == ssrc) {
            b.mid = mid;
            b.rid = rid;
            b.last = now;
            return;
        }
        // A new SSRC for a known stream replaces the old binding (the guard let it through: the old one was quiet).
        self.streams.retain(|b| !(b.mid == mid && b.rid == rid));
        // A new MID may bring extension ids the known ones did not list.
        self.session = None;
        self.streams.push(Bound {
            ssrc,
            mid,
            rid,
            last: now,
        });
    }

    /// Forgets what was read from the session: call after a negotiation, which may change extension ids and
    /// payload types.
    pub fn session_changed(&mut self) {
        self.session = None;
    }

    /// Whether `datagram` may go to str0m. Anything but RTP passes (STUN, DTLS, RTCP have their own checks).
    pub fn admits(&mut self, now: Instant, datagram: &[u8], rtc: &Rtc) -> bool {
        if self.streams.is_empty() {
            return true;
        }
        let Some(rtp) = RtpFields::parse(datagram) else {
            return true;
        };
        let ids = self
            .session
            .get_or_insert_with(|| SessionIds::read(&self.streams, rtc));
        let claims = Claims::read(&rtp, ids);
        let mid = claims.mid.map(Mid::from);
        let rid = claims.rid.map(Rid::from);
        // Whether str0m would map this SSRC as a main stream (else as a repair stream): by the RID extensions
        // when there are any, else by the payload type.
        let claims_main =
            rid.is_some() || (!claims.repaired_rid && !ids.resend_pts.contains(&rtp.pt));
        let live = |b: &&Bound| now.saturating_duration_since(b.last) < LIVE_FOR;
        if let Some(own) = self.streams.iter().find(|b| b.ssrc == rtp.ssrc) {
            // A live stream's SSRC never turns into retransmissions of itself, nor moves to another MID or RID.
            let moved =
                mid.is_some_and(|m| m != own.mid) || rid.is_some_and(|r| Some(r) != own.rid);
            return !(live(&own) && (!claims_main || moved));
        }
        if rtp.ssrc == 0 || !claims_main {
            // Bandwidth probes and repair streams cannot take a main stream over.
            return true;
        }
        let Some(mid) = mid else {
            return true;
        };
        let mut on_mid = self
            .streams
            .iter()
            .filter(live)
            .filter(|b| b.mid == mid)
            .peekable();
        if on_mid.peek().is_none() {
            return true;
        }
        // A live MID takes a new SSRC only for a new simulcast layer: a RID that none of its streams has, on a
        // MID whose streams have RIDs.
        let Some(rid) = rid else {
            return false;
        };
        !on_mid.any(|b| b.rid.is_none_or(|r| r == rid))
    }
}

/// The few fields of an RTP header the guard reads, with its header extensions (RFC 3550, RFC 8285).
#[derive(Debug, Clone, Copy)]
pub struct RtpFields<'a> {
    pub pt: u8,
    pub ssrc: u32,
    /// The extension block (after its 4-byte header), empty without one.
    extensions: &'a [u8],
    two_byte: bool,
}

impl<'a> RtpFields<'a> {
    /// `None` for anything that is not a well-formed RTP header (RTCP's packet types included).
    pub fn parse(d: &'a [u8]) -> Option<RtpFields<'a>> {
        let (&b0, &b1) = (d.first()?, d.get(1)?);
        let pt = b1 & 0x7f;
        if b0 >> 6 != 2 || (64..=95).contains(&pt) {
            return None;
        }
        let ssrc = u32::from_be_bytes(d.get(8..12)?.try_into().ok()?);
        let csrc_end = 12 + 4 * usize::from(b0 & 0x0f);
        let mut fields = RtpFields {
            pt,
            ssrc,
            extensions: &[],
            two_byte: false,
        };
        if b0 & 0x10 != 0 {
            let head = d.get(csrc_end..csrc_end + 4)?;
            let profile = u16::from_be_bytes([head[0], head[1]]);
            let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
            fields.extensions = d.get(csrc_end + 4..csrc_end + 4 + 4 * words)?;
            fields.two_byte = match profile {
                0xbede => false,
                p if p & 0xfff0 == 0x1000 => true,
                _ => {
                    fields.extensions = &[];
                    false
                }
            };
        }
        Some(fields)
    }

    /// The header extension elements as str0m reads them: to the end of the block, where a zero byte is
    /// padding, and a one-byte element with id 15 or an element running past the end stops the walk.
    pub fn elements(&self) -> Elements<'a> {
        Elements {
            rest: self.extensions,
            two_byte: self.two_byte,
        }
    }

    /// The value of extension `id`; the last occurrence wins, as in str0m.
    pub fn extension(&self, id: u8) -> Option<&'a [u8]> {
        self.elements()
            .filter(|(i, _)| *i == id)
            .map(|(_, v)| v)
            .last()
    }

    /// A string extension (MID, RID) as str0m takes it: the last occurrence that is UTF-8.
    pub fn extension_str(&self, id: u8) -> Option<&'a str> {
        self.elements()
            .filter(|(i, _)| *i == id)
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .last()
    }
}

/// Iterator over (id, value) of an extension block.
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    rest: &'a [u8],
    two_byte: bool,
}

impl<'a> Iterator for Elements<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let d = self.rest;
            let &first = d.first()?;
            if first == 0 {
                self.rest = &d[1..];
                continue;
            }
            let (id, len, after) = if self.two_byte {
                (first, usize::from(*d.get(1)?), d.get(2..)?)
            } else if first >> 4 == 15 {
                self.rest = &[];
                return None;
            } else {
                (first >> 4, usize::from(first & 0x0f) + 1, &d[1..])
            };
            let Some(value) = after.get(..len) else {
                self.rest = &[];
                return None;
            };
            self.rest = &after[len..];
            return Some((id, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RTP header with one-byte extensions (id, value).
    fn packet(pt: u8, ssrc: u32, exts: &[(u8, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (id, v) in exts {
            body.push(id << 4 | (v.len() as u8 - 1));
            body.extend_from_slice(v);
        }
        body.resize(body.len().div_ceil(4) * 4, 0);
        let mut d = vec![0x90, pt, 0, 1, 0, 0, 0, 2];
        d.extend_from_slice(&ssrc.to_be_bytes());
        d.extend_from_slice(&[0xbe, 0xde]);
        d.extend_from_slice(&((body.len() / 4) as u16).to_be_bytes());
        d.extend_from_slice(&body);
        d.extend_from_slice(&[0xaa; 20]);
        d
    }

    #[test]
    fn reads_one_byte_extensions_past_padding() {
        let d = packet(96, 7, &[(4, b"0"), (10, b"f"), (3, &[1, 2])]);
        let f = RtpFields::parse(&d).expect("rtp");
        assert_eq!((f.pt, f.ssrc), (96, 7));
        assert_eq!(f.extension(4), Some(&b"0"[..]));
        assert_eq!(f.extension(10), Some(&b"f"[..]));
        assert_eq!(f.extension(3), Some(&[1u8, 2][..]));
        assert_eq!(f.extension(11), None);
    }

    #[test]
    fn the_last_utf8_occurrence_wins_as_in_str0m() {
        let d = packet(96, 7, &[(4, b"0"), (4, &[0xff]), (4, b"1"), (4, &[0xc3])]);
        let f = RtpFields::parse(&d).expect("rtp");
        assert_eq!(f.extension_str(4), Some("1"));
        assert_eq!(f.extension(4), Some(&[0xc3u8][..]));
        // A one-byte element with id 15 ends the block.
        let d = packet(96, 7, &[(4, b"0"), (15, b"x"), (4, b"1")]);
        assert_eq!(
            RtpFields::parse(&d).expect("rtp").extension_str(4),
            Some("0")
        );
    }

    #[test]
    fn reads_two_byte_extensions() {
        let mut d = vec![0x90, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 9, 0x10, 0x00, 0, 2];
        d.extend_from_slice(&[0, 4, 1, b'1', 10, 2, b'h', b'i']);
        let f = RtpFields::parse(&d).expect("rtp");
        assert_eq!(f.extension(4), Some(&b"1"[..]));
        assert_eq!(f.extension(10), Some(&b"hi"[..]));
    }

    #[test]
    fn rtcp_stun_and_truncated_headers_are_not_rtp() {
        assert!(RtpFields::parse(&[0x80, 200, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]).is_none());
        assert!(RtpFields::parse(&[0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0]).is_none());
        assert!(RtpFields::parse(&[0x90, 96, 0, 1]).is_none());
        // Extension length past the end.
        assert!(
            RtpFields::parse(&[0x90, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 9, 0xbe, 0xde, 0, 9]).is_none()
        );
    }

    #[test]
    fn malformed_extension_blocks_never_panic() {
        for len in 0..64usize {
            for fill in [0u8, 0x0f, 0x10, 0xf0, 0xff] {
                let mut d = vec![0x9f, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 9];
                d.extend(std::iter::repeat_n(fill, len));
                if let Some(f) = RtpFields::parse(&d) {
                    for id in 0..16 {
                        f.extension(id);
                    }
                }
            }
        }
    }
}
