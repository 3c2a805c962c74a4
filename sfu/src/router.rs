//! O(1) routing of incoming datagrams to the peer connection they belong to.
//!
//! A STUN binding request names its target by the ICE username `local_ufrag:remote_ufrag`; we give every peer
//! connection a unique local ufrag and look it up. Once a peer has answered a STUN request from an address
//! (which its ICE agent does only for a request that passed its MESSAGE-INTEGRITY check), every other datagram
//! (DTLS, SRTP, SRTCP) from that address goes to the same peer. The ufrag alone does not bind an address: it
//! travels in clear text in every check, and a forged request carrying another peer's ufrag would otherwise
//! move a victim's address to that peer and cut its media off.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::api::{ParticipantKey, PcKind};

/// The peer connection a datagram belongs to.
pub type PeerId = (ParticipantKey, PcKind);

#[derive(Debug, Default)]
pub struct Router {
    by_ufrag: HashMap<String, PeerId>,
    by_addr: HashMap<SocketAddr, PeerId>,
}

impl Router {
    pub fn add_ufrag(&mut self, ufrag: String, peer: PeerId) {
        self.by_ufrag.insert(ufrag, peer);
    }

    /// Find the peer for a datagram from `source`. STUN requests are routed by ufrag, anything else by address.
    pub fn route(&self, source: SocketAddr, datagram: &[u8]) -> Option<PeerId> {
        if is_stun(datagram) {
            if let Some(ufrag) = stun_local_ufrag(datagram) {
                if let Some(&peer) = self.by_ufrag.get(ufrag) {
                    return Some(peer);
                }
            }
        }
        self.by_addr.get(&source).copied()
    }

    /// `peer` sent STUN to `address`: an answer to a request its ICE agent authenticated, so the address is the
    /// peer's from now on.
    pub fn bind(&mut self, address: SocketAddr, peer: PeerId) {
        if self.by_addr.get(&address) != Some(&peer) {
            self.by_addr.insert(address, peer);
        }
    }

    /// Forget everything routed to one participant.
    pub fn remove_participant(&mut self, participant: ParticipantKey) {
        self.by_ufrag.retain(|_, p| p.0 != participant);
        self.by_addr.retain(|_, p| p.0 != participant);
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        (self.by_ufrag.len(), self.by_addr.len())
    }
}

/// RFC 7983 demultiplexing: STUN messages start with a byte in 0..=3 and carry the magic cookie.
pub fn is_stun(d: &[u8]) -> bool {
    d.len() >= 20 && d[0] < 4 && d[4..8] == [0x21, 0x12, 0xA4, 0x42]
}

/// The local (our) ufrag from the USERNAME attribute of a STUN message, if present and well formed.
pub fn stun_local_ufrag(d: &[u8]) -> Option<&str> {
    const USERNAME: u16 = 0x0006;
    let body_len = usize::from(u16::from_be_bytes([*d.get(2)?, *d.get(3)?]));
    let end = 20usize.checked_add(body_len)?.min(d.len());
    let mut i = 20;
    while i + 4 <= end {
        let attr_type = u16::from_be_bytes([d[i], d[i + 1]]);
        let attr_len = usize::from(u16::from_be_bytes([d[i + 2], d[i + 3]]));
        let value = d.get(i + 4..i + 4 + attr_len)?;
        if attr_type == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        i += 4 + attr_len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A STUN binding request whose USERNAME is `username` (`tcp.rs`'s tests use it too).
    pub(crate) fn stun_with_username(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A preceding attribute (PRIORITY) to exercise skipping.
        attrs.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4]);
        attrs.extend_from_slice(&0x0006u16.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        msg.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attrs);
        msg
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn routes_stun_by_ufrag_then_other_packets_by_address() {
        let mut r = Router::default();
        let peer = (ParticipantKey(1), PcKind::Subscriber);
        r.add_ufrag("abcd".into(), peer);
        assert_eq!(r.route(addr(5000), &[22, 254, 253, 0, 0]), None);
        assert_eq!(
            r.route(addr(5000), &stun_with_username("abcd:zz")),
            Some(peer)
        );
        // The request alone does not bind its source: only the peer's answer to it does.
        assert_eq!(r.route(addr(5000), &[22, 254, 253, 0, 0]), None);
        r.bind(addr(5000), peer);
        assert_eq!(r.route(addr(5000), &[22, 254, 253, 0, 0]), Some(peer));
        assert_eq!(r.route(addr(5001), &[128, 0]), None);
        r.remove_participant(ParticipantKey(1));
        assert_eq!(r.route(addr(5000), &[22, 254, 253]), None);
        assert_eq!(r.len(), (0, 0));
    }

    #[test]
    fn unknown_ufrag_is_not_routed() {
        let r = Router::default();
        assert_eq!(r.route(addr(1), &stun_with_username("nope:x")), None);
    }

    #[test]
    fn garbage_never_panics() {
        let mut r = Router::default();
        r.add_ufrag("a".into(), (ParticipantKey(1), PcKind::Publisher));
        let mut good = stun_with_username("a:b");
        for cut in 0..good.len() {
            let _ = r.route(addr(9), &good[..cut]);
        }
        // Lie about lengths.
        good[2] = 0xff;
        good[23] = 0xff;
        let _ = r.route(addr(9), &good);
        for b in 0..=255u8 {
            let _ = r.route(addr(9), &[b; 40]);
        }
    }
}
