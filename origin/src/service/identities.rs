//! `identities.*`.

use crate::service::Caller;
use crate::service::Page;
use crate::service::validate::Validate;
use keyway_core::api::Empty;
use keyway_core::api::identities::{
    CreateIdentityRequest, CreateIdentityResponseData, IdentityRef, ListRequest,
    UpdateIdentityRequest,
};
use keyway_core::api::keys::IdentityData;
use keyway_core::auth::Action;
use keyway_core::validate::Issues;
use serde::Serialize;

use crate::error::AppError;
use crate::ids;
use crate::service::access::authorize_all;
use crate::service::paginate;
use crate::service::resources;
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
    caller: &Caller<'_>,
    req: CreateIdentityRequest,
) -> Result<impl Serialize, AppError> {
    authorize_all(caller, Action::CreateIdentity)?;
    let row = IdentityRow {
        id: ids::new_id("id"),
        external_id: req.external_id.clone(),
        meta: meta_text(req.meta.as_ref()),
    };
    caller
        .store()
        .insert_identity(
            caller.workspace_id(),
            &row,
            &new_ratelimits(req.ratelimits.as_ref()),
            ids::now_ms(),
        )
        .await?;
    Ok(CreateIdentityResponseData {
        identity_id: row.id,
    })
}

pub async fn get_identity(
    caller: &Caller<'_>,
    req: IdentityRef,
) -> Result<impl Serialize, AppError> {
    authorize_all(caller, Action::ReadIdentity)?;
    let row = resources::identity(caller, &req.identity).await?;
    identity_data(caller.state, row).await
}

pub async fn list_identities(
    caller: &Caller<'_>,
    req: ListRequest,
) -> Result<Page<impl Serialize>, AppError> {
    let limit = page_limit(req.limit, 100)?;
    authorize_all(caller, Action::ReadIdentity)?;
    let rows = caller
        .store()
        .list_identities(
            caller.workspace_id(),
            req.cursor.as_deref(),
            req.search.as_deref(),
            limit + 1,
        )
        .await?;
    let (rows, cursor) = paginate(rows, limit, |r| r.id.clone());
    Ok(Page::new(
        views::identities_data(caller.state, rows).await?,
        cursor,
    ))
}

pub async fn update_identity(
    caller: &Caller<'_>,
    req: UpdateIdentityRequest,
) -> Result<impl Serialize, AppError> {
    authorize_all(caller, Action::UpdateIdentity)?;
    let row = resources::identity(caller, &req.identity).await?;
    let limits = req
        .ratelimits
        .as_ref()
        .map(|_| new_ratelimits(req.ratelimits.as_ref()));
    caller
        .store()
        .update_identity(
            caller.workspace_id(),
            &row.id,
            req.meta.as_ref().map(|m| meta_text(Some(m))),
            limits.as_deref(),
            ids::now_ms(),
        )
        .await?;
    caller
        .state
        .invalidate(HashFilter::Identity(&row.id))
        .await?;
    let updated = resources::identity(caller, &row.id).await?;
    identity_data(caller.state, updated).await
}

pub async fn delete_identity(
    caller: &Caller<'_>,
    req: IdentityRef,
) -> Result<impl Serialize, AppError> {
    authorize_all(caller, Action::DeleteIdentity)?;
    let row = resources::identity(caller, &req.identity).await?;
    let delete = caller.store().delete_identity(&row.id);
    caller
        .changing_keys(HashFilter::Identity(&row.id), delete)
        .await?;
    Ok(Empty {})
}

impl Validate for CreateIdentityRequest {
    fn issues(&self, v: &mut Issues) {
        validate::external_id(v, "body.externalId", &self.external_id);
        validate::meta(v, "body.meta", self.meta.as_ref());
        validate::ratelimits(v, "body.ratelimits", self.ratelimits.as_ref());
    }
}

impl Validate for IdentityRef {
    fn issues(&self, v: &mut Issues) {
        validate_ref(v, &self.identity);
    }
}

impl Validate for ListRequest {
    fn page(&self) -> Option<(Option<u64>, u64)> {
        Some((self.limit, 100))
    }
}

impl Validate for UpdateIdentityRequest {
    fn issues(&self, v: &mut Issues) {
        validate_ref(v, &self.identity);
        validate::ratelimits(v, "body.ratelimits", self.ratelimits.as_ref());
    }
}
