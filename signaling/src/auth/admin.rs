//! Server-API tokens: the `Authorization: Bearer` JWTs of the `/v1` REST API. Same format and checks as access
//! tokens (HS256, `iss` selects the key, `exp` required, [`LEEWAY_SECS`](super::LEEWAY_SECS) of slack), but `room`
//! and `sub` are optional and what counts are the admin grants ([`AdminGrant`]). A participant token with
//! `roomAdmin` therefore also administers its own room through the API.
//!
//! Owns only the token side; which grant an endpoint needs is decided by `api/`.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::error::shorten;
use super::token::{
    check_room_name, decode_json_object, grants_claim, header_alg, numeric_date, optional_str,
    split, verify_signature,
};
use super::{AuthError, Grants, KeyStore, LEEWAY_SECS};

/// `sub` of tokens printed by `chorus token --admin`.
pub const ADMIN_SUBJECT: &str = "admin";

/// A grant the server API checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminGrant {
    /// `roomCreate`: create rooms.
    RoomCreate,
    /// `roomList`: list rooms.
    RoomList,
    /// `roomAdmin`: read and manage a room (the token's own room only, when it names one).
    RoomAdmin,
    /// `identityAdmin`: identities, their tokens and revocations.
    IdentityAdmin,
    /// `nodeAdmin`: the node's state and draining it.
    NodeAdmin,
}

impl AdminGrant {
    /// The grant's name in tokens and error messages.
    pub fn name(self) -> &'static str {
        match self {
            AdminGrant::RoomCreate => "roomCreate",
            AdminGrant::RoomList => "roomList",
            AdminGrant::RoomAdmin => "roomAdmin",
            AdminGrant::IdentityAdmin => "identityAdmin",
            AdminGrant::NodeAdmin => "nodeAdmin",
        }
    }
}

/// A verified server-API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub api_key: String,
    /// `sub`, empty when absent.
    pub subject: String,
    /// `room`: when present, room grants apply to that room only.
    pub room: Option<String>,
    pub grants: Grants,
    pub expires_at: u64,
}

impl AdminToken {
    /// Whether the token holds `grant`, for `room` when the grant is about one room.
    pub fn allows(&self, grant: AdminGrant, room: Option<&str>) -> bool {
        let held = match grant {
            AdminGrant::RoomCreate => self.grants.room_create,
            AdminGrant::RoomList => self.grants.room_list,
            AdminGrant::RoomAdmin => self.grants.room_admin,
            AdminGrant::IdentityAdmin => self.grants.identity_admin,
            AdminGrant::NodeAdmin => self.grants.node_admin,
        };
        let room_ok = match (&self.room, room) {
            (None, _) => true,
            (Some(own), Some(asked)) => own == asked,
            // A room-scoped token cannot act server-wide (create or list rooms, manage identities).
            (Some(_), None) => false,
        };
        held && room_ok
    }
}

#[derive(Serialize)]
struct AdminClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    iat: u64,
    exp: u64,
    grants: Grants,
}

impl KeyStore {
    /// Verifies a server-API token as of `now_unix_secs`.
    pub fn verify_admin_at(
        &self,
        token: &str,
        now_unix_secs: u64,
    ) -> Result<AdminToken, AuthError> {
        let (header, payload) = split(token)?;
        let alg = header_alg(header)?;
        if alg != "HS256" {
            return Err(AuthError::UnsupportedAlgorithm(shorten(&alg)));
        }
        if self.is_empty() {
            return Err(AuthError::NoKeys);
        }
        let unverified = decode_json_object(payload, "claims")?;
        let iss = optional_str(&unverified, "iss")?.ok_or(AuthError::MissingClaim("iss"))?;
        let api_key = self
            .get(iss)
            .ok_or_else(|| AuthError::UnknownKey(shorten(iss)))?;
        let claims = verify_signature(token, api_key)?;
        let subject = optional_str(&claims, "sub")?.unwrap_or_default();
        let room = optional_str(&claims, "room")?;
        if let Some(room) = room {
            check_room_name(room)?;
        }
        let grants = grants_claim(&claims)?;
        let expires_at = numeric_date(&claims, "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
        let not_before = numeric_date(&claims, "nbf")?;
        numeric_date(&claims, "iat")?;
        if now_unix_secs >= expires_at.saturating_add(LEEWAY_SECS) {
            return Err(AuthError::Expired);
        }
        if not_before.is_some_and(|nbf| now_unix_secs.saturating_add(LEEWAY_SECS) < nbf) {
            return Err(AuthError::NotYetValid);
        }
        Ok(AdminToken {
            api_key: api_key.key.clone(),
            subject: subject.to_owned(),
            room: room.map(str::to_owned),
            grants,
            expires_at,
        })
    }

    /// Verifies a server-API token against the system clock.
    pub fn verify_admin(&self, token: &str) -> Result<AdminToken, AuthError> {
        self.verify_admin_at(token, super::now_unix_secs())
    }

    /// Signs a server-API token with every admin grant (`roomCreate`, `roomList`, `roomAdmin`,
    /// `identityAdmin`) for the whole server, with `api_key` (or the first key), valid for `ttl` from `now`.
    pub fn issue_admin_at(
        &self,
        api_key: Option<&str>,
        ttl: Duration,
        now_unix_secs: u64,
    ) -> Result<String, AuthError> {
        let key = self.signing_key(api_key)?;
        if ttl.as_secs() == 0 {
            return Err(AuthError::invalid(
                "exp",
                "the lifetime must be at least one second",
            ));
        }
        let grants = Grants {
            can_publish: false,
            can_subscribe: false,
            can_publish_data: false,
            can_chat: false,
            room_admin: true,
            hidden: false,
            room_create: true,
            room_list: true,
            identity_admin: true,
            node_admin: true,
        };
        let claims = AdminClaims {
            iss: &key.key,
            sub: ADMIN_SUBJECT,
            room: None,
            iat: now_unix_secs,
            exp: now_unix_secs.saturating_add(ttl.as_secs()),
            grants,
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(key.secret.as_bytes()),
        )
        .map_err(|e| AuthError::Signing(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ApiKey, TokenRequest};

    const NOW: u64 = 1_700_000_000;

    fn keys() -> KeyStore {
        KeyStore::new(vec![ApiKey {
            key: "k".into(),
            secret: "0123456789abcdef0123456789abcdef".into(),
        }])
        .expect("keys")
    }

    #[test]
    fn admin_tokens_carry_every_admin_grant_for_every_room() {
        let keys = keys();
        let token = keys
            .issue_admin_at(None, Duration::from_secs(60), NOW)
            .expect("issue");
        let admin = keys.verify_admin_at(&token, NOW).expect("verify");
        assert_eq!(admin.subject, ADMIN_SUBJECT);
        assert_eq!(admin.room, None);
        for grant in [
            AdminGrant::RoomCreate,
            AdminGrant::RoomList,
            AdminGrant::RoomAdmin,
            AdminGrant::IdentityAdmin,
        ] {
            assert!(admin.allows(grant, None), "{grant:?}");
            assert!(admin.allows(grant, Some("any")), "{grant:?}");
        }
        assert_eq!(
            keys.verify_admin_at(&token, NOW + 60 + LEEWAY_SECS),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn participant_tokens_are_limited_to_their_room_and_grants() {
        let keys = keys();
        let plain = keys
            .issue_at(&TokenRequest::new("alice", "r1"), NOW)
            .expect("issue");
        let verified = keys.verify_admin_at(&plain, NOW).expect("verify");
        assert!(!verified.allows(AdminGrant::RoomAdmin, Some("r1")));

        let mut req = TokenRequest::new("mod", "r1");
        req.grants.room_admin = true;
        let moderator = keys.issue_at(&req, NOW).expect("issue");
        let verified = keys.verify_admin_at(&moderator, NOW).expect("verify");
        assert!(verified.allows(AdminGrant::RoomAdmin, Some("r1")));
        assert!(!verified.allows(AdminGrant::RoomAdmin, Some("r2")));
        assert!(!verified.allows(AdminGrant::RoomAdmin, None));
        assert!(!verified.allows(AdminGrant::RoomList, None));
    }

    #[test]
    fn bad_tokens_are_refused() {
        let keys = keys();
        assert!(matches!(
            keys.verify_admin_at("", NOW),
            Err(AuthError::Malformed(_))
        ));
        let other = KeyStore::new(vec![ApiKey {
            key: "k".into(),
            secret: "another-secret-0123456789abcdef-xyz".into(),
        }])
        .expect("keys");
        let forged = other
            .issue_admin_at(None, Duration::from_secs(60), NOW)
            .expect("issue");
        assert_eq!(
            keys.verify_admin_at(&forged, NOW),
            Err(AuthError::BadSignature)
        );
    }
}
