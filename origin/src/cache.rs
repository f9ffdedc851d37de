//! The hot-key cache: key snapshots in memory, with stale-while-revalidate.
//!
//! A fresh entry answers outright. A stale one answers at once too, and one background
//! task per key reloads it, so a hot key never waits on the database after its first
//! use. "Not found" is cached like any snapshot, which absorbs floods of random keys.
//!
//! Writes must never be undone by a reload that read the old row just before them. Every
//! write bumps its key's epoch (`epochs`) after committing and before invalidating; a
//! loader inserts only if that epoch did not move while it read, and re-checks after
//! inserting.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyway_core::key::KeyHash;
use keyway_core::snapshot::KeySnapshot;
use moka::sync::Cache;

use crate::epochs::Epochs;
use crate::store::{Store, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Stale,
    /// A stale root key read again before answering (`Stale::Reload`); kept apart from
    /// `Miss` so a cold cache and a revocation check read as different things.
    Reload,
    Miss,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Stale => "stale",
            CacheStatus::Reload => "reload",
            CacheStatus::Miss => "miss",
        }
    }
}

#[derive(Debug)]
struct Entry {
    snapshot: Option<Arc<KeySnapshot>>,
    loaded: Instant,
}

pub type Lookup = (Option<Arc<KeySnapshot>>, CacheStatus);

/// What a stale entry may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Answer at once and reload in the background: keys being verified.
    Serve,
    /// Reload before answering, so a revoked credential is refused within the fresh
    /// time; answer with the stale entry only if the reload fails. Root keys.
    Reload,
}

pub struct SnapshotCache {
    /// `None` when caching is off (capacity 0): every lookup reads the database. Keyed by
    /// the raw digest: 32 inline bytes instead of a 44-character string on the heap, which
    /// is most of a kilobyte per million keys.
    entries: Option<Cache<[u8; 32], Arc<Entry>>>,
    fresh: Duration,
    refreshing: Mutex<HashSet<[u8; 32]>>,
    epochs: Epochs,
}

impl SnapshotCache {
    pub fn new(capacity: u64, fresh: Duration, stale: Duration) -> Self {
        let entries = (capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(capacity)
                .time_to_live(stale.max(fresh))
                .build()
        });
        Self {
            entries,
            fresh,
            refreshing: Mutex::new(HashSet::new()),
            epochs: Epochs::default(),
        }
    }

    pub async fn get(
        self: &Arc<Self>,
        store: &Store,
        hash: &KeyHash,
        stale: Stale,
    ) -> StoreResult<Lookup> {
        let (Some(entries), Some(digest)) = (&self.entries, hash.digest()) else {
            let loaded = store.load_snapshot(hash).await?;
            return Ok((loaded.map(Arc::new), CacheStatus::Miss));
        };
        if let Some(entry) = entries.get(&digest) {
            if entry.loaded.elapsed() < self.fresh {
                return Ok((entry.snapshot.clone(), CacheStatus::Hit));
            }
            if stale == Stale::Reload {
                match self.load(store, hash, digest).await {
                    Ok(snapshot) => return Ok((snapshot, CacheStatus::Reload)),
                    Err(e) => {
                        tracing::warn!(error = %e, "reloading a stale root key failed; answering from cache");
                    }
                }
                return Ok((entry.snapshot.clone(), CacheStatus::Stale));
            }
            self.refresh_in_background(store, hash, digest);
            return Ok((entry.snapshot.clone(), CacheStatus::Stale));
        }
        let snapshot = self.load(store, hash, digest).await?;
        Ok((snapshot, CacheStatus::Miss))
    }

    async fn load(
        &self,
        store: &Store,
        hash: &KeyHash,
        digest: [u8; 32],
    ) -> StoreResult<Option<Arc<KeySnapshot>>> {
        let before = self.epochs.read(&digest);
        let snapshot = store.load_snapshot(hash).await?.map(Arc::new);
        if let Some(entries) = &self.entries
            && self.epochs.read(&digest) == before
        {
            entries.insert(
                digest,
                Arc::new(Entry {
                    snapshot: snapshot.clone(),
                    loaded: Instant::now(),
                }),
            );
            if self.epochs.read(&digest) != before {
                entries.invalidate(&digest);
            }
        }
        Ok(snapshot)
    }

    fn refresh_in_background(self: &Arc<Self>, store: &Store, hash: &KeyHash, digest: [u8; 32]) {
        {
            let Ok(mut inflight) = self.refreshing.lock() else {
                return;
            };
            if !inflight.insert(digest) {
                return;
            }
        }
        let this = Arc::clone(self);
        let store = store.clone();
        let hash = hash.clone();
        tokio::spawn(async move {
            if let Err(e) = this.load(&store, &hash, digest).await {
                // The stale entry keeps answering until it expires; the next stale hit retries.
                tracing::warn!(error = %e, "background snapshot refresh failed");
            }
            if let Ok(mut inflight) = this.refreshing.lock() {
                inflight.remove(&digest);
            }
        });
    }

    /// Drops snapshots after a write has committed, before the write answers.
    /// Drops every entry: a node that may have missed change notices starts over.
    pub fn invalidate_all(&self) {
        self.epochs.bump_all();
        if let Some(entries) = &self.entries {
            entries.invalidate_all();
        }
    }

    pub fn invalidate<'a>(&self, hashes: impl IntoIterator<Item = &'a str>) {
        for digest in hashes
            .into_iter()
            .filter_map(|h| KeyHash::from_stored(h).digest())
        {
            self.epochs.bump(&digest);
            if let Some(entries) = &self.entries {
                entries.invalidate(&digest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A steady stream of writes to other keys: a cold key is still cached on its first
    /// load, and a stale one still refreshes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_keys_writes_do_not_keep_a_key_uncached() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let store = Store::connect(&url, 2).await.unwrap();
        let cache = Arc::new(SnapshotCache::new(
            1000,
            Duration::from_millis(200),
            Duration::from_secs(60),
        ));
        // Other keys only: none shares a stripe with a key under test (one chance in 4,096
        // per write otherwise, which a storm of thousands of writes per load would hit).
        let cold: Vec<KeyHash> = (0..20).map(|n| KeyHash::of(&format!("cold_{n}"))).collect();
        let taken: std::collections::HashSet<usize> = cold
            .iter()
            .filter_map(|h| h.digest())
            .map(|d| crate::epochs::stripe_of(&d))
            .collect();
        let others: Vec<KeyHash> = (0..50_000u64)
            .map(|i| KeyHash::of(&format!("other_{i}")))
            .filter(|h| {
                h.digest()
                    .is_some_and(|d| !taken.contains(&crate::epochs::stripe_of(&d)))
            })
            .collect();
        let storm = {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                for i in 0..200_000usize {
                    let other = &others[i % others.len()];
                    cache.invalidate([other.as_str()]);
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        for (n, hash) in cold.iter().enumerate() {
            let (_, first) = cache.get(&store, hash, Stale::Serve).await.unwrap();
            let (_, second) = cache.get(&store, hash, Stale::Serve).await.unwrap();
            assert_eq!(
                (first, second),
                (CacheStatus::Miss, CacheStatus::Hit),
                "key {n}"
            );
        }
        storm.abort();
        // A write to the key itself still drops it.
        let hash = KeyHash::of("cold_0");
        cache.invalidate([hash.as_str()]);
        let (_, status) = cache.get(&store, &hash, Stale::Serve).await.unwrap();
        assert_eq!(status, CacheStatus::Miss);
    }
}
