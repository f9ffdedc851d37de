//! `apis.*`.

use axum::extract::State;
use keyway_core::api::apis::{ApiIdRequest, CreateApiRequest, ListKeysRequest};

use crate::http::{ApiResult, Call, ok, ok_page};
use crate::service;
use crate::state::AppState;

pub async fn create_api(State(state): State<AppState>, call: Call<CreateApiRequest>) -> ApiResult {
    ok(service::apis::create_api(&state, &call.caller, call.body).await?)
}

pub async fn get_api(State(state): State<AppState>, call: Call<ApiIdRequest>) -> ApiResult {
    ok(service::apis::get_api(&state, &call.caller, call.body).await?)
}

pub async fn delete_api(State(state): State<AppState>, call: Call<ApiIdRequest>) -> ApiResult {
    ok(service::apis::delete_api(&state, &call.caller, call.body).await?)
}

pub async fn list_keys(State(state): State<AppState>, call: Call<ListKeysRequest>) -> ApiResult {
    ok_page(service::apis::list_keys(&state, &call.caller, call.body).await?)
}
