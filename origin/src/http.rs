//! The HTTP boundary: request context, the error type, JSON in and out.
//!
//! Every error leaves through `AppError`'s `IntoResponse`, the one place where errors
//! become HTTP (and, through `AppError::into_api_error`, are logged). The request id and `Accept` header live in a task-local set by the
//! middleware, so both success envelopes and errors carry the same `req_…` id without
//! threading it through every handler.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tower_layer::Layer;
use tower_service::Service;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyway_core::api::{Envelope, ListEnvelope, Meta, Pagination};
use keyway_core::error::ApiError;
use keyway_core::validate::parse_json;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::ids;
use crate::metrics::Metrics;
use crate::service::Page;
use crate::service::validate::Validate;
use crate::state::AppState;
use keyway_core::auth::RootScope;
use prometheus::Histogram;

pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct RequestContext {
    pub request: ids::RequestId,
    /// `request` rendered, for the envelope and the header.
    pub request_id: String,
    pub accept: Option<HeaderValue>,
    pub started: Instant,
}

tokio::task_local! {
    static CONTEXT: RequestContext;
}

pub fn request_id() -> String {
    CONTEXT
        .try_with(|c| c.request_id.clone())
        .unwrap_or_else(|_| ids::request_id())
}

/// This request's id as its counter (a fresh one outside a request).
pub fn request() -> ids::RequestId {
    CONTEXT
        .try_with(|c| c.request)
        .unwrap_or_else(|_| ids::RequestId::next())
}

/// What the services need of this request.
pub fn service_context() -> crate::service::Context {
    crate::service::Context {
        request: request(),
        started: started(),
    }
}

pub fn started() -> Instant {
    CONTEXT
        .try_with(|c| c.started)
        .unwrap_or_else(|_| Instant::now())
}

fn accept() -> Option<String> {
    CONTEXT
        .try_with(|c| {
            c.accept
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .ok()
        .flatten()
}

/// Gives each request its id, times it, and scopes the context for the handler.
///
/// A hand-written layer rather than `middleware::from_fn`: measured with wrk on
/// `/v2/liveness`, `from_fn` (which clones the inner route service and boxes per request)
/// plus a random request id cost about a quarter of the server's throughput.
/// One per route: its latency histogram is resolved when the router is built.
#[derive(Clone)]
pub struct ContextLayer {
    histogram: Histogram,
    metrics: Arc<Metrics>,
}

impl ContextLayer {
    pub fn new(histogram: Histogram, metrics: Arc<Metrics>) -> Self {
        Self { histogram, metrics }
    }
}

impl<S> Layer<S> for ContextLayer {
    type Service = ContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ContextService {
            inner,
            histogram: self.histogram.clone(),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

#[derive(Clone)]
pub struct ContextService<S> {
    inner: S,
    histogram: Histogram,
    metrics: Arc<Metrics>,
}

impl<S> Service<Request> for ContextService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let started = Instant::now();
        let request = ids::RequestId::next();
        let request_id = request.render();
        let header = HeaderValue::from_str(&request_id).ok();
        let ctx = RequestContext {
            request,
            request_id,
            // A refcounted handle on the header's bytes, not a copy: read only on errors.
            accept: req.headers().get(header::ACCEPT).cloned(),
            started,
        };
        let histogram = self.histogram.clone();
        let fut = self.inner.call(req);
        let metrics = Arc::clone(&self.metrics);
        Box::pin(async move {
            let Ok(mut response) = CONTEXT.scope(ctx, fut).await;
            if response.status().is_server_error() {
                metrics.server_errors.inc();
            }
            if let Some(v) = header {
                response.headers_mut().insert("x-request-id", v);
            }
            histogram.observe(started.elapsed().as_secs_f64());
            Ok(response)
        })
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let e = self.into_api_error();
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = e.to_json(&request_id());
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(e.content_type(accept().as_deref())),
        );
        if e.status == 413 {
            // The rest of the oversized body was never read, so this connection cannot
            // carry another request; say so, or clients will reuse it and fail.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

pub type ApiResult = Result<Response, AppError>;

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A success body as JSON bytes: `{meta, data}` for one answer.
pub fn envelope<T: Serialize>(data: T) -> Result<Vec<u8>, AppError> {
    json_bytes(&Envelope {
        meta: Meta {
            request_id: request_id(),
        },
        data,
    })
}

fn json_bytes(body: &impl Serialize) -> Result<Vec<u8>, AppError> {
    serde_json::to_vec(body).map_err(|e| {
        AppError::internal(
            "could not serialize the response",
            "The response could not be encoded.",
            e,
        )
    })
}

/// `200 {meta, data}`.
pub fn ok<T: Serialize>(data: T) -> ApiResult {
    Ok(json_response(StatusCode::OK, envelope(data)?))
}

/// `200 {meta, data: [...], pagination}`.
pub fn ok_list<T: Serialize>(data: Vec<T>, cursor: Option<String>) -> ApiResult {
    let body = json_bytes(&ListEnvelope {
        meta: Meta {
            request_id: request_id(),
        },
        data,
        pagination: Pagination {
            has_more: cursor.is_some(),
            cursor,
        },
    })?;
    Ok(json_response(StatusCode::OK, body))
}

/// The raw body, capped at 1 MiB (413 beyond), for handlers that parse it themselves.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = AppError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, AppError> {
        let body: Body = req.into_body();
        match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(e) => {
                let inner = e.into_inner();
                if inner.is::<http_body_util::LengthLimitError>() {
                    Err(AppError::Client(ApiError::payload_too_large(
                        MAX_BODY_BYTES,
                    )))
                } else {
                    Err(AppError::Client(ApiError::invalid_input(
                        "The request body could not be read.",
                        vec![keyway_core::error::ValidationIssue::new(
                            "body",
                            inner.to_string(),
                        )],
                    )))
                }
            }
        }
    }
}

/// A JSON body parsed with the core's rules (400 with the failing field's location).
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        Ok(Json(parse_json(&bytes)?))
    }
}

/// One call to an authenticated route: the body parsed and validated, then the caller
/// authenticated, in that order (400 before 401), and what the services need of the
/// request. Every JSON route but verifyKey takes this instead of writing the steps out.
pub struct Call<T> {
    pub caller: RootScope,
    pub body: T,
    pub ctx: crate::service::Context,
}

impl<T: DeserializeOwned + Validate + Send> FromRequest<AppState> for Call<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let authorization = req.headers().get(header::AUTHORIZATION).cloned();
        let Json(body) = Json::<T>::from_request(req, state).await?;
        crate::service::validate::check(&body)?;
        let caller = state
            .authenticate(authorization.as_ref().and_then(|v| v.to_str().ok()))
            .await?;
        Ok(Call {
            caller,
            body,
            ctx: service_context(),
        })
    }
}

/// `200 {meta, data: [...], pagination}` for one page.
pub fn ok_page<T: Serialize>(page: Page<T>) -> ApiResult {
    ok_list(page.items, page.cursor)
}

/// The request's `Authorization` header, taken by handlers instead of a `HeaderMap`,
/// which axum extracts as a copy of every header (two allocations per request).
/// Extracting it decides nothing: handlers authenticate after validating the body.
pub struct Credentials(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for Credentials {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        // A refcounted handle on the header's bytes, not a copy.
        Ok(Credentials(
            parts.headers.get(header::AUTHORIZATION).cloned(),
        ))
    }
}

impl Credentials {
    /// The header's text; `None` when it is missing or not visible ASCII.
    pub fn authorization(&self) -> Option<&str> {
        self.0.as_ref().and_then(|v| v.to_str().ok())
    }
}
