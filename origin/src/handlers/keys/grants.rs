//! A key's direct permissions and roles: add, set, remove.

use axum::extract::State;
use keyway_core::api::keys::{KeyPermissionsRequest, KeyRolesRequest};

use crate::http::{ApiResult, Call, ok};
use crate::service::keys::grants::{NonEmpty, change_permissions, change_roles};
use crate::state::AppState;
use crate::store::SetOp;

pub async fn add_permissions(
    State(state): State<AppState>,
    call: Call<NonEmpty<KeyPermissionsRequest>>,
) -> ApiResult {
    ok(change_permissions(&state, &call.caller, call.body.0, SetOp::Add).await?)
}

pub async fn set_permissions(
    State(state): State<AppState>,
    call: Call<KeyPermissionsRequest>,
) -> ApiResult {
    ok(change_permissions(&state, &call.caller, call.body, SetOp::Set).await?)
}

pub async fn remove_permissions(
    State(state): State<AppState>,
    call: Call<NonEmpty<KeyPermissionsRequest>>,
) -> ApiResult {
    ok(change_permissions(&state, &call.caller, call.body.0, SetOp::Remove).await?)
}

pub async fn add_roles(
    State(state): State<AppState>,
    call: Call<NonEmpty<KeyRolesRequest>>,
) -> ApiResult {
    ok(change_roles(&state, &call.caller, call.body.0, SetOp::Add).await?)
}

pub async fn set_roles(State(state): State<AppState>, call: Call<KeyRolesRequest>) -> ApiResult {
    ok(change_roles(&state, &call.caller, call.body, SetOp::Set).await?)
}

pub async fn remove_roles(
    State(state): State<AppState>,
    call: Call<NonEmpty<KeyRolesRequest>>,
) -> ApiResult {
    ok(change_roles(&state, &call.caller, call.body.0, SetOp::Remove).await?)
}
