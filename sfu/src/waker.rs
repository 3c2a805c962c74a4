//! Waking a thread that blocks on a socket: a media worker asleep in `recv`, or the ICE-TCP acceptor in
//! `accept`. Neither polls on a timer for work that comes from elsewhere; whoever hands them work also sends
//! them something on their own socket.
//!
//! A worker's [`Waker`] is a UDP socket connected to the worker's socket: after queueing a command, the
//! signaling side sends an empty datagram, which ends the worker's wait; the worker recognises the waker's
//! address and feeds nothing to the core. A lost wake-up (the worker's receive buffer full) costs nothing: a
//! full buffer already wakes the worker.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// An address that reaches a socket bound to `local`: the same, or loopback for an unspecified IP.
pub fn reachable(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// Wakes the worker whose UDP socket is bound to a given address.
#[derive(Debug)]
pub struct Waker {
    socket: UdpSocket,
    /// The waker's own address: datagrams from it are wake-ups, not media.
    addr: SocketAddr,
}

impl Waker {
    /// A waker for the worker socket bound to `worker` (its bound address, not the advertised one).
    pub fn new(worker: SocketAddr) -> io::Result<Waker> {
        let target = reachable(worker);
        let socket = UdpSocket::bind(SocketAddr::new(target.ip(), 0))?;
        socket.connect(target)?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        Ok(Waker { socket, addr })
    }

    /// Where the wake-ups come from.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Ends the worker's current or next wait. Never blocks; a failure is logged and otherwise ignored (the
    /// worker still looks at its commands when its timers or media wake it).
    pub fn wake(&self) {
        if let Err(e) = self.socket.send(&[]) {
            tracing::debug!(error = %e, "cannot wake a media worker");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unspecified_addresses_are_reached_on_loopback() {
        let any4 = SocketAddr::from(([0, 0, 0, 0], 7));
        assert_eq!(reachable(any4), SocketAddr::from(([127, 0, 0, 1], 7)));
        let any6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 7);
        assert_eq!(
            reachable(any6),
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 7)
        );
        let some = SocketAddr::from(([10, 1, 2, 3], 7));
        assert_eq!(reachable(some), some);
    }

    #[test]
    fn a_wake_up_is_an_empty_datagram_from_the_waker() {
        let worker = UdpSocket::bind("0.0.0.0:0").expect("bind");
        worker
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let waker = Waker::new(worker.local_addr().expect("addr")).expect("waker");
        waker.wake();
        let mut buf = [0u8; 16];
        let (len, from) = worker.recv_from(&mut buf).expect("woken");
        assert_eq!((len, from), (0, waker.addr()));
    }
}
