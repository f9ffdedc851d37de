//! Secrets that must never reach a log: root keys, the edge secret, database URLs.
//!
//! `Debug` and `Display` are redacted, so a secret inside a config or request that is
//! printed with `{:?}` (a panic message, a `tracing` field, a test failure) shows nothing.
//! The value is read only through `expose`, which makes every use greppable.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use subtle::ConstantTimeEq;

/// No `PartialEq` (an `==` would compare in time that depends on where the values
/// differ: use [`Secret::matches`]) and no `Serialize` (nothing should write one out).
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `candidate` is this secret, in time that does not depend on where they
    /// differ, so response timing reveals nothing about the secret. Edge and origin both
    /// check the edge secret with this.
    pub fn matches(&self, candidate: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(candidate.as_bytes()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("root_hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "root_hunter2");
        // Read from settings as a plain string; never written back out (no `Serialize`).
        let read: Secret = serde_json::from_str(r#""root_hunter2""#).unwrap();
        assert!(read.matches("root_hunter2") && !read.matches("root_hunter"));
    }

    #[test]
    fn requests_carrying_keys_do_not_print_them() {
        use crate::api::keys::{CreateKeyResponseData, VerifyKeyRequest, WhoamiRequest};
        use crate::key::PlainKey;
        let verify: VerifyKeyRequest =
            serde_json::from_str(r#"{"key":"sk_SECRETKEY","tags":["a"]}"#).unwrap();
        let whoami: WhoamiRequest = serde_json::from_str(r#"{"key":"sk_SECRETKEY"}"#).unwrap();
        let created = CreateKeyResponseData {
            key_id: "key_1".into(),
            key: PlainKey::new("sk_SECRETKEY"),
        };
        let forwarded = crate::wire::ForwardedVerify {
            root_key_hash: crate::key::KeyHash::of("root"),
            key_hash: crate::key::KeyHash::of("sk_SECRETKEY"),
            request: verify.clone(),
            accept: None,
        };
        let shown = format!("{verify:?} {whoami:?} {created:?} {forwarded:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        // The wire still carries the key itself.
        assert!(
            serde_json::to_string(&created)
                .unwrap()
                .contains("sk_SECRETKEY")
        );
    }

    #[test]
    fn matches_only_itself() {
        let s = Secret::new("edge_secret");
        assert!(s.matches("edge_secret"));
        assert!(!s.matches("edge_secreT"));
        assert!(!s.matches("edge_secret2"));
        assert!(!s.matches(""));
    }
}
