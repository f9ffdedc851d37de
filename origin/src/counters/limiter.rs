//! Rate-limit counters in memory, exact on one node under any concurrency.
//!
//! Counters live in shards, each a plain `Mutex<HashMap>`. A check locks the shards its
//! counters fall in, in ascending order (so two multi-limit checks cannot deadlock), runs
//! the core's all-or-nothing arithmetic, and unlocks. The locks are held for a few hundred
//! nanoseconds and never across an `.await`, which is why a std mutex beats an async one.
//!
//! The counters are bounded (`--ratelimit-max-counters`): identifiers are the caller's to
//! choose, and a 30-day window lives 60 days. Under the bound a window is never dropped
//! before it ends. At the bound, a new counter first takes the place of one whose window
//! has ended, else of the one (of a sample) whose window ends soonest; each such eviction
//! is counted in `keyway_ratelimit_counters_evicted_total`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use prometheus::IntCounter;

use keyway_core::ratelimit::{CounterId, Decision, LimitSpec, WindowState, admit_all_if, cell_of};

const SHARDS: usize = 64;
/// Counters looked at to choose one to evict: enough to find one that has ended, or ends
/// soon, without scanning a whole shard on every request of an attack.
const EVICTION_SAMPLE: usize = 16;

/// Counter → its window, the duration its cells are measured in, and when it was last
/// counted (among windows that end together, the least recently used is evicted first).
type Shard = HashMap<CounterId, (WindowState, u64, i64)>;

/// The rate-limit counters of a single node. (Cluster mode counts in Redis instead:
/// `cluster::script`.)
pub struct MemoryCounters {
    shards: Vec<Mutex<Shard>>,
    /// The bound, over all shards (the shards fill unevenly, so a per-shard bound would
    /// drop windows while the whole is still under it).
    max: usize,
    live: AtomicUsize,
    /// `None`: unbounded and uncounted (tests).
    evicted: Option<IntCounter>,
}

impl Default for MemoryCounters {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            max: usize::MAX,
            live: AtomicUsize::new(0),
            evicted: None,
        }
    }
}

/// When the window of a counter measured in `duration_ms` cells, last in `cell`, ends.
fn window_end(state: &WindowState, duration_ms: u64) -> i64 {
    let d = i64::try_from(duration_ms).unwrap_or(i64::MAX);
    state.cell.saturating_add(2).saturating_mul(d)
}

impl MemoryCounters {
    /// At most `max` live counters, evictions counted in `evicted`.
    pub fn with_bound(max: usize, evicted: IntCounter) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            max: max.max(1),
            live: AtomicUsize::new(0),
            evicted: Some(evicted),
        }
    }

    /// Makes room in a full shard for one new counter.
    fn make_room(&self, shard: &mut Shard, now_ms: i64) {
        let victim = shard
            .iter()
            .take(EVICTION_SAMPLE)
            .min_by_key(|(_, (state, d, used))| (window_end(state, *d), *used))
            .map(|(id, (state, d, _))| (*id, window_end(state, *d)));
        if let Some((id, end)) = victim {
            shard.remove(&id);
            self.live.fetch_sub(1, Ordering::Relaxed);
            if end > now_ms
                && let Some(e) = &self.evicted
            {
                e.inc();
            }
        }
    }

    /// A counter id is already a uniform digest, so its first byte picks the shard.
    fn shard_of(id: &CounterId) -> usize {
        usize::from(id.as_bytes()[0]) % SHARDS
    }

    /// Drops counters two or more cells old: they would read as zero anyway, and without
    /// this, every identifier ever limited would stay in memory.
    pub fn sweep(&self, now_ms: i64) {
        for shard in &self.shards {
            if let Ok(mut map) = shard.lock() {
                let before = map.len();
                map.retain(|_, (state, duration_ms, _)| {
                    cell_of(now_ms, *duration_ms) - state.cell < 2
                });
                self.live.fetch_sub(before - map.len(), Ordering::Relaxed);
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
                    .and_then(|(_, g)| g.get(name).map(|(s, _, _)| *s))
                    .unwrap_or_default()
            })
            .collect();
        let (passed, decisions) = admit_all_if(&mut states, specs, now_ms, also);
        for (((name, sid), state), spec) in counters.iter().zip(&shard_ids).zip(states).zip(specs) {
            if let Some((_, g)) = guards.iter_mut().find(|(id, _)| id == sid) {
                if !g.contains_key(name) {
                    // At the bound, this shard gives up one counter for the new one (an
                    // empty shard cannot, and goes one over until the next sweep).
                    if self.live.load(Ordering::Relaxed) >= self.max {
                        self.make_room(g, now_ms);
                    }
                    self.live.fetch_add(1, Ordering::Relaxed);
                }
                g.insert(*name, (state, spec.duration_ms, now_ms));
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

    fn spec(duration_ms: u64) -> LimitSpec {
        LimitSpec {
            limit: 1_000,
            duration_ms,
            cost: 1,
        }
    }

    fn counter(i: usize) -> CounterId {
        CounterId::new(
            keyway_core::ratelimit::CounterOwner::Rule {
                rule_id: &format!("r{i}"),
            },
            60_000,
        )
    }

    #[test]
    fn the_bound_holds_and_ended_windows_go_first() {
        let evicted = IntCounter::new("t_evicted", "t").unwrap();
        let c = MemoryCounters::with_bound(64 * 4, evicted.clone());
        let month = 30 * 86_400_000;
        // Under the bound nothing is evicted, however long the windows.
        for i in 0..200 {
            c.admit(&[counter(i)], &[spec(month)], 1_000);
        }
        assert_eq!(evicted.get(), 0);
        assert_eq!(c.len(), 200);
        // Far past the bound: the count stays at it, and live windows are counted.
        for i in 200..5_000 {
            c.admit(&[counter(i)], &[spec(month)], 1_000);
        }
        assert!(c.len() <= 64 * 4, "{}", c.len());
        assert!(evicted.get() > 0);
        // A window that has ended makes room first, and is not counted as an eviction.
        let e2 = IntCounter::new("t2", "t").unwrap();
        let c2 = MemoryCounters::with_bound(64, e2.clone());
        let mut shard = Shard::new();
        let state = |cell| WindowState {
            cell,
            current: 1,
            previous: 0,
        };
        shard.insert(counter(1), (state(10), 60_000, 0));
        shard.insert(counter(2), (state(0), 60_000, 0));
        shard.insert(counter(3), (state(9), 60_000, 0));
        c2.make_room(&mut shard, 10 * 60_000);
        assert!(!shard.contains_key(&counter(2)));
        assert_eq!(e2.get(), 0);
        c2.make_room(&mut shard, 10 * 60_000);
        assert!(
            !shard.contains_key(&counter(3)),
            "the soonest to end goes next"
        );
        assert_eq!(e2.get(), 1);
        // A counter that stays is exact: it is not evicted while it is the one in use.
        let hot = counter(99_999);
        let admitted = (0..1_000)
            .filter(|_| c.admit(&[hot], &[spec(month)], 2_000).0)
            .count();
        assert_eq!(admitted, 1_000);
    }
}
