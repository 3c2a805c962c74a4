//! Targets over the length-prefixed framing Chorus reads from TCP connections: ICE-TCP (RFC 4571, in the media
//! workers' TCP threads) and TURN over TCP and TLS (STUN messages and padded ChannelData, RFC 8656 §12.5).
//!
//! Each reader is checked against a model written here from the RFCs, not from the code: over one in-memory
//! stream, and over the same bytes cut into arbitrary small reads (TCP splits a frame anywhere), which must give
//! the same frames and end the same way. A stream that ends between frames ends cleanly (`None`); one that ends
//! inside a frame or its prefix, or holds a refused frame, is an error, and no frame is returned past it.

use std::future::Future;
use std::io::{Cursor, ErrorKind, Read};
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use chorus_sfu::ice_tcp;
use chorus_signaling::turn::stream_framing::{frame_len, read_frame, stream_frame, MAX_FRAME};
use tokio::io::{AsyncRead, ReadBuf};

/// How a stream reads: the frames, then a clean end (`true`) or an error (`false`).
type Reading = (Vec<Vec<u8>>, bool);

/// The same bytes handed out a few at a time: each read returns at most the next size of a small xorshift
/// sequence (1 to 8 bytes half of the time, else up to 2 KiB); a size of 0 is an interruption (`Interrupted` for
/// `Read`, `Pending` for `AsyncRead`), never twice in a row.
struct Chunked<'a> {
    data: &'a [u8],
    state: u32,
    interrupted: bool,
}

impl<'a> Chunked<'a> {
    fn new(data: &'a [u8], seed: u8) -> Self {
        Chunked {
            data,
            state: u32::from(seed) * 0x9e37 + 1,
            interrupted: false,
        }
    }

    /// The size of the next read; `None` for an interruption.
    fn next_size(&mut self) -> Option<usize> {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        let size = match self.state % 16 {
            0 if !self.interrupted => {
                self.interrupted = true;
                return None;
            }
            n @ 1..=8 => n as usize,
            _ => self.state as usize >> 21,
        };
        self.interrupted = false;
        Some(size.max(1))
    }

    fn take(&mut self, size: usize, room: usize) -> &'a [u8] {
        let (now, rest) = self.data.split_at(size.min(room).min(self.data.len()));
        self.data = rest;
        now
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.next_size().ok_or(ErrorKind::Interrupted)?;
        let now = self.take(size, buf.len());
        buf[..now.len()].copy_from_slice(now);
        Ok(now.len())
    }
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let Some(size) = this.next_size() else {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        };
        buf.put_slice(this.take(size, buf.remaining()));
        Poll::Ready(Ok(()))
    }
}

/// Polls `f` to completion. The readers here never wait on anything, so this needs no runtime.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Payloads from 3-byte records (a 16-bit length, with the low bit of the third byte as a 17th, and a fill
/// byte, the ends set from the length bytes so that a shifted frame shows), up to 80 KiB in all (room for one
/// payload too large to frame); empty ones are left out.
fn payloads(records: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut total = 0;
    for r in records.chunks_exact(3) {
        let len = usize::from(u16::from_be_bytes([r[0], r[1]])) | usize::from(r[2] & 1) << 16;
        total += len;
        if len == 0 || total > 80 * 1024 {
            continue;
        }
        let mut p = vec![r[2]; len];
        p[0] = r[0];
        p[len - 1] = r[1];
        out.push(p);
    }
    out
}

/// ICE-TCP: a byte stream read frame by frame (`chorus_sfu::ice_tcp::read_frame`) into a buffer whose size the
/// input chooses, and a sequence of payloads framed by `frame` and read back.
///
/// Input: a chunking seed, the buffer size (16 bits), then the stream (also read as 3-byte payload records).
/// Checks, reading whole and in arbitrary small reads:
/// - the frames are exactly those of the RFC 4571 model: a 16-bit length then that many bytes, each frame
///   non-empty (the reader refuses empty ones), no longer than the buffer and within what the stream held;
/// - a stream ends cleanly only between frames (not inside a length prefix or a frame);
/// - `frame` refuses exactly payloads over 65,535 bytes, and framed payloads read back exactly, then end cleanly.
pub fn ice_tcp_frames(data: &[u8]) {
    let Some((&[seed, hi, lo], stream)) = data.split_first_chunk::<3>() else {
        return;
    };
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes([hi, lo]))];
    let expected = ice_tcp_model(stream, buf.len());
    assert_eq!(ice_tcp_read(&mut Cursor::new(stream), &mut buf), expected);
    let chunked = ice_tcp_read(&mut Chunked::new(stream, seed), &mut buf);
    assert_eq!(chunked, expected, "read in small pieces (seed {seed})");

    let payloads = payloads(stream);
    let mut wire = Vec::new();
    let mut sent = Vec::new();
    for p in payloads {
        let framed = ice_tcp::frame(&p);
        assert_eq!(
            framed.is_none(),
            p.len() > 65_535,
            "frame of {} bytes",
            p.len()
        );
        if let Some(f) = framed {
            assert_eq!(f.len(), p.len() + 2);
            wire.extend_from_slice(&f);
            sent.push(p);
        }
    }
    let mut buf = vec![0u8; 65_535];
    let expected = (sent, true);
    assert_eq!(ice_tcp_read(&mut Cursor::new(&wire), &mut buf), expected);
    let chunked = ice_tcp_read(&mut Chunked::new(&wire, seed), &mut buf);
    assert_eq!(
        chunked, expected,
        "round trip in small pieces (seed {seed})"
    );
}

fn ice_tcp_read(r: &mut impl Read, buf: &mut [u8]) -> Reading {
    let mut frames = Vec::new();
    loop {
        match ice_tcp::read_frame(r, buf) {
            Ok(Some(f)) => frames.push(f.to_vec()),
            Ok(None) => return (frames, true),
            Err(_) => return (frames, false),
        }
    }
}

/// RFC 4571 §2: each frame is a 16-bit big-endian LENGTH, then LENGTH bytes.
fn ice_tcp_model(mut stream: &[u8], buffer: usize) -> Reading {
    let mut frames = Vec::new();
    loop {
        let Some((len, rest)) = stream.split_first_chunk::<2>() else {
            return (frames, stream.is_empty());
        };
        let len = usize::from(u16::from_be_bytes(*len));
        if len == 0 || len > buffer || len > rest.len() {
            return (frames, false);
        }
        frames.push(rest[..len].to_vec());
        stream = &rest[len..];
    }
}

/// TURN over TCP and TLS: `frame_len` on the input's first four bytes, the input read as a stream of frames
/// (`read_frame`), and valid messages padded by `stream_frame` and read back.
///
/// Input: a chunking seed, then the stream (also read as 3-byte message records). Checks:
/// - `frame_len` is the model below, and its lengths are consistent: 4 ≤ length ≤ bytes on the stream ≤
///   `MAX_FRAME`, the bytes on the stream a multiple of 4 and less than 4 beyond the length;
/// - reading whole and in arbitrary small reads (with `Pending` between them) gives exactly the model's frames,
///   without their padding, and a clean end only between frames;
/// - STUN messages and ChannelData frames as the server writes them (`stream_frame`), up to 16 KiB of them, read
///   back exactly.
pub fn turn_stream_frames(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    if let Some(&header) = stream.first_chunk::<4>() {
        check_frame_len(header);
    }
    let expected = turn_model(stream);
    assert_eq!(turn_read(&mut { stream }), expected);
    let chunked = turn_read(&mut Chunked::new(stream, seed));
    assert_eq!(chunked, expected, "read in small pieces (seed {seed})");

    let mut total = 0;
    let messages: Vec<Vec<u8>> = (stream.chunks_exact(3).map(turn_message))
        .take_while(|m| {
            total += m.len();
            total <= 16 * 1024
        })
        .collect();
    let wire = messages
        .iter()
        .map(|m| stream_frame(m))
        .collect::<Vec<_>>()
        .concat();
    let expected = (messages, true);
    assert_eq!(turn_read(&mut &wire[..]), expected, "round trip");
    let chunked = turn_read(&mut Chunked::new(&wire, seed));
    assert_eq!(
        chunked, expected,
        "round trip in small pieces (seed {seed})"
    );
}

/// The length of a frame and the bytes it takes on the stream, from its first four bytes; `None` if refused.
/// STUN (RFC 8489 §5: first two bits 00): a 20-byte header, then the message length, a multiple of 4 since
/// attributes are padded. ChannelData (RFC 8656 §12.4–12.5: first two bits 01): a 4-byte header, then the
/// length; on a stream, zeros pad it to a multiple of 4, outside the length. Chorus refuses anything else, and
/// anything taking more than `MAX_FRAME` bytes on the stream.
fn turn_frame_model(header: [u8; 4]) -> Option<(usize, usize)> {
    let body = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let (len, on_stream) = match header[0] >> 6 {
        0 if body % 4 == 0 => (20 + body, 20 + body),
        1 => (4 + body, 4 + body.next_multiple_of(4)),
        _ => return None,
    };
    (on_stream <= MAX_FRAME).then_some((len, on_stream))
}

fn check_frame_len(header: [u8; 4]) {
    let got = frame_len(header);
    if let Ok((len, on_stream)) = got {
        assert!(
            4 <= len && len <= on_stream && on_stream <= MAX_FRAME,
            "{header:02x?}: {got:?}"
        );
        assert!(
            on_stream % 4 == 0 && on_stream - len < 4,
            "{header:02x?}: {got:?}"
        );
    }
    assert_eq!(got.ok(), turn_frame_model(header), "{header:02x?}");
}

fn turn_read<R: AsyncRead + Unpin>(r: &mut R) -> Reading {
    let mut frames = Vec::new();
    loop {
        match block_on(read_frame(r)) {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return (frames, true),
            Err(_) => return (frames, false),
        }
    }
}

fn turn_model(mut stream: &[u8]) -> Reading {
    let mut frames = Vec::new();
    loop {
        let Some(&header) = stream.first_chunk::<4>() else {
            return (frames, stream.is_empty());
        };
        let Some((len, on_stream)) = turn_frame_model(header) else {
            return (frames, false);
        };
        let Some((frame, rest)) = stream.split_at_checked(on_stream) else {
            return (frames, false);
        };
        frames.push(frame[..len].to_vec());
        stream = rest;
    }
}

/// A valid message from a 3-byte record: the first byte's low bit picks ChannelData (channel 0x4000 + the
/// record's first two bytes, masked) or STUN (type from the same bytes), the length comes from all three bytes,
/// and the body is the third byte repeated, its last byte (if any) the first.
fn turn_message(r: &[u8]) -> Vec<u8> {
    let seed = usize::from(r[1]) << 8 | usize::from(r[2]);
    let (first, header, body) = if r[0] & 1 == 1 {
        (0x40 | (r[0] >> 2), 4, seed % (MAX_FRAME - 4 + 1))
    } else {
        (r[0] >> 2, 20, (seed % (MAX_FRAME - 20 + 1)) / 4 * 4)
    };
    let mut m = vec![first, r[1]];
    m.extend_from_slice(&u16::try_from(body).expect("under MAX_FRAME").to_be_bytes());
    m.resize(header + body, r[2]);
    if body > 0 {
        m[header + body - 1] = r[0];
    }
    m
}
