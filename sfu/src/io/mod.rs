//! The thin I/O layer: one thread per worker, each owning a UDP socket and a [`WorkerCore`] it drives with the
//! real clock. The thread sleeps in `ppoll` until a datagram comes or the core's next timer is due (a little
//! late, to share wake-ups: `udp_side.rs`; `udp/recv.rs` says why not in a blocking `recv`). Commands
//! arrive on a channel, and ICE-TCP frames (`tcp.rs`) on another; whoever queues one also wakes the worker
//! with an empty datagram from its [`Waker`], so the worker never polls for them. Transmits whose protocol is
//! TCP go back to their connection's writer queue.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::api::{Command, DataLimits};
use crate::core::WorkerCore;
use crate::stats::WorkerCounters;
use crate::tcp::{self, TcpAcceptor, TcpInbox, TcpInput};
use crate::thread_usage;
use crate::waker::Waker;

mod placement;
mod tcp_side;
mod udp_side;

use placement::Placements;
pub use placement::RoomPlacement;
use tcp_side::TcpSide;
use udp_side::UdpSide;

/// How often a worker publishes its gauges (an O(tracks) count) and histograms (about 70 stores); counters go
/// out every loop iteration.
const GAUGE_INTERVAL: Duration = Duration::from_millis(100);

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
    /// Rooms placed on each worker.
    placements: Placements,
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
            placements: Placements::new(workers.len()),
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

    /// A worker for a new room: the least loaded one (`placement.rs`). The room stays on it; keep the
    /// placement for the room's life, since it counts the room there until dropped.
    pub fn place_room(&self) -> RoomPlacement {
        self.placements.place(&self.workers, &self.counters)
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

fn run_worker(
    mut core: WorkerCore,
    mut udp: UdpSide,
    commands: Receiver<Command>,
    tcp: Option<(SocketAddr, Receiver<TcpInput>)>,
    counters: &WorkerCounters,
) {
    let mut tcp = tcp.map(|(local, inputs)| TcpSide::new(local, inputs));
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
