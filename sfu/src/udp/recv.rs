//! Receiving a worker's UDP datagrams in batches, and waiting for them. On Linux, one `recvmmsg(2)` takes up
//! to [`RECV_BATCH`] datagrams: what arrived while the worker was busy (a video frame's packets come back to
//! back) costs one system call, not one each. Elsewhere, one `recv_from` per call.
//!
//! The wait is [`wait_readable`], not a blocking receive with a read timeout: Linux turns `SO_RCVTIMEO` into
//! scheduler ticks, so with `CONFIG_HZ=250` a 1 ms timeout returned after about 8 ms and every timer of the
//! worker's connections (str0m's pacer, padding, feedback, retransmissions) ran 4–8 ms late. `ppoll(2)` waits
//! on a high-resolution timer.
//!
//! A datagram longer than [`DATAGRAM_MAX`] is truncated by the kernel and then rejected by parsing.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Most datagrams taken by one receive call.
pub const RECV_BATCH: usize = 32;

/// The buffer per datagram; anything longer is truncated.
pub const DATAGRAM_MAX: usize = 2048;

/// Waits until `socket` has a datagram to read (true) or `timeout` has passed (false). Interrupted by a signal
/// counts as a timeout: the caller's loop comes round again.
#[cfg(target_os = "linux")]
pub fn wait_readable(socket: &UdpSocket, timeout: Duration) -> io::Result<bool> {
    use nix::errno::Errno;
    use nix::poll::{ppoll, PollFd, PollFlags};
    use nix::sys::time::TimeSpec;
    use std::os::fd::AsRawFd;

    let mut fds = [PollFd::new(socket.as_raw_fd(), PollFlags::POLLIN)];
    match ppoll(&mut fds, Some(TimeSpec::from_duration(timeout)), None) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Waits until `socket` has a datagram to read (true) or `timeout` has passed (false).
#[cfg(not(target_os = "linux"))]
pub fn wait_readable(socket: &UdpSocket, timeout: Duration) -> io::Result<bool> {
    socket.set_read_timeout(Some(timeout.max(Duration::from_micros(1))))?;
    let mut probe = [0u8; 1];
    match socket.peek_from(&mut probe) {
        Ok(_) => Ok(true),
        Err(e) if is_nothing(&e) => Ok(false),
        // A datagram longer than the probe, where the platform reports that as an error.
        Err(_) => Ok(true),
    }
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

    /// Takes up to [`RECV_BATCH`] datagrams that have already arrived, without waiting; returns how many.
    /// `Ok(0)` when nothing is waiting; errors are the socket's (e.g. an ICMP error from an earlier send).
    #[cfg(target_os = "linux")]
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        use nix::errno::Errno;
        use nix::sys::socket::{recvmmsg, MsgFlags, SockaddrStorage};
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;

        self.taken.clear();
        let slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
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
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(0),
            Err(e) => return Err(io::Error::from(e)),
        };
        for (i, msg) in results.enumerate() {
            // A UDP datagram always has a source; one without is skipped.
            if let Some(source) = msg.address.as_ref().and_then(socket_addr) {
                self.taken.push((i, msg.bytes.min(DATAGRAM_MAX), source));
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
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.taken.clear();
        socket.set_nonblocking(true)?;
        let result = socket.recv_from(&mut self.buffers[0]);
        socket.set_nonblocking(false)?;
        match result {
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
#[cfg(not(target_os = "linux"))]
fn is_nothing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn takes_everything_waiting_in_order_then_nothing() {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
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
        assert!(wait_readable(&socket, Duration::from_secs(2)).expect("wait"));
        loop {
            let n = batch.recv(&socket).expect("recv");
            if n == 0 {
                break;
            }
            for (source, data) in batch.datagrams() {
                assert_eq!(source, sender.local_addr().expect("addr"));
                got.push((data[0], data.len()));
            }
        }
        let want: Vec<(u8, usize)> = (0..count)
            .map(|i| (i as u8, if i == 3 { DATAGRAM_MAX } else { 10 + i }))
            .collect();
        assert_eq!(got, want);
        // With nothing left, a wait times out and a receive takes nothing.
        assert!(!wait_readable(&socket, Duration::from_millis(5)).expect("wait"));
        assert_eq!(batch.recv(&socket).expect("recv"), 0);
        assert_eq!(batch.datagrams().count(), 0);
    }

    /// The worker's timers are as late as this wait. A blocking receive with `SO_RCVTIMEO` took about 8 ms
    /// for 1 ms on a `CONFIG_HZ=250` kernel (the median of these waits was 7.99 ms); `ppoll` takes about
    /// 1.1 ms. The bound is loose for a loaded machine, and the median discards a preempted outlier.
    #[test]
    fn a_short_wait_is_not_rounded_up_to_scheduler_ticks() {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let asked = Duration::from_millis(1);
        let mut took: Vec<Duration> = (0..11)
            .map(|_| {
                let start = Instant::now();
                assert!(!wait_readable(&socket, asked).expect("wait"));
                start.elapsed()
            })
            .collect();
        took.sort();
        assert!(took[0] >= asked, "returned before the timeout: {took:?}");
        assert!(
            took[5] < Duration::from_millis(5),
            "median {:?} of {took:?}",
            took[5]
        );
    }

    #[test]
    fn a_wait_ends_as_soon_as_a_datagram_is_there() {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sender
            .send_to(b"x", socket.local_addr().expect("addr"))
            .expect("send");
        let start = Instant::now();
        assert!(wait_readable(&socket, Duration::from_secs(10)).expect("wait"));
        assert!(start.elapsed() < Duration::from_secs(5));
        let mut batch = UdpRecvBatch::default();
        assert_eq!(batch.recv(&socket).expect("recv"), 1);
    }
}
