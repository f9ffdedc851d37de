//! The edge's policy: plain Rust, no runtime, tested natively with `cargo test`.
//!
//! The Worker glue (`crate::worker`) supplies the I/O each piece needs through the
//! traits in [`lookup`], and turns the answers into responses.

pub mod budget;
pub mod config;
pub mod events;
pub mod lookup;
pub mod memo;
pub mod route;
pub mod shadow;
pub mod stats;
pub mod tiers;
pub mod verify;

#[cfg(test)]
mod testing;
