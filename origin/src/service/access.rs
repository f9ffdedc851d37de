//! What a root key may do, asked by [`Action`], never by string.

use keyway_core::auth::{Action, RootScope};
use keyway_core::error::ApiError;

use crate::error::AppError;
use crate::store::SetOp;

/// Authorizes `action` on `id`. Holding the action for other ids only reads as "not
/// found" (existence is not revealed); not holding it at all is a 403.
pub fn authorize(
    caller: &RootScope,
    action: Action,
    id: Option<&str>,
    not_found: impl FnOnce() -> ApiError,
) -> Result<(), AppError> {
    if caller.allows(action, id) {
        Ok(())
    } else if caller.allows_any(action) {
        Err(AppError::Client(not_found()))
    } else {
        Err(AppError::Client(
            caller
                .require(action, id)
                .err()
                .unwrap_or_else(|| ApiError::forbidden("forbidden")),
        ))
    }
}

/// Requires the action on every id (`*`), for operations that are not scoped to one.
pub fn authorize_all(caller: &RootScope, action: Action) -> Result<(), AppError> {
    caller.require(action, None).map_err(AppError::Client)
}

/// The `rbac.*` grants a change to a key's permissions or roles needs, on top of the
/// `api.*` grant on the key itself. Without them, a root key meant only to disable keys
/// could hand any key any permission. `Set` both adds and removes, so it needs both.
pub fn require_grant_changes(
    caller: &RootScope,
    permissions: Option<SetOp>,
    roles: Option<SetOp>,
) -> Result<(), AppError> {
    let needs = |op: SetOp, add: Action, remove: Action| {
        let add = matches!(op, SetOp::Add | SetOp::Set).then_some(add);
        let remove = matches!(op, SetOp::Remove | SetOp::Set).then_some(remove);
        add.into_iter().chain(remove)
    };
    let actions = permissions
        .into_iter()
        .flat_map(|op| {
            needs(
                op,
                Action::AddPermissionToKey,
                Action::RemovePermissionFromKey,
            )
        })
        .chain(
            roles
                .into_iter()
                .flat_map(|op| needs(op, Action::AddRoleToKey, Action::RemoveRoleFromKey)),
        );
    for action in actions {
        authorize_all(caller, action)?;
    }
    Ok(())
}

/// Whether missing permission slugs may be created on the way (Unkey's implicit creation).
pub fn may_create_permissions(caller: &RootScope) -> bool {
    caller.allows(Action::CreatePermission, None)
}
