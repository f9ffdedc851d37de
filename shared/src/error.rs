//! The public API's errors, in one place, for both the edge and the origin.
//!
//! Each constructor fixes the status, title and documentation URL, so the same mistake
//! gets the same 4xx whichever deployment model answers it. Rendering to an HTTP
//! response is the adapters' job; the body shape is defined here.

use serde::{Deserialize, Serialize};

use crate::api::Meta;

const DOCS: &str = "https://unkey.com/docs/errors";

/// One problem with a request body, as listed in a 400's `errors`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationIssue {
    pub location: String,
    pub message: String,
    pub fix: Option<String>,
}

impl ValidationIssue {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            message: message.into(),
            fix: None,
        }
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub title: &'static str,
    /// Path below the documentation root, e.g. `unkey/data/key_not_found`.
    pub kind: &'static str,
    pub detail: String,
    pub errors: Vec<ValidationIssue>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl std::error::Error for ApiError {}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    pub title: String,
    pub detail: String,
    pub status: u16,
    #[serde(rename = "type")]
    pub kind: String,
    pub errors: Option<Vec<ValidationIssue>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub meta: Meta,
    pub error: ErrorDetail,
}

impl ApiError {
    fn new(
        status: u16,
        title: &'static str,
        kind: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            title,
            kind,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn invalid_input(detail: impl Into<String>, errors: Vec<ValidationIssue>) -> Self {
        Self {
            errors,
            ..Self::new(
                400,
                "Bad Request",
                "unkey/application/invalid_input",
                detail,
            )
        }
    }

    pub fn permissions_query_syntax(error: &crate::permission::QueryError) -> Self {
        let issue =
            ValidationIssue::new("body.permissions", error.to_string()).with_fix(error.fix());
        Self {
            errors: vec![issue],
            ..Self::new(
                400,
                "Bad Request",
                "user/bad_request/permissions_query_syntax_error",
                format!("Syntax error in permission query: {error}."),
            )
        }
    }

    /// An analytics query we do not run: not SQL, not a SELECT, or something not allowed.
    pub fn invalid_query(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(400, "Bad Request", kind, detail)
    }

    /// An analytics query over a limit: rows, bytes or time.
    pub fn query_limit(detail: impl Into<String>) -> Self {
        Self::new(
            422,
            "Unprocessable Entity",
            "user/unprocessable_entity/query_resource_limit_exceeded",
            detail,
        )
    }

    pub fn missing_auth() -> Self {
        Self::new(
            400,
            "Bad Request",
            "unkey/authentication/missing",
            "Authorization header is missing, it must be 'Authorization: Bearer <root key>'.",
        )
    }

    pub fn malformed_auth() -> Self {
        Self::new(
            400,
            "Bad Request",
            "unkey/authentication/malformed",
            "Authorization header is malformed, it must be 'Authorization: Bearer <root key>'.",
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            401,
            "Unauthorized",
            "unkey/authentication/key_not_found",
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            403,
            "Forbidden",
            "unkey/authorization/insufficient_permissions",
            detail,
        )
    }

    /// `kind` names the missing thing's slug, e.g. `key_not_found`.
    pub fn not_found(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(404, "Not Found", kind, detail)
    }

    pub fn conflict(kind: &'static str, detail: impl Into<String>) -> Self {
        Self::new(409, "Conflict", kind, detail)
    }

    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(
            412,
            "Precondition Failed",
            "unkey/application/precondition_failed",
            detail,
        )
    }

    pub fn payload_too_large(limit_bytes: usize) -> Self {
        Self::new(
            413,
            "Request Entity Too Large",
            "user/bad_request/request_body_too_large",
            format!("The request body is larger than the limit of {limit_bytes} bytes."),
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "Method Not Allowed",
            "user/bad_request/method_not_allowed",
            "This route does not accept that method.",
        )
    }

    pub fn route_not_found(path: &str) -> Self {
        Self::new(
            404,
            "Not Found",
            "unkey/application/route_not_found",
            format!("No route matches '{path}'."),
        )
    }

    /// Over a quota that is not a key's rate limit (analytics queries running at once).
    pub fn too_many_requests(detail: impl Into<String>) -> Self {
        Self::new(
            429,
            "Too Many Requests",
            "user/too_many_requests/query_quota_exceeded",
            detail,
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            503,
            "Service Unavailable",
            "unkey/application/service_unavailable",
            detail,
        )
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            500,
            "Internal Server Error",
            "unkey/application/unexpected_error",
            detail,
        )
    }

    pub fn type_url(&self) -> String {
        format!("{DOCS}/{}", self.kind)
    }

    /// Unkey answers 429s as `application/problem+json` and every other error as
    /// `application/json`. We send Unkey's type whenever the client accepts it (no
    /// `Accept`, `*/*` and `application/*` accept both), and the other only when the
    /// client accepts that one alone; the body is the same either way.
    pub fn content_type(&self, accept: Option<&str>) -> &'static str {
        let unkey_sends = if self.status == 429 {
            PROBLEM_JSON
        } else {
            JSON
        };
        let other = if self.status == 429 {
            JSON
        } else {
            PROBLEM_JSON
        };
        if !accepts(accept, unkey_sends) && accepts(accept, other) {
            other
        } else {
            unkey_sends
        }
    }

    pub fn to_response(&self, request_id: &str) -> ErrorResponse {
        ErrorResponse {
            meta: Meta {
                request_id: request_id.to_string(),
            },
            error: ErrorDetail {
                title: self.title.to_string(),
                detail: self.detail.clone(),
                status: self.status,
                kind: self.type_url(),
                // The spec requires `errors` on every 400 and allows it nowhere else.
                errors: (self.status == 400).then(|| self.errors.clone()),
            },
        }
    }

    pub fn to_json(&self, request_id: &str) -> Vec<u8> {
        serde_json::to_vec(&self.to_response(request_id)).unwrap_or_default()
    }
}

const PROBLEM_JSON: &str = "application/problem+json";
const JSON: &str = "application/json";

/// Whether an `Accept` header admits `media` (`type/subtype`): by its exact name, its
/// type's wildcard or `*/*`, with the most specific match's `q` deciding (`q=0` refuses).
/// No header accepts everything.
pub fn accepts(accept: Option<&str>, media: &str) -> bool {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return true;
    };
    let kind = media.split('/').next().unwrap_or(media);
    // (specificity, q) of the best-matching range.
    let mut best: Option<(u8, bool)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let specificity = if name == media {
            3
        } else if name.strip_suffix("/*") == Some(kind) {
            2
        } else if name == "*/*" {
            1
        } else {
            continue;
        };
        let allowed = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .all(|q| q.trim().parse::<f32>().map_or(true, |q| q > 0.0));
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, allowed));
        }
    }
    best.is_some_and(|(_, allowed)| allowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bad_request_shape() {
        let e = ApiError::invalid_input(
            "body is invalid",
            vec![ValidationIssue::new("body.apiId", "is required")],
        );
        let v = serde_json::to_value(e.to_response("req_1")).unwrap();
        assert_eq!(
            v,
            json!({"meta":{"requestId":"req_1"},"error":{"title":"Bad Request","detail":"body is invalid","status":400,
              "type":"https://unkey.com/docs/errors/unkey/application/invalid_input",
              "errors":[{"location":"body.apiId","message":"is required"}]}})
        );
    }

    #[test]
    fn non_400_omits_errors() {
        let v = serde_json::to_value(ApiError::forbidden("no").to_response("r")).unwrap();
        assert!(v["error"].get("errors").is_none());
        assert_eq!(v["error"]["status"], 403);
    }

    #[test]
    fn problem_json_negotiation() {
        let e = ApiError::unauthorized("x");
        assert_eq!(e.content_type(None), "application/json");
        assert_eq!(
            e.content_type(Some("application/problem+json")),
            "application/problem+json"
        );
        let mut limited = ApiError::unauthorized("x");
        limited.status = 429;
        assert_eq!(limited.content_type(None), "application/problem+json");
        // Wildcards accept both, so each error goes out as Unkey sends it.
        for wildcard in ["*/*", "application/*", "application/*;q=0.5, text/html"] {
            assert_eq!(e.content_type(Some(wildcard)), "application/json");
            assert_eq!(
                limited.content_type(Some(wildcard)),
                "application/problem+json"
            );
        }
        // A client that takes only plain JSON gets plain JSON, even for a 429.
        assert_eq!(
            limited.content_type(Some("application/json")),
            "application/json"
        );
        assert_eq!(
            limited.content_type(Some("*/*, application/problem+json;q=0")),
            "application/json"
        );
        // Naming both keeps Unkey's choice.
        assert_eq!(
            e.content_type(Some("application/problem+json, application/json")),
            "application/json"
        );
    }

    #[test]
    fn accept_ranges() {
        assert!(accepts(None, "application/json"));
        assert!(accepts(Some(""), "application/json"));
        assert!(accepts(Some("*/*"), "application/json"));
        assert!(accepts(Some("Application/*"), "application/json"));
        assert!(!accepts(Some("text/*"), "application/json"));
        assert!(!accepts(Some("application/json;q=0"), "application/json"));
        assert!(accepts(
            Some("*/*;q=0, application/json"),
            "application/json"
        ));
        // The most specific range decides, whatever its order.
        assert!(!accepts(
            Some("application/json; q=0.0, */*"),
            "application/json"
        ));
        assert!(accepts(
            Some("application/json;q=0.1, */*;q=0"),
            "application/json"
        ));
    }
}
