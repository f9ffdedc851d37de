//! What the origin keeps in memory that the database also holds: key snapshots, rate-limit
//! overrides, and the change notices that keep other nodes' copies honest.
//!
//! Every write that changes what a copy holds calls [`Caches::forget`] after committing
//! and before answering: the copies here go at once, and in cluster mode every other node
//! hears of it through Redis.

pub mod epochs;
pub mod notices;
pub mod overrides;
pub mod snapshots;

use std::sync::Arc;

use notices::Notices;
use overrides::OverrideCache;
use snapshots::SnapshotCache;

pub struct Caches {
    pub snapshots: Arc<SnapshotCache>,
    pub overrides: Arc<OverrideCache>,
    /// Cluster mode only.
    pub notices: Option<Arc<Notices>>,
}

impl Caches {
    /// Drops these snapshots here and, in cluster mode, on every other replica.
    pub async fn forget<'a>(&self, hashes: impl IntoIterator<Item = &'a str>) {
        let hashes: Vec<&str> = hashes.into_iter().collect();
        self.snapshots.invalidate(hashes.iter().copied());
        self.overrides.invalidate(hashes.iter().copied());
        if let Some(notices) = &self.notices {
            notices.publish(hashes).await;
        }
    }
}
