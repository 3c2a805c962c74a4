//! `KeyStore`: the configured API keys, checked once at start-up, looked up by id when a token names one.
//!
//! Owns key validation (secret length, unique non-empty ids). It never prints a secret: its `Debug` shows key ids
//! only. Signing and verifying live in `token.rs`.

use std::fmt;

use super::{ApiKey, AuthError};

/// The shortest accepted API secret, in bytes (HS256 wants a key at least as long as its 256-bit output).
pub const MIN_SECRET_BYTES: usize = 32;

/// The API keys this server accepts tokens from. Cheap to clone.
#[derive(Clone, Default)]
pub struct KeyStore {
    keys: Vec<ApiKey>,
}

impl KeyStore {
    /// Checks and stores `keys`, keeping their order (the first one signs by default).
    ///
    /// Refuses secrets shorter than [`MIN_SECRET_BYTES`], empty key ids and duplicate ids. An empty list is
    /// accepted; such a store verifies and issues nothing ([`AuthError::NoKeys`]).
    pub fn new(keys: Vec<ApiKey>) -> Result<KeyStore, AuthError> {
        for (i, api_key) in keys.iter().enumerate() {
            if api_key.key.trim().is_empty() {
                return Err(AuthError::EmptyKeyId);
            }
            if api_key.secret.len() < MIN_SECRET_BYTES {
                return Err(AuthError::ShortSecret {
                    key: api_key.key.clone(),
                });
            }
            if keys[..i].iter().any(|earlier| earlier.key == api_key.key) {
                return Err(AuthError::DuplicateKey(api_key.key.clone()));
            }
        }
        Ok(KeyStore { keys })
    }

    /// True when no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The default signing key: the first configured one.
    pub fn first(&self) -> Option<&ApiKey> {
        self.keys.first()
    }

    /// The key with id `key`, if configured.
    pub fn get(&self, key: &str) -> Option<&ApiKey> {
        self.keys.iter().find(|api_key| api_key.key == key)
    }

    /// The configured key ids, in order.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.keys.iter().map(|api_key| api_key.key.as_str())
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.key_ids().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, secret: &str) -> ApiKey {
        ApiKey {
            key: id.into(),
            secret: secret.into(),
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_valid_keys_in_order() {
        let store = KeyStore::new(vec![key("a", SECRET), key("b", SECRET)]).expect("valid keys");
        assert_eq!(store.len(), 2);
        assert!(!store.is_empty());
        assert_eq!(store.first().map(|k| k.key.as_str()), Some("a"));
        assert_eq!(store.get("b").map(|k| k.key.as_str()), Some("b"));
        assert!(store.get("c").is_none());
    }

    #[test]
    fn short_secret_refused() {
        let err = KeyStore::new(vec![key("a", &SECRET[..31])]).expect_err("31 bytes");
        assert_eq!(err, AuthError::ShortSecret { key: "a".into() });
    }

    #[test]
    fn empty_and_duplicate_ids_refused() {
        assert_eq!(
            KeyStore::new(vec![key("", SECRET)]).expect_err("empty id"),
            AuthError::EmptyKeyId
        );
        assert_eq!(
            KeyStore::new(vec![key("a", SECRET), key("a", SECRET)]).expect_err("duplicate"),
            AuthError::DuplicateKey("a".into())
        );
    }

    #[test]
    fn empty_store_is_allowed() {
        let store = KeyStore::new(Vec::new()).expect("empty");
        assert!(store.is_empty());
        assert!(store.first().is_none());
    }

    #[test]
    fn debug_hides_secrets() {
        let store = KeyStore::new(vec![key("visible-id", SECRET)]).expect("valid");
        let shown = format!("{store:?}");
        assert!(shown.contains("visible-id"), "{shown}");
        assert!(!shown.contains(SECRET), "{shown}");
    }
}
