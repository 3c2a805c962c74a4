//! Ephemeral TURN credentials in the style of the TURN REST API (draft-uberti-behave-turn-rest): the username is
//! `<expiry unix seconds>:<participant sid>` and the password is `base64(HMAC-SHA1(secret, username))`. Anyone with
//! the secret (this server, or an external coturn with `use-auth-secret`) can check them without a database.
//!
//! Owns issuing and checking; it knows nothing of sockets or the TURN protocol.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Why a TURN username is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("username is not `<expiry>:<id>`")]
    Malformed,
    #[error("credentials expired at {0}")]
    Expired(u64),
}

/// A username/password pair for one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The password for `username` under `secret`.
pub fn password(secret: &[u8], username: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Credentials for `id` that expire `ttl_secs` after `now_unix`.
pub fn issue(secret: &[u8], id: &str, now_unix: u64, ttl_secs: u64) -> Credentials {
    let username = format!("{}:{id}", now_unix.saturating_add(ttl_secs));
    Credentials {
        password: password(secret, &username),
        username,
    }
}

/// Checks that `username` is well formed and not expired at `now_unix`; returns the id part and the password
/// the client must prove it knows.
pub fn check<'a>(
    secret: &[u8],
    username: &'a str,
    now_unix: u64,
) -> Result<(&'a str, String), CredentialError> {
    let (expiry, id) = username.split_once(':').ok_or(CredentialError::Malformed)?;
    let expiry: u64 = expiry.parse().map_err(|_| CredentialError::Malformed)?;
    if id.is_empty() || id.len() > 128 {
        return Err(CredentialError::Malformed);
    }
    if expiry < now_unix {
        return Err(CredentialError::Expired(expiry));
    }
    Ok((id, password(secret, username)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_credentials_check_until_they_expire() {
        let c = issue(b"secret", "PA_x", 1000, 300);
        assert_eq!(c.username, "1300:PA_x");
        let (id, pw) = check(b"secret", &c.username, 1300).expect("valid");
        assert_eq!((id, pw.as_str()), ("PA_x", c.password.as_str()));
        assert_eq!(
            check(b"secret", &c.username, 1301),
            Err(CredentialError::Expired(1300))
        );
        // Another secret gives another password: the server would reject the client's MESSAGE-INTEGRITY.
        assert_ne!(
            check(b"other", &c.username, 1000).expect("ok").1,
            c.password
        );
    }

    #[test]
    fn known_vector() {
        // From `printf %s 1300:PA_x | openssl dgst -sha1 -hmac secret -binary | base64`.
        assert_eq!(
            password(b"secret", "1300:PA_x"),
            "2DL/MlKQbzKYyeM4EQIHOjs1j+I="
        );
    }

    #[test]
    fn malformed_usernames_are_refused() {
        for u in ["", "abc", "12", ":x", "x:y", "12:", "-1:x"] {
            assert_eq!(check(b"s", u, 0), Err(CredentialError::Malformed), "{u}");
        }
    }
}
