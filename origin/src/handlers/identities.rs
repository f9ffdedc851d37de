//! `identities.*`.

use axum::extract::State;
use axum::http::HeaderMap;
use keyway_core::api::Empty;
use keyway_core::api::identities::{
    CreateIdentityRequest, CreateIdentityResponseData, IdentityRef, ListRequest,
    UpdateIdentityRequest,
};
use keyway_core::api::keys::{IdentityData, RatelimitData};
use keyway_core::snapshot::raw_meta;
use keyway_core::validate::{Issues, is_external_id_byte};

use super::keys::{new_ratelimits, validate_ratelimits};
use super::{authorize_all, identity_not_found, meta_text, page_limit, paginate};
use crate::http::{ApiResult, AppError, Json, ok, ok_list};
use crate::ids;
use crate::state::AppState;
use crate::store::{HashFilter, IdentityRow, to_u64};

async fn identity_data(state: &AppState, row: IdentityRow) -> Result<IdentityData, AppError> {
    let limits: Vec<RatelimitData> = state
        .store
        .identity_ratelimits(&row.id)
        .await?
        .into_iter()
        .map(|(id, name, limit, duration, auto_apply)| RatelimitData {
            id,
            name,
            limit: to_u64(limit),
            duration: to_u64(duration),
            auto_apply: auto_apply != 0,
        })
        .collect();
    Ok(IdentityData {
        id: row.id,
        external_id: row.external_id,
        meta: raw_meta(row.meta.as_deref()),
        ratelimits: (!limits.is_empty()).then_some(limits),
    })
}

fn validate_ref(v: &mut Issues, identity: &str) {
    v.length("body.identity", identity, 1, 255);
}

pub async fn create_identity(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<CreateIdentityRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    v.length("body.externalId", &req.external_id, 1, 255);
    v.pattern(
        "body.externalId",
        &req.external_id,
        is_external_id_byte,
        "letters, digits and _ . -",
    );
    if let Some(m) = &req.meta {
        v.check(m.len() <= 100, "body.meta", || {
            "may have at most 100 properties".into()
        });
    }
    validate_ratelimits(&mut v, "body.ratelimits", req.ratelimits.as_ref());
    v.finish()?;
    let caller = state.authenticate(&headers).await?;
    authorize_all(&caller, "identity", "create_identity")?;
    let row = IdentityRow {
        id: ids::new_id("id"),
        external_id: req.external_id.clone(),
        meta: meta_text(&req.meta),
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
    headers: HeaderMap,
    Json(req): Json<IdentityRef>,
) -> ApiResult {
    let mut v = Issues::new();
    validate_ref(&mut v, &req.identity);
    v.finish()?;
    let caller = state.authenticate(&headers).await?;
    authorize_all(&caller, "identity", "read_identity")?;
    let row = state
        .store
        .find_identity(caller.workspace_id(), &req.identity)
        .await?
        .ok_or_else(|| AppError(identity_not_found()))?;
    ok(identity_data(&state, row).await?)
}

pub async fn list_identities(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<ListRequest>,
) -> ApiResult {
    let limit = page_limit(req.limit, 100)?;
    let caller = state.authenticate(&headers).await?;
    authorize_all(&caller, "identity", "read_identity")?;
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
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(identity_data(&state, row).await?);
    }
    ok_list(out, cursor)
}

pub async fn update_identity(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<UpdateIdentityRequest>,
) -> ApiResult {
    let mut v = Issues::new();
    validate_ref(&mut v, &req.identity);
    validate_ratelimits(&mut v, "body.ratelimits", req.ratelimits.as_ref());
    v.finish()?;
    let caller = state.authenticate(&headers).await?;
    authorize_all(&caller, "identity", "update_identity")?;
    let row = state
        .store
        .find_identity(caller.workspace_id(), &req.identity)
        .await?
        .ok_or_else(|| AppError(identity_not_found()))?;
    let limits = req
        .ratelimits
        .as_ref()
        .map(|_| new_ratelimits(req.ratelimits.as_ref()));
    state
        .store
        .update_identity(
            caller.workspace_id(),
            &row.id,
            req.meta.as_ref().map(|_| meta_text(&req.meta)),
            limits.as_deref(),
            ids::now_ms(),
        )
        .await?;
    state.invalidate(HashFilter::Identity(&row.id)).await?;
    let updated = state
        .store
        .find_identity(caller.workspace_id(), &row.id)
        .await?
        .ok_or_else(|| AppError(identity_not_found()))?;
    ok(identity_data(&state, updated).await?)
}

pub async fn delete_identity(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(req): Json<IdentityRef>,
) -> ApiResult {
    let mut v = Issues::new();
    validate_ref(&mut v, &req.identity);
    v.finish()?;
    let caller = state.authenticate(&headers).await?;
    authorize_all(&caller, "identity", "delete_identity")?;
    let row = state
        .store
        .find_identity(caller.workspace_id(), &req.identity)
        .await?
        .ok_or_else(|| AppError(identity_not_found()))?;
    // Collect the affected keys before the delete unlinks them.
    let hashes = state
        .store
        .hashes_where(HashFilter::Identity(&row.id))
        .await?;
    state.store.delete_identity(&row.id).await?;
    state.forget(hashes.iter().map(String::as_str)).await;
    ok(Empty {})
}
