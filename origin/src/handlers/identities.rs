//! `identities.*`.

use axum::extract::State;
use keyway_core::api::identities::{
    CreateIdentityRequest, IdentityRef, ListRequest, UpdateIdentityRequest,
};

use crate::http::{ApiResult, Call, ok, ok_page};
use crate::service;
use crate::state::AppState;

pub async fn create_identity(
    State(state): State<AppState>,
    call: Call<CreateIdentityRequest>,
) -> ApiResult {
    ok(service::identities::create_identity(&state, &call.caller, call.body).await?)
}

pub async fn get_identity(State(state): State<AppState>, call: Call<IdentityRef>) -> ApiResult {
    ok(service::identities::get_identity(&state, &call.caller, call.body).await?)
}

pub async fn list_identities(State(state): State<AppState>, call: Call<ListRequest>) -> ApiResult {
    ok_page(service::identities::list_identities(&state, &call.caller, call.body).await?)
}

pub async fn update_identity(
    State(state): State<AppState>,
    call: Call<UpdateIdentityRequest>,
) -> ApiResult {
    ok(service::identities::update_identity(&state, &call.caller, call.body).await?)
}

pub async fn delete_identity(State(state): State<AppState>, call: Call<IdentityRef>) -> ApiResult {
    ok(service::identities::delete_identity(&state, &call.caller, call.body).await?)
}
