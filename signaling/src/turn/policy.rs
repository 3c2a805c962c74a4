//! Which peers the embedded TURN relay may reach, so that it never becomes an open relay into the operator's
//! network. In order: the SFU's own media addresses (exact IP and port) are allowed; then the configured deny
//! CIDRs refuse; then the configured allow CIDRs allow; then loopback, private, link-local, shared (CGNAT),
//! multicast, broadcast, reserved and unspecified addresses (also in IPv4-mapped, IPv4-compatible and NAT64
//! IPv6 form) are refused; anything else is allowed.
//!
//! Also owns reading the XOR-PEER-ADDRESS attributes of a raw STUN message (`peer_addresses`), which `guard.rs`
//! uses to refuse CreatePermission and ChannelBind before the TURN crate sees them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// A malformed CIDR in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("turn.{list}: `{value}` is not a CIDR (like 10.0.0.0/8 or fd00::/8) or an IP address")]
pub struct CidrError {
    pub list: &'static str,
    pub value: String,
}

/// The relay's peer-address policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerPolicy {
    /// Always allowed: the SFU's media sockets.
    pub exempt: Vec<SocketAddr>,
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl PeerPolicy {
    /// Parses the allow and deny lists (a bare IP counts as a /32 or /128).
    pub fn new(
        exempt: Vec<SocketAddr>,
        allow: &[String],
        deny: &[String],
    ) -> Result<Self, CidrError> {
        Ok(PeerPolicy {
            exempt,
            allow: parse_list("allow_peers", allow)?,
            deny: parse_list("deny_peers", deny)?,
        })
    }

    /// Why the relay may not send to `peer`, if it may not.
    pub fn refusal(&self, peer: SocketAddr) -> Option<&'static str> {
        let ip = canonical(peer.ip());
        if self
            .exempt
            .iter()
            .any(|e| e.port() == peer.port() && canonical(e.ip()) == ip)
        {
            return None;
        }
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return Some("denied by turn.deny_peers");
        }
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        crate::webhooks::address::forbidden_ip(ip).or_else(|| match ip {
            IpAddr::V6(v6) if v6.segments()[0] & 0xff00 == 0xff00 => Some("multicast"),
            _ => None,
        })
    }
}

fn parse_list(list: &'static str, values: &[String]) -> Result<Vec<IpNet>, CidrError> {
    values
        .iter()
        .map(|v| {
            let v = v.trim();
            v.parse::<IpNet>()
                .or_else(|_| v.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| CidrError {
                    list,
                    value: v.to_string(),
                })
        })
        .collect()
}

/// IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) IPv6 addresses as the IPv4 address they
/// reach, so that the rules for IPv4 apply to them.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0; 6] && v6 != Ipv6Addr::UNSPECIFIED && v6 != Ipv6Addr::LOCALHOST {
                let [.., a, b, c, d] = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            ip
        }
        v4 => v4,
    }
}

const MAGIC_COOKIE: u32 = 0x2112_A442;
const ATTR_XOR_PEER_ADDRESS: u16 = 0x0012;

/// The addresses in every XOR-PEER-ADDRESS attribute of the STUN message `msg`; `None` if `msg` is not a
/// well-formed STUN message or one of those attributes is malformed.
pub fn peer_addresses(msg: &[u8]) -> Option<Vec<SocketAddr>> {
    if msg.len() < 20 || msg[0] >= 4 || msg[4..8] != MAGIC_COOKIE.to_be_bytes() {
        return None;
    }
    let body = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
    let end = 20usize.checked_add(body)?;
    let msg = msg.get(..end)?;
    let mut out = Vec::new();
    let mut i = 20;
    while i + 4 <= msg.len() {
        let typ = u16::from_be_bytes([msg[i], msg[i + 1]]);
        let len = usize::from(u16::from_be_bytes([msg[i + 2], msg[i + 3]]));
        let value = msg.get(i + 4..i + 4 + len)?;
        if typ == ATTR_XOR_PEER_ADDRESS {
            out.push(xor_address(value, &msg[8..20])?);
        }
        i += 4 + len.div_ceil(4) * 4;
    }
    Some(out)
}

fn xor_address(value: &[u8], transaction_id: &[u8]) -> Option<SocketAddr> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match (value.get(1)?, value.len()) {
        (1, 8) => {
            let mut o = [0u8; 4];
            for (k, b) in o.iter_mut().enumerate() {
                *b = value[4 + k] ^ cookie[k];
            }
            IpAddr::V4(Ipv4Addr::from(o))
        }
        (2, 20) => {
            let mut o = [0u8; 16];
            for (k, b) in o.iter_mut().enumerate() {
                let key = if k < 4 {
                    cookie[k]
                } else {
                    transaction_id[k - 4]
                };
                *b = value[4 + k] ^ key;
            }
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    fn policy(allow: &[&str], deny: &[&str]) -> PeerPolicy {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        PeerPolicy::new(vec![a("127.0.0.1:7882")], &s(allow), &s(deny)).expect("valid")
    }

    #[test]
    fn default_refuses_internal_addresses_but_the_sfu() {
        let p = policy(&[], &[]);
        assert_eq!(p.refusal(a("127.0.0.1:7882")), None);
        for refused in [
            "127.0.0.1:7883",
            "127.0.0.2:7882",
            "10.1.2.3:5000",
            "172.16.0.1:1",
            "192.168.1.1:1",
            "169.254.169.254:80",
            "100.64.0.1:1",
            "0.0.0.0:1",
            "224.0.0.1:1",
            "255.255.255.255:1",
            "[::1]:1",
            "[::]:1",
            "[fe80::1]:1",
            "[fd00::1]:1",
            "[ff02::1]:1",
            "[::ffff:127.0.0.1]:7883",
            "[::ffff:10.0.0.1]:1",
            "[::10.0.0.1]:1",
            "[64:ff9b::a00:1]:1",
        ] {
            assert!(p.refusal(a(refused)).is_some(), "{refused} must be refused");
        }
        assert_eq!(p.refusal(a("[::ffff:127.0.0.1]:7882")), None);
        assert_eq!(p.refusal(a("203.0.113.7:4000")), None);
        assert_eq!(p.refusal(a("[2001:db8::1]:4000")), None);
    }

    #[test]
    fn lists_override_the_default() {
        let p = policy(
            &["10.0.0.0/8", "192.168.7.7"],
            &["203.0.113.0/24", "10.9.0.0/16"],
        );
        assert_eq!(p.refusal(a("10.1.2.3:1")), None);
        assert_eq!(p.refusal(a("192.168.7.7:1")), None);
        assert!(p.refusal(a("192.168.7.8:1")).is_some());
        assert!(p.refusal(a("203.0.113.7:1")).is_some());
        // Deny wins over allow.
        assert!(p.refusal(a("10.9.1.1:1")).is_some());
    }

    #[test]
    fn malformed_cidr_is_an_error() {
        let err = PeerPolicy::new(vec![], &["10.0.0.0/33".into()], &[]).expect_err("bad");
        assert_eq!(err.list, "allow_peers");
        assert!(PeerPolicy::new(vec![], &[], &["nope".into()]).is_err());
    }

    #[test]
    fn reads_xor_peer_addresses() {
        let tid = [9u8; 12];
        let mut msg = vec![0x00, 0x08, 0, 0];
        msg.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        msg.extend_from_slice(&tid);
        // 127.0.0.2:5000
        let port = 5000u16 ^ 0x2112;
        let ip = [127 ^ 0x21, 0x12, 0xA4, 2 ^ 0x42];
        msg.extend_from_slice(&[0x00, 0x12, 0, 8, 0, 1]);
        msg.extend_from_slice(&port.to_be_bytes());
        msg.extend_from_slice(&ip);
        let len = (msg.len() - 20) as u16;
        msg[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(peer_addresses(&msg), Some(vec![a("127.0.0.2:5000")]));
        for cut in 0..msg.len() {
            let _ = peer_addresses(&msg[..cut]);
        }
        msg[23] = 200;
        assert_eq!(peer_addresses(&msg), None);
    }
}
