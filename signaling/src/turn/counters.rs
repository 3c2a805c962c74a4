//! What the embedded TURN server counts for `/metrics`, shared by every listener and relay socket: refused
//! credentials, and the traffic the relays carry between clients and their peers (the SFU, or an allowed
//! address). Lock-free: each relay socket adds to the atomics as it sends and receives.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters since start; [`TurnCounters::snapshot`] reads them.
#[derive(Debug, Default)]
pub struct TurnCounters {
    auth_refused: AtomicU64,
    to_peers: Traffic,
    from_peers: Traffic,
    sends_refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Traffic {
    packets: AtomicU64,
    bytes: AtomicU64,
}

impl Traffic {
    fn add(&self, bytes: usize) {
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn read(&self) -> RelayedTraffic {
        RelayedTraffic {
            packets: self.packets.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// Packets and bytes relayed in one direction, since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayedTraffic {
    pub packets: u64,
    pub bytes: u64,
}

/// A reading of [`TurnCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub auth_refused: u64,
    /// From clients, out of their relay sockets to peers.
    pub to_peers: RelayedTraffic,
    /// From peers, into relay sockets and on to the clients.
    pub from_peers: RelayedTraffic,
    /// Sends to a peer the relay policy refuses (none leave).
    pub sends_refused: u64,
}

impl TurnCounters {
    pub fn auth_refused(&self) {
        self.auth_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// `bytes` sent from a relay socket to a peer.
    pub fn sent_to_peer(&self, bytes: usize) {
        self.to_peers.add(bytes);
    }

    /// `bytes` received on a relay socket from a peer.
    pub fn received_from_peer(&self, bytes: usize) {
        self.from_peers.add(bytes);
    }

    pub fn send_refused(&self) {
        self.sends_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            auth_refused: self.auth_refused.load(Ordering::Relaxed),
            to_peers: self.to_peers.read(),
            from_peers: self.from_peers.read(),
            sends_refused: self.sends_refused.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_direction_counts_its_own_packets_and_bytes() {
        let c = TurnCounters::default();
        c.sent_to_peer(100);
        c.sent_to_peer(20);
        c.received_from_peer(7);
        c.send_refused();
        c.auth_refused();
        c.auth_refused();
        let s = c.snapshot();
        assert_eq!(
            s.to_peers,
            RelayedTraffic {
                packets: 2,
                bytes: 120
            }
        );
        assert_eq!(
            s.from_peers,
            RelayedTraffic {
                packets: 1,
                bytes: 7
            }
        );
        assert_eq!(s.sends_refused, 1);
        assert_eq!(s.auth_refused, 2);
    }
}
