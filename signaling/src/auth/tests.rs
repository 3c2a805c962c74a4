//! Token round trips and refusals: every way a token can fail must fail cleanly, never panic.

use std::time::Duration;

use base64::Engine as _;
use chorus_protocol::ErrorCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "test-secret-0123456789-abcdefghijklmnop";
const OTHER_SECRET: &str = "other-secret-0123456789-abcdefghijklmno";

fn store() -> KeyStore {
    KeyStore::new(vec![
        ApiKey {
            key: "key1".into(),
            secret: SECRET.into(),
        },
        ApiKey {
            key: "key2".into(),
            secret: OTHER_SECRET.into(),
        },
    ])
    .expect("valid keys")
}

/// Signs arbitrary claims, for tokens `issue` would never produce.
fn sign(alg: Algorithm, claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

fn claims() -> Value {
    json!({"iss": "key1", "sub": "alice", "room": "demo", "exp": NOW + 60})
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[test]
fn round_trip() {
    let keys = store();
    let mut req = TokenRequest::new("alice", "demo");
    req.name = Some("Alice".into());
    req.grants.can_publish = false;
    req.ttl = Duration::from_secs(600);
    let token = keys.issue_at(&req, NOW).expect("issue");
    let verified = keys.verify_at(&token, NOW + 1).expect("verify");
    assert_eq!(
        verified,
        VerifiedToken {
            api_key: "key1".into(),
            identity: "alice".into(),
            name: "Alice".into(),
            room: "demo".into(),
            grants: Grants {
                can_publish: false,
                ..Grants::default()
            },
            expires_at: NOW + 600,
            issued_at: Some(NOW),
        }
    );
}

#[test]
fn issue_with_named_key() {
    let keys = store();
    let mut req = TokenRequest::new("bob", "r");
    req.api_key = Some("key2".into());
    let token = keys.issue_at(&req, NOW).expect("issue");
    assert_eq!(keys.verify_at(&token, NOW).expect("verify").api_key, "key2");
    req.api_key = Some("nope".into());
    assert_eq!(
        keys.issue_at(&req, NOW),
        Err(AuthError::UnknownKey("nope".into()))
    );
}

#[test]
fn issue_refuses_bad_requests() {
    let keys = store();
    let mut req = TokenRequest::new("", "demo");
    assert!(matches!(
        keys.issue_at(&req, NOW),
        Err(AuthError::InvalidClaim { claim: "sub", .. })
    ));
    req.identity = "x".repeat(129);
    assert!(keys.issue_at(&req, NOW).is_err());
    req.identity = "é".repeat(128);
    assert!(keys.issue_at(&req, NOW).is_ok(), "128 characters are fine");
    req.room = String::new();
    assert!(matches!(
        keys.issue_at(&req, NOW),
        Err(AuthError::InvalidClaim { claim: "room", .. })
    ));
    let mut req = TokenRequest::new("a", "demo");
    req.ttl = Duration::from_millis(999);
    assert!(keys.issue_at(&req, NOW).is_err());
    let empty = KeyStore::new(Vec::new()).expect("empty");
    assert_eq!(
        empty.issue_at(&TokenRequest::new("a", "b"), NOW),
        Err(AuthError::NoKeys)
    );
}

#[test]
fn expired() {
    let keys = store();
    let token = keys
        .issue_at(&TokenRequest::new("alice", "demo"), NOW)
        .expect("issue");
    let exp = NOW + 3600;
    assert!(keys.verify_at(&token, exp - 1).is_ok());
    assert!(
        keys.verify_at(&token, exp + LEEWAY_SECS - 1).is_ok(),
        "within leeway"
    );
    let err = keys
        .verify_at(&token, exp + LEEWAY_SECS)
        .expect_err("expired");
    assert_eq!(err, AuthError::Expired);
    assert_eq!(err.code(), ErrorCode::TokenExpired);
}

#[test]
fn not_yet_valid() {
    let keys = store();
    let mut req = TokenRequest::new("alice", "demo");
    req.not_before = Some(NOW + 100);
    let token = keys.issue_at(&req, NOW).expect("issue");
    let err = keys.verify_at(&token, NOW).expect_err("too early");
    assert_eq!(err, AuthError::NotYetValid);
    assert_eq!(err.code(), ErrorCode::TokenNotYetValid);
    assert!(keys.verify_at(&token, NOW + 100 - LEEWAY_SECS).is_ok());
    assert!(keys.verify_at(&token, NOW + 100).is_ok());
}

#[test]
fn wrong_signature() {
    let keys = store();
    // Claims say key1, but the token is signed with key2's secret.
    let token = sign(Algorithm::HS256, &claims(), OTHER_SECRET);
    let err = keys.verify_at(&token, NOW).expect_err("bad signature");
    assert_eq!(err, AuthError::BadSignature);
    assert_eq!(err.code(), ErrorCode::Unauthorized);

    // A valid token whose payload was swapped for another identity.
    let good = sign(Algorithm::HS256, &claims(), SECRET);
    let parts: Vec<&str> = good.split('.').collect();
    let mut forged_claims = claims();
    forged_claims["sub"] = json!("mallory");
    let forged = format!("{}.{}.{}", parts[0], b64(&forged_claims), parts[2]);
    assert_eq!(keys.verify_at(&forged, NOW), Err(AuthError::BadSignature));
}

#[test]
fn unknown_issuer() {
    let keys = store();
    let mut c = claims();
    c["iss"] = json!("stranger");
    let token = sign(Algorithm::HS256, &c, SECRET);
    assert_eq!(
        keys.verify_at(&token, NOW),
        Err(AuthError::UnknownKey("stranger".into()))
    );
    let mut c = claims();
    c.as_object_mut().expect("object").remove("iss");
    let token = sign(Algorithm::HS256, &c, SECRET);
    assert_eq!(
        keys.verify_at(&token, NOW),
        Err(AuthError::MissingClaim("iss"))
    );
}

#[test]
fn alg_none_refused() {
    let keys = store();
    let header = json!({"alg": "none", "typ": "JWT"});
    for signature in ["", "AAAA"] {
        let token = format!("{}.{}.{signature}", b64(&header), b64(&claims()));
        let err = keys.verify_at(&token, NOW).expect_err("alg none");
        assert_eq!(err, AuthError::UnsupportedAlgorithm("none".into()));
        assert_eq!(err.code(), ErrorCode::Unauthorized);
    }
}

#[test]
fn other_algorithms_refused() {
    let keys = store();
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(alg, &claims(), SECRET);
        assert!(
            matches!(
                keys.verify_at(&token, NOW),
                Err(AuthError::UnsupportedAlgorithm(_))
            ),
            "{alg:?}"
        );
    }
    // An RS256 header over an HMAC signature (the classic key-confusion attempt).
    let good = sign(Algorithm::HS256, &claims(), SECRET);
    let parts: Vec<&str> = good.split('.').collect();
    let header = json!({"alg": "RS256", "typ": "JWT"});
    let token = format!("{}.{}.{}", b64(&header), parts[1], parts[2]);
    assert_eq!(
        keys.verify_at(&token, NOW),
        Err(AuthError::UnsupportedAlgorithm("RS256".into()))
    );
}

#[test]
fn garbage_is_refused_without_panic() {
    let keys = store();
    let long = "a".repeat(MAX_TOKEN_BYTES + 1);
    let header = b64(&json!({"alg": "HS256"}));
    let not_object = format!("{header}.{}.sig", b64(&json!([1, 2])));
    let inputs = [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "a.b.c.d",
        "€€€.€€€.€€€",
        "eyJ.eyJ.x",
        "====.====.====",
        "\0\0\0",
        long.as_str(),
        not_object.as_str(),
    ];
    for input in inputs {
        let err = keys.verify_at(input, NOW).expect_err("garbage");
        assert_eq!(err.code(), ErrorCode::Unauthorized, "{input:?}: {err}");
    }
    // Pseudo-random byte soup, deterministic.
    let mut state: u32 = 12345;
    for len in 0..200 {
        let s: String = (0..len)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                char::from(b"ab.=-_eyJ0\"{}"[(state >> 16) as usize % 13])
            })
            .collect();
        assert!(keys.verify_at(&s, NOW).is_err(), "{s:?}");
    }
}

#[test]
fn missing_and_invalid_claims() {
    let keys = store();
    for (claim, expected) in [
        ("sub", AuthError::MissingClaim("sub")),
        ("room", AuthError::MissingClaim("room")),
        ("exp", AuthError::MissingClaim("exp")),
    ] {
        let mut c = claims();
        c.as_object_mut().expect("object").remove(claim);
        let token = sign(Algorithm::HS256, &c, SECRET);
        assert_eq!(keys.verify_at(&token, NOW), Err(expected));
    }
    for (claim, value) in [
        ("sub", json!("")),
        ("sub", json!("x".repeat(129))),
        ("sub", json!(42)),
        ("room", json!("")),
        ("exp", json!("tomorrow")),
        ("exp", json!(-5)),
        ("nbf", json!(true)),
        ("name", json!(["x"])),
        ("grants", json!("all")),
        ("grants", json!({"canPublish": "yes"})),
    ] {
        let mut c = claims();
        c[claim] = value.clone();
        let token = sign(Algorithm::HS256, &c, SECRET);
        let err = keys.verify_at(&token, NOW).expect_err("invalid claim");
        assert!(
            matches!(err, AuthError::InvalidClaim { claim: c, .. } if c == claim),
            "{claim}={value}: {err:?}"
        );
    }
}

#[test]
fn float_dates_and_unknown_claims_accepted() {
    let keys = store();
    let mut c = claims();
    c["exp"] = json!((NOW + 60) as f64 + 0.5);
    c["aud"] = json!("whatever");
    c["extra"] = json!({"nested": true});
    let token = sign(Algorithm::HS256, &c, SECRET);
    let verified = keys.verify_at(&token, NOW).expect("verify");
    assert_eq!(verified.expires_at, NOW + 60);
    assert_eq!(verified.name, "");
}

#[test]
fn grants_defaults() {
    let keys = store();
    // No `grants` claim at all.
    let token = sign(Algorithm::HS256, &claims(), SECRET);
    assert_eq!(
        keys.verify_at(&token, NOW).expect("verify").grants,
        Grants::default()
    );
    let defaults = Grants::default();
    assert!(defaults.can_publish && defaults.can_subscribe && defaults.can_publish_data);
    assert!(!defaults.room_admin && !defaults.hidden);
    // Partial grants: the rest take their defaults.
    let mut c = claims();
    c["grants"] = json!({"canSubscribe": false, "hidden": true});
    let token = sign(Algorithm::HS256, &c, SECRET);
    assert_eq!(
        keys.verify_at(&token, NOW).expect("verify").grants,
        Grants {
            can_subscribe: false,
            hidden: true,
            ..Grants::default()
        }
    );
}

#[test]
fn issued_claims_are_camel_case() {
    let keys = store();
    let token = keys
        .issue_at(&TokenRequest::new("alice", "demo"), NOW)
        .expect("issue");
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    let c: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(c["iss"], "key1");
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["room"], "demo");
    assert_eq!(c["iat"], NOW);
    assert_eq!(c["exp"], NOW + 3600);
    assert_eq!(c["grants"]["canPublish"], true);
    assert_eq!(c["grants"]["roomAdmin"], false);
    assert!(c.get("nbf").is_none() && c.get("name").is_none());
}

#[test]
fn check_room() {
    let keys = store();
    let token = keys
        .issue_at(&TokenRequest::new("alice", "demo"), NOW)
        .expect("issue");
    let verified = keys.verify_at(&token, NOW).expect("verify");
    assert!(verified.check_room("demo").is_ok());
    let err = verified.check_room("other").expect_err("wrong room");
    assert_eq!(
        err,
        AuthError::WrongRoom {
            token_room: "demo".into(),
            requested: "other".into()
        }
    );
    assert_eq!(err.code(), ErrorCode::WrongRoom);
}

#[test]
fn empty_store_verifies_nothing() {
    let token = store()
        .issue_at(&TokenRequest::new("alice", "demo"), NOW)
        .expect("issue");
    let empty = KeyStore::new(Vec::new()).expect("empty");
    assert_eq!(empty.verify_at(&token, NOW), Err(AuthError::NoKeys));
}

#[test]
fn verify_uses_system_clock() {
    let keys = store();
    let token = keys
        .issue(&TokenRequest::new("alice", "demo"))
        .expect("issue");
    assert!(keys.verify(&token).is_ok());
}
