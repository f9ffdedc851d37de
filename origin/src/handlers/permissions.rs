//! `permissions.*`: workspace permissions and roles.

use axum::extract::State;
use keyway_core::api::identities::ListRequest;
use keyway_core::api::permissions::{
    CreatePermissionRequest, CreateRoleRequest, PermissionRef, RoleRef, SetRolePermissionsRequest,
};

use crate::http::{ApiResult, Call, ok, ok_page};
use crate::service;
use crate::state::AppState;

pub async fn create_permission(
    State(state): State<AppState>,
    call: Call<CreatePermissionRequest>,
) -> ApiResult {
    ok(service::permissions::create_permission(&state, &call.caller, call.body).await?)
}

pub async fn get_permission(State(state): State<AppState>, call: Call<PermissionRef>) -> ApiResult {
    ok(service::permissions::get_permission(&state, &call.caller, call.body).await?)
}

pub async fn list_permissions(State(state): State<AppState>, call: Call<ListRequest>) -> ApiResult {
    ok_page(service::permissions::list_permissions(&state, &call.caller, call.body).await?)
}

pub async fn delete_permission(
    State(state): State<AppState>,
    call: Call<PermissionRef>,
) -> ApiResult {
    ok(service::permissions::delete_permission(&state, &call.caller, call.body).await?)
}

pub async fn create_role(
    State(state): State<AppState>,
    call: Call<CreateRoleRequest>,
) -> ApiResult {
    ok(service::permissions::create_role(&state, &call.caller, call.body).await?)
}

pub async fn get_role(State(state): State<AppState>, call: Call<RoleRef>) -> ApiResult {
    ok(service::permissions::get_role(&state, &call.caller, call.body).await?)
}

pub async fn list_roles(State(state): State<AppState>, call: Call<ListRequest>) -> ApiResult {
    ok_page(service::permissions::list_roles(&state, &call.caller, call.body).await?)
}

pub async fn delete_role(State(state): State<AppState>, call: Call<RoleRef>) -> ApiResult {
    ok(service::permissions::delete_role(&state, &call.caller, call.body).await?)
}

/// Replaces the role's permissions as a whole; the keys holding the role see the new set
/// on their next verification.
pub async fn set_role_permissions(
    State(state): State<AppState>,
    call: Call<SetRolePermissionsRequest>,
) -> ApiResult {
    ok(service::permissions::set_role_permissions(&state, &call.caller, call.body).await?)
}
