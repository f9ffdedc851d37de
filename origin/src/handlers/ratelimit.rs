//! `ratelimit.*`: standalone rate limiting by namespace and identifier, with overrides.

use axum::extract::State;
use keyway_core::api::ratelimit::{
    LimitRequest, ListOverridesRequest, OverrideRef, SetOverrideRequest,
};

use crate::http::{ApiResult, Call, ok, ok_page};
use crate::service;
use crate::state::AppState;

pub async fn limit(State(state): State<AppState>, call: Call<LimitRequest>) -> ApiResult {
    ok(service::ratelimit::limit(&state, call.ctx, &call.caller, call.body).await?)
}

pub async fn multi_limit(
    State(state): State<AppState>,
    call: Call<Vec<LimitRequest>>,
) -> ApiResult {
    ok(service::ratelimit::multi_limit(&state, call.ctx, &call.caller, call.body).await?)
}

pub async fn set_override(
    State(state): State<AppState>,
    call: Call<SetOverrideRequest>,
) -> ApiResult {
    ok(service::ratelimit::set_override(&state, &call.caller, call.body).await?)
}

pub async fn get_override(State(state): State<AppState>, call: Call<OverrideRef>) -> ApiResult {
    ok(service::ratelimit::get_override(&state, &call.caller, call.body).await?)
}

pub async fn list_overrides(
    State(state): State<AppState>,
    call: Call<ListOverridesRequest>,
) -> ApiResult {
    ok_page(service::ratelimit::list_overrides(&state, &call.caller, call.body).await?)
}

pub async fn delete_override(State(state): State<AppState>, call: Call<OverrideRef>) -> ApiResult {
    ok(service::ratelimit::delete_override(&state, &call.caller, call.body).await?)
}
