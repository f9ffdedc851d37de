//! Liveness, metrics and the fallbacks.

use axum::extract::State;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use keyway_core::error::ApiError;
use serde::Serialize;

use crate::error::AppError;
use crate::http::{ApiResult, ok};
use crate::state::AppState;

#[derive(Serialize)]
struct Liveness {
    message: &'static str,
}

pub async fn liveness() -> ApiResult {
    ok(Liveness { message: "OK" })
}

pub async fn metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let text = state.metrics.render().map_err(|e| {
        AppError::internal(
            "could not encode the metrics",
            "The metrics could not be encoded.",
            e,
        )
    })?;
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

pub async fn not_found(uri: Uri) -> AppError {
    AppError::Client(ApiError::route_not_found(uri.path()))
}

pub async fn method_not_allowed() -> AppError {
    AppError::Client(ApiError::method_not_allowed())
}
