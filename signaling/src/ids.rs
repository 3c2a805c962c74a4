//! Identifiers: process-unique numeric keys for the media core, random public sids for the protocol.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::distr::Alphanumeric;
use rand::Rng;

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// A process-unique number (room, participant and track keys share one sequence).
pub fn next_key() -> u64 {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}

/// A random public id with a type prefix, e.g. `PA_3kT9xQ2mVb7Z`.
pub fn sid(prefix: &str) -> String {
    format!("{prefix}_{}", random_string(12))
}

/// A random alphanumeric string (for sids and resume tokens).
pub fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Compare secrets without an early exit on the first differing byte.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_prefixed_and_distinct() {
        let a = sid("PA");
        assert!(a.starts_with("PA_") && a.len() == 15);
        assert_ne!(a, sid("PA"));
        assert_ne!(next_key(), next_key());
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
