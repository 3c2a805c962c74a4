//! ICE over TCP (RFC 6544): one passive TCP host candidate on one port for all workers, with RFC 4571 framing
//! (each packet preceded by its 16-bit length). For clients whose network blocks UDP.
//!
//! Threads, not the worker loop: an acceptor thread, and per connection a reader thread (cuts frames, hands
//! them to the worker) and a writer thread (frames and writes what the worker sends, from a bounded queue, so
//! a slow client never blocks a worker). The first frame must be a STUN binding request whose USERNAME starts
//! with a local ufrag; every ufrag starts with its worker's index in three hex digits ([`ufrag_prefix`]), which
//! says which worker gets the connection. A connection that sends anything else first, stays silent, or sends
//! an oversized frame is closed; it never affects others. This file must not touch str0m: workers feed the
//! frames to their core as datagrams of protocol TCP (`io/tcp_side.rs`).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::router::{is_stun, stun_local_ufrag};
use crate::waker::{reachable, Waker};

/// Time for a new connection to send its first frame.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection silent this long is closed (browsers send a consent check every few seconds).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections open at once.
const MAX_CONNECTIONS: usize = 2048;
/// Frames queued towards one connection; beyond it they are dropped, like UDP under congestion.
const WRITE_QUEUE: usize = 512;
/// The pause after a failed `accept` (out of file descriptors, say) before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// How long stopping the acceptor waits for its wake-up connection.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// The ufrag prefix of worker `index`.
pub fn ufrag_prefix(index: usize) -> String {
    format!("{:03x}", index & 0xfff)
}

/// The worker a local ufrag belongs to.
fn worker_of(ufrag: &str) -> Option<usize> {
    usize::from_str_radix(ufrag.get(..3)?, 16).ok()
}

/// What the TCP threads tell a worker.
#[derive(Debug)]
pub enum TcpInput {
    /// A connection from `remote` belongs to this worker; frames for it go to `writer`.
    Opened {
        remote: SocketAddr,
        writer: SyncSender<Vec<u8>>,
    },
    /// One frame (without its length prefix).
    Frame { remote: SocketAddr, data: Vec<u8> },
    /// The connection ended.
    Closed { remote: SocketAddr },
}

/// Where the TCP threads hand a worker its connections: the worker's channel, and its waker (the worker
/// waits on its UDP socket, so each input is followed by a wake-up).
#[derive(Debug, Clone)]
pub struct TcpInbox {
    pub tx: Sender<TcpInput>,
    pub waker: Arc<Waker>,
}

impl TcpInbox {
    /// Queue `input` and wake the worker; `Err` once the worker has stopped.
    fn send(&self, input: TcpInput) -> Result<(), &'static str> {
        self.tx.send(input).map_err(|_| "worker stopped")?;
        self.waker.wake();
        Ok(())
    }
}

/// The running acceptor; dropping it stops accepting (open connections end with their clients or workers).
///
/// The acceptor thread blocks in `accept` (no polling: an idle server's ICE-TCP port costs no wake-ups); to
/// stop it, the drop sets a flag and connects to the listener once, which the thread takes as its cue.
#[derive(Debug)]
pub struct TcpAcceptor {
    stop: Arc<AtomicBool>,
    /// Where a connection reaches the listener (its own address; loopback if it listens on every address).
    wake: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl TcpAcceptor {
    /// Accept on `listener`, handing connections to `workers[i]` by the ufrag prefix.
    pub fn start(listener: TcpListener, workers: Vec<TcpInbox>) -> std::io::Result<Self> {
        listener.set_nonblocking(false)?;
        let wake = reachable(listener.local_addr()?);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("chorus-ice-tcp".into())
            .spawn(move || accept_loop(listener, workers, &flag))?;
        Ok(TcpAcceptor {
            stop,
            wake,
            thread: Some(thread),
        })
    }
}

impl Drop for TcpAcceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let Some(thread) = self.thread.take() else {
            return;
        };
        // Unblock `accept`. If even a connection to ourselves fails, the thread is left blocked (it ends with
        // the process) rather than hanging the drop.
        match TcpStream::connect_timeout(&self.wake, WAKE_TIMEOUT) {
            Ok(_) => {
                let _ = thread.join();
            }
            Err(e) => {
                tracing::warn!(addr = %self.wake, error = %e, "cannot wake the ICE-TCP acceptor")
            }
        }
    }
}

fn accept_loop(listener: TcpListener, workers: Vec<TcpInbox>, stop: &AtomicBool) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let (stream, remote) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning on the error.
                tracing::debug!(error = %e, "ICE-TCP accept failed");
                std::thread::sleep(ACCEPT_RETRY);
                continue;
            }
        };
        if open.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(%remote, "too many ICE-TCP connections; refusing one");
            continue;
        }
        let workers = workers.clone();
        let counter = Arc::clone(&open);
        let spawned = std::thread::Builder::new()
            .name("chorus-ice-tcp-conn".into())
            .spawn(move || {
                match serve(stream, remote, &workers) {
                    Ok(()) => tracing::debug!(%remote, "ICE-TCP connection closed"),
                    Err(e) => tracing::debug!(%remote, error = %e, "ICE-TCP connection ended"),
                }
                counter.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            open.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "cannot start an ICE-TCP connection thread");
        }
    }
}

/// Runs one connection on this thread (reading) plus a writer thread, until either side ends.
fn serve(stream: TcpStream, remote: SocketAddr, workers: &[TcpInbox]) -> Result<(), String> {
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let mut reader = stream.try_clone().map_err(|e| e.to_string())?;
    reader
        .set_read_timeout(Some(FIRST_FRAME_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    let first = read_frame(&mut reader, &mut buf)?.ok_or("closed before the first frame")?;
    let ufrag = if is_stun(first) {
        stun_local_ufrag(first)
    } else {
        None
    };
    let worker = ufrag
        .and_then(worker_of)
        .and_then(|i| workers.get(i))
        .ok_or("first frame is not a STUN request for one of our ufrags")?;
    let first = first.to_vec();

    let (tx, rx) = mpsc::sync_channel(WRITE_QUEUE);
    let mut writer_stream = stream.try_clone().map_err(|e| e.to_string())?;
    let writer = std::thread::Builder::new()
        .name("chorus-ice-tcp-write".into())
        .spawn(move || write_loop(&mut writer_stream, rx))
        .map_err(|e| e.to_string())?;
    let result = (|| {
        worker.send(TcpInput::Opened { remote, writer: tx })?;
        worker.send(TcpInput::Frame {
            remote,
            data: first,
        })?;
        reader
            .set_read_timeout(Some(IDLE_TIMEOUT))
            .map_err(|e| e.to_string())?;
        while let Some(frame) = read_frame(&mut reader, &mut buf)? {
            let data = frame.to_vec();
            worker.send(TcpInput::Frame { remote, data })?;
        }
        Ok::<(), String>(())
    })();
    // The worker drops the writer's queue on Closed, which ends the writer thread.
    let _ = worker.send(TcpInput::Closed { remote });
    let _ = stream.shutdown(Shutdown::Both);
    let _ = writer.join();
    result
}

/// The next frame into `buf`; `None` on a clean end of stream between frames (a stream that ends inside a
/// length prefix or a frame is an error). (`pub` for the fuzz target through `chorus_sfu::ice_tcp`, feature
/// `testkit`; the module itself is private.)
pub fn read_frame<'a, R: Read>(r: &mut R, buf: &'a mut [u8]) -> Result<Option<&'a [u8]>, String> {
    let mut len = [0u8; 2];
    match read_prefix(r, &mut len) {
        Ok(true) => {}
        Ok(false) => return Ok(None),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
            return Err("stream ended inside a length prefix".into())
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            return Err("idle".into())
        }
        Err(e) => return Err(e.to_string()),
    }
    let len = usize::from(u16::from_be_bytes(len));
    if len == 0 {
        return Err("empty frame".into());
    }
    let frame = buf.get_mut(..len).ok_or("frame larger than the buffer")?;
    r.read_exact(frame).map_err(|e| e.to_string())?;
    Ok(Some(frame))
}

/// Fills `prefix` as `read_exact` does (one read when the bytes are there), but tells a stream that ends before
/// its first byte (`Ok(false)`) from one that ends inside it (`UnexpectedEof`).
fn read_prefix<R: Read>(r: &mut R, prefix: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < prefix.len() {
        match r.read(&mut prefix[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn write_loop(stream: &mut TcpStream, rx: Receiver<Vec<u8>>) {
    while let Ok(frame) = rx.recv() {
        if let Err(e) = stream.write_all(&frame) {
            tracing::debug!(error = %e, "ICE-TCP write failed");
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// `data` with its RFC 4571 length prefix, or `None` if it cannot be framed (over 65535 bytes).
pub fn frame(data: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(data.len()).ok()?;
    let mut out = Vec::with_capacity(data.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ufrag_prefix_round_trips() {
        for i in [0, 1, 15, 16, 255, 1023] {
            assert_eq!(worker_of(&format!("{}abcd", ufrag_prefix(i))), Some(i));
        }
        assert_eq!(worker_of("zz"), None);
        assert_eq!(worker_of("xyzabc"), None);
    }

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let mut wire = frame(b"hello").expect("small");
        wire.extend(frame(&[7; 300]).expect("small"));
        let mut r = &wire[..];
        let mut buf = vec![0u8; 65535];
        assert_eq!(read_frame(&mut r, &mut buf), Ok(Some(&b"hello"[..])));
        assert_eq!(
            read_frame(&mut r, &mut buf).map(|f| f.map(<[u8]>::len)),
            Ok(Some(300))
        );
        assert_eq!(read_frame(&mut r, &mut buf), Ok(None));
        let mut truncated: &[u8] = &[0, 10, 1, 2];
        assert!(read_frame(&mut truncated, &mut buf).is_err());
        let mut empty: &[u8] = &[0, 0];
        assert!(read_frame(&mut empty, &mut buf).is_err());
        assert!(frame(&vec![0; 70_000]).is_none());
    }

    /// Found by the fuzz target `ice_tcp_frames` (input `00 ff ff 00`: the stream is one byte): a stream that
    /// ended inside a length prefix was taken for a clean end between frames.
    #[test]
    fn a_stream_ending_inside_a_length_prefix_is_an_error() {
        let mut buf = vec![0u8; 65535];
        let mut half: &[u8] = &[0];
        assert!(read_frame(&mut half, &mut buf).is_err());
        let mut wire = frame(b"x").expect("small");
        wire.push(0);
        let mut r = &wire[..];
        assert_eq!(read_frame(&mut r, &mut buf), Ok(Some(&b"x"[..])));
        assert!(read_frame(&mut r, &mut buf).is_err());
        // A prefix split across two reads is still read whole.
        let mut split = (&[0u8][..]).chain(&[1, 7][..]);
        assert_eq!(read_frame(&mut split, &mut buf), Ok(Some(&[7u8][..])));
        assert_eq!(read_frame(&mut split, &mut buf), Ok(None));
    }

    use std::net::UdpSocket;

    #[test]
    fn the_acceptor_blocks_until_dropped_and_then_lets_go_of_its_port() {
        let listener = TcpListener::bind("0.0.0.0:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let loopback = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(reachable(listener.local_addr().expect("addr")), loopback);
        let (tx, rx) = mpsc::channel();
        let worker = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let waker = Arc::new(Waker::new(worker.local_addr().expect("addr")).expect("waker"));
        let acceptor = TcpAcceptor::start(listener, vec![TcpInbox { tx, waker }]).expect("start");

        // A connection whose first frame is a STUN request for worker 0's ufrag reaches worker 0.
        let mut client = TcpStream::connect(loopback).expect("connect");
        let stun = crate::router::tests::stun_with_username("000abcd:remote");
        client
            .write_all(&frame(&stun).expect("small"))
            .expect("write");
        let opened = rx.recv_timeout(Duration::from_secs(5)).expect("opened");
        assert!(matches!(opened, TcpInput::Opened { .. }), "{opened:?}");

        // Dropping it ends the blocked accept: the thread is joined and the listening socket closed.
        drop(acceptor);
        assert!(
            TcpStream::connect(loopback).is_err(),
            "the listener is still open after the acceptor was dropped"
        );
    }
}
