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

    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), PeerError> {
        self.clock = self.clock.max(now);
        self.rtc.handle_input(Input::Timeout(now))?;
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
    pub fn poll(
        &mut self,
        now: Instant,
        transmits: &mut VecDeque<Transmit>,
        events: &mut Vec<Event>,
    ) -> Result<(), PeerError> {
        let mut rounds = 0;
        let mut idle_rounds = 0;
        let mut produced = false;
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
                    if !due || rounds >= INLINE_TIMEOUT_ROUNDS || idle_rounds > 2 {
                        self.deadline = t;
                        return Ok(());
                    }
                    rounds += 1;
                    produced = false;
                    self.clock = self.clock.max(now).max(t);
                    self.rtc.handle_input(Input::Timeout(self.clock))?;
                }
                Output::Transmit(t) => {
                    produced = true;
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
