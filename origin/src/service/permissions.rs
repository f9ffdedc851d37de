//! `permissions.*`: workspace permissions and roles.

use crate::service::Caller;
use crate::service::Page;
use crate::service::validate::Validate;
use keyway_core::api::Empty;
use keyway_core::api::identities::ListRequest;
use keyway_core::api::permissions::{
    CreatePermissionRequest, CreatePermissionResponseData, CreateRoleRequest,
    CreateRoleResponseData, PermissionRef, RoleData, RoleRef, SetRolePermissionsRequest,
};
use keyway_core::auth::Action;
use keyway_core::error::ApiError;
use keyway_core::validate::Issues;
use serde::Serialize;

use crate::error::AppError;
use crate::ids;
use crate::service::access::{authorize_all, may_create_permissions};
use crate::service::paginate;
use crate::service::resources;
use crate::service::validate::{self, page_limit};
use crate::service::views::{self, permission_data};
use crate::state::AppState;
use crate::store::{HashFilter, PermissionRow, RoleRow, StoreError};
use keyway_core::not_found;

/// One role with its permissions.
async fn role_data(state: &AppState, r: RoleRow) -> Result<RoleData, AppError> {
    let name = r.name.clone();
    views::roles_data(state, vec![r])
        .await?
        .pop()
        .ok_or_else(|| AppError::Client(not_found::role(&name)))
}

pub async fn create_permission(
    caller: &Caller<'_>,
    req: CreatePermissionRequest,
) -> Result<impl Serialize, AppError> {
    authorize_all(caller, Action::CreatePermission)?;
    let row = PermissionRow {
        id: ids::new_id("perm"),
        name: req.name,
        slug: req.slug,
        description: req.description,
    };
    match caller
        .store()
        .insert_permission(caller.workspace_id(), &row, ids::now_ms())
        .await
    {
        Ok(()) => Ok(CreatePermissionResponseData {
            permission_id: row.id,
        }),
        Err(StoreError::Conflict) => Err(AppError::Client(ApiError::conflict(
            "unkey/data/permission_already_exists",
            format!("A permission with the slug '{}' already exists.", row.slug),
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn get_permission(
    caller: &Caller<'_>,
    req: PermissionRef,
) -> Result<impl Serialize, AppError> {
    authorize_all(caller, Action::ReadPermission)?;
    let p = resources::permission(caller, &req.permission).await?;
    Ok(permission_data(p))
}

pub async fn list_permissions(
    caller: &Caller<'_>,
    req: ListRequest,
) -> Result<Page<impl Serialize>, AppError> {
    let limit = page_limit(req.limit, 100)?;
    authorize_all(caller, Action::ReadPermission)?;
    let rows = caller
        .store()
        .list_permissions(caller.workspace_id(), req.cursor.as_deref(), limit + 1)
        .await?;
    let (rows, cursor) = paginate(rows, limit, |r| r.id.clone());
    Ok(Page::new(
        rows.into_iter().map(permission_data).collect(),
        cursor,
    ))
}

pub async fn delete_permission(
    caller: &Caller<'_>,
    req: PermissionRef,
) -> Result<impl Serialize, AppError> {
    authorize_all(caller, Action::DeletePermission)?;
    let p = resources::permission(caller, &req.permission).await?;
    let delete = caller.store().delete_permission(&p.id);
    caller
        .changing_keys(HashFilter::Permission(&p.id), delete)
        .await?;
    Ok(Empty {})
}

pub async fn create_role(
    caller: &Caller<'_>,
    req: CreateRoleRequest,
) -> Result<impl Serialize, AppError> {
    authorize_all(caller, Action::CreateRole)?;
    if req.permissions.as_ref().is_some_and(|p| !p.is_empty()) {
        authorize_all(caller, Action::AddPermissionToRole)?;
    }
    let row = RoleRow {
        id: ids::new_id("role"),
        name: req.name,
        description: req.description,
    };
    let perms = req.permissions.unwrap_or_default();
    match caller
        .store()
        .insert_role(caller.workspace_id(), &row, &perms, ids::now_ms())
        .await
    {
        Ok(()) => Ok(CreateRoleResponseData { role_id: row.id }),
        Err(StoreError::Conflict) => Err(AppError::Client(ApiError::conflict(
            "unkey/data/role_already_exists",
            format!("A role named '{}' already exists.", row.name),
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn get_role(caller: &Caller<'_>, req: RoleRef) -> Result<impl Serialize, AppError> {
    authorize_all(caller, Action::ReadRole)?;
    let r = resources::role(caller, &req.role).await?;
    role_data(caller.state, r).await
}

pub async fn list_roles(
    caller: &Caller<'_>,
    req: ListRequest,
) -> Result<Page<impl Serialize>, AppError> {
    let limit = page_limit(req.limit, 100)?;
    authorize_all(caller, Action::ReadRole)?;
    let rows = caller
        .store()
        .list_roles(caller.workspace_id(), req.cursor.as_deref(), limit + 1)
        .await?;
    let (rows, cursor) = paginate(rows, limit, |r| r.id.clone());
    Ok(Page::new(
        views::roles_data(caller.state, rows).await?,
        cursor,
    ))
}

pub async fn delete_role(caller: &Caller<'_>, req: RoleRef) -> Result<impl Serialize, AppError> {
    authorize_all(caller, Action::DeleteRole)?;
    let r = resources::role(caller, &req.role).await?;
    let delete = caller.store().delete_role(&r.id);
    caller
        .changing_keys(HashFilter::Role(&r.id), delete)
        .await?;
    Ok(Empty {})
}

/// Replaces the role's permissions as a whole; the keys holding the role see the new set
/// on their next verification.
pub async fn set_role_permissions(
    caller: &Caller<'_>,
    req: SetRolePermissionsRequest,
) -> Result<impl Serialize, AppError> {
    authorize_all(caller, Action::AddPermissionToRole)?;
    authorize_all(caller, Action::RemovePermissionFromRole)?;
    let role = resources::role(caller, &req.role_id).await?;
    let set = caller.store().set_role_permissions(
        caller.workspace_id(),
        &role.id,
        &req.permissions,
        ids::now_ms(),
        may_create_permissions(caller),
    );
    let held = caller
        .changing_keys(HashFilter::Role(&role.id), set)
        .await?;
    Ok(held.into_iter().map(permission_data).collect::<Vec<_>>())
}

impl Validate for CreatePermissionRequest {
    fn issues(&self, v: &mut Issues) {
        v.length("body.name", &self.name, 1, 512);
        validate::slug(v, "body.slug", &self.slug);
    }
}

impl Validate for PermissionRef {
    fn issues(&self, v: &mut Issues) {
        v.length("body.permission", &self.permission, 1, 255);
    }
}

impl Validate for CreateRoleRequest {
    fn issues(&self, v: &mut Issues) {
        v.length("body.name", &self.name, 1, 128);
        if let Some(perms) = &self.permissions {
            for (i, p) in perms.iter().enumerate() {
                validate::slug(v, &format!("body.permissions[{i}]"), p);
            }
        }
    }
}

impl Validate for RoleRef {
    fn issues(&self, v: &mut Issues) {
        v.length("body.role", &self.role, 1, 255);
    }
}

impl Validate for SetRolePermissionsRequest {
    fn issues(&self, v: &mut Issues) {
        v.length("body.roleId", &self.role_id, 1, 255);
        validate::permissions(v, "body.permissions", Some(&self.permissions), 1000);
    }
}
