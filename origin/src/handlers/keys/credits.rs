//! `keys.updateCredits`: a balance set, raised or lowered from its live value.

use axum::extract::State;
use keyway_core::api::keys::UpdateCreditsRequest;

use crate::http::{ApiResult, Call, ok};
use crate::service;
use crate::state::AppState;

pub async fn update_credits(
    State(state): State<AppState>,
    call: Call<UpdateCreditsRequest>,
) -> ApiResult {
    ok(service::keys::credits::update_credits(&state, &call.caller, call.body).await?)
}
