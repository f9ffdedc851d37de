//! Rate-limit counters in memory, exact on one node under any concurrency.
//!
//! Counters live in shards, each a plain `Mutex<HashMap>`. A check locks the shards its
//! counters fall in, in ascending order (so two multi-limit checks cannot deadlock), runs
//! the core's all-or-nothing arithmetic, and unlocks. The locks are held for a few hundred
//! nanoseconds and never across an `.await`, which is why a std mutex beats an async one.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use keyway_core::ratelimit::{CounterId, Decision, LimitSpec, WindowState, admit_all_if, cell_of};

const SHARDS: usize = 64;

/// Counter → its window and the duration its cells are measured in.
type Shard = HashMap<CounterId, (WindowState, u64)>;

/// The rate-limit counters of a single node. (Cluster mode counts in Redis instead:
/// `cluster::script`.)
pub struct MemoryCounters {
    shards: Vec<Mutex<Shard>>,
}

impl Default for MemoryCounters {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl MemoryCounters {
    /// A counter id is already a uniform digest, so its first byte picks the shard.
    fn shard_of(id: &CounterId) -> usize {
        usize::from(id.as_bytes()[0]) % SHARDS
    }

    /// Drops counters two or more cells old: they would read as zero anyway, and without
    /// this, every identifier ever limited would stay in memory.
    pub fn sweep(&self, now_ms: i64) {
        for shard in &self.shards {
            if let Ok(mut map) = shard.lock() {
                map.retain(|_, (state, duration_ms)| {
                    cell_of(now_ms, *duration_ms) - state.cell < 2
                });
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MemoryCounters {
    /// Checks `specs` as one unit against the named counters and, if every limit admits
    /// and `also` agrees (a credit spend, run while the counters are held), counts them.
    /// Returns whether the limits passed, and each limit's view.
    pub fn admit_if(
        &self,
        counters: &[CounterId],
        specs: &[LimitSpec],
        now_ms: i64,
        also: impl FnOnce() -> bool,
    ) -> (bool, Vec<Decision>) {
        let shard_ids: Vec<usize> = counters.iter().map(Self::shard_of).collect();
        let mut order = shard_ids.clone();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> = Vec::with_capacity(order.len());
        for id in order {
            match self.shards[id].lock() {
                Ok(g) => guards.push((id, g)),
                // A poisoned shard means a panic mid-update elsewhere; its data is still
                // plain integers, so keep counting rather than failing every request.
                Err(poisoned) => guards.push((id, poisoned.into_inner())),
            }
        }
        let mut states: Vec<WindowState> = counters
            .iter()
            .zip(&shard_ids)
            .map(|(name, sid)| {
                guards
                    .iter()
                    .find(|(id, _)| id == sid)
                    .and_then(|(_, g)| g.get(name).map(|(s, _)| *s))
                    .unwrap_or_default()
            })
            .collect();
        let (passed, decisions) = admit_all_if(&mut states, specs, now_ms, also);
        for (((name, sid), state), spec) in counters.iter().zip(&shard_ids).zip(states).zip(specs) {
            if let Some((_, g)) = guards.iter_mut().find(|(id, _)| id == sid) {
                g.insert(*name, (state, spec.duration_ms));
            }
        }
        (passed, decisions)
    }

    /// Checks and counts `specs` as one unit against the named counters.
    pub fn admit(
        &self,
        counters: &[CounterId],
        specs: &[LimitSpec],
        now_ms: i64,
    ) -> (bool, Vec<Decision>) {
        self.admit_if(counters, specs, now_ms, || true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn exact_under_threads() {
        let c = Arc::new(MemoryCounters::default());
        let spec = LimitSpec {
            limit: 100,
            duration_ms: 60_000,
            cost: 1,
        };
        let id = |rule_id| {
            CounterId::new(
                keyway_core::ratelimit::CounterOwner::Rule { rule_id },
                60_000,
            )
        };
        let (a, b) = (id("a"), id("b"));
        let admitted: usize = (0..8)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    (0..50)
                        .filter(|_| c.admit(&[a, b], &[spec, spec], 1_000).0)
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(admitted, 100);
        c.sweep(1_000);
        assert_eq!(c.len(), 2);
        c.sweep(180_000);
        assert!(c.is_empty());
    }
}
