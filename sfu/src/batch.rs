//! Sending a worker's UDP datagrams in batches. On Linux, one `sendmmsg(2)` carries up to [`BATCH`] datagrams
//! (a packet fanned out to 50 subscribers is one system call, not 50); elsewhere each goes with `send_to`. A
//! datagram the kernel refuses is counted as a send error and skipped; the rest still go.

use std::net::UdpSocket;

use str0m::net::Transmit;

use crate::stats::WorkerStats;

/// Most datagrams per `sendmmsg` call.
pub const BATCH: usize = 64;

/// Datagrams waiting for [`UdpBatch::send`], and the reusable system-call headers.
pub struct UdpBatch {
    pending: Vec<Transmit>,
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl Default for UdpBatch {
    fn default() -> Self {
        UdpBatch {
            pending: Vec::with_capacity(BATCH),
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
        }
    }
}

impl UdpBatch {
    pub fn push(&mut self, transmit: Transmit) {
        self.pending.push(transmit);
    }

    /// Sends everything pushed since the last call, counting into `stats`.
    pub fn send(&mut self, socket: &UdpSocket, stats: &mut WorkerStats) {
        let mut start = 0;
        while start < self.pending.len() {
            let end = (start + BATCH).min(self.pending.len());
            start += self.send_some(socket, start, end, stats);
        }
        self.pending.clear();
    }

    /// Sends from `pending[start..end]`; returns how many were handled (sent, or refused and skipped), ≥ 1.
    #[cfg(target_os = "linux")]
    fn send_some(
        &mut self,
        socket: &UdpSocket,
        start: usize,
        end: usize,
        stats: &mut WorkerStats,
    ) -> usize {
        use nix::sys::socket::{sendmmsg, MsgFlags, SockaddrStorage};
        use std::io::IoSlice;
        use std::os::fd::AsRawFd;

        let chunk = &self.pending[start..end];
        let slices: Vec<[IoSlice<'_>; 1]> =
            chunk.iter().map(|t| [IoSlice::new(&t.contents)]).collect();
        let addrs: Vec<Option<SockaddrStorage>> = chunk
            .iter()
            .map(|t| Some(SockaddrStorage::from(t.destination)))
            .collect();
        let cmsgs: [nix::sys::socket::ControlMessage<'_>; 0] = [];
        match sendmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            &slices,
            &addrs,
            cmsgs,
            MsgFlags::empty(),
        ) {
            Ok(results) => {
                let sent = results.count().min(chunk.len());
                for t in &chunk[..sent] {
                    stats.datagrams_out += 1;
                    stats.bytes_out += t.contents.len() as u64;
                }
                if sent > 0 {
                    return sent;
                }
                // Nothing went and no error: count the first as failed so the loop moves on.
                stats.send_errors += 1;
                1
            }
            Err(e) => {
                // The first datagram of the chunk was refused (e.g. an unreachable destination): skip it.
                stats.send_errors += 1;
                tracing::trace!(error = %e, dest = %chunk[0].destination, "sendmmsg failed");
                1
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn send_some(
        &mut self,
        socket: &UdpSocket,
        start: usize,
        end: usize,
        stats: &mut WorkerStats,
    ) -> usize {
        for t in &self.pending[start..end] {
            match socket.send_to(&t.contents, t.destination) {
                Ok(n) => {
                    stats.datagrams_out += 1;
                    stats.bytes_out += n as u64;
                }
                Err(e) => {
                    stats.send_errors += 1;
                    tracing::trace!(error = %e, dest = %t.destination, "send_to failed");
                }
            }
        }
        end - start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Duration;
    use str0m::net::Protocol;

    fn transmit(from: SocketAddr, to: SocketAddr, i: u32) -> Transmit {
        Transmit {
            proto: Protocol::Udp,
            source: from,
            destination: to,
            contents: i.to_be_bytes().to_vec().into(),
        }
    }

    fn received(socket: &UdpSocket) -> Vec<u32> {
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        while let Ok(n) = socket.recv(&mut buf) {
            got.push(u32::from_be_bytes(buf[..n].try_into().expect("4 bytes")));
        }
        got
    }

    #[test]
    fn every_datagram_arrives_in_order_across_batches_and_a_refused_one_is_skipped() {
        let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let from = sender.local_addr().expect("addr");
        let receivers: Vec<UdpSocket> = (0..3)
            .map(|_| {
                let r = UdpSocket::bind("127.0.0.1:0").expect("bind");
                r.set_read_timeout(Some(Duration::from_millis(200)))
                    .expect("timeout");
                r
            })
            .collect();
        let mut batch = UdpBatch::default();
        let mut stats = WorkerStats::default();
        // 150 datagrams round-robin over three receivers (three sendmmsg calls), plus one to an IPv6 address,
        // which an IPv4 socket refuses, in the middle of the second batch.
        for i in 0..150u32 {
            let to = receivers[i as usize % 3].local_addr().expect("addr");
            batch.push(transmit(from, to, i));
            if i == 70 {
                batch.push(transmit(from, "[::1]:9".parse().expect("v6"), 9999));
            }
        }
        batch.send(&sender, &mut stats);
        assert_eq!(stats.datagrams_out, 150);
        assert_eq!(stats.send_errors, 1);
        assert_eq!(stats.bytes_out, 600);
        for (k, r) in receivers.iter().enumerate() {
            let want: Vec<u32> = (0..150u32).filter(|i| *i as usize % 3 == k).collect();
            assert_eq!(received(r), want, "receiver {k}");
        }
        // The batch is empty again.
        batch.send(&sender, &mut stats);
        assert_eq!(stats.datagrams_out, 150);
    }
}
