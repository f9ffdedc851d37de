//! Rate-limit overrides in memory, one entry per namespace.
//!
//! `ratelimit.limit` used to ask the database for an override on every call. A namespace's
//! overrides are now read once and kept for the snapshot cache's fresh time; a change
//! drops the entry here at once and, in cluster mode, on every node through the same
//! change notices as key snapshots (the entry's name is a digest, like a key hash). Writes
//! bump the namespace's epoch (`epochs`) so a load that read the old rows just before a
//! change is not kept.

use std::sync::Arc;
use std::time::Duration;

use keyway_core::key::KeyHash;
use keyway_core::override_match::Overrides;
use moka::sync::Cache;

use crate::caches::epochs::Epochs;
use crate::store::{OverrideRow, Store, StoreResult};

type Namespace = Arc<Overrides<OverrideRow>>;

pub struct OverrideCache {
    entries: Cache<[u8; 32], Namespace>,
    epochs: Epochs,
}

impl OverrideCache {
    pub fn new(fresh: Duration) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(fresh.max(Duration::from_millis(1)))
                .build(),
            epochs: Epochs::default(),
        }
    }

    /// The name under which a namespace's overrides are cached and announced.
    pub fn name(workspace_id: &str, namespace: &str) -> KeyHash {
        KeyHash::of(&format!("ratelimit-overrides\0{workspace_id}\0{namespace}"))
    }

    /// The override for this identifier: exact, else the most specific wildcard pattern.
    pub async fn find(
        &self,
        store: &Store,
        workspace_id: &str,
        namespace: &str,
        identifier: &str,
    ) -> StoreResult<Option<OverrideRow>> {
        let load = || async {
            let rows = store.namespace_overrides(workspace_id, namespace).await?;
            StoreResult::Ok(Arc::new(
                rows.into_iter()
                    .map(|o| (o.identifier.clone(), o))
                    .collect::<Overrides<_>>(),
            ))
        };
        // `name` hashes with KeyHash::of, which always has a digest; without one the
        // namespace is simply not cached.
        let Some(digest) = Self::name(workspace_id, namespace).digest() else {
            return Ok(load().await?.find(identifier).cloned());
        };
        let overrides = match self.entries.get(&digest) {
            Some(o) => o,
            None => {
                let before = self.epochs.read(&digest);
                let loaded = load().await?;
                if self.epochs.read(&digest) == before {
                    self.entries.insert(digest, Arc::clone(&loaded));
                    if self.epochs.read(&digest) != before {
                        self.entries.invalidate(&digest);
                    }
                }
                loaded
            }
        };
        Ok(overrides.find(identifier).cloned())
    }

    /// Drops the named entries (names from [`OverrideCache::name`]; others are ignored).
    pub fn invalidate<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        for digest in names
            .into_iter()
            .filter_map(|h| KeyHash::from_stored(h).digest())
        {
            self.epochs.bump(&digest);
            self.entries.invalidate(&digest);
        }
    }

    pub fn invalidate_all(&self) {
        self.epochs.bump_all();
        self.entries.invalidate_all();
    }
}
