//! The "does not exist" answers, in Unkey's codes and words. Holding a grant only for other
//! ids reads the same as absence, so these also answer for what the caller may not see.

use crate::error::ApiError;

pub fn api() -> ApiError {
    ApiError::not_found(
        "unkey/data/api_not_found",
        "The requested API does not exist or has been deleted.",
    )
}

pub fn key() -> ApiError {
    ApiError::not_found(
        "unkey/data/key_not_found",
        "The requested key does not exist or has been deleted.",
    )
}

pub fn identity() -> ApiError {
    ApiError::not_found(
        "unkey/data/identity_not_found",
        "The requested identity does not exist.",
    )
}

pub fn permission(what: &str) -> ApiError {
    ApiError::not_found(
        "unkey/data/permission_not_found",
        format!("The permission '{what}' does not exist."),
    )
}

pub fn role(what: &str) -> ApiError {
    ApiError::not_found(
        "unkey/data/role_not_found",
        format!("The role '{what}' does not exist."),
    )
}

pub fn ratelimit_override() -> ApiError {
    ApiError::not_found(
        "unkey/data/ratelimit_override_not_found",
        "No override exists for this namespace and identifier.",
    )
}
