//! A key's direct permissions and roles: add, set, remove.

use axum::extract::State;
use keyway_core::api::keys::{KeyPermissionsRequest, KeyRolesRequest};
use keyway_core::api::permissions::PermissionData;
use keyway_core::auth::Action;
use keyway_core::validate::Issues;

use crate::http::{ApiResult, Credentials, Json, ok};
use crate::ids;
use crate::service::access::{may_create_permissions, require_grant_changes};
use crate::service::resources::key_for;
use crate::service::validate;
use crate::service::views::{self, permission_data};
use crate::state::AppState;
use crate::store::{HashFilter, SetOp};

async fn change_permissions(
    state: AppState,
    credentials: Credentials,
    req: KeyPermissionsRequest,
    op: SetOp,
) -> ApiResult {
    let mut v = Issues::new();
    validate::key_id(&mut v, &req.key_id);
    v.check(
        op == SetOp::Set || !req.permissions.is_empty(),
        "body.permissions",
        || "must have at least 1 item".into(),
    );
    validate::permissions(&mut v, "body.permissions", Some(&req.permissions), 1000);
    v.finish()?;
    let caller = state.authenticate(credentials.authorization()).await?;
    require_grant_changes(&caller, Some(op), None)?;
    let row = key_for(&state, &caller, &req.key_id, Action::UpdateKey).await?;
    state
        .store
        .change_key_permissions(
            &row.id,
            caller.workspace_id(),
            &req.permissions,
            op,
            ids::now_ms(),
            may_create_permissions(&caller),
        )
        .await?;
    state.invalidate(HashFilter::Key(&row.id)).await?;
    let perms: Vec<PermissionData> = state
        .store
        .key_permissions(&row.id)
        .await?
        .into_iter()
        .map(permission_data)
        .collect();
    ok(perms)
}

pub async fn add_permissions(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<KeyPermissionsRequest>,
) -> ApiResult {
    change_permissions(state, credentials, req, SetOp::Add).await
}

pub async fn set_permissions(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<KeyPermissionsRequest>,
) -> ApiResult {
    change_permissions(state, credentials, req, SetOp::Set).await
}

pub async fn remove_permissions(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<KeyPermissionsRequest>,
) -> ApiResult {
    change_permissions(state, credentials, req, SetOp::Remove).await
}

async fn change_roles(
    state: AppState,
    credentials: Credentials,
    req: KeyRolesRequest,
    op: SetOp,
) -> ApiResult {
    let mut v = Issues::new();
    validate::key_id(&mut v, &req.key_id);
    v.check(
        op == SetOp::Set || !req.roles.is_empty(),
        "body.roles",
        || "must have at least 1 item".into(),
    );
    validate::roles(&mut v, "body.roles", Some(&req.roles));
    v.finish()?;
    let caller = state.authenticate(credentials.authorization()).await?;
    require_grant_changes(&caller, None, Some(op))?;
    let row = key_for(&state, &caller, &req.key_id, Action::UpdateKey).await?;
    state
        .store
        .change_key_roles(
            &row.id,
            caller.workspace_id(),
            &req.roles,
            op,
            ids::now_ms(),
        )
        .await?;
    state.invalidate(HashFilter::Key(&row.id)).await?;
    let roles = state.store.key_roles(&row.id).await?;
    ok(views::roles_data(&state, roles).await?)
}

pub async fn add_roles(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<KeyRolesRequest>,
) -> ApiResult {
    change_roles(state, credentials, req, SetOp::Add).await
}

pub async fn set_roles(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<KeyRolesRequest>,
) -> ApiResult {
    change_roles(state, credentials, req, SetOp::Set).await
}

pub async fn remove_roles(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<KeyRolesRequest>,
) -> ApiResult {
    change_roles(state, credentials, req, SetOp::Remove).await
}
