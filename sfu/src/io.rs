//! The thin I/O layer: one thread per worker, each owning a UDP socket and a [`WorkerCore`] it drives with the
//! real clock. The thread sleeps in `ppoll` until a datagram comes or the core's next timer is due (at most
//! [`TIMER_SLACK`] late, to share wake-ups); `udp/recv.rs` says why not in a blocking `recv`. Commands
//! arrive on a channel, and ICE-TCP frames (`tcp.rs`) on another; whoever queues one also wakes the worker
//! with an empty datagram from its [`Waker`], so the worker never polls for them. Transmits whose protocol is
//! TCP go back to their connection's writer queue.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use str0m::net::Protocol;

use crate::api::{Command, DataLimits, RoomKey};
use crate::core::WorkerCore;
use crate::stats::WorkerCounters;
use crate::tcp::{self, TcpAcceptor, TcpInbox, TcpInput};
use crate::thread_usage;
use crate::udp::{wait_readable, UdpBatch, UdpRecvBatch, RECV_BATCH};
use crate::waker::Waker;

/// The longest a worker waits for datagrams when none of its timers is due sooner. Commands and ICE-TCP frames
/// wake it when they are queued ([`Waker`]); this is only a backstop.
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

/// How often a worker publishes its gauges (an O(tracks) count) and histograms (about 70 stores); counters go
/// out every loop iteration.
const GAUGE_INTERVAL: Duration = Duration::from_millis(100);

/// After the datagrams that woke it, a worker takes what arrived meanwhile, up to this many receive calls of up
/// to [`RECV_BATCH`] datagrams each, before it waits again.
const MAX_RECV_ROUNDS: usize = 4;

/// Copies are made and sent (the core drains its subscribers when polled for transmits) once a forwarded
/// datagram has waited this long, or the input runs dry: the packets a batch brought for one subscriber then
/// cost one str0m drain and leave together, as one GSO message (a run of a video frame's packets), at a
/// bounded cost in latency.
const FLUSH_AFTER: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The IP the UDP sockets bind.
    pub bind_ip: IpAddr,
    /// The first UDP port; worker `i` binds `port + i`. Port 0 lets the OS pick for every worker.
    pub port: u16,
    /// The IP advertised to clients in ICE candidates.
    pub advertised_ip: IpAddr,
    /// Number of worker threads (at least 1).
    pub workers: usize,
    /// Data-channel limits, the same on every worker.
    pub data: DataLimits,
    /// The TCP port for ICE-TCP, shared by all workers (0 lets the OS pick); `None` = no ICE-TCP.
    pub tcp_port: Option<u16>,
    /// Send runs of datagrams to one destination as one UDP GSO message (Linux; falls back by itself where the
    /// kernel refuses it).
    pub udp_gso: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error("cannot bind TCP {addr} for ICE-TCP: {source}")]
    BindTcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot set up the wake-up socket of the worker on {addr}: {source}")]
    Waker {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// A way to send commands to one worker.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    index: usize,
    local_addr: SocketAddr,
    tx: Sender<Command>,
    waker: Arc<Waker>,
}

impl WorkerHandle {
    /// Queue a command and wake the worker; returns false if the worker has stopped.
    pub fn send(&self, cmd: Command) -> bool {
        let queued = self.tx.send(cmd).is_ok();
        if queued {
            self.waker.wake();
        }
        queued
    }

    pub fn index(&self) -> usize {
        self.index
    }

    /// The media address this worker advertises.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// The running media workers.
#[derive(Debug)]
pub struct Sfu {
    workers: Vec<WorkerHandle>,
    threads: Vec<JoinHandle<()>>,
    counters: Arc<[WorkerCounters]>,
    /// The advertised ICE-TCP address, when enabled.
    tcp_addr: Option<SocketAddr>,
    tcp: Option<TcpAcceptor>,
}

impl Sfu {
    /// Bind every worker's socket and start its thread.
    pub fn start(config: &SfuConfig) -> Result<Sfu, SfuError> {
        if config.workers == 0 {
            return Err(SfuError::Config("workers must be at least 1".into()));
        }
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        let counters: Arc<[WorkerCounters]> = (0..config.workers)
            .map(|_| WorkerCounters::default())
            .collect();
        let tcp_listener = match config.tcp_port {
            Some(port) => {
                let addr = SocketAddr::new(config.bind_ip, port);
                let listener =
                    TcpListener::bind(addr).map_err(|source| SfuError::BindTcp { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| SfuError::BindTcp { addr, source })?;
                Some((
                    listener,
                    SocketAddr::new(config.advertised_ip, bound.port()),
                ))
            }
            None => None,
        };
        let tcp_addr = tcp_listener.as_ref().map(|(_, a)| *a);
        let mut tcp_senders = Vec::new();
        for index in 0..config.workers {
            let port = if config.port == 0 {
                0
            } else {
                u16::try_from(usize::from(config.port) + index).map_err(|_| {
                    SfuError::Config(format!(
                        "port {} + {index} workers exceeds 65535",
                        config.port
                    ))
                })?
            };
            let addr = SocketAddr::new(config.bind_ip, port);
            let socket = UdpSocket::bind(addr).map_err(|source| SfuError::Bind { addr, source })?;
            let bound = socket
                .local_addr()
                .map_err(|source| SfuError::Bind { addr, source })?;
            let local_addr = SocketAddr::new(config.advertised_ip, bound.port());
            let waker = Waker::new(bound)
                .map(Arc::new)
                .map_err(|source| SfuError::Waker {
                    addr: bound,
                    source,
                })?;
            let waker_addr = waker.addr();
            let (tx, rx) = mpsc::channel();
            let mut core = WorkerCore::new(local_addr);
            core.set_data_limits(config.data);
            let mut tcp = None;
            if let Some(addr) = tcp_addr {
                core = core.with_ice_tcp(addr, tcp::ufrag_prefix(index));
                let (ttx, trx) = mpsc::channel();
                tcp_senders.push(TcpInbox {
                    tx: ttx,
                    waker: Arc::clone(&waker),
                });
                tcp = Some((addr, trx));
            }
            let shared = Arc::clone(&counters);
            let udp_gso = config.udp_gso;
            let thread = std::thread::Builder::new()
                .name(format!("chorus-media-{index}"))
                .spawn(move || {
                    let udp = UdpSide::new(socket, core.local_addr(), waker_addr, udp_gso);
                    run_worker(core, udp, rx, tcp, &shared[index])
                })
                .map_err(SfuError::Thread)?;
            tracing::info!(worker = index, %bound, advertised = %local_addr, ice_tcp = ?tcp_addr, "media worker started");
            workers.push(WorkerHandle {
                index,
                local_addr,
                tx,
                waker,
            });
            threads.push(thread);
        }
        let tcp = match tcp_listener {
            Some((listener, _)) => {
                Some(TcpAcceptor::start(listener, tcp_senders).map_err(SfuError::Thread)?)
            }
            None => None,
        };
        Ok(Sfu {
            workers,
            threads,
            counters,
            tcp_addr,
            tcp,
        })
    }

    /// The advertised ICE-TCP address (shared by every worker), if ICE-TCP is on.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The worker a room is pinned to.
    pub fn worker_for(&self, room: RoomKey) -> &WorkerHandle {
        &self.workers[(room.0 as usize) % self.workers.len()]
    }

    pub fn workers(&self) -> &[WorkerHandle] {
        &self.workers
    }

    /// Every worker's counters and gauges (index = worker index), as last published by its thread. Cheap to
    /// read at any time: relaxed atomic loads, no lock, no message to the worker.
    pub fn counters(&self) -> &[WorkerCounters] {
        &self.counters
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        self.tcp = None;
        for w in &self.workers {
            w.send(Command::Shutdown);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A worker's ICE-TCP side: the advertised TCP address, the frames from `tcp.rs`, and each connection's writer.
struct TcpSide {
    local: SocketAddr,
    inputs: Receiver<TcpInput>,
    writers: HashMap<SocketAddr, mpsc::SyncSender<Vec<u8>>>,
}

impl TcpSide {
    /// Feed every waiting frame to the core.
    fn drain(&mut self, core: &mut WorkerCore) {
        while let Ok(input) = self.inputs.try_recv() {
            match input {
                TcpInput::Opened { remote, writer } => {
                    self.writers.insert(remote, writer);
                }
                TcpInput::Frame { remote, data } => {
                    core.stats.bytes_in += data.len() as u64;
                    core.handle_datagram_via(
                        Instant::now(),
                        Protocol::Tcp,
                        remote,
                        self.local,
                        &data,
                    );
                }
                TcpInput::Closed { remote } => {
                    self.writers.remove(&remote);
                }
            }
        }
    }
}

fn run_worker(
    mut core: WorkerCore,
    mut udp: UdpSide,
    commands: Receiver<Command>,
    tcp: Option<(SocketAddr, Receiver<TcpInput>)>,
    counters: &WorkerCounters,
) {
    let mut tcp = tcp.map(|(local, inputs)| TcpSide {
        local,
        inputs,
        writers: HashMap::new(),
    });
    let mut next_gauges = Instant::now();
    loop {
        // Publish what the last iteration counted: a handful of relaxed stores, read only by scrapes.
        counters.publish_stats(&core.stats);
        let mut commanded = false;
        loop {
            match commands.try_recv() {
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return,
                Ok(cmd) => {
                    core.handle_command(Instant::now(), cmd);
                    commanded = true;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        // One scan for the deadline per iteration (it is O(participants); a timer heap is future work).
        let now = Instant::now();
        // Commands change what the gauges count (rooms, participants, tracks); an idle worker may not come
        // round again for a while.
        if now >= next_gauges || commanded {
            if let Some(usage) = thread_usage::current() {
                core.stats.thread_cpu_micros = usage.cpu_micros;
                core.stats.thread_sleeps = usage.sleeps;
            }
            counters.publish_gauges(&core.gauges());
            counters.publish_histograms(&core.histograms);
            next_gauges = now + GAUGE_INTERVAL;
        }
        let mut deadline = core.next_deadline();
        if let Some(due) = deadline.filter(|d| *d <= now) {
            core.histograms
                .timer_lateness_seconds
                .observe(now.duration_since(due).as_secs_f64());
            core.handle_timeout(now);
            deadline = core.next_deadline();
        }
        if let Some(tcp) = tcp.as_mut() {
            tcp.drain(&mut core);
        }
        udp.flush(&mut core, tcp.as_ref());
        udp.receive(&mut core, tcp.as_ref(), deadline);
    }
}

/// A worker's UDP side: the socket, its receive and send batches, and the arrival times of datagrams whose
/// copies wait to be sent (for the forwarding latency histogram).
struct UdpSide {
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
    fn new(
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
    fn receive(&mut self, core: &mut WorkerCore, tcp: Option<&TcpSide>, deadline: Option<Instant>) {
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
    fn flush(&mut self, core: &mut WorkerCore, tcp: Option<&TcpSide>) {
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
