//! The key snapshot: everything one verification needs, loaded in one go.
//!
//! Both caches (moka on the origin, isolate memory and the Cache API at the edge) hold
//! snapshots, and the origin ships them to the edge in postcard. So the type avoids what
//! postcard cannot carry: no `skip_serializing_if`, no untyped JSON values. Metadata is
//! kept as JSON text and spliced into responses unparsed.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::api::keys::{IdentityData, RatelimitData};
use crate::credits::{CreditBalance, Refill};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeySnapshot {
    pub key_id: String,
    /// The API the key belongs to (Unkey calls its storage a keyspace; they map 1:1).
    pub api_id: String,
    pub keyspace_id: String,
    pub workspace_id: String,
    /// Set for root keys: the workspace they may act for.
    pub for_workspace_id: Option<String>,
    pub name: Option<String>,
    /// A JSON object, as text.
    pub meta: Option<String>,
    pub enabled: bool,
    pub deleted: bool,
    /// Unix ms after which the key no longer verifies.
    pub expires: Option<i64>,
    /// `None` means unlimited.
    pub credits: Option<SnapshotCredits>,
    /// The key's limits and its identity's, merged (the key's win on a name clash).
    pub ratelimits: Vec<RateLimitRule>,
    /// Direct and via roles, sorted and unique (queries binary-search it).
    pub permissions: Vec<String>,
    pub roles: Vec<String>,
    /// Boxed: most keys have no identity, and the origin holds a million snapshots, so
    /// the 64 bytes it would take inline in every one are worth a pointer.
    pub identity: Option<Box<IdentitySnapshot>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotCredits {
    /// The balance as stored when the snapshot was loaded; the origin's live counter
    /// takes over from there.
    pub balance: CreditBalance,
    pub refill: Option<Refill>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitOwner {
    Key,
    Identity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitRule {
    /// `rl_…`; also the counter's name, since a rule belongs to exactly one key or identity.
    pub id: String,
    pub name: String,
    pub limit: u64,
    pub duration_ms: u64,
    pub auto_apply: bool,
    pub owner: LimitOwner,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySnapshot {
    pub id: String,
    pub external_id: String,
    pub meta: Option<String>,
}

/// Parses stored metadata for a response; text that is not valid JSON is dropped rather
/// than sent (storage only ever writes serialized objects, so this is a corruption guard).
pub fn raw_meta(meta: Option<&str>) -> Option<Box<RawValue>> {
    meta.and_then(|m| RawValue::from_string(m.to_string()).ok())
}

impl KeySnapshot {
    pub fn is_root_key(&self) -> bool {
        self.for_workspace_id.is_some()
    }

    /// Merges key and identity limits; on a name clash the key's limit wins.
    pub fn merge_ratelimits(
        key: Vec<RateLimitRule>,
        identity: Vec<RateLimitRule>,
    ) -> Vec<RateLimitRule> {
        let mut merged = key;
        for rule in identity {
            if !merged.iter().any(|r| r.name == rule.name) {
                merged.push(rule);
            }
        }
        merged
    }

    /// Sorts and dedups permission and role lists, which lookups rely on.
    pub fn normalized(mut self) -> Self {
        self.permissions.sort_unstable();
        self.permissions.dedup();
        self.roles.sort_unstable();
        self.roles.dedup();
        self
    }

    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions
            .binary_search_by(|p| p.as_str().cmp(permission))
            .is_ok()
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires.is_some_and(|e| e <= now_ms)
    }

    pub fn identity_data(&self) -> Option<IdentityData> {
        self.identity.as_ref().map(|i| IdentityData {
            id: i.id.clone(),
            external_id: i.external_id.clone(),
            meta: raw_meta(i.meta.as_deref()),
            ratelimits: None,
        })
    }

    pub fn ratelimit_data(&self, owner: LimitOwner) -> Vec<RatelimitData> {
        self.ratelimits
            .iter()
            .filter(|r| r.owner == owner)
            .map(|r| RatelimitData {
                id: r.id.clone(),
                name: r.name.clone(),
                limit: r.limit,
                duration: r.duration_ms,
                auto_apply: r.auto_apply,
            })
            .collect()
    }
}

/// Snapshots for tests, here and (with the `fixtures` feature) in the crates built on this one.
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures {
    use super::*;

    pub fn key() -> KeySnapshot {
        KeySnapshot {
            key_id: "key_1".into(),
            api_id: "api_1".into(),
            keyspace_id: "ks_1".into(),
            workspace_id: "ws_1".into(),
            for_workspace_id: None,
            name: Some("test".into()),
            meta: Some(r#"{"plan":"pro"}"#.into()),
            enabled: true,
            deleted: false,
            expires: None,
            credits: None,
            ratelimits: Vec::new(),
            permissions: vec!["api.read".into(), "api.write".into()],
            roles: vec!["admin".into()],
            identity: None,
        }
    }

    /// Credits that never refill, `remaining` of them left.
    pub fn credits(remaining: u64) -> Option<SnapshotCredits> {
        Some(SnapshotCredits {
            balance: CreditBalance {
                remaining,
                last_refill_at: 0,
            },
            refill: None,
        })
    }

    pub fn rule(
        id: &str,
        name: &str,
        limit: u64,
        auto_apply: bool,
        owner: LimitOwner,
    ) -> RateLimitRule {
        RateLimitRule {
            id: id.into(),
            name: name.into(),
            limit,
            duration_ms: 60_000,
            auto_apply,
            owner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn merge_prefers_key_limits() {
        let merged = KeySnapshot::merge_ratelimits(
            vec![rule("rl_k", "requests", 10, true, LimitOwner::Key)],
            vec![
                rule("rl_i1", "requests", 99, true, LimitOwner::Identity),
                rule("rl_i2", "tokens", 5, false, LimitOwner::Identity),
            ],
        );
        let ids: Vec<&str> = merged.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["rl_k", "rl_i2"]);
    }

    #[test]
    fn snapshot_round_trips_json_and_postcard() {
        let mut s = key();
        s.ratelimits = vec![rule("rl_1", "r", 1, true, LimitOwner::Key)];
        s.identity = Some(Box::new(IdentitySnapshot {
            id: "id_1".into(),
            external_id: "user".into(),
            meta: None,
        }));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<KeySnapshot>(&json).unwrap(), s);
        let bytes = postcard::to_allocvec(&s).unwrap();
        assert_eq!(postcard::from_bytes::<KeySnapshot>(&bytes).unwrap(), s);
    }

    #[test]
    fn normalized_sorts_for_binary_search() {
        let mut s = key();
        s.permissions = vec!["b".into(), "a".into(), "b".into()];
        let s = s.normalized();
        assert_eq!(s.permissions, ["a", "b"]);
        assert!(s.has_permission("a") && !s.has_permission("c"));
    }
}
