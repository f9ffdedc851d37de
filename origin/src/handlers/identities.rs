//! `identities.*`.

use axum::extract::State;
use keyway_core::api::Empty;
use keyway_core::api::identities::{
    CreateIdentityRequest, CreateIdentityResponseData, IdentityRef, ListRequest,
    UpdateIdentityRequest,
};
use keyway_core::api::keys::IdentityData;
use keyway_core::auth::Action;
use keyway_core::validate::Issues;

use super::paginate;
use crate::error::AppError;
use crate::http::{ApiResult, Credentials, Json, ok, ok_list};
use crate::ids;
use crate::service::access::authorize_all;
use crate::service::validate::{self, page_limit};
use crate::service::views::{self, meta_text, new_ratelimits};
use crate::state::AppState;
use crate::store::{HashFilter, IdentityRow};
use keyway_core::not_found;

/// One identity with its rate limits.
async fn identity_data(state: &AppState, row: IdentityRow) -> Result<IdentityData, AppError> {
    views::identities_data(state, vec![row])
        .await?
        .pop()
        .ok_or_else(|| AppError::Client(not_found::identity()))
}

fn validate_ref(v: &mut Issues, identity: &str) {
    v.length("body.identity", identity, 1, 255);
}

pub async fn create_identity(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<CreateIdentityRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    validate::external_id(&mut v, "body.externalId", &req.external_id);
    validate::meta(&mut v, "body.meta", req.meta.as_ref());
    validate::ratelimits(&mut v, "body.ratelimits", req.ratelimits.as_ref());
    v.finish()?;
    let caller = state.authenticate(credentials.authorization()).await?;
    authorize_all(&caller, Action::CreateIdentity)?;
    let row = IdentityRow {
        id: ids::new_id("id"),
        external_id: req.external_id.clone(),
        meta: meta_text(req.meta.as_ref()),
    };
    state
        .store
        .insert_identity(
            caller.workspace_id(),
            &row,
            &new_ratelimits(req.ratelimits.as_ref()),
            ids::now_ms(),
        )
        .await?;
    ok(CreateIdentityResponseData {
        identity_id: row.id,
    })
}

pub async fn get_identity(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<IdentityRef>,
) -> ApiResult {
    let mut v = Issues::new();
    validate_ref(&mut v, &req.identity);
    v.finish()?;
    let caller = state.authenticate(credentials.authorization()).await?;
    authorize_all(&caller, Action::ReadIdentity)?;
    let row = state
        .store
        .find_identity(caller.workspace_id(), &req.identity)
        .await?
        .ok_or_else(|| AppError::Client(not_found::identity()))?;
    ok(identity_data(&state, row).await?)
}

pub async fn list_identities(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<ListRequest>,
) -> ApiResult {
    let limit = page_limit(req.limit, 100)?;
    let caller = state.authenticate(credentials.authorization()).await?;
    authorize_all(&caller, Action::ReadIdentity)?;
    let rows = state
        .store
        .list_identities(
            caller.workspace_id(),
            req.cursor.as_deref(),
            req.search.as_deref(),
            limit + 1,
        )
        .await?;
    let (rows, cursor) = paginate(rows, limit, |r| r.id.clone());
    ok_list(views::identities_data(&state, rows).await?, cursor)
}

pub async fn update_identity(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<UpdateIdentityRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    validate_ref(&mut v, &req.identity);
    validate::ratelimits(&mut v, "body.ratelimits", req.ratelimits.as_ref());
    v.finish()?;
    let caller = state.authenticate(credentials.authorization()).await?;
    authorize_all(&caller, Action::UpdateIdentity)?;
    let row = state
        .store
        .find_identity(caller.workspace_id(), &req.identity)
        .await?
        .ok_or_else(|| AppError::Client(not_found::identity()))?;
    let limits = req
        .ratelimits
        .as_ref()
        .map(|_| new_ratelimits(req.ratelimits.as_ref()));
    state
        .store
        .update_identity(
            caller.workspace_id(),
            &row.id,
            req.meta.as_ref().map(|m| meta_text(Some(m))),
            limits.as_deref(),
            ids::now_ms(),
        )
        .await?;
    state.invalidate(HashFilter::Identity(&row.id)).await?;
    let updated = state
        .store
        .find_identity(caller.workspace_id(), &row.id)
        .await?
        .ok_or_else(|| AppError::Client(not_found::identity()))?;
    ok(identity_data(&state, updated).await?)
}

pub async fn delete_identity(
    State(state): State<AppState>,
    credentials: Credentials,
    Json(req): Json<IdentityRef>,
) -> ApiResult {
    let mut v = Issues::new();
    validate_ref(&mut v, &req.identity);
    v.finish()?;
    let caller = state.authenticate(credentials.authorization()).await?;
    authorize_all(&caller, Action::DeleteIdentity)?;
    let row = state
        .store
        .find_identity(caller.workspace_id(), &req.identity)
        .await?
        .ok_or_else(|| AppError::Client(not_found::identity()))?;
    // Collect the affected keys before the delete unlinks them.
    let hashes = state
        .store
        .hashes_where(HashFilter::Identity(&row.id))
        .await?;
    state.store.delete_identity(&row.id).await?;
    state.forget(hashes.iter().map(String::as_str)).await;
    ok(Empty {})
}
