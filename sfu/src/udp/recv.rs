//! Receiving a worker's UDP datagrams in batches. On Linux, one `recvmmsg(2)` takes up to [`RECV_BATCH`]
//! datagrams: what arrived while the worker was busy (a video frame's packets come back to back) costs one
//! system call, not one each. Elsewhere, one `recv_from` per call.
//!
//! A datagram longer than [`DATAGRAM_MAX`] is truncated by the kernel and then rejected by parsing.

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// Most datagrams taken by one receive call.
pub const RECV_BATCH: usize = 32;

/// The buffer per datagram; anything longer is truncated.
pub const DATAGRAM_MAX: usize = 2048;

/// Whether a receive call may wait (up to the socket's read timeout) for its first datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Block until a datagram arrives or the socket's read timeout passes; then take what else is there.
    ForOne,
    /// Take only what has already arrived.
    No,
}

/// Reusable buffers for [`UdpRecvBatch::recv`] and the datagrams the last call took.
pub struct UdpRecvBatch {
    buffers: Vec<[u8; DATAGRAM_MAX]>,
    /// `(buffer index, length, source)` of each datagram the last call took, in arrival order.
    taken: Vec<(usize, usize, SocketAddr)>,
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl Default for UdpRecvBatch {
    fn default() -> Self {
        UdpRecvBatch {
            buffers: vec![[0u8; DATAGRAM_MAX]; RECV_BATCH],
            taken: Vec::with_capacity(RECV_BATCH),
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(RECV_BATCH, None),
        }
    }
}

impl UdpRecvBatch {
    /// The datagrams the last [`UdpRecvBatch::recv`] took: `(source, bytes)`.
    pub fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.taken
            .iter()
            .map(|&(i, len, source)| (source, &self.buffers[i][..len]))
    }

    /// Receives up to [`RECV_BATCH`] datagrams; returns how many. `Ok(0)` when nothing came (timeout or
    /// nothing waiting); errors are the socket's (e.g. an ICMP error from an earlier send).
    #[cfg(target_os = "linux")]
    pub fn recv(&mut self, socket: &UdpSocket, wait: Wait) -> io::Result<usize> {
        use nix::errno::Errno;
        use nix::sys::socket::{recvmmsg, MsgFlags, SockaddrStorage};
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;

        self.taken.clear();
        // The first datagram of a waiting call comes with a blocking `recv_from` (nix 0.26 has no
        // MSG_WAITFORONE); whatever else is already there comes with one non-blocking `recvmmsg`.
        let first = match wait {
            Wait::ForOne => match socket.recv_from(&mut self.buffers[0]) {
                Ok((n, source)) => {
                    self.taken.push((0, n.min(DATAGRAM_MAX), source));
                    1
                }
                Err(e) if is_nothing(&e) => return Ok(0),
                Err(e) => return Err(e),
            },
            Wait::No => 0,
        };
        let slices: Vec<[IoSliceMut<'_>; 1]> = self.buffers[first..]
            .iter_mut()
            .map(|b| [IoSliceMut::new(&mut b[..])])
            .collect();
        let results = match recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            &slices,
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(results) => results,
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(self.taken.len()),
            // An error after a first datagram waits for the next call.
            Err(_) if first > 0 => return Ok(self.taken.len()),
            Err(e) => return Err(io::Error::from(e)),
        };
        for (i, msg) in results.enumerate() {
            // A UDP datagram always has a source; one without is skipped.
            if let Some(source) = msg.address.as_ref().and_then(socket_addr) {
                self.taken
                    .push((first + i, msg.bytes.min(DATAGRAM_MAX), source));
            }
        }
        fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
            if let Some(v4) = a.as_sockaddr_in() {
                return Some(std::net::SocketAddrV4::from(*v4).into());
            }
            a.as_sockaddr_in6()
                .map(|v6| std::net::SocketAddrV6::from(*v6).into())
        }
        Ok(self.taken.len())
    }

    #[cfg(not(target_os = "linux"))]
    pub fn recv(&mut self, socket: &UdpSocket, wait: Wait) -> io::Result<usize> {
        self.taken.clear();
        if wait == Wait::No {
            return Ok(0);
        }
        match socket.recv_from(&mut self.buffers[0]) {
            Ok((n, source)) => {
                self.taken.push((0, n.min(DATAGRAM_MAX), source));
                Ok(1)
            }
            Err(e) if is_nothing(&e) => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// A blocking receive that timed out, or a non-blocking one that found nothing.
fn is_nothing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn takes_everything_waiting_in_order_then_nothing() {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let to = socket.local_addr().expect("addr");
        // More than one call's worth, one of them longer than the buffer (truncated, not lost or panicking).
        let count = RECV_BATCH + 5;
        for i in 0..count {
            let len = if i == 3 { DATAGRAM_MAX + 100 } else { 10 + i };
            sender.send_to(&vec![i as u8; len], to).expect("send");
        }
        let mut batch = UdpRecvBatch::default();
        let mut got = Vec::new();
        let mut wait = Wait::ForOne;
        loop {
            let n = batch.recv(&socket, wait).expect("recv");
            if n == 0 {
                break;
            }
            for (source, data) in batch.datagrams() {
                assert_eq!(source, sender.local_addr().expect("addr"));
                got.push((data[0], data.len()));
            }
            wait = Wait::No;
        }
        let want: Vec<(u8, usize)> = (0..count)
            .map(|i| (i as u8, if i == 3 { DATAGRAM_MAX } else { 10 + i }))
            .collect();
        assert_eq!(got, want);
        // A waiting call with nothing to take returns after the read timeout with nothing.
        assert_eq!(batch.recv(&socket, Wait::ForOne).expect("recv"), 0);
        assert_eq!(batch.datagrams().count(), 0);
    }
}
