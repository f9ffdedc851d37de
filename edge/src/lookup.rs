//! The snapshot tiers: isolate memory, the Cache API, the origin.
//!
//! Every tier judges age by the memo's one freshness rule, and every write to the memo
//! happens here. The runtime's side (Cache API reads and writes, the origin call, work
//! after the response, the clock) is the [`Io`] trait, so the whole policy runs natively
//! in unit tests.

use std::sync::Arc;

use keyway_core::key::KeyHash;
use keyway_core::snapshot::KeySnapshot;

use crate::memo::{Freshness, Memo};
use crate::tiers::Tiers;

pub type Snapshot = Option<Arc<KeySnapshot>>;
pub type SnapshotMemo = Memo<String, Snapshot>;

/// What a stale snapshot may do (the origin's cache has the same rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Answer at once and refresh in the background: keys being verified.
    Serve,
    /// Reload before answering, so a revoked root key is refused within the fresh time;
    /// the stale copy answers only if the origin cannot.
    Reload,
}

/// Where an answer came from, for `x-keyway-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Hit,
    Stale,
    Miss,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Hit => "hit",
            Status::Stale => "stale",
            Status::Miss => "miss",
        }
    }
}

/// The origin's answer to a snapshot lookup.
pub struct Fetched {
    pub snapshot: Snapshot,
    /// When the request left: an answer that left before a change must not pass for one
    /// that left after it.
    pub started_ms: f64,
    /// The encoded answer, kept as is in the Cache API.
    pub bytes: Vec<u8>,
}

/// What the tiers need from the runtime.
#[allow(async_fn_in_trait)] // one isolate, one thread: the futures never cross threads
pub trait Io {
    type Error: std::fmt::Display;
    fn now_ms(&self) -> f64;
    /// Runs `f` on the isolate's memo.
    fn memo<R>(&self, f: impl FnOnce(&mut SnapshotMemo) -> R) -> R;
    async fn cache_get(&self, key: &str) -> Option<(Snapshot, f64)>;
    async fn cache_put(&self, key: &str, bytes: Vec<u8>, stored_ms: f64, ttl_ms: f64);
    async fn fetch(&self, hash: &KeyHash) -> Result<Fetched, Self::Error>;
    /// The root key and, if it authenticates, the key, in one origin call.
    async fn fetch_pair(
        &self,
        root: &KeyHash,
        key: &KeyHash,
    ) -> Result<(Fetched, Option<Fetched>), Self::Error>;
    /// Schedules [`refresh`] for after the response.
    fn refresh_later(&self, hash: &KeyHash);
    /// Whether the error means the origin could not be reached (or answered garbage),
    /// rather than a fault of ours.
    fn unreachable(e: &Self::Error) -> bool;
    fn log(&self, message: &str);
}

/// The snapshot for `hash`, from the nearest tier that has it fresh enough.
pub async fn lookup<I: Io>(
    io: &I,
    tiers: Tiers,
    hash: &KeyHash,
    stale: Stale,
) -> Result<(Snapshot, Status), I::Error> {
    let (snap, status, _) = lookup_with(io, tiers, hash, stale, None).await?;
    Ok((snap, status))
}

/// The caller's root key (reloaded when stale) and, when the root key has to come from
/// the origin and the key is not in memory either, the key's snapshot from that same
/// call: a cold isolate waited two round trips in a row. The origin looks the key up
/// only for a root key that authenticates, so an unknown caller still costs no key
/// lookup. `None` for the key means: look it up as usual.
pub async fn lookup_root<I: Io>(
    io: &I,
    tiers: Tiers,
    root: &KeyHash,
    key: &KeyHash,
) -> Result<(Snapshot, Option<Snapshot>), I::Error> {
    let (snap, _, key_snap) = lookup_with(io, tiers, root, Stale::Reload, Some(key)).await?;
    Ok((snap, key_snap))
}

async fn lookup_with<I: Io>(
    io: &I,
    tiers: Tiers,
    hash: &KeyHash,
    stale: Stale,
    companion: Option<&KeyHash>,
) -> Result<(Snapshot, Status, Option<Snapshot>), I::Error> {
    let key = hash.as_str().to_string();
    let now = io.now_ms();
    let mut remembered = if tiers.memory {
        io.memo(|m| m.get(&key, now))
    } else {
        None
    };
    if remembered.is_none()
        && tiers.cache_api
        && let Some((snap, stored)) = io.cache_get(&key).await
    {
        remembered = io.memo(|m| {
            if tiers.memory {
                m.put(key.clone(), snap.clone(), stored);
            }
            m.freshness(stored, now).map(|f| (snap, f))
        });
    }
    match remembered {
        Some((snap, Freshness::Fresh)) => Ok((snap, Status::Hit, None)),
        // "Not found" is never served stale: a new key must not stay unknown.
        Some((snap @ Some(_), Freshness::Stale)) => match stale {
            Stale::Serve => {
                if io.memo(|m| m.begin_refresh(&key)) {
                    io.refresh_later(hash);
                }
                Ok((snap, Status::Stale, None))
            }
            Stale::Reload => match fetch_with(io, tiers, hash, companion).await {
                Ok((fresh, with)) => Ok((fresh, Status::Miss, with)),
                Err(e) if I::unreachable(&e) => {
                    io.log(&format!(
                        "reloading a stale root key failed, answering from cache: {e}"
                    ));
                    // While the origin is away no revocation can arrive anyway; re-stamp
                    // the copy so the next requests do not each wait on a dead origin.
                    if tiers.memory {
                        io.memo(|m| m.put(key, snap.clone(), now));
                    }
                    Ok((snap, Status::Stale, None))
                }
                Err(e) => Err(e),
            },
        },
        _ => {
            let (snap, with) = fetch_with(io, tiers, hash, companion).await?;
            Ok((snap, Status::Miss, with))
        }
    }
}

/// Loads from the origin and fills both tiers.
pub async fn fetch<I: Io>(io: &I, tiers: Tiers, hash: &KeyHash) -> Result<Snapshot, I::Error> {
    let fetched = io.fetch(hash).await?;
    Ok(keep(io, tiers, hash, fetched).await)
}

/// [`fetch`], bringing the companion's snapshot in the same call unless memory can
/// answer for it (fresh, or found and stale): asked only here, on the way to the origin,
/// so a hit costs nothing extra.
async fn fetch_with<I: Io>(
    io: &I,
    tiers: Tiers,
    hash: &KeyHash,
    companion: Option<&KeyHash>,
) -> Result<(Snapshot, Option<Snapshot>), I::Error> {
    let now = io.now_ms();
    let remembered = |k: &KeyHash| {
        tiers.memory
            && io.memo(|m| {
                matches!(
                    m.get(&k.as_str().to_string(), now),
                    Some((_, Freshness::Fresh) | (Some(_), Freshness::Stale))
                )
            })
    };
    let Some(other) = companion.filter(|k| !remembered(k)) else {
        return Ok((fetch(io, tiers, hash).await?, None));
    };
    let (fetched, with) = io.fetch_pair(hash, other).await?;
    let snap = keep(io, tiers, hash, fetched).await;
    let with = match with {
        Some(f) => Some(keep(io, tiers, other, f).await),
        None => None,
    };
    Ok((snap, with))
}

/// Fills both tiers with an origin answer. A newer answer already in memory wins, and
/// only the winner is written to the Cache API.
async fn keep<I: Io>(io: &I, tiers: Tiers, hash: &KeyHash, fetched: Fetched) -> Snapshot {
    let Fetched {
        snapshot,
        started_ms,
        bytes,
    } = fetched;
    let key = hash.as_str();
    let (newest, ttl) = io.memo(|m| {
        let newest = !tiers.memory || m.put(key.to_string(), snapshot.clone(), started_ms);
        // A key that does not exist yet is kept only for the fresh time.
        let ttl = if snapshot.is_some() {
            m.stale_ms()
        } else {
            m.fresh_ms()
        };
        (newest, ttl)
    });
    if tiers.cache_api && newest {
        io.cache_put(key, bytes, started_ms, ttl).await;
    }
    snapshot
}

/// The background refresh [`Io::refresh_later`] runs; releases the key's refresh claim.
pub async fn refresh<I: Io>(io: &I, tiers: Tiers, hash: &KeyHash) {
    if let Err(e) = fetch(io, tiers, hash).await {
        io.log(&format!("background snapshot refresh failed: {e}"));
    }
    io.memo(|m| m.end_refresh(&hash.as_str().to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::{HashMap, VecDeque};
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use keyway_core::snapshot::KeySnapshot;

    /// The fake runtime never waits, so one poll finishes any of these futures.
    fn run<F: std::future::Future>(f: F) -> F::Output {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the fake runtime never waits"),
        }
    }

    #[derive(Debug)]
    enum Fault {
        Down,
        Ours,
    }

    impl std::fmt::Display for Fault {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    struct Fake {
        now: Cell<f64>,
        memo: RefCell<SnapshotMemo>,
        cache: RefCell<HashMap<String, (Snapshot, f64, f64)>>,
        /// The origin's answers, in order; empty means it is down.
        origin: RefCell<VecDeque<Result<Snapshot, Fault>>>,
        fetches: Cell<u32>,
        refreshes: RefCell<Vec<String>>,
    }

    impl Fake {
        fn new() -> Self {
            Self {
                now: Cell::new(1_000_000.0),
                memo: RefCell::new(Memo::new(100, 10_000.0, 600_000.0)),
                cache: RefCell::new(HashMap::new()),
                origin: RefCell::new(VecDeque::new()),
                fetches: Cell::new(0),
                refreshes: RefCell::new(Vec::new()),
            }
        }
        fn answers(&self, a: Result<Snapshot, Fault>) {
            self.origin.borrow_mut().push_back(a);
        }
        fn later(&self, ms: f64) {
            self.now.set(self.now.get() + ms);
        }
    }

    impl Io for Fake {
        type Error = Fault;
        fn now_ms(&self) -> f64 {
            self.now.get()
        }
        fn memo<R>(&self, f: impl FnOnce(&mut SnapshotMemo) -> R) -> R {
            f(&mut self.memo.borrow_mut())
        }
        async fn cache_get(&self, key: &str) -> Option<(Snapshot, f64)> {
            self.cache
                .borrow()
                .get(key)
                .filter(|(_, stored, ttl)| self.now.get() - stored < *ttl)
                .map(|(s, stored, _)| (s.clone(), *stored))
        }
        async fn cache_put(&self, key: &str, _bytes: Vec<u8>, stored_ms: f64, ttl_ms: f64) {
            let snap = self
                .memo
                .borrow_mut()
                .get(&key.to_string(), stored_ms)
                .map(|(s, _)| s);
            self.cache
                .borrow_mut()
                .insert(key.to_string(), (snap.flatten(), stored_ms, ttl_ms));
        }
        async fn fetch(&self, _hash: &KeyHash) -> Result<Fetched, Fault> {
            self.fetches.set(self.fetches.get() + 1);
            let answer = self
                .origin
                .borrow_mut()
                .pop_front()
                .unwrap_or(Err(Fault::Down));
            answer.map(|snapshot| Fetched {
                snapshot,
                started_ms: self.now.get(),
                bytes: Vec::new(),
            })
        }
        /// Answers the root from the queue, and the key from the next answer only when
        /// the root was found (the origin's rule), in one counted call.
        async fn fetch_pair(
            &self,
            root: &KeyHash,
            key: &KeyHash,
        ) -> Result<(Fetched, Option<Fetched>), Fault> {
            let root = self.fetch(root).await?;
            if root.snapshot.is_none() {
                return Ok((root, None));
            }
            self.fetches.set(self.fetches.get() - 1);
            let key = self.fetch(key).await?;
            Ok((root, Some(key)))
        }
        fn refresh_later(&self, hash: &KeyHash) {
            self.refreshes.borrow_mut().push(hash.as_str().to_string());
        }
        fn unreachable(e: &Fault) -> bool {
            matches!(e, Fault::Down)
        }
        fn log(&self, _message: &str) {}
    }

    fn snap(id: &str) -> Snapshot {
        Some(Arc::new(KeySnapshot {
            key_id: id.into(),
            ..keyway_core::snapshot::fixtures::key()
        }))
    }

    fn id(s: &Snapshot) -> Option<&str> {
        s.as_deref().map(|s| s.key_id.as_str())
    }

    fn hash() -> KeyHash {
        KeyHash::of("key_test")
    }

    fn root() -> KeyHash {
        KeyHash::of("root_test")
    }

    #[test]
    fn a_cold_root_key_brings_the_key_in_the_same_call() {
        let io = Fake::new();
        io.answers(Ok(snap("root")));
        io.answers(Ok(snap("k1")));
        let (r, k) = run(lookup_root(&io, Tiers::ALL, &root(), &hash())).unwrap();
        assert_eq!(
            (id(&r), k.as_ref().map(id)),
            (Some("root"), Some(Some("k1")))
        );
        assert_eq!(io.fetches.get(), 1);
        // Both are remembered: the key answers from memory, the root key too.
        let (s, status) = run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        assert_eq!((id(&s), status), (Some("k1"), Status::Hit));
        let (r, k) = run(lookup_root(&io, Tiers::ALL, &root(), &hash())).unwrap();
        assert_eq!((id(&r), k.is_none()), (Some("root"), true));
        assert_eq!(io.fetches.get(), 1);
    }

    #[test]
    fn an_unknown_root_key_brings_no_key() {
        let io = Fake::new();
        io.answers(Ok(None));
        io.answers(Ok(snap("k1")));
        let (r, k) = run(lookup_root(&io, Tiers::ALL, &root(), &hash())).unwrap();
        assert_eq!((r.is_none(), k.is_none()), (true, true));
        assert_eq!(io.fetches.get(), 1);
        assert_eq!(io.origin.borrow().len(), 1, "the key was not asked for");
    }

    #[test]
    fn a_remembered_key_is_not_fetched_with_the_root_key() {
        let io = Fake::new();
        io.answers(Ok(snap("k1")));
        run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        io.answers(Ok(snap("root")));
        let (r, k) = run(lookup_root(&io, Tiers::ALL, &root(), &hash())).unwrap();
        assert_eq!((id(&r), k.is_none()), (Some("root"), true));
        assert_eq!(io.fetches.get(), 2);
        // Without a memory tier there is nothing to remember: the pair is asked for.
        let io = Fake::new();
        io.answers(Ok(snap("root")));
        io.answers(Ok(snap("k1")));
        let (_, k) = run(lookup_root(
            &io,
            Tiers {
                memory: false,
                cache_api: false,
            },
            &root(),
            &hash(),
        ))
        .unwrap();
        assert_eq!(k.as_ref().map(id), Some(Some("k1")));
        assert_eq!(io.fetches.get(), 1);
    }

    #[test]
    fn a_miss_fetches_once_then_memory_answers() {
        let io = Fake::new();
        io.answers(Ok(snap("k1")));
        let (s, status) = run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        assert_eq!((id(&s), status), (Some("k1"), Status::Miss));
        let (s, status) = run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        assert_eq!((id(&s), status), (Some("k1"), Status::Hit));
        assert_eq!(io.fetches.get(), 1);
    }

    #[test]
    fn stale_keys_answer_at_once_with_one_refresh() {
        let io = Fake::new();
        io.answers(Ok(snap("k1")));
        run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        io.later(10_001.0);
        for _ in 0..3 {
            let (s, status) = run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
            assert_eq!((id(&s), status), (Some("k1"), Status::Stale));
        }
        assert_eq!(io.refreshes.borrow().len(), 1, "one refresh per key");
        io.answers(Ok(snap("k2")));
        run(refresh(&io, Tiers::ALL, &hash()));
        let (s, status) = run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        assert_eq!((id(&s), status), (Some("k2"), Status::Hit));
        io.later(10_001.0);
        run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        assert_eq!(io.refreshes.borrow().len(), 2, "the claim was released");
    }

    #[test]
    fn stale_root_keys_reload_before_answering() {
        let io = Fake::new();
        io.answers(Ok(snap("root")));
        run(lookup(&io, Tiers::ALL, &hash(), Stale::Reload)).unwrap();
        io.later(10_001.0);
        io.answers(Ok(None)); // revoked meanwhile
        let (s, status) = run(lookup(&io, Tiers::ALL, &hash(), Stale::Reload)).unwrap();
        assert_eq!((id(&s), status), (None, Status::Miss));
        assert!(io.refreshes.borrow().is_empty());
    }

    #[test]
    fn a_dead_origin_leaves_the_stale_root_key_answering_restamped() {
        let io = Fake::new();
        io.answers(Ok(snap("root")));
        run(lookup(&io, Tiers::ALL, &hash(), Stale::Reload)).unwrap();
        io.later(10_001.0);
        let (s, status) = run(lookup(&io, Tiers::ALL, &hash(), Stale::Reload)).unwrap();
        assert_eq!((id(&s), status), (Some("root"), Status::Stale));
        let before = io.fetches.get();
        let (_, status) = run(lookup(&io, Tiers::ALL, &hash(), Stale::Reload)).unwrap();
        assert_eq!(status, Status::Hit, "re-stamped: no wait on a dead origin");
        assert_eq!(io.fetches.get(), before);
    }

    #[test]
    fn our_own_faults_are_errors_not_stale_answers() {
        let io = Fake::new();
        io.answers(Ok(snap("root")));
        run(lookup(&io, Tiers::ALL, &hash(), Stale::Reload)).unwrap();
        io.later(10_001.0);
        io.answers(Err(Fault::Ours));
        assert!(matches!(
            run(lookup(&io, Tiers::ALL, &hash(), Stale::Reload)),
            Err(Fault::Ours)
        ));
    }

    #[test]
    fn not_found_is_never_served_stale() {
        let io = Fake::new();
        io.answers(Ok(None));
        run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        io.later(10_001.0);
        io.answers(Ok(snap("new")));
        let (s, status) = run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        assert_eq!((id(&s), status), (Some("new"), Status::Miss));
    }

    #[test]
    fn the_cache_api_fills_memory_and_keeps_its_age() {
        let io = Fake::new();
        io.answers(Ok(snap("k1")));
        run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        // A new isolate: empty memory, same Cache API.
        *io.memo.borrow_mut() = Memo::new(100, 10_000.0, 600_000.0);
        io.later(5_000.0);
        let (s, status) = run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        assert_eq!((id(&s), status), (Some("k1"), Status::Hit));
        assert_eq!(io.memo.borrow().len(), 1);
        io.later(5_001.0);
        let (_, status) = run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        assert_eq!(status, Status::Stale, "the copy aged from its first load");
        assert_eq!(io.fetches.get(), 1);
    }

    #[test]
    fn unknown_keys_stay_in_the_cache_api_only_for_the_fresh_time() {
        let io = Fake::new();
        io.answers(Ok(None));
        io.answers(Ok(snap("k1")));
        run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        let ttls: Vec<f64> = io.cache.borrow().values().map(|(_, _, t)| *t).collect();
        assert_eq!(ttls, vec![10_000.0]);
        let io = Fake::new();
        io.answers(Ok(snap("k1")));
        run(lookup(&io, Tiers::ALL, &hash(), Stale::Serve)).unwrap();
        let ttls: Vec<f64> = io.cache.borrow().values().map(|(_, _, t)| *t).collect();
        assert_eq!(ttls, vec![600_000.0]);
    }

    #[test]
    fn an_older_answer_loses_to_a_newer_one() {
        let io = Fake::new();
        io.memo(|m| m.put(hash().as_str().to_string(), snap("newer"), 2_000_000.0));
        io.answers(Ok(snap("older")));
        let s = run(fetch(&io, Tiers::ALL, &hash())).unwrap();
        assert_eq!(id(&s), Some("older"), "the caller still gets its answer");
        assert!(io.cache.borrow().is_empty(), "the loser is not kept");
        let kept = io.memo(|m| m.get(&hash().as_str().to_string(), 2_000_000.0));
        assert_eq!(
            kept.and_then(|(s, _)| s)
                .map(|s| s.key_id.clone())
                .as_deref(),
            Some("newer")
        );
    }

    #[test]
    fn with_no_tiers_every_lookup_asks_the_origin() {
        let io = Fake::new();
        let none = Tiers::parse("none").unwrap();
        for _ in 0..3 {
            io.answers(Ok(snap("k1")));
            let (_, status) = run(lookup(&io, none, &hash(), Stale::Serve)).unwrap();
            assert_eq!(status, Status::Miss);
        }
        assert_eq!(io.fetches.get(), 3);
        assert!(io.memo.borrow().is_empty() && io.cache.borrow().is_empty());
    }
}
