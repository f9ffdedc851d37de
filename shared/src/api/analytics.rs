//! Bodies of the `analytics.*` routes.

use serde::{Deserialize, Serialize};

/// `analytics.getVerifications` and `analytics.getRatelimits`: one SQL `SELECT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryRequest {
    pub query: String,
}
