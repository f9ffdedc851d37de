//! The public HTTP API's bodies, wire-compatible with Unkey's v2 API.
//!
//! Requests reject unknown fields (the spec says `additionalProperties: false`) and carry
//! no `skip_serializing_if`, so the same types also travel in postcard between edge and
//! origin. Responses omit absent optional fields instead of sending `null`: the official
//! SDKs validate strictly and a stray `null` fails them.

pub mod analytics;
pub mod apis;
pub mod identities;
pub mod int64;
pub mod keys;
pub mod permissions;
pub mod ratelimit;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `meta.requestId`: `req_` and 32 hex digits, the same at the edge and the origin so a
/// log search needs one pattern. Each side supplies its own 128 bits.
pub fn request_id(high: u64, low: u64) -> String {
    format!("req_{high:016x}{low:016x}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub request_id: String,
}

/// `{meta:{requestId}, data}`, the shape of every success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub meta: Meta,
    pub data: T,
}

/// A list response: the envelope plus a cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListEnvelope<T> {
    pub meta: Meta,
    pub data: Vec<T>,
    pub pagination: Pagination,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub cursor: Option<String>,
    pub has_more: bool,
}

/// `data: {}` for operations that return nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A field of an update: absent leaves it, `null` clears it, a value sets it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Patch<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }

    pub fn as_option(&self) -> Option<Option<&T>> {
        match self {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(v) => Some(Some(v)),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only reached when the field is present (absent fields use `Default`).
        Option::<T>::deserialize(d).map(|v| v.map_or(Patch::Null, Patch::Value))
    }
}

impl<T: Serialize> Serialize for Patch<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Patch::Value(v) => s.serialize_some(v),
            Patch::Absent | Patch::Null => s.serialize_none(),
        }
    }
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_have_one_shape() {
        for (h, l) in [(0, 0), (1, u64::MAX), (u64::MAX, 7)] {
            let id = request_id(h, l);
            let hex = id.strip_prefix("req_").unwrap();
            assert_eq!(hex.len(), 32, "{id}");
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
        assert_ne!(request_id(1, 2), request_id(2, 1));
    }

    #[derive(Debug, Deserialize, Serialize)]
    struct Update {
        #[serde(default, skip_serializing_if = "Patch::is_absent")]
        name: Patch<String>,
    }

    #[test]
    fn patch_tri_state() {
        let a: Update = serde_json::from_str("{}").unwrap();
        let n: Update = serde_json::from_str(r#"{"name":null}"#).unwrap();
        let v: Update = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert_eq!(a.name, Patch::Absent);
        assert_eq!(n.name, Patch::Null);
        assert_eq!(v.name, Patch::Value("x".into()));
        assert_eq!(serde_json::to_string(&a).unwrap(), "{}");
        assert_eq!(serde_json::to_string(&n).unwrap(), r#"{"name":null}"#);
    }

    #[test]
    fn pagination_omits_cursor() {
        let p = Pagination {
            cursor: None,
            has_more: false,
        };
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"hasMore":false}"#);
    }
}
