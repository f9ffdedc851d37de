//! Keyway's edge: a Cloudflare Worker that verifies API keys next to the caller.
//!
//! It decides with the same `keyway_core::verify::decide` as the origin, from snapshots
//! cached in three tiers (isolate memory, the Cache API, the origin), and forwards
//! whatever needs counters (credits, rate limits) to the origin, which owns them. It also
//! holds the traffic switch between the two models.
//!
//! The policy modules below are plain Rust, tested natively; the Worker glue that binds
//! them to the runtime compiles only for wasm32.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod memo;
pub mod route;
pub mod shadow;
pub mod tiers;

#[cfg(target_arch = "wasm32")]
mod worker_main;
