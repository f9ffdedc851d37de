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

/// A request id, held as its counter and rendered (`req_` and 32 hex digits) where it
/// is shown or written. Ids only need to be unique, not secret: a random per-process
/// prefix and a counter, with no random draw per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(u64);

/// `req_` and 32 hex digits.
const REQUEST_ID_LEN: usize = 36;

impl RequestId {
    pub fn next() -> RequestId {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        RequestId(COUNTER.fetch_add(1, Ordering::Relaxed))
    }

    fn prefix() -> u64 {
        use std::sync::OnceLock;
        static PREFIX: OnceLock<u64> = OnceLock::new();
        *PREFIX.get_or_init(|| rand::rng().next_u64())
    }

    pub fn render(self) -> String {
        keyway_core::api::request_id(Self::prefix(), self.0)
    }

    /// Renders into `buf`, allocating nothing: the event writer binds one per row.
    pub fn render_in(self, buf: &mut [u8; REQUEST_ID_LEN]) -> &str {
        use std::io::Write;
        let mut out = &mut buf[..];
        // 36 bytes always fit the 36-byte buffer, and hex digits are ASCII.
        let _ = write!(out, "req_{:016x}{:016x}", Self::prefix(), self.0);
        std::str::from_utf8(buf).unwrap_or_default()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.render_in(&mut [0; REQUEST_ID_LEN]))
    }
}

pub fn request_id() -> String {
    RequestId::next().render()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_id_renders_the_same_every_way() {
        let id = RequestId::next();
        let s = id.render();
        assert_eq!(s.len(), REQUEST_ID_LEN);
        assert!(s.starts_with("req_"));
        assert!(s[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id.render_in(&mut [0; REQUEST_ID_LEN]), s);
        assert_eq!(id.to_string(), s);
        assert_ne!(RequestId::next().render(), s);
    }
}
