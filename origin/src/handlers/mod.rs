//! Route handlers, one module per API group. `http::Call` parses and validates first,
//! then authenticates (a malformed body is a 400 even without credentials); the handler
//! calls the service and shapes the answer. Handlers never reach the store.

pub mod analytics;
pub mod apis;
pub mod identities;
pub mod internal;
pub mod keys;
pub mod ops;
pub mod permissions;
pub mod ratelimit;
pub mod verify;
