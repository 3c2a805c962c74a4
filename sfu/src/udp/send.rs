//! Sending a worker's UDP datagrams in batches. The batch is first grouped by destination (order within a
//! destination kept), so one subscriber's copies leave together: one wake-up of its receiver, not one each.
//!
//! On Linux, one `sendmmsg(2)` carries up to [`BATCH`] messages, and with UDP GSO (the default) a run of
//! datagrams to one destination is one message that the kernel cuts itself (`UDP_SEGMENT`; how runs and calls
//! are formed: `plan.rs`): one trip through the network stack per run instead of per datagram. If the kernel
//! refuses GSO once, the batch falls back to one message per datagram for good. Elsewhere each datagram goes
//! with `send_to`. A datagram (or run) the kernel refuses is counted as a send error and skipped; the rest go.

use std::net::UdpSocket;

use str0m::net::Transmit;

#[cfg(target_os = "linux")]
use super::plan::{self, Call, Datagram, Message};
use crate::stats::WorkerStats;

/// Most messages per `sendmmsg` call.
pub const BATCH: usize = 64;

/// Datagrams waiting for [`UdpBatch::send`], and the reusable system-call headers and plans.
pub struct UdpBatch {
    pending: Vec<Transmit>,
    /// Whether runs go as GSO messages (Linux; off for good once the kernel refuses it).
    gso: bool,
    #[cfg(target_os = "linux")]
    linux: LinuxBuffers,
}

#[cfg(target_os = "linux")]
struct LinuxBuffers {
    /// Headers for calls without a control message.
    plain: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    /// Headers for calls with a `UDP_SEGMENT` control message.
    segmented: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    datagrams: Vec<Datagram>,
    messages: Vec<Message>,
    calls: Vec<Call>,
}

impl UdpBatch {
    /// A batch that sends runs with UDP GSO when `gso` is set and the platform has it.
    pub fn new(gso: bool) -> Self {
        UdpBatch {
            pending: Vec::with_capacity(BATCH),
            gso: gso && cfg!(target_os = "linux"),
            #[cfg(target_os = "linux")]
            linux: LinuxBuffers {
                plain: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
                segmented: nix::sys::socket::MultiHeaders::preallocate(
                    BATCH,
                    Some(nix::cmsg_space!(u16)),
                ),
                datagrams: Vec::new(),
                messages: Vec::new(),
                calls: Vec::new(),
            },
        }
    }

    pub fn push(&mut self, transmit: Transmit) {
        self.pending.push(transmit);
    }

    /// Whether runs still go as GSO messages.
    #[cfg(test)]
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Sends everything pushed since the last call, counting into `stats`.
    pub fn send(&mut self, socket: &UdpSocket, stats: &mut WorkerStats) {
        if self.pending.is_empty() {
            return;
        }
        // Stable: each destination's datagrams keep their order.
        self.pending.sort_by_key(|t| t.destination);
        #[cfg(target_os = "linux")]
        if self.gso {
            self.gso = linux::send_segmented(socket, &self.pending, &mut self.linux, stats);
            self.pending.clear();
            return;
        }
        self.send_plain(socket, stats);
        self.pending.clear();
    }

    #[cfg(target_os = "linux")]
    fn send_plain(&mut self, socket: &UdpSocket, stats: &mut WorkerStats) {
        linux::send_plain(socket, &self.pending, &mut self.linux.plain, stats);
    }

    #[cfg(not(target_os = "linux"))]
    fn send_plain(&mut self, socket: &UdpSocket, stats: &mut WorkerStats) {
        for t in &self.pending {
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
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::IoSlice;
    use std::net::UdpSocket;
    use std::ops::Range;
    use std::os::fd::AsRawFd;

    use nix::errno::Errno;
    use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};
    use str0m::net::Transmit;

    use super::{plan, LinuxBuffers, BATCH};
    use crate::stats::WorkerStats;

    type Headers = MultiHeaders<SockaddrStorage>;

    /// One message per datagram.
    pub fn send_plain(
        socket: &UdpSocket,
        pending: &[Transmit],
        headers: &mut Headers,
        stats: &mut WorkerStats,
    ) {
        let iov: Vec<IoSlice<'_>> = pending.iter().map(|t| IoSlice::new(&t.contents)).collect();
        let singles: Vec<Range<usize>> = (0..pending.len()).map(|i| i..i + 1).collect();
        send_messages(socket, pending, &iov, &singles, None, headers, stats);
    }

    /// Runs as GSO messages. Returns whether GSO still works (false: the kernel refused it, and what was
    /// left went one message per datagram).
    pub fn send_segmented(
        socket: &UdpSocket,
        pending: &[Transmit],
        bufs: &mut LinuxBuffers,
        stats: &mut WorkerStats,
    ) -> bool {
        bufs.datagrams.clear();
        bufs.datagrams
            .extend(pending.iter().map(|t| (t.destination, t.contents.len())));
        plan::messages(&bufs.datagrams, &mut bufs.messages);
        plan::calls(&bufs.messages, &mut bufs.calls);
        let iov: Vec<IoSlice<'_>> = pending.iter().map(|t| IoSlice::new(&t.contents)).collect();
        let runs: Vec<Range<usize>> = bufs.messages.iter().map(|m| m.datagrams.clone()).collect();
        for call in &bufs.calls {
            let messages = &runs[call.messages.clone()];
            let headers = match call.segment {
                Some(_) => &mut bufs.segmented,
                None => &mut bufs.plain,
            };
            let refused = send_messages(
                socket,
                pending,
                &iov,
                messages,
                call.segment,
                headers,
                stats,
            );
            if let Some(first) = refused {
                // GSO refused (old kernel, a device that cannot, or a path MTU below the segment size, where plain
                // datagrams would still be fragmented and delivered): everything from there, one by one.
                tracing::warn!(
                    "UDP GSO refused by the kernel; sending one datagram per message from now on"
                );
                let from = messages[first].start;
                send_plain(socket, &pending[from..], &mut bufs.plain, stats);
                return false;
            }
        }
        true
    }

    /// Sends `messages` (ranges of `pending`/`iov`), [`BATCH`] per call, with `segment` as the GSO size if
    /// given. A message the kernel refuses is counted as errors and skipped. Returns the index of the first
    /// message not sent if the kernel refused GSO itself.
    fn send_messages(
        socket: &UdpSocket,
        pending: &[Transmit],
        iov: &[IoSlice<'_>],
        messages: &[Range<usize>],
        segment: Option<u16>,
        headers: &mut Headers,
        stats: &mut WorkerStats,
    ) -> Option<usize> {
        let mut k = 0;
        while k < messages.len() {
            let chunk = &messages[k..(k + BATCH).min(messages.len())];
            let slices: Vec<&[IoSlice<'_>]> = chunk.iter().map(|r| &iov[r.clone()]).collect();
            let addrs: Vec<Option<SockaddrStorage>> = chunk
                .iter()
                .map(|r| Some(SockaddrStorage::from(pending[r.start].destination)))
                .collect();
            let gso_size;
            let cmsgs: Vec<ControlMessage<'_>> = match segment {
                Some(s) => {
                    gso_size = s;
                    vec![ControlMessage::UdpGsoSegments(&gso_size)]
                }
                None => Vec::new(),
            };
            let result = sendmmsg(
                socket.as_raw_fd(),
                headers,
                &slices,
                &addrs,
                &cmsgs,
                MsgFlags::empty(),
            )
            .map(|results| results.count().min(chunk.len()));
            match result {
                Ok(sent) if sent > 0 => {
                    for r in &chunk[..sent] {
                        count_sent(&pending[r.clone()], stats);
                    }
                    k += sent;
                }
                Err(Errno::EIO | Errno::EINVAL | Errno::EOPNOTSUPP | Errno::EMSGSIZE)
                    if segment.is_some() && chunk[0].len() > 1 =>
                {
                    return Some(k);
                }
                other => {
                    // The first message was refused (e.g. an unreachable destination): skip it.
                    stats.send_errors += chunk[0].len() as u64;
                    if let Err(e) = other {
                        tracing::trace!(error = %e, dest = %pending[chunk[0].start].destination, "sendmmsg failed");
                    }
                    k += 1;
                }
            }
        }
        None
    }

    fn count_sent(datagrams: &[Transmit], stats: &mut WorkerStats) {
        for t in datagrams {
            stats.datagrams_out += 1;
            stats.bytes_out += t.contents.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::time::Duration;
    use str0m::net::Protocol;

    /// A datagram of `len` bytes (at least 4) starting with `i`.
    fn transmit(from: SocketAddr, to: SocketAddr, i: u32, len: usize) -> Transmit {
        let mut contents = i.to_be_bytes().to_vec();
        contents.resize(len.max(4), 0xAB);
        Transmit {
            proto: Protocol::Udp,
            source: from,
            destination: to,
            contents: contents.into(),
        }
    }

    /// Every datagram waiting at `socket`: (its number, its length).
    fn received(socket: &UdpSocket) -> Vec<(u32, usize)> {
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = socket.recv(&mut buf) {
            got.push((u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")), n));
        }
        got
    }

    fn receivers(n: usize) -> Vec<UdpSocket> {
        (0..n)
            .map(|_| {
                let r = UdpSocket::bind("127.0.0.1:0").expect("bind");
                r.set_read_timeout(Some(Duration::from_millis(200)))
                    .expect("timeout");
                r
            })
            .collect()
    }

    #[test]
    fn every_datagram_arrives_in_order_across_batches_and_a_refused_one_is_skipped() {
        for gso in [false, true] {
            let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let from = sender.local_addr().expect("addr");
            let receivers = receivers(3);
            let mut batch = UdpBatch::new(gso);
            let mut stats = WorkerStats::default();
            // 150 datagrams round-robin over three receivers, plus one to an IPv6 address, which an IPv4 socket
            // refuses, in the middle.
            for i in 0..150u32 {
                let to = receivers[i as usize % 3].local_addr().expect("addr");
                batch.push(transmit(from, to, i, 4));
                if i == 70 {
                    batch.push(transmit(from, "[::1]:9".parse().expect("v6"), 9999, 4));
                }
            }
            batch.send(&sender, &mut stats);
            assert_eq!(stats.datagrams_out, 150, "gso {gso}");
            assert_eq!(stats.send_errors, 1, "gso {gso}");
            assert_eq!(stats.bytes_out, 600, "gso {gso}");
            for (k, r) in receivers.iter().enumerate() {
                let want: Vec<(u32, usize)> = (0..150u32)
                    .filter(|i| *i as usize % 3 == k)
                    .map(|i| (i, 4))
                    .collect();
                assert_eq!(received(r), want, "receiver {k}, gso {gso}");
            }
            // The batch is empty again.
            batch.send(&sender, &mut stats);
            assert_eq!(stats.datagrams_out, 150);
        }
    }

    #[test]
    fn runs_of_unequal_datagrams_arrive_as_the_same_datagrams() {
        // Per receiver, a "frame" (three full packets and a short last one) and an audio packet, then a packet
        // longer than the frame's: with GSO, runs and single datagrams of several sizes in a few calls.
        let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let from = sender.local_addr().expect("addr");
        let receivers = receivers(4);
        let sizes = [1100, 1100, 1100, 700, 120, 1180, 1180];
        let mut batch = UdpBatch::new(true);
        let mut stats = WorkerStats::default();
        let mut n = 0u32;
        for &len in &sizes {
            for r in &receivers {
                batch.push(transmit(from, r.local_addr().expect("addr"), n, len));
                n += 1;
            }
        }
        batch.send(&sender, &mut stats);
        assert_eq!(stats.send_errors, 0);
        assert_eq!(stats.datagrams_out, (sizes.len() * receivers.len()) as u64);
        assert!(batch.gso(), "loopback takes GSO");
        for (k, r) in receivers.iter().enumerate() {
            let want: Vec<(u32, usize)> = sizes
                .iter()
                .enumerate()
                .map(|(j, &len)| ((j * receivers.len() + k) as u32, len))
                .collect();
            assert_eq!(received(r), want, "receiver {k}");
        }
    }
}
