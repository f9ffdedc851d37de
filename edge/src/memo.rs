//! The isolate-memory tier: a small map with fresh and stale times.
//!
//! moka does not build for wasm32, and an isolate is single-threaded, so this is a plain
//! map. Time is passed in (the Worker reads `Date.now()`), which keeps it testable.

use std::collections::HashMap;
use std::hash::Hash;

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

#[derive(Debug)]
pub struct Memo<K, V> {
    slots: HashMap<K, Slot<V>>,
    capacity: usize,
    fresh_ms: f64,
    stale_ms: f64,
}

impl<K: Hash + Eq + Clone, V: Clone> Memo<K, V> {
    pub fn new(capacity: usize, fresh_ms: f64, stale_ms: f64) -> Self {
        Self {
            slots: HashMap::new(),
            capacity: capacity.max(1),
            fresh_ms,
            stale_ms: stale_ms.max(fresh_ms),
        }
    }

    /// Changes the times (they come from Worker vars, read per request).
    pub fn set_times(&mut self, fresh_ms: f64, stale_ms: f64) {
        self.fresh_ms = fresh_ms;
        self.stale_ms = stale_ms.max(fresh_ms);
    }

    pub fn get(&mut self, key: &K, now_ms: f64) -> Option<(V, Freshness)> {
        let slot = self.slots.get(key)?;
        let age = now_ms - slot.stored_ms;
        if age < self.fresh_ms {
            Some((slot.value.clone(), Freshness::Fresh))
        } else if age < self.stale_ms {
            Some((slot.value.clone(), Freshness::Stale))
        } else {
            self.slots.remove(key);
            None
        }
    }

    /// Inserts with `stored_ms` as the entry's birth (an entry refreshed from the Cache
    /// API keeps its original age, so tiers never extend each other's lifetimes).
    pub fn put(&mut self, key: K, value: V, stored_ms: f64, now_ms: f64) {
        if self.slots.len() >= self.capacity && !self.slots.contains_key(&key) {
            self.evict(now_ms);
        }
        self.slots.insert(key, Slot { value, stored_ms });
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Drops expired entries, and if still full, the oldest one.
    fn evict(&mut self, now_ms: f64) {
        let stale_ms = self.stale_ms;
        self.slots.retain(|_, s| now_ms - s.stored_ms < stale_ms);
        if self.slots.len() >= self.capacity {
            let oldest = self
                .slots
                .iter()
                .min_by(|a, b| a.1.stored_ms.total_cmp(&b.1.stored_ms))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.slots.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_then_stale_then_gone() {
        let mut m: Memo<&str, u32> = Memo::new(10, 100.0, 1000.0);
        m.put("a", 1, 0.0, 0.0);
        assert_eq!(m.get(&"a", 50.0), Some((1, Freshness::Fresh)));
        assert_eq!(m.get(&"a", 100.0), Some((1, Freshness::Stale)));
        assert_eq!(m.get(&"a", 1000.0), None);
        assert!(m.is_empty());
    }

    #[test]
    fn bounded() {
        let mut m: Memo<u32, u32> = Memo::new(3, 100.0, 1000.0);
        for i in 0..10 {
            m.put(i, i, f64::from(i), f64::from(i));
        }
        assert_eq!(m.len(), 3);
        assert!(m.get(&9, 10.0).is_some());
        assert!(m.get(&0, 10.0).is_none());
    }
}
