//! A media core with a live call in it (the testkit's virtual network: one VP8 publisher, one subscriber), fed
//! arbitrary datagrams as if from the publisher's own address (they reach its str0m connection: SRTP, SRTCP,
//! DTLS, STUN) or from a stranger's. After any of them, the publisher's real packets must still reach the
//! subscriber: garbage on the media port may not break anyone's call.

use std::net::SocketAddr;
use std::time::Duration;

use chorus_sfu::testkit::{Datagram, FanoutNet};

/// Real publisher datagrams captured at start, the seeds that mutations start from.
const SEED_PACKETS: usize = 200;

pub struct MediaCore {
    net: FanoutNet,
    seeds: Vec<Vec<u8>>,
    stranger: SocketAddr,
}

impl Default for MediaCore {
    fn default() -> Self {
        MediaCore::new()
    }
}

impl MediaCore {
    /// Negotiates the call, then captures (and delivers) some of the publisher's real datagrams.
    pub fn new() -> MediaCore {
        let mut net = FanoutNet::new(1);
        let packets = net.publisher_packets(SEED_PACKETS);
        for p in &packets {
            net.forward(p);
        }
        net.settle(Duration::from_millis(20));
        let mut seeds: Vec<Vec<u8>> = packets.into_iter().map(|p| p.contents).collect();
        let server_ufrags = [
            net.publisher.server_ufrag.as_str(),
            net.subscribers[0].server_ufrag.as_str(),
        ];
        let others = other_seeds(&seeds[0], server_ufrags);
        seeds.extend(others);
        MediaCore {
            seeds,
            net,
            stranger: SocketAddr::from(([10, 200, 0, 1], 40_000)),
        }
    }

    /// The publisher's real datagrams (SRTP), and the other kinds of datagram that reach a connection.
    pub fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    /// One datagram to the core's media port, from the publisher's address or a stranger's.
    pub fn inject(&mut self, from_publisher: bool, contents: &[u8]) {
        let datagram = Datagram {
            at: self.net.now,
            source: if from_publisher {
                self.net.publisher.addr
            } else {
                self.stranger
            },
            destination: self.net.server,
            contents: contents.to_vec(),
        };
        self.net.forward(&datagram);
    }

    /// Whether the call still works: the publisher's next real packets reach the subscriber.
    pub fn still_forwards(&mut self) -> bool {
        let before = self.net.core.stats.rtp_forwarded;
        for p in self.net.publisher_packets(3) {
            self.net.forward(&p);
        }
        self.net.settle(Duration::from_millis(10));
        self.net.core.stats.rtp_forwarded > before && self.net.failures.is_empty()
    }

    /// The ICE ufrags of the SFU's sides of the call: the publisher's connection, the subscriber's.
    pub fn server_ufrags(&self) -> [&str; 2] {
        [
            &self.net.publisher.server_ufrag,
            &self.net.subscribers[0].server_ufrag,
        ]
    }

    /// Datagrams the core could not tell the connection of (and dropped).
    pub fn unrouted(&self) -> u64 {
        self.net.core.stats.datagrams_unrouted
    }

    /// The core's counters, for a failure message.
    pub fn counters(&self) -> String {
        format!("{:?}", self.net.core.stats)
    }

    /// Why the core ended someone's connection, if it did.
    pub fn failures(&self) -> &[String] {
        &self.net.failures
    }
}

/// Datagrams of the kinds the captured media is not (RFC 7983 demultiplexing sends each down its own path): a
/// STUN binding request with USERNAME, MESSAGE-INTEGRITY and FINGERPRINT attributes; an SRTCP-shaped packet
/// (a media datagram with an RTCP packet type); DTLS handshake and application-data records.
/// Binding requests name the SFU's side of a connection by its ufrag: the publisher's, the subscriber's, and one
/// the core does not know.
fn other_seeds(media: &[u8], server_ufrags: [&str; 2]) -> Vec<Vec<u8>> {
    let mut stun: Vec<Vec<u8>> = server_ufrags
        .iter()
        .map(|u| forged_binding_request(&format!("{u}:cliufrag")))
        .collect();
    stun.push(forged_binding_request("srvufrag:cliufrag"));

    let mut rtcp = media.to_vec();
    rtcp[1] = 200;

    let record = |content_type: u8, epoch: u8, body: &[u8]| {
        let mut r = vec![content_type, 0xfe, 0xfd, 0, epoch, 0, 0, 0, 0, 0, 9];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    };
    let client_hello = [
        1, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 12, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    stun.extend([
        rtcp,
        record(22, 0, &client_hello),
        record(23, 1, &[0x55; 64]),
        record(21, 1, &[2, 40]),
    ]);
    stun
}

/// A STUN binding request with USERNAME `username`, a MESSAGE-INTEGRITY that is not the right one (nobody but
/// the two peers knows the ICE password) and a FINGERPRINT attribute.
pub fn forged_binding_request(username: &str) -> Vec<u8> {
    let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[7; 12]);
    let username = username.as_bytes();
    stun.extend_from_slice(&[0x00, 0x06, 0x00, username.len() as u8]);
    stun.extend_from_slice(username);
    stun.resize(stun.len().div_ceil(4) * 4, 0);
    stun.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
    stun.extend_from_slice(&[0xab; 20]);
    stun.extend_from_slice(&[0x80, 0x28, 0x00, 0x04, 1, 2, 3, 4]);
    let body = (stun.len() - 20) as u16;
    stun[2..4].copy_from_slice(&body.to_be_bytes());
    stun
}
