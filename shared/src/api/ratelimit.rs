//! Bodies of the `ratelimit.*` routes.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitRequest {
    pub namespace: String,
    pub identifier: String,
    #[serde(deserialize_with = "super::int64::counter")]
    pub limit: u64,
    #[serde(deserialize_with = "super::int64::u64")]
    pub duration: u64,
    #[serde(default, deserialize_with = "super::int64::opt_counter")]
    pub cost: Option<u64>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitResponseData {
    pub limit: u64,
    pub remaining: u64,
    pub reset: i64,
    pub success: bool,
    pub override_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiLimitResponseData {
    pub passed: bool,
    pub limits: Vec<MultiLimitCheck>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiLimitCheck {
    pub namespace: String,
    pub identifier: String,
    pub limit: u64,
    pub remaining: u64,
    pub reset: i64,
    pub passed: bool,
    pub override_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetOverrideRequest {
    pub namespace: String,
    pub identifier: String,
    #[serde(deserialize_with = "super::int64::counter")]
    pub limit: u64,
    #[serde(deserialize_with = "super::int64::u64")]
    pub duration: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetOverrideResponseData {
    pub override_id: String,
}

/// getOverride and deleteOverride.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OverrideRef {
    pub namespace: String,
    pub identifier: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListOverridesRequest {
    pub namespace: String,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default, deserialize_with = "super::int64::opt")]
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideData {
    pub override_id: String,
    pub duration: u64,
    pub identifier: String,
    pub limit: u64,
}
