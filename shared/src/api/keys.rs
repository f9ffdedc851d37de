//! Bodies of the `keys.*` routes.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{Patch, is_false};
use crate::credits::RefillInterval;
use crate::key::PlainKey;

/// `POST /v2/keys.verifyKey`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyKeyRequest {
    pub key: PlainKey,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub permissions: Option<String>,
    #[serde(default)]
    pub credits: Option<VerifyCredits>,
    #[serde(default)]
    pub ratelimits: Option<Vec<VerifyRatelimit>>,
    #[serde(default)]
    pub migration_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyCredits {
    #[serde(deserialize_with = "super::int64::counter")]
    pub cost: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRatelimit {
    pub name: String,
    #[serde(default, deserialize_with = "super::int64::opt_counter")]
    pub cost: Option<u64>,
    #[serde(default, deserialize_with = "super::int64::opt_counter")]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "super::int64::opt")]
    pub duration: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerifyCode {
    Valid,
    NotFound,
    Forbidden,
    InsufficientPermissions,
    UsageExceeded,
    RateLimited,
    Disabled,
    Expired,
}

impl VerifyCode {
    pub const ALL: [VerifyCode; 8] = [
        VerifyCode::Valid,
        VerifyCode::NotFound,
        VerifyCode::Forbidden,
        VerifyCode::InsufficientPermissions,
        VerifyCode::UsageExceeded,
        VerifyCode::RateLimited,
        VerifyCode::Disabled,
        VerifyCode::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VerifyCode::Valid => "VALID",
            VerifyCode::NotFound => "NOT_FOUND",
            VerifyCode::Forbidden => "FORBIDDEN",
            VerifyCode::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            VerifyCode::UsageExceeded => "USAGE_EXCEEDED",
            VerifyCode::RateLimited => "RATE_LIMITED",
            VerifyCode::Disabled => "DISABLED",
            VerifyCode::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<VerifyCode> {
        VerifyCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyKeyResponseData {
    pub valid: bool,
    pub code: VerifyCode,
    pub key_id: Option<String>,
    pub name: Option<String>,
    pub meta: Option<Box<RawValue>>,
    pub expires: Option<i64>,
    pub credits: Option<u64>,
    pub enabled: Option<bool>,
    pub permissions: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
    pub identity: Option<IdentityData>,
    pub ratelimits: Option<Vec<VerifyRatelimitData>>,
}

impl VerifyKeyResponseData {
    pub fn bare(code: VerifyCode) -> Self {
        Self {
            valid: code == VerifyCode::Valid,
            code,
            key_id: None,
            name: None,
            meta: None,
            expires: None,
            credits: None,
            enabled: None,
            permissions: None,
            roles: None,
            identity: None,
            ratelimits: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRatelimitData {
    pub exceeded: bool,
    pub id: String,
    pub name: String,
    pub limit: u64,
    pub duration: u64,
    pub reset: i64,
    pub remaining: u64,
    pub auto_apply: bool,
}

/// An identity as responses show it.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityData {
    pub id: String,
    pub external_id: String,
    pub meta: Option<Box<RawValue>>,
    pub ratelimits: Option<Vec<RatelimitData>>,
}

/// A configured rate limit as responses show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RatelimitData {
    pub id: String,
    pub name: String,
    pub limit: u64,
    pub duration: u64,
    pub auto_apply: bool,
}

/// A rate limit as createKey, updateKey and identities take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RatelimitRequest {
    pub name: String,
    #[serde(deserialize_with = "super::int64::counter")]
    pub limit: u64,
    #[serde(deserialize_with = "super::int64::u64")]
    pub duration: u64,
    #[serde(default)]
    pub auto_apply: bool,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefillData {
    pub interval: RefillInterval,
    #[serde(deserialize_with = "super::int64::counter")]
    pub amount: u64,
    pub refill_day: Option<u8>,
}

/// Credits as createKey takes them and getKey shows them: `remaining: null` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyCreditsData {
    #[serde(default, deserialize_with = "super::int64::opt_counter")]
    pub remaining: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub refill: Option<RefillData>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKeyRequest {
    pub api_id: String,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "super::int64::opt")]
    pub byte_length: Option<u64>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub meta: Option<Map<String, Value>>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    #[serde(default)]
    pub expires: Option<i64>,
    #[serde(default)]
    pub credits: Option<KeyCreditsData>,
    #[serde(default)]
    pub ratelimits: Option<Vec<RatelimitRequest>>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub recoverable: Option<bool>,
}

/// keys.migrateKeys: keys whose plaintext we never see, imported by their hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrateKeysRequest {
    /// How to read each `hash`: see `key::ImportedHash::KNOWN`.
    pub migration_id: String,
    pub api_id: String,
    pub keys: Vec<MigrateKeyData>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrateKeyData {
    pub hash: String,
    /// Not in Unkey's schema: what dashboards show of the key (prefix and first
    /// characters), which only the old system knows. Empty when absent.
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub meta: Option<Map<String, Value>>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    #[serde(default)]
    pub expires: Option<i64>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub credits: Option<KeyCreditsData>,
    #[serde(default)]
    pub ratelimits: Option<Vec<RatelimitRequest>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateKeysResponseData {
    pub migrated: Vec<MigratedKey>,
    /// The hashes, as sent, that were not imported because the key already exists.
    pub failed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigratedKey {
    pub hash: String,
    pub key_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateKeyResponseData {
    pub key_id: String,
    pub key: PlainKey,
}

/// getKey, whoami and listKeys items.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyData {
    pub key_id: String,
    pub start: String,
    pub enabled: bool,
    pub name: Option<String>,
    pub meta: Option<Box<RawValue>>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    pub expires: Option<i64>,
    pub permissions: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
    pub credits: Option<KeyCreditsData>,
    pub identity: Option<IdentityData>,
    pub ratelimits: Option<Vec<RatelimitData>>,
    /// A recoverable key's plaintext, only for `decrypt: true`; redacted in `Debug`.
    pub plaintext: Option<PlainKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetKeyRequest {
    pub key_id: String,
    #[serde(default)]
    pub decrypt: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WhoamiRequest {
    pub key: PlainKey,
    /// Not in Unkey's schema for whoami (getKey has it): returns the stored plaintext of
    /// a recoverable key, under the same rules as getKey.
    #[serde(default)]
    pub decrypt: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteKeyRequest {
    pub key_id: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub permanent: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateKeyRequest {
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub name: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub external_id: Patch<String>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub meta: Patch<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub expires: Patch<i64>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub credits: Patch<UpdateCreditsData>,
    #[serde(default)]
    pub ratelimits: Option<Vec<RatelimitRequest>>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateCreditsData {
    #[serde(
        default,
        skip_serializing_if = "Patch::is_absent",
        deserialize_with = "super::int64::patch_counter"
    )]
    pub remaining: Patch<u64>,
    #[serde(default, skip_serializing_if = "Patch::is_absent")]
    pub refill: Patch<RefillData>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CreditOperation {
    Set,
    Increment,
    Decrement,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateCreditsRequest {
    pub key_id: String,
    #[serde(default, deserialize_with = "super::int64::opt_counter")]
    pub value: Option<u64>,
    pub operation: CreditOperation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RerollKeyRequest {
    pub key_id: String,
    pub expiration: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyPermissionsRequest {
    pub key_id: String,
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyRolesRequest {
    pub key_id: String,
    pub roles: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn verify_response_omits_absent_fields() {
        let d = VerifyKeyResponseData::bare(VerifyCode::NotFound);
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"valid": false, "code": "NOT_FOUND"})
        );
        let mut d = VerifyKeyResponseData::bare(VerifyCode::Valid);
        d.key_id = Some("key_1".into());
        d.meta = Some(RawValue::from_string(r#"{"a":1}"#.into()).unwrap());
        d.credits = Some(0);
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"valid": true, "code": "VALID", "keyId": "key_1", "meta": {"a": 1}, "credits": 0})
        );
    }

    #[test]
    fn verify_request_rejects_unknown_fields_and_wrong_types() {
        assert!(serde_json::from_str::<VerifyKeyRequest>(r#"{"key":"k","nope":1}"#).is_err());
        assert!(serde_json::from_str::<VerifyKeyRequest>(r#"{"key":5}"#).is_err());
        assert!(serde_json::from_str::<VerifyKeyRequest>(r#"{}"#).is_err());
        let r: VerifyKeyRequest = serde_json::from_str(
            r#"{"key":"k","credits":{"cost":2},"ratelimits":[{"name":"req"}],"tags":["a"]}"#,
        )
        .unwrap();
        assert_eq!(r.credits, Some(VerifyCredits { cost: 2 }));
        assert_eq!(r.ratelimits.unwrap()[0].cost, None);
    }

    #[test]
    fn credits_remaining_null_is_kept() {
        let c = KeyCreditsData {
            remaining: None,
            refill: None,
        };
        assert_eq!(serde_json::to_value(c).unwrap(), json!({"remaining": null}));
        let c = KeyCreditsData {
            remaining: Some(5),
            refill: Some(RefillData {
                interval: RefillInterval::Monthly,
                amount: 10,
                refill_day: Some(3),
            }),
        };
        assert_eq!(
            serde_json::to_value(c).unwrap(),
            json!({"remaining": 5, "refill": {"interval": "monthly", "amount": 10, "refillDay": 3}})
        );
    }

    #[test]
    fn update_key_tri_state() {
        let u: UpdateKeyRequest =
            serde_json::from_str(r#"{"keyId":"key_1","name":null,"credits":{"remaining":null}}"#)
                .unwrap();
        assert_eq!(u.name, Patch::Null);
        assert_eq!(u.expires, Patch::Absent);
        match u.credits {
            Patch::Value(c) => assert_eq!(c.remaining, Patch::Null),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn key_data_shape() {
        let k = KeyData {
            key_id: "key_1".into(),
            start: "sk_abcd".into(),
            enabled: true,
            name: None,
            meta: None,
            created_at: 1,
            updated_at: None,
            expires: None,
            permissions: None,
            roles: None,
            credits: None,
            identity: None,
            plaintext: None,
            ratelimits: None,
        };
        assert_eq!(
            serde_json::to_value(&k).unwrap(),
            json!({"keyId":"key_1","start":"sk_abcd","enabled":true,"createdAt":1})
        );
    }
}
