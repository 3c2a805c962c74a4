//! One str0m `Rtc` (a peer connection) as the SFU configures and drives it.
//!
//! Owns the str0m configuration (ICE-lite, RTP mode, codecs), feeding input, and draining output into the
//! caller's transmit queue and event list. Knows nothing about rooms or forwarding.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::net::{Protocol, Receive, TcpType, Transmit};
use str0m::{Candidate, Event, IceCreds, Input, Output, Rtc, RtcConfig, RtcError};

/// How many packets per outgoing video stream str0m keeps for answering NACKs.
const VIDEO_SEND_BUFFER: usize = 1000;

/// At most this many due timeouts are handled inside one [`Peer::poll`]. Each can release one queued packet,
/// and a subscriber connection is drained once for all the copies a batch of input brought it (up to one per
/// datagram of a 128-datagram batch, per track).
const INLINE_TIMEOUT_ROUNDS: u32 = 256;

/// How str0m says "right away": one microsecond after the latest time it was given (its pacer does, after
/// every packet, so that its clock moves between two packets). A timeout this close is due.
const IMMEDIATELY: Duration = Duration::from_micros(1);

/// How long the timer round str0m asks for right after a connection's last forwarded packet may wait. That
/// round moves str0m's clock past the packet (its pacer gates the next packet on it) and is where its pacer
/// adds padding (only when its queues are empty); the next drain of forwarded copies runs a round anyway,
/// before its first packet, so deferring it saves one round per drain. str0m's other timers (reports,
/// estimation) wait at most this long; padding waits for a pause in the copies, so the owner allows the
/// deferral only while no probing is wanted ([`Peer::set_defer_forward_round`]).
const FORWARD_ROUND_DEFER: Duration = Duration::from_millis(5);

/// How often str0m reports per-stream stats (the worker counts NACKs received from them).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Why a peer connection cannot continue.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("str0m: {0}")]
    Rtc(#[from] RtcError),
    #[error("invalid local candidate for {0}")]
    Candidate(SocketAddr),
}

/// Where a worker's peers are reached: the UDP socket, optionally the ICE-TCP listener, and the prefix of every
/// local ICE ufrag (which tells the shared TCP listener which worker a connection belongs to; see `tcp.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    pub udp: SocketAddr,
    pub tcp: Option<SocketAddr>,
    pub ufrag_prefix: String,
}

pub struct Peer {
    rtc: Rtc,
    ufrag: String,
    deadline: Instant,
    /// The latest time given to str0m (a few microseconds ahead of the caller's clock after immediate
    /// timeouts; str0m's own clock never goes back).
    clock: Instant,
    /// Forwarded packets written into this connection since a drain last sent them (see [`Peer::poll`]).
    media_written: u32,
    /// The payload types of those packets (bit n: type n), so that a resend or padding (RTX's type) is not
    /// taken for one of them.
    media_pts: u128,
    /// Whether the round after the last forwarded packet of a drain may wait ([`FORWARD_ROUND_DEFER`]).
    defer_forward_round: bool,
    /// str0m timer rounds run (inline and on the caller's timeouts) since the owner last took the count.
    timer_rounds: u64,
}

impl Peer {
    /// A new ICE-lite, RTP-mode peer reachable at `local_addr`, with fresh random ICE credentials; with
    /// `initial_estimate`, send-side bandwidth estimation (transport-wide CC) starts from that many bits/s.
    /// At most `sctp_buffer` bytes of data-channel messages wait for the remote to acknowledge them.
    pub fn new(
        now: Instant,
        local: &LocalEndpoint,
        initial_estimate: Option<u64>,
        sctp_buffer: usize,
    ) -> Result<Peer, PeerError> {
        let mut creds = IceCreds::new();
        creds.ufrag.insert_str(0, &local.ufrag_prefix);
        let ufrag = creds.ufrag.clone();
        let mut rtc = RtcConfig::new()
            .enable_bwe(initial_estimate.map(Bitrate::from))
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_local_ice_credentials(creds)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .enable_vp9(true)
            .enable_av1(true)
            .set_send_buffer_video(VIDEO_SEND_BUFFER)
            .set_stats_interval(Some(STATS_INTERVAL))
            .set_sctp_max_buffered_amount(sctp_buffer)
            .build(now);
        let candidate =
            Candidate::host(local.udp, "udp").map_err(|_| PeerError::Candidate(local.udp))?;
        rtc.add_local_candidate(candidate);
        if let Some(tcp) = local.tcp {
            // Passive: the client connects to us (RFC 6544); Chrome ignores TCP candidates without a tcptype.
            let candidate = Candidate::builder()
                .tcp()
                .host(tcp)
                .tcptype(TcpType::Passive)
                .build()
                .map_err(|_| PeerError::Candidate(tcp))?;
            rtc.add_local_candidate(candidate);
        }
        Ok(Peer {
            rtc,
            ufrag,
            deadline: now,
            clock: now,
            media_written: 0,
            media_pts: 0,
            defer_forward_round: false,
            timer_rounds: 0,
        })
    }

    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    pub fn rtc(&mut self) -> &mut Rtc {
        &mut self.rtc
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn is_alive(&self) -> bool {
        self.rtc.is_alive()
    }

    /// Feed one datagram (for TCP, one RFC 4571 frame). Datagrams str0m cannot parse are ignored (they are not
    /// this peer's fault).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Result<(), PeerError> {
        let Ok(receive) = Receive::new(proto, source, destination, data) else {
            tracing::trace!(%source, len = data.len(), "unparseable datagram");
            return Ok(());
        };
        self.clock = self.clock.max(now);
        self.rtc.handle_input(Input::Receive(now, receive))?;
        Ok(())
    }

    /// The str0m timer rounds run since the last call (the worker counts them: per-packet bookkeeping).
    pub fn take_timer_rounds(&mut self) -> u64 {
        std::mem::take(&mut self.timer_rounds)
    }

    /// Note that a forwarded packet of payload type `pt` was written into this connection (through str0m's
    /// direct API).
    pub fn note_media_written(&mut self, pt: u8) {
        self.media_written = self.media_written.saturating_add(1);
        self.media_pts |= 1u128 << (pt & 0x7f);
    }

    /// Allow (or stop) deferring the timer round after a drain's last forwarded packet: only while no padding
    /// is wanted to probe the estimate up, since str0m pads only in that round (off by default).
    pub fn set_defer_forward_round(&mut self, on: bool) {
        self.defer_forward_round = on;
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), PeerError> {
        self.timer_round(now)
    }

    /// One str0m timer round at `at` (or at str0m's clock, if that is later: it never goes back).
    fn timer_round(&mut self, at: Instant) -> Result<(), PeerError> {
        self.timer_rounds += 1;
        self.clock = self.clock.max(at);
        self.rtc.handle_input(Input::Timeout(self.clock))?;
        Ok(())
    }

    /// Drain output until str0m asks to be woken later than `now`: transmits to `transmits`, events to `events`.
    ///
    /// A timeout that is already due, or asked for [`IMMEDIATELY`], is handled on the spot (at its time) and
    /// the drain goes on. str0m releases a written packet only after a timer round, and its pacer asks for an
    /// immediate one after each packet; without this every forwarded copy would wait for the worker's next
    /// loop iteration: a deadline scan over every participant, a timer pass and a second flush, per packet.
    /// Bounded, so a peer that keeps asking for "now" cannot hold the worker; the rest then waits for the
    /// next iteration.
    ///
    /// With forwarded packets written since the last drain, the drain starts with a timer round (the one
    /// str0m's pacer would ask for first). Once every one of them has left, the immediate round asked for
    /// after the last one waits (up to [`FORWARD_ROUND_DEFER`], when the owner allows it): the next drain
    /// runs a round before its first packet anyway.
    pub fn poll(
        &mut self,
        now: Instant,
        transmits: &mut VecDeque<Transmit>,
        events: &mut Vec<Event>,
    ) -> Result<(), PeerError> {
        let mut rounds = 0;
        let mut idle_rounds = 0;
        let mut produced = false;
        let mut media_sent = 0u32;
        if self.media_written > 0 && self.rtc.is_alive() {
            // str0m's pacer releases a written packet only after a timer round, so the first poll would
            // only ask for one "right away": run it without asking (the poll computes every timer first).
            rounds += 1;
            self.timer_round(now)?;
        }
        loop {
            if !self.rtc.is_alive() {
                // Nothing more will come; wake rarely so the owner notices and cleans up.
                self.deadline += Duration::from_secs(3600);
                return Ok(());
            }
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    idle_rounds = if produced { 0 } else { idle_rounds + 1 };
                    let due = t <= self.clock.max(now) + IMMEDIATELY;
                    if !due {
                        // Nothing more leaves before `t`: whatever was written and not sent was dropped.
                        self.media_written = 0;
                        self.media_pts = 0;
                        self.deadline = t;
                        return Ok(());
                    }
                    let forwarded_all = self.media_written > 0 && media_sent >= self.media_written;
                    if self.defer_forward_round && forwarded_all && t > now {
                        self.media_written = 0;
                        self.media_pts = 0;
                        self.deadline = now + FORWARD_ROUND_DEFER;
                        return Ok(());
                    }
                    if rounds >= INLINE_TIMEOUT_ROUNDS || idle_rounds > 2 {
                        self.media_written = self.media_written.saturating_sub(media_sent);
                        self.deadline = t;
                        return Ok(());
                    }
                    rounds += 1;
                    produced = false;
                    self.timer_round(now.max(t))?;
                }
                Output::Transmit(t) => {
                    produced = true;
                    if rtp_payload_type(&t.contents)
                        .is_some_and(|pt| self.media_pts & (1 << pt) != 0)
                    {
                        media_sent += 1;
                    }
                    transmits.push_back(t)
                }
                Output::Event(e) => {
                    produced = true;
                    events.push(e)
                }
            }
        }
    }
}

/// The payload type of an (S)RTP datagram; `None` for RTCP, STUN or DTLS (RFC 7983 and RFC 5761
/// demultiplexing: first byte 128–191; RTCP's packet types 192–223 are 64–95 without the marker bit).
fn rtp_payload_type(datagram: &[u8]) -> Option<u8> {
    match datagram {
        [first, second, ..] if (128..=191).contains(first) => {
            let pt = second & 0x7f;
            (!(64..=95).contains(&pt)).then_some(pt)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::rtp_payload_type;

    #[test]
    fn rtp_is_told_from_rtcp_stun_and_dtls() {
        assert_eq!(
            rtp_payload_type(&[0x80, 96, 0, 1]),
            Some(96),
            "VP8, no marker"
        );
        assert_eq!(
            rtp_payload_type(&[0x90, 0x80 | 111, 0, 1]),
            Some(111),
            "Opus with extension and marker"
        );
        assert_eq!(
            rtp_payload_type(&[0x81, 200, 0, 6]),
            None,
            "RTCP sender report"
        );
        assert_eq!(
            rtp_payload_type(&[0x8f, 205, 0, 4]),
            None,
            "RTCP transport feedback"
        );
        assert_eq!(
            rtp_payload_type(&[0x00, 0x01, 0, 0]),
            None,
            "STUN binding request"
        );
        assert_eq!(rtp_payload_type(&[22, 0xfe, 0xfd]), None, "DTLS handshake");
        assert_eq!(rtp_payload_type(&[0x80]), None, "truncated");
        assert_eq!(rtp_payload_type(&[]), None);
    }
}
