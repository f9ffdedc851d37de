//! `apis.*`.

use axum::extract::State;
use axum::http::HeaderMap;
use keyway_core::api::Empty;
use keyway_core::api::apis::{
    ApiData, ApiIdRequest, CreateApiRequest, CreateApiResponseData, ListKeysRequest,
};
use keyway_core::validate::Issues;

use super::{api_not_found, authorize, authorize_all, page_limit, paginate};
use crate::http::{ApiResult, AppError, Json, ok, ok_list};
use crate::ids;
use crate::state::AppState;
use crate::store::{ApiRow, HashFilter};

pub async fn create_api(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<CreateApiRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    v.length("body.name", &req.name, 3, 256);
    v.finish()?;
    let caller = state.authenticate(&headers).await?;
    authorize_all(&caller, "api", "create_api")?;
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
    headers: HeaderMap,
    Json(req): Json<ApiIdRequest>,
) -> ApiResult {
    validate_api_id(&req.api_id)?;
    let caller = state.authenticate(&headers).await?;
    authorize(&caller, "api", Some(&req.api_id), "read_api", api_not_found)?;
    let api = state
        .store
        .find_api(caller.workspace_id(), &req.api_id)
        .await?
        .ok_or_else(|| AppError(api_not_found()))?;
    ok(ApiData {
        id: api.id,
        name: api.name,
    })
}

pub async fn delete_api(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<ApiIdRequest>,
) -> ApiResult {
    validate_api_id(&req.api_id)?;
    let caller = state.authenticate(&headers).await?;
    authorize(
        &caller,
        "api",
        Some(&req.api_id),
        "delete_api",
        api_not_found,
    )?;
    let api = state
        .store
        .find_api(caller.workspace_id(), &req.api_id)
        .await?
        .ok_or_else(|| AppError(api_not_found()))?;
    state.store.delete_api(&api.id, ids::now_ms()).await?;
    state.invalidate(HashFilter::Api(&api.id)).await?;
    ok(Empty {})
}

pub async fn list_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<ListKeysRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    v.length("body.apiId", &req.api_id, 1, 255);
    if let Some(e) = &req.external_id {
        v.length("body.externalId", e, 1, 255);
    }
    v.finish()?;
    let limit = page_limit(req.limit, 100)?;
    let caller = state.authenticate(&headers).await?;
    // Listing keys reads the API as well as its keys: Unkey requires both grants.
    authorize(&caller, "api", Some(&req.api_id), "read_key", api_not_found)?;
    authorize(&caller, "api", Some(&req.api_id), "read_api", api_not_found)?;
    let api = state
        .store
        .find_api(caller.workspace_id(), &req.api_id)
        .await?
        .ok_or_else(|| AppError(api_not_found()))?;
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
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(k) = super::keys::load_key_data(&state, row).await? {
            keys.push(k);
        }
    }
    ok_list(keys, cursor)
}
