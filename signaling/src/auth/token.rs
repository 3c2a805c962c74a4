//! Signing and verifying access tokens: JWT, HS256 only, claims as in `docs/protocol.md` ("Access tokens").
//!
//! Owns the claim layout and every check a token goes through. Verification order: size and shape, header
//! algorithm (HS256 only; `none` and everything else refused), `iss` selects the key, signature (via
//! `jsonwebtoken`), claims, then `exp`/`nbf` against the caller's clock with [`LEEWAY_SECS`] of slack. The clock
//! is a parameter (`verify_at`, `issue_at`) so tests are deterministic; `verify`/`issue` read the system clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde_json::{Map, Value};

use super::error::shorten;
use super::{ApiKey, AuthError, Grants, KeyStore, VerifiedToken};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: u64 = 5;
/// Longest token accepted, in bytes; anything longer is refused before decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest identity (`sub`), in characters.
pub const MAX_IDENTITY_CHARS: usize = 128;

/// What to put in a new token; see [`KeyStore::issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// Key to sign with (its id becomes `iss`); `None` = the first configured key.
    pub api_key: Option<String>,
    /// Participant identity (`sub`), 1–128 characters.
    pub identity: String,
    /// Display name (`name`).
    pub name: Option<String>,
    /// The room the token may join (`room`), non-empty.
    pub room: String,
    /// Lifetime: `exp` = now + `ttl` (whole seconds, at least one).
    pub ttl: Duration,
    pub grants: Grants,
    /// `nbf`, seconds since the Unix epoch.
    pub not_before: Option<u64>,
}

impl TokenRequest {
    /// A request for `identity` in `room`: first key, no name, one hour, default grants.
    pub fn new(identity: impl Into<String>, room: impl Into<String>) -> TokenRequest {
        TokenRequest {
            api_key: None,
            identity: identity.into(),
            name: None,
            room: room.into(),
            ttl: Duration::from_secs(3600),
            grants: Grants::default(),
            not_before: None,
        }
    }
}

/// Claims as written by [`KeyStore::issue`].
#[derive(Serialize)]
struct OutgoingClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    room: &'a str,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    exp: u64,
    grants: Grants,
}

/// Seconds since the Unix epoch by the system clock (0 if the clock is before 1970).
pub fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
}

impl KeyStore {
    /// Verifies `token` against the system clock.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        self.verify_at(token, now_unix_secs())
    }

    /// Verifies `token` as of `now_unix_secs`: signature, required claims, `exp` and `nbf`.
    pub fn verify_at(&self, token: &str, now_unix_secs: u64) -> Result<VerifiedToken, AuthError> {
        let (header, payload) = split(token)?;
        let alg = header_alg(header)?;
        if alg != "HS256" {
            return Err(AuthError::UnsupportedAlgorithm(shorten(&alg)));
        }
        if self.is_empty() {
            return Err(AuthError::NoKeys);
        }
        // `iss` selects the secret, so it is read before the signature is checked; nothing else is trusted yet.
        let unverified = decode_json_object(payload, "claims")?;
        let iss = required_str(&unverified, "iss")?;
        let api_key = self
            .get(iss)
            .ok_or_else(|| AuthError::UnknownKey(shorten(iss)))?;

        let claims = verify_signature(token, api_key)?;
        let identity = required_str(&claims, "sub")?;
        check_identity(identity)?;
        let room = required_str(&claims, "room")?;
        check_room_name(room)?;
        let name = optional_str(&claims, "name")?.unwrap_or_default();
        let grants = grants_claim(&claims)?;
        let expires_at = numeric_date(&claims, "exp")?.ok_or(AuthError::MissingClaim("exp"))?;
        let not_before = numeric_date(&claims, "nbf")?;
        // `iat` is informational except for revocations (`VerifiedToken::issued_at`).
        let issued_at = numeric_date(&claims, "iat")?;

        if now_unix_secs >= expires_at.saturating_add(LEEWAY_SECS) {
            return Err(AuthError::Expired);
        }
        if not_before.is_some_and(|nbf| now_unix_secs.saturating_add(LEEWAY_SECS) < nbf) {
            return Err(AuthError::NotYetValid);
        }
        Ok(VerifiedToken {
            api_key: api_key.key.clone(),
            identity: identity.to_owned(),
            name: name.to_owned(),
            room: room.to_owned(),
            grants,
            expires_at,
            issued_at,
        })
    }

    /// Signs a token for `req` with `req.api_key` (or the first key), valid from now for `req.ttl`.
    pub fn issue(&self, req: &TokenRequest) -> Result<String, AuthError> {
        self.issue_at(req, now_unix_secs())
    }

    /// Like [`issue`](Self::issue) with `iat` = `now_unix_secs`.
    pub fn issue_at(&self, req: &TokenRequest, now_unix_secs: u64) -> Result<String, AuthError> {
        let api_key = self.signing_key(req.api_key.as_deref())?;
        check_identity(&req.identity)?;
        check_room_name(&req.room)?;
        let ttl_secs = req.ttl.as_secs();
        if ttl_secs == 0 {
            return Err(AuthError::invalid(
                "exp",
                "the lifetime must be at least one second",
            ));
        }
        let claims = OutgoingClaims {
            iss: &api_key.key,
            sub: &req.identity,
            name: req.name.as_deref(),
            room: &req.room,
            iat: now_unix_secs,
            nbf: req.not_before,
            exp: now_unix_secs.saturating_add(ttl_secs),
            grants: req.grants,
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(api_key.secret.as_bytes()),
        )
        .map_err(|e| AuthError::Signing(e.to_string()))
    }

    pub(super) fn signing_key(&self, key: Option<&str>) -> Result<&ApiKey, AuthError> {
        match key {
            Some(id) => self
                .get(id)
                .ok_or_else(|| AuthError::UnknownKey(shorten(id))),
            None => self.first().ok_or(AuthError::NoKeys),
        }
    }
}

/// Splits a compact JWS into its header and payload parts, refusing anything not shaped like one.
pub(super) fn split(token: &str) -> Result<(&str, &str), AuthError> {
    if token.is_empty() {
        return Err(AuthError::Malformed("empty token".into()));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Malformed(format!(
            "longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(_signature), None) => Ok((header, payload)),
        _ => Err(AuthError::Malformed(
            "expected three dot-separated parts".into(),
        )),
    }
}

pub(super) fn decode_json_object(part: &str, what: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed(format!("{what} are not base64url")))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AuthError::Malformed(format!(
            "{what} are not a JSON object"
        ))),
    }
}

pub(super) fn header_alg(header: &str) -> Result<String, AuthError> {
    let header = decode_json_object(header, "header fields")?;
    match header.get("alg") {
        Some(Value::String(alg)) => Ok(alg.clone()),
        Some(_) => Err(AuthError::Malformed("header `alg` is not a string".into())),
        None => Err(AuthError::Malformed("header has no `alg`".into())),
    }
}

/// Checks the signature with `jsonwebtoken` and returns the claims. Time checks are ours, not the library's.
pub(super) fn verify_signature(
    token: &str,
    api_key: &ApiKey,
) -> Result<Map<String, Value>, AuthError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    let key = DecodingKey::from_secret(api_key.secret.as_bytes());
    match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
                AuthError::UnsupportedAlgorithm("in header".into())
            }
            _ => AuthError::Malformed(e.to_string()),
        }),
    }
}

pub(super) fn optional_str<'a>(
    claims: &'a Map<String, Value>,
    claim: &'static str,
) -> Result<Option<&'a str>, AuthError> {
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AuthError::invalid(claim, "not a string")),
    }
}

fn required_str<'a>(
    claims: &'a Map<String, Value>,
    claim: &'static str,
) -> Result<&'a str, AuthError> {
    optional_str(claims, claim)?.ok_or(AuthError::MissingClaim(claim))
}

/// A NumericDate: seconds since the epoch, an integer or a non-negative float (rounded down).
pub(super) fn numeric_date(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<u64>, AuthError> {
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| AuthError::invalid(claim, "not a non-negative number of seconds")),
        Some(_) => Err(AuthError::invalid(claim, "not a number")),
    }
}

pub(super) fn grants_claim(claims: &Map<String, Value>) -> Result<Grants, AuthError> {
    match claims.get("grants") {
        None | Some(Value::Null) => Ok(Grants::default()),
        Some(value @ Value::Object(_)) => serde_json::from_value(value.clone())
            .map_err(|e| AuthError::invalid("grants", e.to_string())),
        Some(_) => Err(AuthError::invalid("grants", "not an object")),
    }
}

/// Identities are 1–128 characters without control characters.
pub(super) fn check_identity(identity: &str) -> Result<(), AuthError> {
    let chars = identity.chars().count();
    if chars == 0 {
        return Err(AuthError::invalid("sub", "empty identity"));
    }
    if chars > MAX_IDENTITY_CHARS {
        return Err(AuthError::invalid(
            "sub",
            format!("identity longer than {MAX_IDENTITY_CHARS} characters"),
        ));
    }
    if identity.chars().any(char::is_control) {
        return Err(AuthError::invalid(
            "sub",
            "identity contains control characters",
        ));
    }
    Ok(())
}

/// Room names are non-empty and free of control characters.
pub(super) fn check_room_name(room: &str) -> Result<(), AuthError> {
    if room.is_empty() {
        return Err(AuthError::invalid("room", "empty room name"));
    }
    if room.chars().any(char::is_control) {
        return Err(AuthError::invalid(
            "room",
            "room name contains control characters",
        ));
    }
    Ok(())
}
