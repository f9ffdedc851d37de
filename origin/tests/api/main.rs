//! Integration tests: the real `keyway serve` binary over HTTP, on SQLite and PostgreSQL.
//!
//! One test binary (linking is the slow part on two cores), organised by status code so
//! gaps are visible: `status_200`, `status_4xx`, and `stateful` for counters, caches and
//! durability. Every test runs once per backend through the `both!` macro.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod analytics;
mod analytics_query;
mod cluster_script;
mod docs;
mod fuzz;
mod hardening;
mod harness;
mod moving_in;
mod stateful;
mod status_200;
mod status_4xx;
mod unkey_sdk;
