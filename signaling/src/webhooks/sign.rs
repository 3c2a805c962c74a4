//! Webhook signatures. Each request carries
//! `Chorus-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<hex SHA-256(body)>")>` and
//! `Chorus-Key: <API key id>`; the secret is that API key's. `docs/webhooks.md` shows a receiver's side.
//! [`verify`] is that side in Rust (tests use it; a Rust receiver can too).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const SIGNATURE_HEADER: &str = "chorus-signature";
pub const KEY_HEADER: &str = "chorus-key";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, timestamp: u64, body: &[u8]) -> HmacSha256 {
    let body_hash = hex::encode(Sha256::digest(body));
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(format!("{timestamp}.{body_hash}").as_bytes());
    mac
}

/// The `Chorus-Signature` value for `body` sent at `timestamp`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let tag = hex::encode(mac(secret, timestamp, body).finalize().into_bytes());
    format!("t={timestamp},v1={tag}")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed signature header")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
    #[error("timestamp too far from now")]
    Stale,
}

/// Checks a `Chorus-Signature` header for `body`, accepting timestamps within `tolerance_secs` of `now`.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: u64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v1", tag)) => tags.push(hex::decode(tag).map_err(|_| VerifyError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if tags.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if timestamp.abs_diff(now) > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    // `verify_slice` compares in constant time.
    if tags
        .iter()
        .any(|tag| mac(secret, timestamp, body).verify_slice(tag).is_ok())
    {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn signatures_verify_and_detect_tampering() {
        let body = br#"{"type":"room_started"}"#;
        let header = signature(SECRET, 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(verify(SECRET, &header, body, 1_700_000_010, 300), Ok(()));
        assert_eq!(
            verify(SECRET, &header, b"{}", 1_700_000_010, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                "another-secret-another-secret-xx",
                &header,
                body,
                1_700_000_010,
                300
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, &header, body, 1_700_001_000, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify(SECRET, "v1=abc", body, 0, 300),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn matches_a_python_computed_vector() {
        // python3: hmac.new(b"key", b"1." + sha256(b"").hexdigest().encode(), sha256).hexdigest()
        assert_eq!(
            signature("key", 1, b""),
            "t=1,v1=2c331bea6083194b9840c2fb930fbc3ab26bea0d4f7026007f3ae0858748b6c4"
        );
    }
}
