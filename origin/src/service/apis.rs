//! `apis.*`.

use crate::service::Caller;
use crate::service::Page;
use crate::service::validate::Validate;
use keyway_core::api::Empty;
use keyway_core::api::apis::{
    ApiData, ApiIdRequest, CreateApiRequest, CreateApiResponseData, ListKeysRequest,
};
use keyway_core::auth::Action;
use keyway_core::validate::Issues;
use serde::Serialize;

use crate::error::AppError;
use crate::ids;
use crate::service::access::{authorize, authorize_all};
use crate::service::paginate;
use crate::service::resources::api_for;
use crate::service::validate::page_limit;
use crate::service::views;
use crate::store::{ApiRow, HashFilter};
use keyway_core::not_found;

pub async fn create_api(
    caller: &Caller<'_>,
    req: CreateApiRequest,
) -> Result<impl Serialize, AppError> {
    authorize_all(caller, Action::CreateApi)?;
    let api = ApiRow {
        id: ids::new_id("api"),
        workspace_id: caller.workspace_id().to_string(),
        keyspace_id: ids::new_id("ks"),
        name: req.name,
    };
    caller.store().insert_api(&api, ids::now_ms()).await?;
    Ok(CreateApiResponseData { api_id: api.id })
}

pub async fn get_api(caller: &Caller<'_>, req: ApiIdRequest) -> Result<impl Serialize, AppError> {
    let api = api_for(caller, &req.api_id, Action::ReadApi).await?;
    Ok(ApiData {
        id: api.id,
        name: api.name,
    })
}

pub async fn delete_api(
    caller: &Caller<'_>,
    req: ApiIdRequest,
) -> Result<impl Serialize, AppError> {
    let api = api_for(caller, &req.api_id, Action::DeleteApi).await?;
    caller.store().delete_api(&api.id, ids::now_ms()).await?;
    caller.state.invalidate(HashFilter::Api(&api.id)).await?;
    Ok(Empty {})
}

pub async fn list_keys(
    caller: &Caller<'_>,
    req: ListKeysRequest,
) -> Result<Page<impl Serialize>, AppError> {
    let limit = page_limit(req.limit, 100)?;
    // Listing keys reads the API as well as its keys: Unkey requires both grants.
    authorize(caller, Action::ReadKey, Some(&req.api_id), not_found::api)?;
    let api = api_for(caller, &req.api_id, Action::ReadApi).await?;
    let rows = caller
        .store()
        .list_keys(
            &api.id,
            req.cursor.as_deref(),
            req.external_id.as_deref(),
            limit + 1,
        )
        .await?;
    let (rows, cursor) = paginate(rows, limit, |r| r.id.clone());
    let mut keys = views::keys_data(caller.state, &rows).await?;
    if req.decrypt == Some(true) {
        crate::service::recovery::reveal(caller, &api.id, &mut keys).await?;
    }
    Ok(Page::new(keys, cursor))
}

impl Validate for CreateApiRequest {
    fn issues(&self, v: &mut Issues) {
        v.length("body.name", &self.name, 3, 256);
    }
}

impl Validate for ApiIdRequest {
    fn issues(&self, v: &mut Issues) {
        v.id("body.apiId", &self.api_id);
    }
}

impl Validate for ListKeysRequest {
    fn issues(&self, v: &mut Issues) {
        v.length("body.apiId", &self.api_id, 1, 255);
        if let Some(e) = &self.external_id {
            v.length("body.externalId", e, 1, 255);
        }
    }

    fn page(&self) -> Option<(Option<u64>, u64)> {
        Some((self.limit, 100))
    }
}
