//! Route handlers, one module per API group. Each parses and validates first, then
//! authenticates, then acts: a malformed body is a 400 even without credentials.

pub mod apis;
pub mod identities;
pub mod internal;
pub mod keys;
pub mod ops;
pub mod permissions;
pub mod ratelimit;
pub mod verify;

use keyway_core::auth::RootScope;
use keyway_core::error::ApiError;

use crate::http::AppError;

/// Authorizes `action` on `resource` `id`. Holding the action for other ids only reads as
/// "not found" (existence is not revealed); not holding it at all is a 403.
pub fn authorize(
    caller: &RootScope,
    resource: &str,
    id: Option<&str>,
    action: &str,
    not_found: impl FnOnce() -> ApiError,
) -> Result<(), AppError> {
    if caller.allows(resource, id, action) {
        Ok(())
    } else if caller.allows_any(resource, action) {
        Err(AppError(not_found()))
    } else {
        Err(AppError(
            caller
                .require(resource, id, action)
                .err()
                .unwrap_or_else(|| ApiError::forbidden("forbidden")),
        ))
    }
}

/// Requires the action on every id (`*`), for operations that are not scoped to one.
pub fn authorize_all(caller: &RootScope, resource: &str, action: &str) -> Result<(), AppError> {
    caller.require(resource, None, action).map_err(AppError)
}

pub fn page_limit(limit: Option<u64>, default: u64) -> Result<u32, AppError> {
    let l = limit.unwrap_or(default);
    if (1..=100).contains(&l) {
        Ok(u32::try_from(l).unwrap_or(100))
    } else {
        Err(AppError(ApiError::invalid_input(
            "The request body is invalid.",
            vec![keyway_core::error::ValidationIssue::new(
                "body.limit",
                format!("must be between 1 and 100, got {l}"),
            )],
        )))
    }
}

/// Fetches one more than the page and turns the extra into a cursor.
pub fn paginate<T>(
    mut rows: Vec<T>,
    limit: u32,
    id: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    if rows.len() > limit {
        rows.truncate(limit);
        let cursor = rows.last().map(&id);
        (rows, cursor)
    } else {
        (rows, None)
    }
}

pub fn api_not_found() -> ApiError {
    ApiError::not_found(
        "unkey/data/api_not_found",
        "The requested API does not exist or has been deleted.",
    )
}

pub fn key_not_found() -> ApiError {
    ApiError::not_found(
        "unkey/data/key_not_found",
        "The requested key does not exist or has been deleted.",
    )
}

pub fn identity_not_found() -> ApiError {
    ApiError::not_found(
        "unkey/data/identity_not_found",
        "The requested identity does not exist.",
    )
}

pub fn permission_not_found(what: &str) -> ApiError {
    ApiError::not_found(
        "unkey/data/permission_not_found",
        format!("The permission '{what}' does not exist."),
    )
}

pub fn role_not_found(what: &str) -> ApiError {
    ApiError::not_found(
        "unkey/data/role_not_found",
        format!("The role '{what}' does not exist."),
    )
}

pub fn permission_data(
    p: crate::store::PermissionRow,
) -> keyway_core::api::permissions::PermissionData {
    keyway_core::api::permissions::PermissionData {
        id: p.id,
        name: p.name,
        slug: p.slug,
        description: p.description,
    }
}

pub fn meta_text(meta: &Option<serde_json::Map<String, serde_json::Value>>) -> Option<String> {
    meta.as_ref()
        .map(|m| serde_json::Value::Object(m.clone()).to_string())
}
