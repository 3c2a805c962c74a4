//! Releasing the allocation of a TURN stream connection that ends. Over UDP a client that goes away leaves its
//! allocation until the lifetime runs out (RFC 5766 §7); over TCP and TLS the allocation is bound to the
//! connection (RFC 6062 §5.2 releases it when the connection closes). The `turn` crate has no hook for that, so
//! [`LastSigned`] remembers the credentials of the last signed request a connection sent and, when it ends,
//! writes the Refresh with LIFETIME 0 the client would have sent, signed with the same long-term key. The server
//! then deletes the allocation (and frees the participant's quota slot) at once.
//!
//! Owns only that bookkeeping; it does not touch sockets.

use std::time::Duration;

use stun::agent::TransactionId;
use stun::attributes::{ATTR_MESSAGE_INTEGRITY, ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use stun::integrity::MessageIntegrity;
use stun::message::{Message, MessageType, Setter, CLASS_REQUEST, METHOD_REFRESH};
use stun::textattrs::TextAttribute;
use turn::proto::lifetime::Lifetime;

use super::relay::check_with_grace;

/// USERNAME, REALM and NONCE of the last signed request seen on one connection.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LastSigned {
    signed: Option<Signed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Signed {
    username: String,
    realm: String,
    nonce: String,
}

impl LastSigned {
    /// Notes `frame`'s credentials if it is a STUN message carrying MESSAGE-INTEGRITY. ChannelData frames and
    /// anything unparsable are ignored (the server answers those).
    pub fn observe(&mut self, frame: &[u8]) {
        if frame.first().is_none_or(|b| b >> 6 != 0) {
            return;
        }
        let mut m = Message::new();
        if m.unmarshal_binary(frame).is_err() || !m.contains(ATTR_MESSAGE_INTEGRITY) {
            return;
        }
        let text = |attr| TextAttribute::get_from_as(&m, attr).map(|t| t.text);
        if let (Ok(username), Ok(realm), Ok(nonce)) =
            (text(ATTR_USERNAME), text(ATTR_REALM), text(ATTR_NONCE))
        {
            self.signed = Some(Signed {
                username,
                realm,
                nonce,
            });
        }
    }

    /// The Refresh request (LIFETIME 0) that releases this connection's allocation, or `None` if the connection
    /// never signed a request or the server would no longer accept its credentials at `now_unix` (then the
    /// allocation ends with its lifetime, as the client could no longer refresh it either).
    pub fn release_request(&self, secret: &[u8], now_unix: u64) -> Option<Vec<u8>> {
        let s = self.signed.as_ref()?;
        let ((_, password), _) = check_with_grace(secret, &s.username, now_unix).ok()?;
        let mut m = Message::new();
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(METHOD_REFRESH, CLASS_REQUEST)),
            Box::new(Lifetime(Duration::ZERO)),
            Box::new(TextAttribute::new(ATTR_USERNAME, s.username.clone())),
            Box::new(TextAttribute::new(ATTR_REALM, s.realm.clone())),
            Box::new(TextAttribute::new(ATTR_NONCE, s.nonce.clone())),
            Box::new(MessageIntegrity::new_long_term_integrity(
                s.username.clone(),
                s.realm.clone(),
                password,
            )),
        ];
        m.build(&setters).ok()?;
        Some(m.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turn::credentials;
    use stun::message::Getter;

    const SECRET: &[u8] = b"release-test-secret";

    fn signed_allocate(username: &str, password: &str) -> Vec<u8> {
        let mut m = Message::new();
        let setters: Vec<Box<dyn Setter>> = vec![
            Box::new(TransactionId::new()),
            Box::new(MessageType::new(
                stun::message::METHOD_ALLOCATE,
                CLASS_REQUEST,
            )),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.into())),
            Box::new(TextAttribute::new(ATTR_REALM, "chorus".into())),
            Box::new(TextAttribute::new(ATTR_NONCE, "n0nce".into())),
            Box::new(MessageIntegrity::new_long_term_integrity(
                username.into(),
                "chorus".into(),
                password.into(),
            )),
        ];
        m.build(&setters).expect("build");
        m.raw
    }

    #[test]
    fn builds_a_signed_zero_lifetime_refresh_from_the_last_signed_request() {
        let creds = credentials::issue(SECRET, "PA_x", 1_000, 600);
        let mut last = LastSigned::default();
        last.observe(&[0x40, 0x00, 0x00, 0x00]); // ChannelData: ignored
        last.observe(b"\x00\x01garbage");
        assert_eq!(
            last.release_request(SECRET, 1_000),
            None,
            "nothing signed yet"
        );
        last.observe(&signed_allocate(&creds.username, &creds.password));

        let raw = last.release_request(SECRET, 1_100).expect("a request");
        let mut m = Message::new();
        m.unmarshal_binary(&raw).expect("parses");
        assert_eq!(m.typ, MessageType::new(METHOD_REFRESH, CLASS_REQUEST));
        let mut lifetime = Lifetime::default();
        lifetime.get_from(&m).expect("LIFETIME");
        assert_eq!(lifetime.0, Duration::ZERO);
        let nonce = TextAttribute::get_from_as(&m, ATTR_NONCE).expect("NONCE");
        assert_eq!(nonce.text, "n0nce");
        let key = MessageIntegrity::new_long_term_integrity(
            creds.username.clone(),
            "chorus".into(),
            creds.password.clone(),
        );
        key.check(&mut m)
            .expect("signed with the client's long-term key");

        assert!(
            last.release_request(SECRET, 1_601).is_some(),
            "just expired: still accepted on allocations"
        );
        assert_eq!(
            last.release_request(SECRET, 1_600 + 13 * 3600),
            None,
            "long expired: left to the lifetime"
        );
    }
}
