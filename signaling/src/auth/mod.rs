//! Access tokens: JWT HS256 signed with an API secret, carrying identity, room and grants.
//!
//! This module owns the token format (`docs/protocol.md`, "Access tokens"), the API key set and the mapping of
//! token failures to protocol error codes. It knows nothing of HTTP, sessions or rooms: callers verify a token and
//! act on the returned [`VerifiedToken`] (or, for the server API, [`AdminToken`]). Files: `keys.rs` (the key set),
//! `token.rs` (sign/verify participant tokens), `admin.rs` (server-API tokens), `error.rs`.

use serde::{Deserialize, Serialize};

mod admin;
mod error;
mod keys;
mod token;

#[cfg(test)]
mod tests;

pub use admin::{AdminGrant, AdminToken, ADMIN_SUBJECT};
pub use error::AuthError;
pub use keys::{KeyStore, MIN_SECRET_BYTES};
pub use token::{now_unix_secs, TokenRequest, LEEWAY_SECS, MAX_IDENTITY_CHARS, MAX_TOKEN_BYTES};

/// What a token allows its bearer to do: in its room (participant grants), or on the server API (admin grants,
/// see [`AdminGrant`]; false by default and left out of tokens when false).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Grants {
    pub can_publish: bool,
    pub can_subscribe: bool,
    pub can_publish_data: bool,
    /// Chat (the `chat` scope of identity tokens); nothing uses it until chat exists.
    pub can_chat: bool,
    /// In a participant token: administers its room. In a server-API token: the room endpoints (all rooms, or
    /// only the token's `room` when it names one).
    pub room_admin: bool,
    pub hidden: bool,
    /// Server API: `POST /v1/rooms`.
    #[serde(skip_serializing_if = "is_false")]
    pub room_create: bool,
    /// Server API: `GET /v1/rooms`.
    #[serde(skip_serializing_if = "is_false")]
    pub room_list: bool,
    /// Server API: `/v1/identities` (create, issue tokens, revoke, delete).
    #[serde(skip_serializing_if = "is_false")]
    pub identity_admin: bool,
    /// Server API: `/v1/node` (this node's state, draining it).
    #[serde(skip_serializing_if = "is_false")]
    pub node_admin: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
            can_chat: true,
            room_admin: false,
            hidden: false,
            room_create: false,
            room_list: false,
            identity_admin: false,
            node_admin: false,
        }
    }
}

/// An API key and its secret (at least 32 bytes).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub key: String,
    pub secret: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// A token that verified: who, where, what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The key that signed it (`iss`).
    pub api_key: String,
    /// `sub`.
    pub identity: String,
    /// `name`; empty when the token has none.
    pub name: String,
    /// `room`, never empty.
    pub room: String,
    pub grants: Grants,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: u64,
    /// `iat`, seconds since the Unix epoch, when the token has one (revocations compare against it).
    pub issued_at: Option<u64>,
}

impl VerifiedToken {
    /// Checks the token is for `room` (the `?room=` of the WebSocket URL); [`AuthError::WrongRoom`] otherwise.
    pub fn check_room(&self, room: &str) -> Result<(), AuthError> {
        if self.room == room {
            Ok(())
        } else {
            Err(AuthError::WrongRoom {
                token_room: error::shorten(&self.room),
                requested: error::shorten(room),
            })
        }
    }
}
