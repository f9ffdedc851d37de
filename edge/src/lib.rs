//! Keyway's edge: a Cloudflare Worker that verifies API keys next to the caller.
//!
//! It decides with the same `keyway_core::verify::decide` as the origin, from snapshots
//! cached in three tiers (isolate memory, the Cache API, the origin), and forwards
//! whatever needs counters (credits, rate limits) to the origin, which owns them. It also
//! holds the traffic switch between the two models.
//!
//! The policy modules (settings, the snapshot tiers and their freshness rule, the memo,
//! the traffic switch, shadow comparison, event batching, stats) are plain Rust, tested
//! natively; the modules that bind them to the runtime compile only for wasm32.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod config;
pub mod events;
pub mod lookup;
pub mod memo;
pub mod route;
pub mod shadow;
pub mod stats;
pub mod tiers;

#[cfg(target_arch = "wasm32")]
mod error;
#[cfg(target_arch = "wasm32")]
mod origin;
#[cfg(target_arch = "wasm32")]
mod runtime;
#[cfg(target_arch = "wasm32")]
mod verify;
#[cfg(target_arch = "wasm32")]
mod worker_main;
