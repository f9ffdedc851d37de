//! A key's direct permissions and roles: add, set, remove.

use keyway_core::api::keys::{KeyPermissionsRequest, KeyRolesRequest};
use keyway_core::api::permissions::PermissionData;
use keyway_core::auth::Action;
use keyway_core::validate::Issues;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::ids;
use crate::service::Caller;
use crate::service::access::{may_create_permissions, require_grant_changes};
use crate::service::resources::key_for;
use crate::service::validate;
use crate::service::validate::Validate;
use crate::service::views::{self, permission_data};
use crate::store::{HashFilter, SetOp};

/// A grant change that must name at least one permission or role: add and remove. Set
/// may name none, which removes them all.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct NonEmpty<T>(pub T);

impl From<NonEmpty<KeyPermissionsRequest>> for KeyPermissionsRequest {
    fn from(n: NonEmpty<KeyPermissionsRequest>) -> Self {
        n.0
    }
}

impl From<NonEmpty<KeyRolesRequest>> for KeyRolesRequest {
    fn from(n: NonEmpty<KeyRolesRequest>) -> Self {
        n.0
    }
}

fn permission_issues(v: &mut Issues, req: &KeyPermissionsRequest, non_empty: bool) {
    validate::key_id(v, &req.key_id);
    v.check(
        !non_empty || !req.permissions.is_empty(),
        "body.permissions",
        || "must have at least 1 item".into(),
    );
    validate::permissions(v, "body.permissions", Some(&req.permissions), 1000);
}

fn role_issues(v: &mut Issues, req: &KeyRolesRequest, non_empty: bool) {
    validate::key_id(v, &req.key_id);
    v.check(!non_empty || !req.roles.is_empty(), "body.roles", || {
        "must have at least 1 item".into()
    });
    validate::roles(v, "body.roles", Some(&req.roles));
}

impl Validate for KeyPermissionsRequest {
    fn issues(&self, v: &mut Issues) {
        permission_issues(v, self, false);
    }
}

impl Validate for NonEmpty<KeyPermissionsRequest> {
    fn issues(&self, v: &mut Issues) {
        permission_issues(v, &self.0, true);
    }
}

impl Validate for KeyRolesRequest {
    fn issues(&self, v: &mut Issues) {
        role_issues(v, self, false);
    }
}

impl Validate for NonEmpty<KeyRolesRequest> {
    fn issues(&self, v: &mut Issues) {
        role_issues(v, &self.0, true);
    }
}

pub async fn change_permissions(
    caller: &Caller<'_>,
    req: KeyPermissionsRequest,
    op: SetOp,
) -> Result<impl Serialize, AppError> {
    require_grant_changes(caller, Some(op), None)?;
    let row = key_for(caller, &req.key_id, Action::UpdateKey).await?;
    caller
        .state
        .store
        .change_key_permissions(
            &row.id,
            caller.workspace_id(),
            &req.permissions,
            op,
            ids::now_ms(),
            may_create_permissions(caller),
        )
        .await?;
    caller.state.invalidate(HashFilter::Key(&row.id)).await?;
    let perms: Vec<PermissionData> = caller
        .state
        .store
        .key_permissions(&row.id)
        .await?
        .into_iter()
        .map(permission_data)
        .collect();
    Ok(perms)
}

pub async fn change_roles(
    caller: &Caller<'_>,
    req: KeyRolesRequest,
    op: SetOp,
) -> Result<impl Serialize, AppError> {
    require_grant_changes(caller, None, Some(op))?;
    let row = key_for(caller, &req.key_id, Action::UpdateKey).await?;
    caller
        .state
        .store
        .change_key_roles(
            &row.id,
            caller.workspace_id(),
            &req.roles,
            op,
            ids::now_ms(),
        )
        .await?;
    caller.state.invalidate(HashFilter::Key(&row.id)).await?;
    let roles = caller.state.store.key_roles(&row.id).await?;
    views::roles_data(caller.state, roles).await
}
