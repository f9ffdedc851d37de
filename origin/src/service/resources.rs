//! Finding what a route acts on in the caller's workspace (a key, an API, an identity, a
//! permission, a role, an override), or Unkey's "not found" for it.
//! Authorization comes first where the id is all it needs, so a caller without the grant
//! learns nothing about what exists.

use keyway_core::auth::Action;
use keyway_core::key::KeyHash;
use keyway_core::snapshot::KeySnapshot;

use super::access::authorize;
use crate::error::AppError;
use crate::service::Caller;
use crate::state::AppState;
use crate::store::{ApiRow, IdentityRow, KeyRow, OverrideRow, PermissionRow, RoleRow};
use keyway_core::not_found;

/// A live key of the caller's workspace that the caller may `action` (on the key's API).
pub async fn key_for(
    caller: &Caller<'_>,
    key_id: &str,
    action: Action,
) -> Result<KeyRow, AppError> {
    let row = caller
        .store()
        .find_key(caller.workspace_id(), key_id)
        .await?
        .ok_or_else(|| AppError::Client(not_found::key()))?;
    authorize(caller, action, row.api_id.as_deref(), not_found::key)?;
    Ok(row)
}

/// The current snapshot of a key `key_for` found, read from the database (not the cache:
/// the caller is about to change it).
pub async fn snapshot_for(state: &AppState, row: &KeyRow) -> Result<KeySnapshot, AppError> {
    state
        .store
        .load_snapshot(&KeyHash::from_stored(row.hash.clone()))
        .await?
        .ok_or_else(|| AppError::Client(not_found::key()))
}

/// A live API of the caller's workspace that the caller may `action`.
pub async fn api_for(
    caller: &Caller<'_>,
    api_id: &str,
    action: Action,
) -> Result<ApiRow, AppError> {
    authorize(caller, action, Some(api_id), not_found::api)?;
    caller
        .store()
        .find_api(caller.workspace_id(), api_id)
        .await?
        .ok_or_else(|| AppError::Client(not_found::api()))
}

/// An identity of the caller's workspace, by id or external id.
pub async fn identity(caller: &Caller<'_>, identity: &str) -> Result<IdentityRow, AppError> {
    let found = caller
        .store()
        .find_identity(caller.workspace_id(), identity)
        .await?;
    found.ok_or_else(|| AppError::Client(not_found::identity()))
}

/// A permission of the caller's workspace, by id or slug.
pub async fn permission(caller: &Caller<'_>, permission: &str) -> Result<PermissionRow, AppError> {
    let found = caller
        .store()
        .find_permission(caller.workspace_id(), permission)
        .await?;
    found.ok_or_else(|| AppError::Client(not_found::permission(permission)))
}

/// A role of the caller's workspace, by id or name.
pub async fn role(caller: &Caller<'_>, role: &str) -> Result<RoleRow, AppError> {
    let found = caller
        .store()
        .find_role(caller.workspace_id(), role)
        .await?;
    found.ok_or_else(|| AppError::Client(not_found::role(role)))
}

/// The override of one identifier in a namespace of the caller's workspace.
pub async fn ratelimit_override(
    caller: &Caller<'_>,
    namespace: &str,
    identifier: &str,
) -> Result<OverrideRow, AppError> {
    let found = caller
        .store()
        .find_override(caller.workspace_id(), namespace, identifier)
        .await?;
    found.ok_or_else(|| AppError::Client(not_found::ratelimit_override()))
}
