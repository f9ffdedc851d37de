//! The origin's sources of time and randomness, which the core takes as arguments.

use keyway_core::key::{KeyFormatError, MintedKey, mint};
use rand::RngCore;

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    buf
}

/// `<prefix>_<base58 of 12 random bytes>`, matching the spec's `^[a-zA-Z0-9_]+$`.
pub fn new_id(prefix: &str) -> String {
    let body = bs58::encode(random_bytes(12)).into_string();
    format!("{prefix}_{body}")
}

/// Request ids only need to be unique, not secret: a random per-process prefix and a
/// counter, formatted without a random draw per request.
pub fn request_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| rand::rng().next_u64());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    keyway_core::api::request_id(prefix, n)
}

pub fn mint_key(prefix: Option<&str>, byte_length: usize) -> Result<MintedKey, KeyFormatError> {
    mint(prefix, &random_bytes(byte_length))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
