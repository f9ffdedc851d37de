//! The hot-key cache: key snapshots in memory, by the core's freshness rule
//! (`keyway_core::freshness`), the same one the edge's tiers follow.
//!
//! A fresh entry answers outright. A stale one answers at once too, and one background
//! task per key reloads it, so a hot key never waits on the database after its first
//! use. "Not found" is cached and served stale like any snapshot (`NotFound::ServeStale`),
//! which absorbs floods of random keys: every write that creates a key drops it first.
//!
//! Writes must never be undone by a reload that read the old row just before them. Every
//! write bumps its key's epoch (`epochs`) after committing and before invalidating; a
//! loader inserts only if that epoch did not move while it read, and re-checks after
//! inserting.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use keyway_core::freshness::{CacheStatus, Stale};
use keyway_core::freshness::{NotFound, ReloadFails, Rule, Step};
use keyway_core::key::KeyHash;
use keyway_core::snapshot::KeySnapshot;
use moka::sync::Cache;

use crate::caches::epochs::{Epochs, Seen};
use crate::store::{Store, StoreError, StoreResult};

#[derive(Debug)]
struct Entry {
    snapshot: Option<Arc<KeySnapshot>>,
    loaded: Instant,
}

pub type Lookup = (Option<Arc<KeySnapshot>>, CacheStatus);

pub struct SnapshotCache {
    /// `None` when caching is off (capacity 0): every lookup reads the database. Keyed by
    /// the raw digest: 32 inline bytes instead of a 44-character string on the heap, which
    /// is most of a kilobyte per million keys.
    entries: Option<Cache<[u8; 32], Arc<Entry>>>,
    rule: Rule,
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
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            entries,
            rule: Rule::new(
                ms(fresh),
                ms(stale),
                NotFound::ServeStale,
                ReloadFails::AnswerStale,
            ),
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
        let before = self.epochs.read(&digest);
        let entry = entries.get(&digest);
        let age = |e: &Entry| u64::try_from(e.loaded.elapsed().as_millis()).unwrap_or(u64::MAX);
        let step = self.rule.step(
            entry
                .as_ref()
                .map(|e| (e.snapshot.is_some(), self.rule.freshness(age(e)))),
            stale,
        );
        match (step, entry) {
            (Step::Answer, Some(entry)) => Ok((entry.snapshot.clone(), CacheStatus::Hit)),
            (Step::AnswerAndRefresh, Some(entry)) => {
                self.refresh_in_background(store, hash, digest);
                Ok((entry.snapshot.clone(), CacheStatus::Stale))
            }
            (Step::Reload, Some(entry)) => match self.load(store, hash, digest).await {
                Ok(snapshot) => Ok((snapshot, CacheStatus::Reload)),
                Err(e @ StoreError::Database(_)) => {
                    tracing::warn!(error = %e, "reloading a stale root key failed; answering from cache");
                    // While the database is away no revocation can be written either;
                    // stamp the copy anew so the next requests do not each wait on it.
                    self.insert_unless_written(digest, entry.snapshot.clone(), before);
                    Ok((entry.snapshot.clone(), CacheStatus::Stale))
                }
                Err(e) => Err(e),
            },
            _ => {
                let snapshot = self.load(store, hash, digest).await?;
                Ok((snapshot, CacheStatus::Miss))
            }
        }
    }

    async fn load(
        &self,
        store: &Store,
        hash: &KeyHash,
        digest: [u8; 32],
    ) -> StoreResult<Option<Arc<KeySnapshot>>> {
        let before = self.epochs.read(&digest);
        let snapshot = store.load_snapshot(hash).await?.map(Arc::new);
        self.insert_unless_written(digest, snapshot.clone(), before);
        Ok(snapshot)
    }

    /// Caches `snapshot` as of now, unless a write to its key moved the key's epoch since
    /// `before`, when what was read may predate the write.
    fn insert_unless_written(
        &self,
        digest: [u8; 32],
        snapshot: Option<Arc<KeySnapshot>>,
        before: Seen,
    ) {
        if let Some(entries) = &self.entries
            && self.epochs.read(&digest) == before
        {
            entries.insert(
                digest,
                Arc::new(Entry {
                    snapshot,
                    loaded: Instant::now(),
                }),
            );
            if self.epochs.read(&digest) != before {
                entries.invalidate(&digest);
            }
        }
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

    /// The snapshot as read from the database no more than `max_age` ago, and how long
    /// ago that was: for the edge, which counts its own freshness from the read. A copy
    /// older than that is read again; a failed read is an error, never an old copy (the
    /// edge has its own stale copy and its own rule for it).
    pub async fn get_within(
        &self,
        store: &Store,
        hash: &KeyHash,
        max_age: Duration,
    ) -> StoreResult<(Option<Arc<KeySnapshot>>, Duration)> {
        if let (Some(entries), Some(digest)) = (&self.entries, hash.digest()) {
            if let Some(entry) = entries.get(&digest)
                && entry.loaded.elapsed() < max_age
            {
                return Ok((entry.snapshot.clone(), entry.loaded.elapsed()));
            }
            return Ok((self.load(store, hash, digest).await?, Duration::ZERO));
        }
        Ok((
            store.load_snapshot(hash).await?.map(Arc::new),
            Duration::ZERO,
        ))
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
            .map(|d| crate::caches::epochs::stripe_of(&d))
            .collect();
        let others: Vec<KeyHash> = (0..50_000u64)
            .map(|i| KeyHash::of(&format!("other_{i}")))
            .filter(|h| {
                h.digest()
                    .is_some_and(|d| !taken.contains(&crate::caches::epochs::stripe_of(&d)))
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
