//! Route handlers, one module per API group. `http::Call` parses and validates first,
//! then authenticates (a malformed body is a 400 even without credentials); the handler
//! calls the service and shapes the answer. Handlers never reach the store.

/// A route that is one service call. `Call` parses and validates the body, then
/// authenticates; the service acts as that caller; the answer is its data (`one!`) or
/// one page of it (`page!`). Anything after the service is passed on to it.
macro_rules! one {
    ($name:ident, $body:ty => $service:path $(, $arg:expr)*) => {
        pub async fn $name(
            axum::extract::State(state): axum::extract::State<crate::state::AppState>,
            call: crate::http::Call<$body>,
        ) -> crate::http::ApiResult {
            let caller = crate::service::Caller::new(&state, &call.caller, call.ctx);
            crate::http::ok($service(&caller, call.body.into() $(, $arg)*).await?)
        }
    };
}

macro_rules! page {
    ($name:ident, $body:ty => $service:path) => {
        pub async fn $name(
            axum::extract::State(state): axum::extract::State<crate::state::AppState>,
            call: crate::http::Call<$body>,
        ) -> crate::http::ApiResult {
            let caller = crate::service::Caller::new(&state, &call.caller, call.ctx);
            crate::http::ok_page($service(&caller, call.body).await?)
        }
    };
}

pub mod analytics;
pub mod apis;
pub mod identities;
pub mod internal;
pub mod keys;
pub mod ops;
pub mod permissions;
pub mod ratelimit;
pub mod verify;
