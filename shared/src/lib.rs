//! Keyway's core: everything that decides, nothing that waits.
//!
//! The edge Worker (wasm32) and the origin server (native) link this crate so that both
//! reach the same verdict for the same key and request. That only holds if the crate
//! never reads a clock, a random source, a socket or a file: time, randomness and counter
//! state are always passed in by the caller.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admission;
pub mod api;
pub mod auth;
pub mod calendar;
pub mod credits;
pub mod error;
pub mod freshness;
pub mod key;
pub mod not_found;
pub mod override_match;
pub mod permission;
pub mod ratelimit;
pub mod secret;
pub mod snapshot;
pub mod validate;
pub mod verify;
pub mod wire;
