//! The isolate-memory tier: a bounded LRU map, aged by the core's freshness rule.
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

use keyway_core::freshness::{Freshness, Rule, age_ms};
use lru::LruCache;

#[derive(Debug)]
struct Slot<V> {
    value: V,
    stored_ms: f64,
}

pub struct Memo<K: Hash + Eq, V> {
    slots: LruCache<K, Slot<V>>,
    refreshing: HashSet<K>,
    rule: Rule,
}

impl<K: Hash + Eq + Clone, V: Clone> Memo<K, V> {
    pub fn new(capacity: usize, rule: Rule) -> Self {
        Self {
            slots: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
            refreshing: HashSet::new(),
            rule,
        }
    }

    /// Changes the rule (its times come from Worker vars, read once per isolate).
    pub fn set_rule(&mut self, rule: Rule) {
        self.rule = rule;
    }

    pub fn rule(&self) -> Rule {
        self.rule
    }

    /// How an entry stored at `stored_ms` reads at `now_ms`, by the rule every tier uses.
    pub fn freshness(&self, stored_ms: f64, now_ms: f64) -> Freshness {
        self.rule.freshness(age_ms(stored_ms, now_ms))
    }

    /// The entry and how it reads; an expired entry is dropped and reads as absent.
    pub fn get(&mut self, key: &K, now_ms: f64) -> Option<(V, Freshness)> {
        let (value, stored_ms) = self
            .slots
            .get(key)
            .map(|s| (s.value.clone(), s.stored_ms))?;
        match self.freshness(stored_ms, now_ms) {
            Freshness::Expired => {
                self.slots.pop(key);
                None
            }
            f => Some((value, f)),
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

    /// Whether a refresh of `key` is in flight.
    pub fn refreshing(&self, key: &K) -> bool {
        self.refreshing.contains(key)
    }

    pub fn end_refresh(&mut self, key: &K) {
        self.refreshing.remove(key);
    }

    /// Whether any entry, of any age, is held for `key`.
    pub fn holds(&self, key: &K) -> bool {
        self.slots.contains(key)
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
    use keyway_core::freshness::{NotFound, ReloadFails};

    fn rule() -> Rule {
        Rule::new(100, 1000, NotFound::FreshOnly, ReloadFails::Refuse)
    }

    #[test]
    fn fresh_then_stale_then_gone() {
        let mut m: Memo<&str, u32> = Memo::new(10, rule());
        m.put("a", 1, 0.0);
        assert_eq!(m.get(&"a", 50.0), Some((1, Freshness::Fresh)));
        assert_eq!(m.get(&"a", 100.0), Some((1, Freshness::Stale)));
        assert_eq!(m.get(&"a", 1000.0), None);
        assert!(m.is_empty());
    }

    #[test]
    fn bounded_and_evicts_the_least_recently_used() {
        let mut m: Memo<u32, u32> = Memo::new(3, rule());
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
        let mut m: Memo<&str, &str> = Memo::new(10, rule());
        // A refresh that started at 10 answers after one that started at 20.
        assert!(m.put("k", "disabled", 20.0));
        assert!(!m.put("k", "valid", 10.0));
        assert_eq!(m.get(&"k", 30.0), Some(("disabled", Freshness::Fresh)));
        // Its age counts from when the load started, not when it arrived.
        assert_eq!(m.get(&"k", 120.0), Some(("disabled", Freshness::Stale)));
    }

    #[test]
    fn one_refresh_per_key() {
        let mut m: Memo<&str, u32> = Memo::new(10, rule());
        assert!(m.begin_refresh(&"k"));
        assert!(!m.begin_refresh(&"k"));
        assert!(m.begin_refresh(&"other"));
        m.end_refresh(&"k");
        assert!(m.begin_refresh(&"k"));
    }

    #[test]
    fn eviction_stays_cheap_at_capacity() {
        // 50,000 inserts into a full map of 5,000: a per-insert scan would be 250M steps.
        let mut m: Memo<u32, u32> = Memo::new(5_000, rule());
        for i in 0..55_000u32 {
            m.put(i, i, f64::from(i));
        }
        assert_eq!(m.len(), 5_000);
        assert!(m.get(&54_999, 54_999.0).is_some());
    }
}
