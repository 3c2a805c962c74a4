//! The binary envelope of messages on the `reliable` and `lossy` data channels (`docs/protocol.md`, "Data").
//!
//! A client sends an [`OutgoingData`] frame: flags, an optional topic, the identities it is for (none means
//! everyone else in the room) and the payload. The server stamps the sender's identity and delivers an
//! [`IncomingData`] frame to each recipient. The sender never chooses the `from` field: it is not in the
//! client's frame at all.
//!
//! Layout (all lengths big-endian `u16`, strings UTF-8):
//! ```text
//! client → server: [version=1][flags][topic len][topic][recipient count]{[len][identity]}*[payload…]
//! server → client: [version=1][flags][topic len][topic][sender len][sender][payload…]
//! ```
//! Flags: bit 0 the payload is UTF-8 text; bit 1 (server → client only) sent by the server itself, not a
//! participant (the sender is then empty). Other bits must be zero.
//!
//! Owns encoding and decoding only; limits on sizes and rates are the server's.

/// The envelope version this crate speaks (the first byte of every frame).
pub const DATA_FRAME_VERSION: u8 = 1;
/// The payload is UTF-8 text (a browser receives a string).
pub const FLAG_TEXT: u8 = 0b01;
/// Server → client: the message comes from the server (the REST API), not from a participant.
pub const FLAG_FROM_SERVER: u8 = 0b10;
/// Longest topic, in bytes.
pub const MAX_TOPIC_BYTES: usize = 256;
/// Most identities one message may be addressed to.
pub const MAX_RECIPIENTS: usize = 256;
/// Longest recipient identity, in bytes.
pub const MAX_RECIPIENT_BYTES: usize = 1024;

/// Why a data frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataFrameError {
    /// The frame ended inside its header.
    Truncated,
    /// The first byte is not [`DATA_FRAME_VERSION`].
    UnknownVersion(u8),
    /// Reserved flag bits are set.
    UnknownFlags(u8),
    /// A topic or identity is not UTF-8.
    NotUtf8,
    /// The topic is longer than [`MAX_TOPIC_BYTES`].
    TopicTooLong(usize),
    /// More than [`MAX_RECIPIENTS`] recipients, or one longer than [`MAX_RECIPIENT_BYTES`].
    TooManyRecipients(usize),
    RecipientTooLong(usize),
    /// A text payload is not UTF-8.
    TextNotUtf8,
}

impl std::fmt::Display for DataFrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataFrameError::Truncated => write!(f, "the data frame ends inside its header"),
            DataFrameError::UnknownVersion(v) => {
                write!(
                    f,
                    "unknown data frame version {v} (expected {DATA_FRAME_VERSION})"
                )
            }
            DataFrameError::UnknownFlags(b) => write!(f, "unknown data frame flags {b:#04x}"),
            DataFrameError::NotUtf8 => write!(f, "a topic or identity is not valid UTF-8"),
            DataFrameError::TopicTooLong(n) => {
                write!(f, "topic of {n} bytes (at most {MAX_TOPIC_BYTES})")
            }
            DataFrameError::TooManyRecipients(n) => {
                write!(f, "{n} recipients (at most {MAX_RECIPIENTS})")
            }
            DataFrameError::RecipientTooLong(n) => {
                write!(
                    f,
                    "recipient identity of {n} bytes (at most {MAX_RECIPIENT_BYTES})"
                )
            }
            DataFrameError::TextNotUtf8 => write!(f, "a text payload is not valid UTF-8"),
        }
    }
}

impl std::error::Error for DataFrameError {}

/// A message as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingData<'a> {
    pub text: bool,
    /// Empty for none.
    pub topic: &'a str,
    /// Identities to deliver to; empty means every other participant.
    pub to: Vec<&'a str>,
    pub payload: &'a [u8],
}

/// A message as a recipient gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingData<'a> {
    pub text: bool,
    /// The sender's identity, as the server knows it; `None` when the server itself sent it.
    pub from: Option<&'a str>,
    /// Empty for none.
    pub topic: &'a str,
    pub payload: &'a [u8],
}

impl<'a> OutgoingData<'a> {
    pub fn decode(frame: &'a [u8]) -> Result<Self, DataFrameError> {
        let mut r = Reader::new(frame);
        let flags = r.header(FLAG_TEXT)?;
        let topic = r.topic()?;
        let count = r.u16()? as usize;
        if count > MAX_RECIPIENTS {
            return Err(DataFrameError::TooManyRecipients(count));
        }
        let mut to = Vec::with_capacity(count);
        for _ in 0..count {
            let len = r.u16()? as usize;
            if len > MAX_RECIPIENT_BYTES {
                return Err(DataFrameError::RecipientTooLong(len));
            }
            to.push(r.str(len)?);
        }
        let text = flags & FLAG_TEXT != 0;
        let payload = r.rest(text)?;
        Ok(OutgoingData {
            text,
            topic,
            to,
            payload,
        })
    }

    /// Appends the frame to `out`. Fields past the limits are the caller's mistake and are cut to fit.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(DATA_FRAME_VERSION);
        out.push(if self.text { FLAG_TEXT } else { 0 });
        put_str(out, clip(self.topic, MAX_TOPIC_BYTES));
        let to = &self.to[..self.to.len().min(MAX_RECIPIENTS)];
        out.extend_from_slice(&(to.len() as u16).to_be_bytes());
        for identity in to {
            put_str(out, clip(identity, MAX_RECIPIENT_BYTES));
        }
        out.extend_from_slice(self.payload);
    }
}

impl<'a> IncomingData<'a> {
    pub fn decode(frame: &'a [u8]) -> Result<Self, DataFrameError> {
        let mut r = Reader::new(frame);
        let flags = r.header(FLAG_TEXT | FLAG_FROM_SERVER)?;
        let topic = r.topic()?;
        let len = r.u16()? as usize;
        let sender = r.str(len)?;
        let text = flags & FLAG_TEXT != 0;
        let payload = r.rest(text)?;
        Ok(IncomingData {
            text,
            from: (flags & FLAG_FROM_SERVER == 0).then_some(sender),
            topic,
            payload,
        })
    }

    /// Appends the frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_header(out);
        out.extend_from_slice(self.payload);
    }

    /// Appends everything but the payload: a server builds the header once and the payload follows it.
    pub fn encode_header(&self, out: &mut Vec<u8>) {
        let mut flags = if self.text { FLAG_TEXT } else { 0 };
        if self.from.is_none() {
            flags |= FLAG_FROM_SERVER;
        }
        out.push(DATA_FRAME_VERSION);
        out.push(flags);
        put_str(out, clip(self.topic, MAX_TOPIC_BYTES));
        put_str(out, clip(self.from.unwrap_or(""), u16::MAX as usize));
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DataFrameError> {
        if self.buf.len() < n {
            return Err(DataFrameError::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Version and flags; returns the flags.
    fn header(&mut self, allowed_flags: u8) -> Result<u8, DataFrameError> {
        let head = self.take(2)?;
        if head[0] != DATA_FRAME_VERSION {
            return Err(DataFrameError::UnknownVersion(head[0]));
        }
        if head[1] & !allowed_flags != 0 {
            return Err(DataFrameError::UnknownFlags(head[1]));
        }
        Ok(head[1])
    }

    fn u16(&mut self) -> Result<u16, DataFrameError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn str(&mut self, len: usize) -> Result<&'a str, DataFrameError> {
        std::str::from_utf8(self.take(len)?).map_err(|_| DataFrameError::NotUtf8)
    }

    fn topic(&mut self) -> Result<&'a str, DataFrameError> {
        let len = self.u16()? as usize;
        if len > MAX_TOPIC_BYTES {
            return Err(DataFrameError::TopicTooLong(len));
        }
        self.str(len)
    }

    fn rest(&mut self, text: bool) -> Result<&'a [u8], DataFrameError> {
        let rest = std::mem::take(&mut self.buf);
        if text && std::str::from_utf8(rest).is_err() {
            return Err(DataFrameError::TextNotUtf8);
        }
        Ok(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_round_trips() {
        let msg = OutgoingData {
            text: true,
            topic: "cursor",
            to: vec!["alice", "bøb"],
            payload: "x=1,y=2".as_bytes(),
        };
        let mut buf = Vec::new();
        msg.encode(&mut buf);
        assert_eq!(OutgoingData::decode(&buf), Ok(msg));
    }

    #[test]
    fn incoming_round_trips_with_and_without_sender() {
        for from in [Some("alice"), None] {
            let msg = IncomingData {
                text: false,
                from,
                topic: "",
                payload: &[0, 1, 2, 255],
            };
            let mut buf = Vec::new();
            msg.encode(&mut buf);
            assert_eq!(IncomingData::decode(&buf), Ok(msg));
        }
    }

    #[test]
    fn empty_payload_and_no_recipients() {
        let buf = [1, 0, 0, 0, 0, 0];
        let msg = OutgoingData::decode(&buf).expect("decodes");
        assert!(msg.to.is_empty() && msg.payload.is_empty() && msg.topic.is_empty());
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        assert_eq!(OutgoingData::decode(&[]), Err(DataFrameError::Truncated));
        assert_eq!(
            OutgoingData::decode(&[2, 0]),
            Err(DataFrameError::UnknownVersion(2))
        );
        assert_eq!(
            OutgoingData::decode(&[1, 4]),
            Err(DataFrameError::UnknownFlags(4))
        );
        // A client may not claim to be the server.
        assert_eq!(
            OutgoingData::decode(&[1, FLAG_FROM_SERVER, 0, 0, 0, 0]),
            Err(DataFrameError::UnknownFlags(FLAG_FROM_SERVER))
        );
        assert_eq!(
            OutgoingData::decode(&[1, 0, 0, 5, b'a']),
            Err(DataFrameError::Truncated)
        );
        assert_eq!(
            OutgoingData::decode(&[1, 0, 0, 2, 0xff, 0xfe, 0, 0]),
            Err(DataFrameError::NotUtf8)
        );
        assert_eq!(
            OutgoingData::decode(&[1, 0, 0xff, 0xff]),
            Err(DataFrameError::TopicTooLong(0xffff))
        );
        assert_eq!(
            OutgoingData::decode(&[1, 0, 0, 0, 0xff, 0xff]),
            Err(DataFrameError::TooManyRecipients(0xffff))
        );
        assert_eq!(
            OutgoingData::decode(&[1, FLAG_TEXT, 0, 0, 0, 0, 0xc3]),
            Err(DataFrameError::TextNotUtf8)
        );
        // Every prefix of a valid frame fails cleanly or decodes.
        let mut buf = Vec::new();
        OutgoingData {
            text: false,
            topic: "t",
            to: vec!["a"],
            payload: b"p",
        }
        .encode(&mut buf);
        for n in 0..buf.len() {
            let _ = OutgoingData::decode(&buf[..n]);
            let _ = IncomingData::decode(&buf[..n]);
        }
    }

    #[test]
    fn encode_clips_overlong_fields() {
        let topic = "é".repeat(MAX_TOPIC_BYTES);
        let mut buf = Vec::new();
        OutgoingData {
            text: false,
            topic: &topic,
            to: vec![],
            payload: b"",
        }
        .encode(&mut buf);
        let decoded = OutgoingData::decode(&buf).expect("decodes");
        assert!(decoded.topic.len() <= MAX_TOPIC_BYTES);
    }
}
