//! One kit for every process Keyway's tests and lab start (the origin binary, a database
//! per test, `redis-server`, and workerd with the edge bundle), and one typed client for
//! the API they serve.
//!
//! Each process binds a port the OS chooses and reports it (the origin's `listening` log
//! line, workerd's control messages, Redis's ready line), so no port is picked, released
//! and hoped for. Every process stops when its handle drops, so none outlives a test.

pub mod client;
pub mod db;
pub mod origin;
pub mod process;
pub mod redis;
pub mod workerd;

use std::path::{Path, PathBuf};

pub use client::{Client, Reply};
pub use db::{Backend, TestDb};
pub use origin::{Logs, OriginCommand, OriginProcess};
pub use process::Process;
pub use redis::Redis;
pub use workerd::{Workerd, WorkerdConfig};

/// The workspace's root directory (where `node_modules/` and the bundles are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// 16 random hex digits, for names and keys that must not collide between tests.
pub fn random_hex() -> String {
    use rand::RngCore;
    format!("{:016x}", rand::rng().next_u64())
}
