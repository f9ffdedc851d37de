//! `apis.*`.

use axum::extract::State;
use keyway_core::api::Empty;
use keyway_core::api::apis::{
    ApiData, ApiIdRequest, CreateApiRequest, CreateApiResponseData, ListKeysRequest,
};
use keyway_core::auth::Action;
use keyway_core::validate::Issues;

use super::paginate;
use crate::error::AppError;
use crate::http::{ApiResult, Credentials, Json, ok, ok_list};
use crate::ids;
use crate::service::access::{authorize, authorize_all};
use crate::service::resources::api_for;
use crate::service::validate::page_limit;
use crate::service::views;
use crate::state::AppState;
use crate::store::{ApiRow, HashFilter};
use keyway_core::not_found;

pub async fn create_api(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<CreateApiRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    v.length("body.name", &req.name, 3, 256);
    v.finish()?;
    let caller = state.authenticate(credentials.authorization()).await?;
    authorize_all(&caller, Action::CreateApi)?;
    let api = ApiRow {
        id: ids::new_id("api"),
        workspace_id: caller.workspace_id().to_string(),
        keyspace_id: ids::new_id("ks"),
        name: req.name,
    };
    state.store.insert_api(&api, ids::now_ms()).await?;
    ok(CreateApiResponseData { api_id: api.id })
}

fn validate_api_id(api_id: &str) -> Result<(), AppError> {
    let mut v = Issues::new();
    v.id("body.apiId", api_id);
    Ok(v.finish()?)
}

pub async fn get_api(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<ApiIdRequest>,
) -> ApiResult {
    validate_api_id(&req.api_id)?;
    let caller = state.authenticate(credentials.authorization()).await?;
    let api = api_for(&state, &caller, &req.api_id, Action::ReadApi).await?;
    ok(ApiData {
        id: api.id,
        name: api.name,
    })
}

pub async fn delete_api(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<ApiIdRequest>,
) -> ApiResult {
    validate_api_id(&req.api_id)?;
    let caller = state.authenticate(credentials.authorization()).await?;
    let api = api_for(&state, &caller, &req.api_id, Action::DeleteApi).await?;
    state.store.delete_api(&api.id, ids::now_ms()).await?;
    state.invalidate(HashFilter::Api(&api.id)).await?;
    ok(Empty {})
}

pub async fn list_keys(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<ListKeysRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    v.length("body.apiId", &req.api_id, 1, 255);
    if let Some(e) = &req.external_id {
        v.length("body.externalId", e, 1, 255);
    }
    v.finish()?;
    let limit = page_limit(req.limit, 100)?;
    let caller = state.authenticate(credentials.authorization()).await?;
    // Listing keys reads the API as well as its keys: Unkey requires both grants.
    authorize(&caller, Action::ReadKey, Some(&req.api_id), not_found::api)?;
    let api = api_for(&state, &caller, &req.api_id, Action::ReadApi).await?;
    let rows = state
        .store
        .list_keys(
            &api.id,
            req.cursor.as_deref(),
            req.external_id.as_deref(),
            limit + 1,
        )
        .await?;
    let (rows, cursor) = paginate(rows, limit, |r| r.id.clone());
    let mut keys = views::keys_data(&state, &rows).await?;
    if req.decrypt == Some(true) {
        crate::service::recovery::reveal(&state, &caller, &api.id, &mut keys).await?;
    }
    ok_list(keys, cursor)
}
