//! `/internal/v1/*`: what the edge asks of the origin, in postcard.
//!
//! Off unless `KEYWAY_EDGE_SECRET` is set; every call must carry it as a bearer token,
//! compared in constant time so response timing reveals nothing about it.

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyway_core::auth::{RootScope, bearer_token};
use keyway_core::error::ApiError;
use keyway_core::validate::verify_options;
use keyway_core::wire::{
    self, EventBatch, ForwardedVerify, PairFound, PairLookup, SnapshotFound, SnapshotLookup,
    VerifyAnswer, WireMessage,
};

use std::time::Duration;

use crate::error::AppError;
use crate::http::{RawBody, envelope, request_id};
use crate::service::Caller;
use crate::state::AppState;
use keyway_core::key::KeyHash;

fn check_secret(state: &AppState, authorization: Option<&str>) -> Result<(), AppError> {
    let Some(secret) = &state.edge_secret else {
        return Err(AppError::Client(ApiError::route_not_found("/internal/v1")));
    };
    let token = bearer_token(authorization)?;
    if secret.matches(token) {
        Ok(())
    } else {
        Err(AppError::Client(ApiError::unauthorized(
            "The edge secret is wrong.",
        )))
    }
}

/// One call from the edge: the secret checked first (an unauthenticated body is never
/// read), then the body decoded as the route's wire message.
pub struct EdgeCall<M>(pub M);

impl<M: WireMessage> FromRequest<AppState> for EdgeCall<M> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let authorization = req.headers().get(header::AUTHORIZATION);
        check_secret(state, authorization.and_then(|v| v.to_str().ok()))?;
        let RawBody(body) = RawBody::from_request(req, state).await?;
        let msg = wire::decode(&body).map_err(|e| {
            AppError::Client(ApiError::invalid_input(
                format!("Malformed wire message: {e}"),
                Vec::new(),
            ))
        })?;
        Ok(EdgeCall(msg))
    }
}

fn postcard<M: WireMessage>(msg: &M) -> Response {
    let mut r = (StatusCode::OK, wire::encode(msg)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(wire::CONTENT_TYPE),
    );
    r
}

/// A snapshot for the edge, as read at most `max_age_ms` ago, and how long ago that was:
/// the edge counts its freshness from the read, so the two caches' fresh times never add
/// up (a change that skipped this node's cache, like the CLI's, included).
async fn found(
    state: &AppState,
    hash: &KeyHash,
    max_age_ms: u32,
) -> Result<SnapshotFound, AppError> {
    let max_age = Duration::from_millis(u64::from(max_age_ms));
    let (snapshot, age) = state.lookup_within(hash, max_age).await?;
    Ok(SnapshotFound {
        snapshot: snapshot.map(|s| (*s).clone()),
        age_ms: u32::try_from(age.as_millis()).unwrap_or(u32::MAX),
    })
}

pub async fn snapshot(
    State(state): State<AppState>,
    EdgeCall(lookup): EdgeCall<SnapshotLookup>,
) -> Result<Response, AppError> {
    Ok(postcard(
        &found(&state, &lookup.hash, lookup.max_age_ms).await?,
    ))
}

/// The root key and, if it authenticates, the key: what the edge needs when it has
/// neither, in one round trip.
pub async fn pair(
    State(state): State<AppState>,
    EdgeCall(lookup): EdgeCall<PairLookup>,
) -> Result<Response, AppError> {
    let root = found(&state, &lookup.root, lookup.max_age_ms).await?;
    let scope = root.snapshot.clone().map(std::sync::Arc::new);
    let authenticated = RootScope::from_snapshot(scope, crate::ids::now_ms()).is_ok();
    let key = if authenticated {
        Some(found(&state, &lookup.key, lookup.max_age_ms).await?)
    } else {
        None
    };
    Ok(postcard(&PairFound { root, key }))
}

pub async fn verify(
    State(state): State<AppState>,
    EdgeCall(fwd): EdgeCall<ForwardedVerify>,
) -> Result<Response, AppError> {
    let answer = match forwarded(&state, &fwd).await {
        Ok(data) => {
            let body = envelope(data)?;
            VerifyAnswer {
                status: 200,
                body,
                content_type: "application/json".into(),
            }
        }
        Err(e) => {
            let e = e.into_api_error();
            VerifyAnswer {
                status: e.status,
                body: e.to_json(&request_id()),
                content_type: e.content_type(fwd.accept.as_deref()).into(),
            }
        }
    };
    Ok(postcard(&answer))
}

async fn forwarded(
    state: &AppState,
    fwd: &ForwardedVerify,
) -> Result<keyway_core::api::keys::VerifyKeyResponseData, AppError> {
    let query = verify_options(&fwd.request)?;
    let scope = state.authenticate_hash(&fwd.root_key_hash).await?;
    let caller = Caller::new(state, &scope, crate::http::service_context());
    crate::service::verify::verify(&caller, &fwd.key_hash, &fwd.request, query.as_ref()).await
}

pub async fn events(
    State(state): State<AppState>,
    EdgeCall(batch): EdgeCall<EventBatch>,
) -> Result<Response, AppError> {
    for e in batch.events {
        state.events.record(e);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
