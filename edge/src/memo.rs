//! The isolate-memory tier: a bounded LRU map with fresh and stale times.
//!
//! moka does not build for wasm32, and an isolate is single-threaded, so this is `lru`'s
//! map (O(1) insert and eviction; a scan for the oldest entry cost 50,000 comparisons per
//! insert once full). Time is passed in (the Worker reads `Date.now()`), which keeps it
//! testable natively.
//!
//! Two rules keep revocation bounded under concurrent load:
//! - an entry is stamped with when its load *started*, and a put never replaces a newer
//!   entry, so a slow answer that left before a change cannot overwrite one that left
//!   after it;
//! - one refresh per key is in flight at a time (`begin_refresh` / `end_refresh`), so a
//!   stale hot key costs one origin call, not one per request.

use std::collections::HashSet;
use std::hash::Hash;
use std::num::NonZeroUsize;

use lru::LruCache;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Stale,
}

#[derive(Debug)]
struct Slot<V> {
    value: V,
    stored_ms: f64,
}

pub struct Memo<K: Hash + Eq, V> {
    slots: LruCache<K, Slot<V>>,
    refreshing: HashSet<K>,
    fresh_ms: f64,
    stale_ms: f64,
}

impl<K: Hash + Eq + Clone, V: Clone> Memo<K, V> {
    pub fn new(capacity: usize, fresh_ms: f64, stale_ms: f64) -> Self {
        Self {
            slots: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
            refreshing: HashSet::new(),
            fresh_ms,
            stale_ms: stale_ms.max(fresh_ms),
        }
    }

    /// Changes the times (they come from Worker vars, read once per isolate).
    pub fn set_times(&mut self, fresh_ms: f64, stale_ms: f64) {
        self.fresh_ms = fresh_ms;
        self.stale_ms = stale_ms.max(fresh_ms);
    }

    pub fn fresh_ms(&self) -> f64 {
        self.fresh_ms
    }

    pub fn stale_ms(&self) -> f64 {
        self.stale_ms
    }

    /// How an entry stored at `stored_ms` reads at `now_ms`: the one freshness rule every
    /// tier uses. `None` once it is past the stale time.
    pub fn freshness(&self, stored_ms: f64, now_ms: f64) -> Option<Freshness> {
        let age = now_ms - stored_ms;
        if age < self.fresh_ms {
            Some(Freshness::Fresh)
        } else if age < self.stale_ms {
            Some(Freshness::Stale)
        } else {
            None
        }
    }

    pub fn get(&mut self, key: &K, now_ms: f64) -> Option<(V, Freshness)> {
        let (value, stored_ms) = self
            .slots
            .get(key)
            .map(|s| (s.value.clone(), s.stored_ms))?;
        match self.freshness(stored_ms, now_ms) {
            Some(f) => Some((value, f)),
            None => {
                self.slots.pop(key);
                None
            }
        }
    }

    /// Inserts with `stored_ms` as the entry's birth: when its load started (an entry
    /// copied from the Cache API keeps its original age, so tiers never extend each
    /// other's lifetimes). An existing newer entry wins; returns whether this one did.
    pub fn put(&mut self, key: K, value: V, stored_ms: f64) -> bool {
        if self
            .slots
            .peek(&key)
            .is_some_and(|s| s.stored_ms > stored_ms)
        {
            return false;
        }
        self.slots.put(key, Slot { value, stored_ms });
        true
    }

    /// Claims the one background refresh of `key`; `false` if one is already running.
    pub fn begin_refresh(&mut self, key: &K) -> bool {
        self.refreshing.insert(key.clone())
    }

    pub fn end_refresh(&mut self, key: &K) {
        self.refreshing.remove(key);
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_then_stale_then_gone() {
        let mut m: Memo<&str, u32> = Memo::new(10, 100.0, 1000.0);
        m.put("a", 1, 0.0);
        assert_eq!(m.get(&"a", 50.0), Some((1, Freshness::Fresh)));
        assert_eq!(m.get(&"a", 100.0), Some((1, Freshness::Stale)));
        assert_eq!(m.get(&"a", 1000.0), None);
        assert!(m.is_empty());
    }

    #[test]
    fn bounded_and_evicts_the_least_recently_used() {
        let mut m: Memo<u32, u32> = Memo::new(3, 100.0, 1000.0);
        for i in 0..3 {
            m.put(i, i, 0.0);
        }
        // Touch 0, so 1 is the least recently used when 3 arrives.
        assert!(m.get(&0, 1.0).is_some());
        m.put(3, 3, 1.0);
        assert_eq!(m.len(), 3);
        assert!(m.get(&1, 2.0).is_none());
        assert!(m.get(&0, 2.0).is_some() && m.get(&3, 2.0).is_some());
    }

    #[test]
    fn an_older_answer_never_replaces_a_newer_one() {
        let mut m: Memo<&str, &str> = Memo::new(10, 100.0, 1000.0);
        // A refresh that started at 10 answers after one that started at 20.
        assert!(m.put("k", "disabled", 20.0));
        assert!(!m.put("k", "valid", 10.0));
        assert_eq!(m.get(&"k", 30.0), Some(("disabled", Freshness::Fresh)));
        // Its age counts from when the load started, not when it arrived.
        assert_eq!(m.get(&"k", 120.0), Some(("disabled", Freshness::Stale)));
    }

    #[test]
    fn one_refresh_per_key() {
        let mut m: Memo<&str, u32> = Memo::new(10, 100.0, 1000.0);
        assert!(m.begin_refresh(&"k"));
        assert!(!m.begin_refresh(&"k"));
        assert!(m.begin_refresh(&"other"));
        m.end_refresh(&"k");
        assert!(m.begin_refresh(&"k"));
    }

    #[test]
    fn eviction_stays_cheap_at_capacity() {
        // 50,000 inserts into a full map of 5,000: a per-insert scan would be 250M steps.
        let mut m: Memo<u32, u32> = Memo::new(5_000, 100.0, 1000.0);
        for i in 0..55_000u32 {
            m.put(i, i, f64::from(i));
        }
        assert_eq!(m.len(), 5_000);
        assert!(m.get(&54_999, 54_999.0).is_some());
    }
}
