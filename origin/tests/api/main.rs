//! Integration tests: the real `keyway serve` binary over HTTP, on SQLite and PostgreSQL.
//!
//! One test binary (linking is the slow part on two cores):
//! - `routes/`: the HTTP API by route, then by status;
//! - `stateful`: counters, caches and durability, across routes;
//! - `ingest`: what verifications write to the analytics tables;
//! - `cli`: the `keyway` commands beside `serve`;
//! - `cluster_script`, `fuzz`, `docs` and `unkey_sdk`: the Redis script against the
//!   in-memory arithmetic, the router under generated input, the docs against `--help`,
//!   and Unkey's own SDK.
//!
//! Every story that touches storage runs once per backend through the `both!` macro.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli;
mod cluster_script;
mod docs;
mod fuzz;
mod harness;
mod ingest;
mod routes;
mod stateful;
mod unkey_sdk;
