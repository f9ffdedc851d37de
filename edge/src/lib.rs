//! Keyway's edge: a Cloudflare Worker that verifies API keys next to the caller.
//!
//! It decides with the same `keyway_core::verify::plan` as the origin, from snapshots
//! cached in three tiers (isolate memory, the Cache API, the origin), and forwards
//! whatever needs counters (credits, rate limits) to the origin, which owns them. It also
//! holds the traffic switch between the two models.
//!
//! `policy` is plain Rust, tested natively; `worker` binds it to the runtime and compiles
//! only for wasm32.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod policy;

#[cfg(target_arch = "wasm32")]
mod worker;
