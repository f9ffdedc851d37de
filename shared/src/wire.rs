//! The edge-origin wire format: postcard messages behind a two-byte header.
//!
//! Byte 0 is the format version and byte 1 the message kind, so an edge and an origin
//! of different releases refuse each other's messages with a clear error instead of
//! misreading them (postcard itself is not self-describing). Decoding never panics: any
//! byte string is either a message or a [`WireError`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::keys::{VerifyCode, VerifyKeyRequest};
use crate::key::KeyHash;
use crate::snapshot::KeySnapshot;

pub const WIRE_VERSION: u8 = 3;
pub const CONTENT_TYPE: &str = "application/x-keyway-postcard";

pub const SNAPSHOT_PATH: &str = "/internal/v1/snapshot";
pub const VERIFY_PATH: &str = "/internal/v1/verify";
pub const EVENTS_PATH: &str = "/internal/v1/events";
pub const PAIR_PATH: &str = "/internal/v1/snapshot-pair";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message too short")]
    Truncated,
    #[error("wire version {0} is not supported (this build speaks {WIRE_VERSION})")]
    Version(u8),
    #[error("expected message kind {expected}, got {got}")]
    Kind { expected: u8, got: u8 },
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// A message that can cross between edge and origin.
pub trait WireMessage: Serialize + DeserializeOwned {
    const KIND: u8;
}

pub fn encode<M: WireMessage>(msg: &M) -> Vec<u8> {
    let mut out = vec![WIRE_VERSION, M::KIND];
    // Serializing our own types into a Vec cannot fail: no maps with non-string keys,
    // no `skip_serializing_if`, and allocation failure aborts anyway.
    if let Ok(body) = postcard::to_allocvec(msg) {
        out.extend_from_slice(&body);
    }
    out
}

pub fn decode<M: WireMessage>(bytes: &[u8]) -> Result<M, WireError> {
    let [version, kind, body @ ..] = bytes else {
        return Err(WireError::Truncated);
    };
    if *version != WIRE_VERSION {
        return Err(WireError::Version(*version));
    }
    if *kind != M::KIND {
        return Err(WireError::Kind {
            expected: M::KIND,
            got: *kind,
        });
    }
    let (msg, rest) =
        postcard::take_from_bytes::<M>(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(msg)
}

/// Edge → origin: the snapshot for this hash (keys and root keys alike), as read no more
/// than `max_age_ms` ago.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotLookup {
    pub hash: KeyHash,
    pub max_age_ms: u32,
}

impl WireMessage for SnapshotLookup {
    const KIND: u8 = 1;
}

/// Origin → edge. `None` means no such key; the edge caches that too. `age_ms` is how
/// long ago the origin read it from the database: the edge counts its freshness from
/// then, not from when it asked, so the origin's cache and the edge's never add up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFound {
    pub snapshot: Option<KeySnapshot>,
    pub age_ms: u32,
}

impl WireMessage for SnapshotFound {
    const KIND: u8 = 2;
}

/// Edge → origin: a root key and the key it asks about, when neither is cached. One trip
/// instead of two in a row, while an unknown root key still costs no key lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairLookup {
    pub root: KeyHash,
    pub key: KeyHash,
    /// As in [`SnapshotLookup`], for both.
    pub max_age_ms: u32,
}

impl WireMessage for PairLookup {
    const KIND: u8 = 6;
}

/// Origin → edge: the root key's snapshot and, only when that root key authenticates,
/// the key's (`None` here means "not looked up", not "no such key").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairFound {
    pub root: SnapshotFound,
    pub key: Option<SnapshotFound>,
}

impl WireMessage for PairFound {
    const KIND: u8 = 7;
}

/// Edge → origin: a verification that needs the origin's counters. The plaintext key
/// never crosses: `request.key` is empty and `key_hash` identifies the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardedVerify {
    pub root_key_hash: KeyHash,
    pub key_hash: KeyHash,
    pub request: VerifyKeyRequest,
    /// The caller's `Accept`, so the origin picks an error's content type as it would
    /// for the caller itself.
    pub accept: Option<String>,
}

impl WireMessage for ForwardedVerify {
    const KIND: u8 = 3;
}

/// Origin → edge: the public answer, ready to relay as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyAnswer {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: String,
}

impl WireMessage for VerifyAnswer {
    const KIND: u8 = 4;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServedBy {
    Edge,
    Origin,
}

impl ServedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            ServedBy::Edge => "edge",
            ServedBy::Origin => "origin",
        }
    }
}

/// One analytics event: a key verification or a standalone rate-limit decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    Verification(VerificationEvent),
    Ratelimit(RatelimitEvent),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationEvent {
    pub time_ms: i64,
    pub request_id: String,
    pub workspace_id: String,
    pub api_id: String,
    pub key_id: String,
    pub identity_id: Option<String>,
    pub outcome: VerifyCode,
    pub spent_credits: u64,
    pub tags: Vec<String>,
    pub latency_us: u64,
    pub served_by: ServedBy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatelimitEvent {
    pub time_ms: i64,
    pub request_id: String,
    pub workspace_id: String,
    pub namespace: String,
    pub identifier: String,
    pub passed: bool,
    pub latency_us: u64,
    pub served_by: ServedBy,
}

/// Edge → origin: analytics events batched in the isolate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    pub events: Vec<Event>,
}

impl WireMessage for EventBatch {
    const KIND: u8 = 5;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::fixtures;
    use proptest::prelude::*;

    fn event() -> Event {
        Event::Verification(VerificationEvent {
            time_ms: 1,
            request_id: "req_1".into(),
            workspace_id: "ws".into(),
            api_id: "api".into(),
            key_id: "key".into(),
            identity_id: None,
            outcome: VerifyCode::RateLimited,
            spent_credits: 0,
            tags: vec!["a".into()],
            latency_us: 12,
            served_by: ServedBy::Edge,
        })
    }

    #[test]
    fn round_trips() {
        let s = SnapshotFound {
            snapshot: Some(fixtures::key()),
            age_ms: 1234,
        };
        assert_eq!(decode::<SnapshotFound>(&encode(&s)).unwrap(), s);
        let none = SnapshotFound {
            snapshot: None,
            age_ms: 0,
        };
        assert_eq!(decode::<SnapshotFound>(&encode(&none)).unwrap(), none);
        let f = ForwardedVerify {
            root_key_hash: KeyHash::of("root"),
            key_hash: KeyHash::of("k"),
            request: serde_json::from_str(r#"{"key":"","credits":{"cost":3},"ratelimits":[{"name":"x","limit":1,"duration":1000}]}"#).unwrap(),
            accept: Some("application/problem+json;q=0, application/json".into()),
        };
        assert_eq!(decode::<ForwardedVerify>(&encode(&f)).unwrap(), f);
        let b = EventBatch {
            events: vec![event(), event()],
        };
        assert_eq!(decode::<EventBatch>(&encode(&b)).unwrap(), b);
    }

    #[test]
    fn header_is_checked() {
        let bytes = encode(&SnapshotLookup {
            hash: KeyHash::of("k"),
            max_age_ms: 5000,
        });
        assert_eq!(
            decode::<SnapshotFound>(&bytes).unwrap_err(),
            WireError::Kind {
                expected: 2,
                got: 1
            }
        );
        let mut old = bytes.clone();
        old[0] = 0;
        assert_eq!(
            decode::<SnapshotLookup>(&old).unwrap_err(),
            WireError::Version(0)
        );
        assert_eq!(
            decode::<SnapshotLookup>(&[1]).unwrap_err(),
            WireError::Truncated
        );
        let mut long = bytes;
        long.push(0);
        assert!(matches!(
            decode::<SnapshotLookup>(&long),
            Err(WireError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<SnapshotLookup>(&bytes);
            let _ = decode::<SnapshotFound>(&bytes);
            let _ = decode::<ForwardedVerify>(&bytes);
            let _ = decode::<VerifyAnswer>(&bytes);
            let _ = decode::<EventBatch>(&bytes);
        }

        #[test]
        fn garbage_after_a_valid_header_never_panics(kind in 1u8..6, bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut framed = vec![WIRE_VERSION, kind];
            framed.extend(bytes);
            let _ = decode::<SnapshotFound>(&framed);
            let _ = decode::<ForwardedVerify>(&framed);
            let _ = decode::<EventBatch>(&framed);
        }
    }
}
