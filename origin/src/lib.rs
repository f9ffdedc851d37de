//! Keyway's origin: the stateful, Unkey-compatible key server.
//!
//! Hot key snapshots live in a moka cache with stale-while-revalidate, rate-limit and
//! credit counters in memory, analytics events in a bounded buffer written in batches.
//! The verification itself is `keyway_core::verify::decide`; this crate is the adapter
//! that feeds it snapshots and counters and turns its answers into HTTP.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod analytics;
pub mod caches;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod counters;
pub mod error;

pub mod handlers;
pub mod http;
pub mod ids;
pub mod metrics;
pub mod routes;
pub mod server;
pub mod service;
pub mod state;
pub mod store;
pub mod transfer;
pub mod vault;
