//! Analytics, one subsystem in two halves that share only the event types:
//! - `ingest`: verification and rate-limit events, buffered and written in batches as
//!   rows and rollups, and deleted after their retention;
//! - `query`: the SQL callers send, rewritten into a sandbox and read back.
//!
//! The store lends both its pool and transactions; neither reaches into the other.

pub mod ingest;
pub mod query;

pub use query::Analytics;
