//! keys.migrateKeys: moving keys in from another system by their hashes.

use axum::extract::State;
use keyway_core::api::keys::MigrateKeysRequest;

use crate::http::{ApiResult, Call, ok};
use crate::service;
use crate::state::AppState;

pub async fn migrate_keys(
    State(state): State<AppState>,
    call: Call<MigrateKeysRequest>,
) -> ApiResult {
    ok(service::keys::migrate::migrate_keys(&state, &call.caller, call.body).await?)
}
