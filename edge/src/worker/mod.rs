//! The Worker glue: the entry point, the isolate's memory, the Cache API adapter, calls
//! to the origin, responses and errors. Compiled only for wasm32; the decisions it runs
//! live in `crate::policy`.

mod cache_api;
mod error;
mod isolate;
mod main;
mod origin;
mod respond;
mod route;
mod tiers;
mod verify;
