//! `AuthError`: why a token was refused or could not be issued, and the protocol error code a client sees for it.
//!
//! Messages are for humans (operators reading logs, developers reading the `error` message); they never contain a
//! secret. Values taken from a token (key ids, room names) are shortened before they are echoed.

use chorus_protocol::ErrorCode;

/// Why a token did not verify, could not be issued, or a key set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not a JWT at all: wrong number of parts, bad base64, a header that is not JSON, too long.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names an algorithm other than HS256 (including `none`).
    #[error("unsupported token algorithm {0} (only HS256 is accepted)")]
    UnsupportedAlgorithm(String),
    /// The signature does not match the secret of the key named by `iss`.
    #[error("token signature does not verify")]
    BadSignature,
    /// `iss` names no configured API key (or `issue` was asked for an unknown key).
    #[error("unknown API key `{0}`")]
    UnknownKey(String),
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is still in the future.
    #[error("token not valid yet")]
    NotYetValid,
    /// A required claim is absent.
    #[error("token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// A claim is present but unusable (wrong type, empty, too long).
    #[error("invalid `{claim}` claim: {reason}")]
    InvalidClaim { claim: &'static str, reason: String },
    /// The token is for another room than the one asked for.
    #[error("token is for room `{token_room}`, not `{requested}`")]
    WrongRoom {
        token_room: String,
        requested: String,
    },
    /// An API secret shorter than [`MIN_SECRET_BYTES`](crate::auth::MIN_SECRET_BYTES).
    #[error("the secret of API key `{key}` is too short (at least 32 bytes are required)")]
    ShortSecret { key: String },
    /// An API key with an empty id.
    #[error("an API key id is empty")]
    EmptyKeyId,
    /// Two API keys with the same id.
    #[error("API key `{0}` is configured twice")]
    DuplicateKey(String),
    /// No API key to sign or verify with.
    #[error("no API keys configured")]
    NoKeys,
    /// The JWT library failed to sign (should not happen with an HMAC key).
    #[error("could not sign token: {0}")]
    Signing(String),
}

impl AuthError {
    /// The protocol error code a client receives for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            AuthError::Expired => ErrorCode::TokenExpired,
            AuthError::NotYetValid => ErrorCode::TokenNotYetValid,
            AuthError::WrongRoom { .. } => ErrorCode::WrongRoom,
            _ => ErrorCode::Unauthorized,
        }
    }

    pub(crate) fn invalid(claim: &'static str, reason: impl Into<String>) -> AuthError {
        AuthError::InvalidClaim {
            claim,
            reason: reason.into(),
        }
    }
}

/// Shortens an untrusted value before it goes into an error message.
pub(crate) fn shorten(value: &str) -> String {
    const MAX_CHARS: usize = 64;
    if value.chars().count() <= MAX_CHARS {
        value.to_owned()
    } else {
        let mut short: String = value.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_protocol_errors() {
        assert_eq!(AuthError::Expired.code(), ErrorCode::TokenExpired);
        assert_eq!(AuthError::NotYetValid.code(), ErrorCode::TokenNotYetValid);
        let wrong_room = AuthError::WrongRoom {
            token_room: "a".into(),
            requested: "b".into(),
        };
        assert_eq!(wrong_room.code(), ErrorCode::WrongRoom);
        for other in [
            AuthError::Malformed("x".into()),
            AuthError::UnsupportedAlgorithm("none".into()),
            AuthError::BadSignature,
            AuthError::UnknownKey("k".into()),
            AuthError::MissingClaim("sub"),
            AuthError::invalid("sub", "empty"),
            AuthError::NoKeys,
        ] {
            assert_eq!(other.code(), ErrorCode::Unauthorized, "{other}");
        }
    }

    #[test]
    fn shorten_caps_long_values() {
        assert_eq!(shorten("abc"), "abc");
        let long = "x".repeat(500);
        assert_eq!(shorten(&long).chars().count(), 65);
    }
}
