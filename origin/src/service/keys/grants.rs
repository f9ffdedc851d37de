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

/// A request's grant list and key, checked alike for add, set and remove; only whether
/// the list may be empty differs.
pub trait GrantChange {
    fn grant_issues(&self, v: &mut Issues, non_empty: bool);
}

impl<T: GrantChange> Validate for NonEmpty<T> {
    fn issues(&self, v: &mut Issues) {
        self.0.grant_issues(v, true);
    }
}

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

fn grant_issues(v: &mut Issues, key_id: &str, field: &str, empty: bool, non_empty: bool) {
    validate::key_id(v, key_id);
    v.check(!non_empty || !empty, field, || {
        "must have at least 1 item".into()
    });
}

impl GrantChange for KeyPermissionsRequest {
    fn grant_issues(&self, v: &mut Issues, non_empty: bool) {
        let field = "body.permissions";
        grant_issues(
            v,
            &self.key_id,
            field,
            self.permissions.is_empty(),
            non_empty,
        );
        validate::permissions(v, field, Some(&self.permissions), 1000);
    }
}

impl GrantChange for KeyRolesRequest {
    fn grant_issues(&self, v: &mut Issues, non_empty: bool) {
        let field = "body.roles";
        grant_issues(v, &self.key_id, field, self.roles.is_empty(), non_empty);
        validate::roles(v, field, Some(&self.roles));
    }
}

impl Validate for KeyPermissionsRequest {
    fn issues(&self, v: &mut Issues) {
        self.grant_issues(v, false);
    }
}

impl Validate for KeyRolesRequest {
    fn issues(&self, v: &mut Issues) {
        self.grant_issues(v, false);
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
        .store()
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
        .store()
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
        .store()
        .change_key_roles(
            &row.id,
            caller.workspace_id(),
            &req.roles,
            op,
            ids::now_ms(),
        )
        .await?;
    caller.state.invalidate(HashFilter::Key(&row.id)).await?;
    let roles = caller.store().key_roles(&row.id).await?;
    views::roles_data(caller.state, roles).await
}
