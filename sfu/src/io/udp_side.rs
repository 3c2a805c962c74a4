//! A media worker's UDP side: waiting for datagrams (until the core's next timer, with a slack that lets
//! timers share wake-ups), feeding what arrived to the core, and sending what it produced in batches, with the
//! forwarding latency of each forwarded datagram. The socket calls themselves are in `udp/`.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use str0m::net::Protocol;

use super::tcp_side::TcpSide;
use crate::core::WorkerCore;
use crate::tcp;
use crate::udp::{wait_readable, UdpBatch, UdpRecvBatch, RECV_BATCH};

/// The longest a worker waits for datagrams when none of its timers is due sooner. Commands and ICE-TCP frames
/// wake it when they are queued (`waker.rs`); this is only a backstop.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// How late a timer may run while media flows, so that it can share a wake-up with the datagrams that arrive
/// meanwhile. Each wake-up is expensive on a virtual machine (about 30 µs of CPU here, see
/// `docs/performance.md`); waking at every timer's exact time took 35–50 % more wake-ups in a 4×4 load test,
/// and this slack brings them back to where they were, with timers at most about a millisecond late (str0m's
/// pacer and probe clusters step at 2 ms or more).
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// How late a timer may run when no media has been forwarded for [`QUIET_AFTER`]. Then only the
/// connections' housekeeping is due (reports, consent, statistics, data channels), each at its own time: 50 idle participants ask for about
/// 1,700 str0m timer rounds a second, which took about 400 wake-ups a second with [`TIMER_SLACK`], 160 with
/// 4 ms, and about as many as before precise waits (120, when a timeout took 4–8 ms) with this.
const QUIET_TIMER_SLACK: Duration = Duration::from_millis(8);

/// A worker counts as quiet when it has forwarded no media for this long.
const QUIET_AFTER: Duration = Duration::from_millis(100);

/// The shortest wait for datagrams. A timer already due when the worker is about to wait was left by a
/// connection that bounded its own work (`Peer::poll`); this keeps such a connection from spinning the worker.
const MIN_WAIT: Duration = Duration::from_micros(100);

/// After the datagrams that woke it, a worker takes what arrived meanwhile, up to this many receive calls of up
/// to [`RECV_BATCH`] datagrams each, before it waits again.
const MAX_RECV_ROUNDS: usize = 4;

/// Copies are made and sent (the core drains its subscribers when polled for transmits) once a forwarded
/// datagram has waited this long, or the input runs dry: the packets a batch brought for one subscriber then
/// cost one str0m drain and leave together, as one GSO message (a run of a video frame's packets), at a
/// bounded cost in latency.
const FLUSH_AFTER: Duration = Duration::from_millis(1);

/// A worker's UDP side: the socket, its receive and send batches, and the arrival times of datagrams whose
/// copies wait to be sent (for the forwarding latency histogram).
pub(super) struct UdpSide {
    socket: UdpSocket,
    local_addr: SocketAddr,
    /// Where the worker's wake-ups come from (their empty datagrams are not media).
    waker_addr: SocketAddr,
    inbox: UdpRecvBatch,
    outbox: UdpBatch,
    forwarded: Vec<Instant>,
    /// When the last datagram that was forwarded (media) arrived.
    last_forwarded: Option<Instant>,
}

impl UdpSide {
    pub(super) fn new(
        socket: UdpSocket,
        local_addr: SocketAddr,
        waker_addr: SocketAddr,
        udp_gso: bool,
    ) -> Self {
        UdpSide {
            socket,
            local_addr,
            waker_addr,
            inbox: UdpRecvBatch::default(),
            outbox: UdpBatch::new(udp_gso),
            forwarded: Vec::with_capacity(RECV_BATCH * MAX_RECV_ROUNDS),
            last_forwarded: None,
        }
    }

    /// How late the next timer may run: [`TIMER_SLACK`] while media is forwarded, [`QUIET_TIMER_SLACK`] once
    /// none has been for [`QUIET_AFTER`].
    fn timer_slack(&self) -> Duration {
        match self.last_forwarded {
            Some(t) if t.elapsed() < QUIET_AFTER => TIMER_SLACK,
            _ => QUIET_TIMER_SLACK,
        }
    }

    /// Waits for datagrams until `deadline` (at most [`IDLE_WAIT`]); feeds what came, and what else arrived
    /// meanwhile (up to [`MAX_RECV_ROUNDS`] receive calls), to the core; sends the copies once a forwarded
    /// datagram has waited [`FLUSH_AFTER`], and at the end.
    pub(super) fn receive(
        &mut self,
        core: &mut WorkerCore,
        tcp: Option<&TcpSide>,
        deadline: Option<Instant>,
    ) {
        let wait = deadline
            .map(|d| (d + self.timer_slack()).saturating_duration_since(Instant::now()))
            .unwrap_or(IDLE_WAIT)
            .clamp(MIN_WAIT, IDLE_WAIT);
        match wait_readable(&self.socket, wait) {
            Ok(true) => {}
            // The deadline: the loop runs the timers next.
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "waiting for datagrams failed");
                std::thread::sleep(MIN_WAIT);
                return;
            }
        }
        for _ in 0..MAX_RECV_ROUNDS {
            match self.inbox.recv(&self.socket) {
                Ok(0) => break,
                Ok(_) => {}
                // ICMP errors from earlier sends surface here on Linux; they concern one peer, not the socket.
                Err(e) => {
                    tracing::trace!(error = %e, "recv");
                    break;
                }
            }
            let arrived = Instant::now();
            let UdpSide {
                socket,
                local_addr,
                waker_addr,
                inbox,
                outbox,
                forwarded,
                last_forwarded,
            } = self;
            for (source, data) in inbox.datagrams() {
                if source == *waker_addr {
                    // A wake-up: the loop looks at its commands and ICE-TCP frames next.
                    continue;
                }
                core.stats.bytes_in += data.len() as u64;
                let before = core.stats.rtp_forwarded;
                core.handle_datagram(arrived, source, *local_addr, data);
                if core.stats.rtp_forwarded != before {
                    forwarded.push(arrived);
                    *last_forwarded = Some(arrived);
                }
                if forwarded
                    .first()
                    .is_some_and(|t| t.elapsed() >= FLUSH_AFTER)
                {
                    send(socket, outbox, forwarded, core, tcp);
                }
            }
        }
        self.flush(core, tcp);
    }

    /// Sends everything the core has queued.
    pub(super) fn flush(&mut self, core: &mut WorkerCore, tcp: Option<&TcpSide>) {
        send(
            &self.socket,
            &mut self.outbox,
            &mut self.forwarded,
            core,
            tcp,
        );
    }
}

/// Sends everything the core has queued (UDP in one batch, TCP to each connection's writer), then records the
/// forwarding latency of each datagram in `forwarded` (taken from the socket → its copies sent).
fn send(
    socket: &UdpSocket,
    outbox: &mut UdpBatch,
    forwarded: &mut Vec<Instant>,
    core: &mut WorkerCore,
    tcp: Option<&TcpSide>,
) {
    while let Some(t) = core.poll_transmit() {
        if t.proto == Protocol::Tcp {
            // Queued for the connection's writer thread; a full queue or a gone connection drops it.
            let sent = tcp
                .and_then(|tcp| tcp.writers.get(&t.destination))
                .zip(tcp::frame(&t.contents))
                .is_some_and(|(w, framed)| w.try_send(framed).is_ok());
            if sent {
                core.stats.datagrams_out += 1;
                core.stats.bytes_out += t.contents.len() as u64;
            } else {
                core.stats.send_errors += 1;
            }
            continue;
        }
        outbox.push(t);
    }
    outbox.send(socket, &mut core.stats);
    if !forwarded.is_empty() {
        let sent = Instant::now();
        for arrived in forwarded.drain(..) {
            core.histograms
                .forwarding_latency_seconds
                .observe(sent.duration_since(arrived).as_secs_f64());
        }
    }
}
