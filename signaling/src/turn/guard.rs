//! The relay policy at the two places the `turn` crate offers no hook of its own:
//!
//! - [`GuardConn`] wraps a TURN listener. It answers a CreatePermission or ChannelBind request naming a refused
//!   peer with 403 (Forbidden) itself, so the crate never installs that permission and the client learns why.
//! - [`PolicyRelayConn`] wraps each relay socket: a send to a refused peer fails (defense in depth: without a
//!   permission the crate would not send anyway). It also holds the participant's allocation-quota slot and
//!   counts what the relay carries.
//!
//! Must not parse more of STUN than the peer addresses and the header.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use stun::agent::TransactionId;
use stun::error_code::{ErrorCodeAttribute, CODE_FORBIDDEN};
use stun::message::{
    Message, MessageType, Setter, CLASS_ERROR_RESPONSE, METHOD_CHANNEL_BIND,
    METHOD_CREATE_PERMISSION,
};
use webrtc_util::Conn;

use super::counters::TurnCounters;
use super::policy::{peer_addresses, PeerPolicy};
use super::relay::QuotaSlot;

/// Message types of CreatePermission and ChannelBind requests (a request's type is its method).
const CREATE_PERMISSION_REQUEST: u16 = 0x008;
const CHANNEL_BIND_REQUEST: u16 = 0x009;

/// A TURN listener connection that refuses permissions to peers the policy forbids.
pub struct GuardConn {
    inner: Arc<dyn Conn + Send + Sync>,
    policy: Arc<PeerPolicy>,
}

impl GuardConn {
    pub fn new(inner: Arc<dyn Conn + Send + Sync>, policy: Arc<PeerPolicy>) -> Self {
        GuardConn { inner, policy }
    }

    /// If `msg` asks for a permission to a refused peer: the 403 response to send back.
    fn refuse(&self, msg: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
        if msg.len() < 20 {
            return None;
        }
        let method = match u16::from_be_bytes([msg[0], msg[1]]) {
            CREATE_PERMISSION_REQUEST => METHOD_CREATE_PERMISSION,
            CHANNEL_BIND_REQUEST => METHOD_CHANNEL_BIND,
            _ => return None,
        };
        let peers = peer_addresses(msg)?;
        let (peer, why) = peers
            .iter()
            .find_map(|p| self.policy.refusal(*p).map(|why| (*p, why)))?;
        tracing::info!(client = %from, %peer, reason = why, "TURN permission refused");
        let mut tid = [0u8; 12];
        tid.copy_from_slice(&msg[8..20]);
        let mut response = Message::new();
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(TransactionId(tid)),
            Box::new(MessageType::new(method, CLASS_ERROR_RESPONSE)),
            Box::new(ErrorCodeAttribute {
                code: CODE_FORBIDDEN,
                reason: format!("peer {why}").into_bytes(),
            }),
        ];
        response.build(&setters).ok()?;
        Some(response.raw)
    }
}

#[async_trait]
impl Conn for GuardConn {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.inner.connect(addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        self.inner.recv(buf).await
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.inner.recv_from(buf).await?;
            match self.refuse(&buf[..n], from) {
                Some(response) => {
                    if let Err(e) = self.inner.send_to(&response, from).await {
                        tracing::debug!(client = %from, error = %e, "cannot send TURN 403");
                    }
                }
                None => return Ok((n, from)),
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.inner.send(buf).await
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        self.inner.send_to(buf, target).await
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.inner.close().await
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// A relay socket that never sends to a refused peer, holding one allocation of the participant's quota until
/// it is closed or dropped, and counting the packets it relays each way.
pub struct PolicyRelayConn {
    inner: Arc<tokio::net::UdpSocket>,
    policy: Arc<PeerPolicy>,
    slot: QuotaSlot,
    counters: Arc<TurnCounters>,
}

impl PolicyRelayConn {
    pub fn new(
        inner: tokio::net::UdpSocket,
        policy: Arc<PeerPolicy>,
        slot: QuotaSlot,
        counters: Arc<TurnCounters>,
    ) -> Self {
        PolicyRelayConn {
            inner: Arc::new(inner),
            policy,
            slot,
            counters,
        }
    }
}

#[async_trait]
impl Conn for PolicyRelayConn {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        Conn::connect(&*self.inner, addr).await
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        let n = Conn::recv(&*self.inner, buf).await?;
        self.counters.received_from_peer(n);
        Ok(n)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let (n, from) = Conn::recv_from(&*self.inner, buf).await?;
        self.counters.received_from_peer(n);
        Ok((n, from))
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        let n = Conn::send(&*self.inner, buf).await?;
        self.counters.sent_to_peer(n);
        Ok(n)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if let Some(why) = self.policy.refusal(target) {
            self.counters.send_refused();
            tracing::debug!(peer = %target, reason = why, "relay send refused");
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("relay to {target} refused: {why}"),
            )
            .into());
        }
        let n = Conn::send_to(&*self.inner, buf, target).await?;
        self.counters.sent_to_peer(n);
        Ok(n)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Conn::local_addr(&*self.inner)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        self.slot.release();
        // Dropping the socket closes it; the allocation's read loop ends on its own close signal.
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
