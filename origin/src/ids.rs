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

pub fn request_id() -> String {
    new_id("req")
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
