//! `keys.verifyKey`: the hot path.

use axum::extract::State;
use keyway_core::api::keys::VerifyKeyRequest;
use keyway_core::validate::{parse_json, verify_request};

use crate::http::{ApiResult, Credentials, RawBody, ok, service_context};
use crate::service::Caller;
use crate::service::verify::verify;
use crate::state::AppState;

pub async fn verify_key(
    State(state): State<AppState>,
    credentials: Credentials,
    RawBody(body): RawBody,
) -> ApiResult {
    let req: VerifyKeyRequest = parse_json(&body)?;
    let query = verify_request(&req)?;
    let scope = state.authenticate(credentials.authorization()).await?;
    let caller = Caller::new(&state, &scope, service_context());
    let data = verify(&caller, &req.key.hash(), &req, query.as_ref()).await?;
    ok(data)
}
