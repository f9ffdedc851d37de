//! Bodies of the `identities.*` routes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::keys::RatelimitRequest;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateIdentityRequest {
    pub external_id: String,
    #[serde(default)]
    pub meta: Option<Map<String, Value>>,
    #[serde(default)]
    pub ratelimits: Option<Vec<RatelimitRequest>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateIdentityResponseData {
    pub identity_id: String,
}

/// getIdentity and deleteIdentity: `identity` is an identity id or an external id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityRef {
    pub identity: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateIdentityRequest {
    pub identity: String,
    #[serde(default)]
    pub meta: Option<Map<String, Value>>,
    #[serde(default)]
    pub ratelimits: Option<Vec<RatelimitRequest>>,
}

/// listIdentities, listPermissions and listRoles share this body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListRequest {
    #[serde(default, deserialize_with = "super::int64::opt")]
    pub limit: Option<u64>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub search: Option<String>,
}
