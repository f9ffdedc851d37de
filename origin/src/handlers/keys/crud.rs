//! Keys themselves: create, read, update, delete, reroll.

use axum::extract::State;
use keyway_core::api::keys::{
    CreateKeyRequest, DeleteKeyRequest, GetKeyRequest, RerollKeyRequest, UpdateKeyRequest,
    WhoamiRequest,
};

use crate::http::{ApiResult, Call, ok};
use crate::service;
use crate::state::AppState;

pub async fn create_key(State(state): State<AppState>, call: Call<CreateKeyRequest>) -> ApiResult {
    ok(service::keys::crud::create_key(&state, &call.caller, call.body).await?)
}

pub async fn get_key(State(state): State<AppState>, call: Call<GetKeyRequest>) -> ApiResult {
    ok(service::keys::crud::get_key(&state, &call.caller, call.body).await?)
}

pub async fn whoami(State(state): State<AppState>, call: Call<WhoamiRequest>) -> ApiResult {
    ok(service::keys::crud::whoami(&state, &call.caller, call.body).await?)
}

pub async fn delete_key(State(state): State<AppState>, call: Call<DeleteKeyRequest>) -> ApiResult {
    ok(service::keys::crud::delete_key(&state, &call.caller, call.body).await?)
}

pub async fn update_key(State(state): State<AppState>, call: Call<UpdateKeyRequest>) -> ApiResult {
    ok(service::keys::crud::update_key(&state, &call.caller, call.body).await?)
}

pub async fn reroll_key(State(state): State<AppState>, call: Call<RerollKeyRequest>) -> ApiResult {
    ok(service::keys::crud::reroll_key(&state, &call.caller, call.body).await?)
}
