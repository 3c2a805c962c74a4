//! The sans-IO heart of a media worker: rooms, participants and forwarding, driven by `(now, input)`.
//!
//! This file owns the entry points, the panic guard and the work queues; `commands.rs` applies the signaling
//! side's commands; `rtc_events.rs` handles str0m's events; `membership.rs` owns adding, removing
//! and (un)subscribing participants and tracks; `fanout.rs` owns the packet path; `quality.rs` feeds the
//! participants' call-quality meters; `speakers.rs` the rooms' active speakers.
//!
//! [`WorkerCore`] is fed commands, datagrams and timeouts with the caller's clock, and yields transmits (via
//! [`WorkerCore::poll_transmit`], which also drains the subscriber connections that forwarded copies were
//! written into since the last poll) and [`Event`]s (via each room's sink). It never reads the clock, sleeps or
//! touches a socket; `io/` does that. A str0m panic while handling one participant ends that participant
//! only.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use rustc_hash::{FxHashMap, FxHashSet};
use str0m::net::{Protocol, Transmit};
use str0m::Event as RtcEvent;

use crate::api::{Command, DataLimits, Event, ParticipantKey, PcKind, RoomKey, TrackKey};
use crate::histogram::WorkerHistograms;
use crate::participant::Participant;
use crate::peer::LocalEndpoint;
use crate::room::{RoomMedia, TrackRoute};
use crate::router::{is_stun, Router};
pub use crate::stats::WorkerStats;
use crate::stats::{EgressTally, WorkerGauges};

mod commands;
mod data;
mod fanout;
mod membership;
mod quality;
mod rtc_events;
mod simulcast;
mod speakers;

/// How long a connection may stay ICE-disconnected before its participant is ended.
pub const ICE_DISCONNECT_GRACE: std::time::Duration = std::time::Duration::from_secs(6);

pub struct WorkerCore {
    /// The addresses advertised to clients as our host candidates.
    endpoint: LocalEndpoint,
    // Keyed by ids the signaling side assigns (not by anything a client sends), looked up per forwarded copy:
    // a fast hasher, not SipHash.
    rooms: FxHashMap<RoomKey, RoomMedia>,
    participants: FxHashMap<ParticipantKey, Participant>,
    tracks: FxHashMap<TrackKey, TrackRoute>,
    router: Router,
    transmits: VecDeque<Transmit>,
    /// Peers with output to drain (each once: `Participant::dirty` says whether it is listed).
    dirty: Vec<(ParticipantKey, PcKind)>,
    /// Subscribers that forwarded copies were written into since the last fan-out drain (each once).
    copies_written: Vec<ParticipantKey>,
    /// The time of the latest input; the fan-out drain runs at it.
    last_input: Option<Instant>,
    /// Subscribers whose forwarded tracks changed during this input: one offer each, after it.
    needs_offer: Vec<ParticipantKey>,
    /// Reused buffer for the participants whose timers are due.
    due_buf: Vec<ParticipantKey>,
    /// Reused buffer for str0m events.
    event_buf: Vec<RtcEvent>,
    /// Whose peer we are inside, to blame on a panic.
    current: Option<ParticipantKey>,
    /// Subscriber connections that completed DTLS (writing before that only fills queues).
    connected_subscribers: FxHashSet<ParticipantKey>,
    /// When allocation and dynacast are next re-evaluated (none while the worker is empty).
    next_tick: Option<Instant>,
    pub stats: WorkerStats,
    /// Call quality and forwarding latency distributions (the I/O loop observes the latency).
    pub histograms: WorkerHistograms,
    /// Size, rate and buffer limits of data channels.
    data_limits: DataLimits,
    /// NACK totals per subscriber stream, to count deltas into `stats`.
    egress: EgressTally,
}

impl WorkerCore {
    pub fn new(local_addr: SocketAddr) -> Self {
        WorkerCore {
            endpoint: LocalEndpoint {
                udp: local_addr,
                tcp: None,
                ufrag_prefix: String::new(),
            },
            rooms: FxHashMap::default(),
            participants: FxHashMap::default(),
            tracks: FxHashMap::default(),
            router: Router::default(),
            transmits: VecDeque::new(),
            dirty: Vec::new(),
            copies_written: Vec::new(),
            last_input: None,
            needs_offer: Vec::new(),
            due_buf: Vec::new(),
            event_buf: Vec::new(),
            current: None,
            connected_subscribers: Default::default(),
            next_tick: None,
            stats: WorkerStats::default(),
            histograms: WorkerHistograms::default(),
            data_limits: DataLimits::default(),
            egress: EgressTally::default(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.udp
    }

    /// Also offer a passive ICE-TCP host candidate at `tcp`; ufrags start with `ufrag_prefix` (see `tcp.rs`).
    pub fn with_ice_tcp(mut self, tcp: SocketAddr, ufrag_prefix: String) -> Self {
        self.endpoint.tcp = Some(tcp);
        self.endpoint.ufrag_prefix = ufrag_prefix;
        self
    }

    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// What this worker hosts right now (O(rooms + tracks); for monitoring, not per packet).
    pub fn gauges(&self) -> WorkerGauges {
        WorkerGauges {
            rooms: self.rooms.len() as u64,
            participants: self.participants.len() as u64,
            tracks_published: self.tracks.len() as u64,
            tracks_subscribed: self
                .tracks
                .values()
                .map(|t| t.subscribers.len() as u64)
                .sum(),
        }
    }

    /// The next datagram to send.
    ///
    /// Forwarded copies are written into the subscribers' connections as packets arrive, but those connections
    /// are drained here, once the queue of ready datagrams runs dry: all the packets a batch of input brought
    /// for one subscriber then cost one drain instead of one each, and leave as a run to that subscriber (one
    /// GSO message). The caller bounds what that adds to latency by how much input it feeds between polls
    /// (`io/udp_side.rs`: until the input runs dry, or for at most `FLUSH_AFTER`).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.transmits.is_empty() && !self.copies_written.is_empty() {
            self.drain_copies();
        }
        self.transmits.pop_front()
    }

    /// Drain every subscriber connection that forwarded copies were written into since the last time.
    fn drain_copies(&mut self) {
        let Some(now) = self.last_input else {
            return;
        };
        self.guarded(now, |core| {
            let mut written = std::mem::take(&mut core.copies_written);
            for sk in written.drain(..) {
                if let Some(p) = core.participants.get_mut(&sk) {
                    if p.take_copies_written() {
                        p.mark_dirty(PcKind::Subscriber, &mut core.dirty);
                    }
                }
            }
            core.copies_written = written;
        });
    }

    /// When [`WorkerCore::handle_timeout`] should next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        let peers = self.participants.values().map(|p| p.deadline()).min()?;
        Some(self.next_tick.map_or(peers, |t| t.min(peers)))
    }

    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        tracing::debug!(?cmd, "worker command");
        self.guarded(now, |core| core.apply_command(now, cmd));
    }

    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        self.handle_datagram_via(now, Protocol::Udp, source, destination, data);
    }

    /// [`WorkerCore::handle_datagram`] for a datagram that came over `proto` (ICE-TCP frames: `Protocol::Tcp`).
    pub fn handle_datagram_via(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        self.stats.datagrams_in += 1;
        let Some((pk, pc)) = self.router.route(source, data) else {
            self.stats.datagrams_unrouted += 1;
            tracing::trace!(%source, len = data.len(), "unrouted datagram");
            return;
        };
        self.guarded(now, |core| {
            let Some(p) = core.participants.get_mut(&pk) else {
                return;
            };
            core.current = Some(pk);
            if pc == PcKind::Publisher && !p.publisher_ssrcs.admits(now, data, p.publisher.rtc()) {
                core.stats.rtp_remaps_refused += 1;
                tracing::debug!(%source, "RTP datagram that would re-map a live stream's SSRC held back");
                return;
            }
            if let Err(e) = p
                .peer(pc)
                .handle_datagram(now, proto, source, destination, data)
            {
                core.fail_participant(now, pk, format!("{pc:?} connection failed: {e}"));
                return;
            }
            core.mark_dirty(pk, pc);
        });
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.guarded(now, |core| {
            let mut due = std::mem::take(&mut core.due_buf);
            due.extend(
                core.participants
                    .iter()
                    .filter(|(_, p)| p.deadline() <= now)
                    .map(|(k, _)| *k),
            );
            for pk in due.drain(..) {
                let Some(p) = core.participants.get_mut(&pk) else {
                    continue;
                };
                core.current = Some(pk);
                if let Err(e) = p.handle_timeout(now, &mut core.dirty) {
                    core.fail_participant(now, pk, format!("timer failed: {e}"));
                }
            }
            core.due_buf = due;
            if core.participants.is_empty() {
                core.next_tick = None;
            } else {
                core.expire_disconnected(now);
                core.simulcast_tick(now);
            }
        });
    }

    /// Run `f`, then drain every peer it touched; a panic ends the participant being worked on.
    fn guarded(&mut self, now: Instant, f: impl FnOnce(&mut Self)) {
        self.last_input = Some(self.last_input.map_or(now, |t| t.max(now)));
        let result = catch_unwind(AssertUnwindSafe(|| {
            f(self);
            self.settle(now);
        }));
        if result.is_err() {
            self.stats.participant_faults += 1;
            self.clear_dirty();
            if let Some(pk) = self.current.take() {
                tracing::error!(participant = %pk, "panic while handling participant; removing it");
                self.fail_participant(now, pk, "internal fault in the media engine".into());
                // Removing may itself touch other peers (renegotiation); settle without re-entering the guard.
                if catch_unwind(AssertUnwindSafe(|| self.settle(now))).is_err() {
                    self.clear_dirty();
                    self.needs_offer.clear();
                }
            }
        }
        self.current = None;
    }

    /// Make the offers and drain the peers that the last input touched, until nothing is left to do.
    fn settle(&mut self, now: Instant) {
        while !self.needs_offer.is_empty() || !self.dirty.is_empty() {
            for pk in std::mem::take(&mut self.needs_offer) {
                let Some(p) = self.participants.get_mut(&pk) else {
                    continue;
                };
                if let Some(offer) = p.negotiate() {
                    self.emit_for(pk, offer);
                }
                self.mark_dirty(pk, PcKind::Subscriber);
            }
            self.drain_dirty(now);
        }
    }

    fn queue_offer(&mut self, pk: ParticipantKey) {
        if !self.needs_offer.contains(&pk) {
            self.needs_offer.push(pk);
        }
    }

    fn mark_dirty(&mut self, pk: ParticipantKey, pc: PcKind) {
        if let Some(p) = self.participants.get_mut(&pk) {
            p.mark_dirty(pc, &mut self.dirty);
        }
    }

    /// Forget every listed peer (after a panic left the list half drained).
    fn clear_dirty(&mut self) {
        for (pk, pc) in self.dirty.drain(..) {
            if let Some(p) = self.participants.get_mut(&pk) {
                *p.dirty(pc) = false;
            }
        }
    }

    fn drain_dirty(&mut self, now: Instant) {
        while let Some((pk, pc)) = self.dirty.pop() {
            let mut events = std::mem::take(&mut self.event_buf);
            let Some(p) = self.participants.get_mut(&pk) else {
                continue;
            };
            *p.dirty(pc) = false;
            self.current = Some(pk);
            let peer = p.peer(pc);
            let polled_from = self.transmits.len();
            let result = peer.poll(now, &mut self.transmits, &mut events);
            self.stats.rtc_timer_rounds += peer.take_timer_rounds();
            let alive = peer.is_alive();
            for t in self.transmits.range(polled_from..) {
                if is_stun(&t.contents) {
                    self.router.bind(t.destination, (pk, pc));
                }
            }
            for e in events.drain(..) {
                self.handle_rtc_event(now, pk, pc, e);
            }
            self.event_buf = events;
            if let Err(e) = result {
                self.fail_participant(now, pk, format!("{pc:?} connection failed: {e}"));
            } else if !alive {
                self.fail_participant(now, pk, format!("{pc:?} connection closed"));
            }
        }
    }

    fn emit(&self, room: RoomKey, event: Event) {
        if let Some(r) = self.rooms.get(&room) {
            (r.events)(event);
        }
    }

    fn emit_for(&self, pk: ParticipantKey, event: Event) {
        if let Some(p) = self.participants.get(&pk) {
            self.emit(p.room, event);
        }
    }
}
