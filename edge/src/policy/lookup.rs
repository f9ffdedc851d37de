//! The snapshot tiers: isolate memory, the Cache API, the origin.
//!
//! Every tier judges age by the core's one freshness rule (`keyway_core::freshness`),
//! and every write to the memo happens here. The tiers are generic over the I/O each
//! needs: a [`CacheApi`], an [`Origin`] and the [`Host`] around the request (clock, work
//! after the response, logs), so the whole policy runs natively in unit tests.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use keyway_core::error::ApiError;
use keyway_core::freshness::{CacheStatus, Freshness, ReloadFails, Stale, Step};
use keyway_core::key::KeyHash;
use keyway_core::snapshot::KeySnapshot;
use keyway_core::wire::{self, SnapshotFound};

use super::memo::Memo;
use super::stats::{CacheFault, Stats};
use super::tiers::Tiers;

pub type Snapshot = Option<Arc<KeySnapshot>>;
pub type SnapshotMemo = Memo<String, Snapshot>;

/// The origin's answer to a snapshot lookup.
pub struct Fetched {
    pub snapshot: Snapshot,
    /// When the request left: an answer that left before a change must not pass for one
    /// that left after it.
    pub started_ms: f64,
    /// The encoded answer (a `SnapshotFound`), kept as is in the Cache API.
    pub bytes: Vec<u8>,
}

impl Fetched {
    /// The origin's answer to a lookup that left at `started_ms`. It is dated when the
    /// origin read it (`age_ms` before the request left, on this clock): counted from the
    /// request's start, a copy the origin had held for its own fresh time would be trusted
    /// here for another one.
    pub fn answered(found: SnapshotFound, started_ms: f64) -> Fetched {
        Fetched {
            bytes: wire::encode(&found),
            started_ms: started_ms - f64::from(found.age_ms),
            snapshot: found.snapshot.map(Arc::new),
        }
    }
}

/// An entry as the Cache API holds it: the origin's encoded answer and when it left.
pub struct CacheEntry {
    pub bytes: Vec<u8>,
    pub stored_ms: f64,
}

/// The shared cache between isolates of one location. The three I/O traits are `Clone +
/// 'static` because a background refresh takes its own copy past the response.
#[allow(async_fn_in_trait)] // one isolate, one thread: the futures never cross threads
pub trait CacheApi: Clone + 'static {
    async fn get(&self, key: &str) -> Result<Option<CacheEntry>, CacheFault>;
    async fn put(&self, key: &str, entry: CacheEntry, ttl_ms: f64) -> Result<(), CacheFault>;
}

/// The origin's internal snapshot API.
#[allow(async_fn_in_trait)]
pub trait Origin: Clone + 'static {
    /// A client error (from authenticating a root key) is one of these too, so a lookup
    /// and the decision after it fail the same way.
    type Error: std::fmt::Display + From<ApiError>;
    async fn snapshot(&self, hash: &KeyHash) -> Result<Fetched, Self::Error>;
    /// The root key and, if it authenticates, the key, in one call.
    async fn pair(
        &self,
        root: &KeyHash,
        key: &KeyHash,
    ) -> Result<(Fetched, Option<Fetched>), Self::Error>;
    /// Whether the error means the origin could not be reached (or answered garbage),
    /// rather than a fault of ours.
    fn unreachable(e: &Self::Error) -> bool;
    /// The same origin for work after the response (a background refresh), which does
    /// not draw on the request's time for the origin.
    fn afresh(&self) -> Self;
    /// The error for a request that waited on another request's reload of its root key,
    /// which did not bring it back fresh: the origin was unreachable.
    fn unreachable_error(message: String) -> Self::Error;
}

/// Work that runs after the response.
pub type Later = Pin<Box<dyn Future<Output = ()>>>;

/// The runtime around one request.
pub trait Host: Clone + 'static {
    fn now_ms(&self) -> f64;
    /// Runs `work` after the response; `false` if nothing will (shadow comparisons,
    /// which already run after it).
    fn after_response(&self, work: Later) -> bool;
    fn log(&self, message: &str);
    /// Waits `ms` on this request's own clock. (A request that waits on another
    /// request's I/O is cancelled by the Workers runtime as hung.)
    fn sleep(&self, ms: u64) -> Later;
}

/// The isolate's memory the tiers share: the memo, the bearers no root key answers to,
/// and the stats.
///
/// Unknown bearers live apart, in a small memo of their own, and never reach the Cache
/// API: anyone can send a new one with every request, and in the shared memo they would
/// push the hot verification snapshots out, with no credentials at all.
#[derive(Clone)]
pub struct Memory {
    pub memo: Rc<RefCell<SnapshotMemo>>,
    pub unknown_roots: Rc<RefCell<SnapshotMemo>>,
    pub stats: Rc<RefCell<Stats>>,
}

impl Memory {
    pub fn new(memo: SnapshotMemo, unknown_roots: SnapshotMemo) -> Memory {
        Memory {
            memo: Rc::new(RefCell::new(memo)),
            unknown_roots: Rc::new(RefCell::new(unknown_roots)),
            stats: Rc::new(RefCell::new(Stats::default())),
        }
    }
}

/// How many unknown bearers an isolate remembers (each for the fresh time only).
pub const UNKNOWN_ROOTS_CAPACITY: usize = 1_000;

/// How often a request waiting on another's root-key reload looks again, and for how
/// long at most (the reload itself is bounded by the origin timeout).
const RELOAD_POLL_MS: u64 = 5;
const RELOAD_WAIT_MS: f64 = 30_000.0;

/// A root key's reload claim, released when dropped.
struct Claim<'a> {
    memo: &'a RefCell<SnapshotMemo>,
    key: &'a String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.memo.borrow_mut().end_refresh(self.key);
    }
}

/// A stale root key read again: by this request (with the companion key, if it asked for
/// one), or by another one this request waited for.
enum Reloaded {
    Here(Snapshot, Option<Snapshot>),
    ByAnother(Snapshot),
}

/// Whose snapshot a lookup is for: a root key (read again when stale) or a key being
/// verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Whose {
    Root,
    Key,
}

impl Whose {
    fn of(stale: Stale) -> Whose {
        // `Stale::Reload` is what root keys get (see `keyway_core::freshness`).
        match stale {
            Stale::Reload => Whose::Root,
            Stale::Serve => Whose::Key,
        }
    }
}

/// The three tiers over the I/O they need.
#[derive(Clone)]
pub struct Snapshots<C, O, H> {
    pub tiers: Tiers,
    pub memory: Memory,
    pub cache: C,
    pub origin: O,
    pub host: H,
}

impl<C: CacheApi, O: Origin, H: Host> Snapshots<C, O, H> {
    fn memo<R>(&self, f: impl FnOnce(&mut SnapshotMemo) -> R) -> R {
        f(&mut self.memory.memo.borrow_mut())
    }

    fn fault(&self, fault: CacheFault) {
        if let Some(line) = self.memory.stats.borrow_mut().cache_fault(&fault) {
            self.host.log(&line);
        }
    }

    /// The snapshot for `hash`, from the nearest tier that has it fresh enough.
    pub async fn lookup(
        &self,
        hash: &KeyHash,
        stale: Stale,
    ) -> Result<(Snapshot, CacheStatus), O::Error> {
        let (snap, status, _) = self.lookup_with(hash, stale, None).await?;
        Ok((snap, status))
    }

    /// The caller's root key (reloaded when stale) and, when the root key has to come
    /// from the origin and the key is not in memory either, the key's snapshot from that
    /// same call: a cold isolate waited two round trips in a row. The origin looks the
    /// key up only for a root key that authenticates, so an unknown caller still costs
    /// no key lookup. `None` for the key means: look it up as usual.
    pub async fn lookup_root(
        &self,
        root: &KeyHash,
        key: &KeyHash,
    ) -> Result<(Snapshot, Option<Snapshot>), O::Error> {
        let (snap, _, key_snap) = self.lookup_with(root, Stale::Reload, Some(key)).await?;
        Ok((snap, key_snap))
    }

    /// What memory, then the Cache API, holds for `key`, and how it reads now.
    async fn remembered(
        &self,
        key: &String,
        whose: Whose,
        now: f64,
    ) -> Option<(Snapshot, Freshness)> {
        if self.tiers.memory
            && let Some(hit) = self.memo(|m| m.get(key, now))
        {
            return Some(hit);
        }
        if whose == Whose::Root
            && self.tiers.memory
            && let Some(hit) = self.memory.unknown_roots.borrow_mut().get(key, now)
        {
            return Some(hit);
        }
        if !self.tiers.cache_api {
            return None;
        }
        let entry = match self.cache.get(key).await {
            Ok(entry) => entry?,
            Err(fault) => {
                self.fault(fault);
                return None;
            }
        };
        let snap = match wire::decode::<SnapshotFound>(&entry.bytes) {
            Ok(found) => found.snapshot.map(Arc::new),
            Err(e) => {
                self.fault(CacheFault::Corrupt(e.to_string()));
                return None;
            }
        };
        self.memo(|m| {
            if self.tiers.memory {
                m.put(key.clone(), snap.clone(), entry.stored_ms);
            }
            match m.freshness(entry.stored_ms, now) {
                Freshness::Expired => None,
                f => Some((snap, f)),
            }
        })
    }

    async fn lookup_with(
        &self,
        hash: &KeyHash,
        stale: Stale,
        companion: Option<&KeyHash>,
    ) -> Result<(Snapshot, CacheStatus, Option<Snapshot>), O::Error> {
        let key = hash.as_str().to_string();
        let now = self.host.now_ms();
        let whose = Whose::of(stale);
        let remembered = self.remembered(&key, whose, now).await;
        let rule = self.memo(|m| m.rule());
        let step = rule.step(remembered.as_ref().map(|(s, f)| (s.is_some(), *f)), stale);
        match (step, remembered) {
            (Step::Answer, Some((snap, _))) => Ok((snap, CacheStatus::Hit, None)),
            (Step::AnswerAndRefresh, Some((snap, _))) => {
                if self.memo(|m| m.begin_refresh(&key)) {
                    self.refresh_later(hash);
                }
                Ok((snap, CacheStatus::Stale, None))
            }
            (Step::Reload, Some((snap, _))) => match self.reload(hash, companion).await {
                Ok(Reloaded::Here(fresh, with)) => Ok((fresh, CacheStatus::Reload, with)),
                Ok(Reloaded::ByAnother(fresh)) => Ok((fresh, CacheStatus::Reload, None)),
                Err(e) if O::unreachable(&e) && rule.reload_fails == ReloadFails::AnswerStale => {
                    self.host.log(&format!(
                        "reloading a stale root key failed, answering from cache: {e}"
                    ));
                    if self.tiers.memory {
                        self.memo(|m| m.put(key, snap.clone(), now));
                    }
                    Ok((snap, CacheStatus::Stale, None))
                }
                // Fails closed: past its fresh time a root key is only as good as the
                // origin's word on it now (the stale copy stays, for when it answers).
                Err(e) => Err(e),
            },
            _ => {
                let (snap, with) = self.fetch_with(hash, whose, companion).await?;
                Ok((snap, CacheStatus::Miss, with))
            }
        }
    }

    /// Reads a stale root key again, or waits for the reload another request already
    /// started for it: one origin call per root key at a time, so a burst of requests
    /// costs the origin one lookup. A waiter polls the memo on its own clock until the
    /// reload is over; if it did not bring the key back fresh, the waiter fails closed.
    async fn reload(
        &self,
        hash: &KeyHash,
        companion: Option<&KeyHash>,
    ) -> Result<Reloaded, O::Error> {
        let key = hash.as_str().to_string();
        if self.memo(|m| m.begin_refresh(&key)) {
            // Released however this ends, a cancelled request included: a claim left
            // behind would keep every later request for the key waiting.
            let _claim = Claim {
                memo: &self.memory.memo,
                key: &key,
            };
            let (fresh, with) = self.fetch_with(hash, Whose::Root, companion).await?;
            return Ok(Reloaded::Here(fresh, with));
        }
        let give_up = self.host.now_ms() + RELOAD_WAIT_MS;
        while self.memo(|m| m.refreshing(&key)) && self.host.now_ms() < give_up {
            self.host.sleep(RELOAD_POLL_MS).await;
        }
        let now = self.host.now_ms();
        match self.memo(|m| m.get(&key, now)) {
            Some((fresh, Freshness::Fresh)) => Ok(Reloaded::ByAnother(fresh)),
            _ => Err(O::unreachable_error(
                "reloading the root key failed for the request that tried".into(),
            )),
        }
    }

    /// Loads a key's snapshot from the origin and fills both tiers.
    pub async fn fetch(&self, hash: &KeyHash) -> Result<Snapshot, O::Error> {
        self.fetch_for(hash, Whose::Key).await
    }

    async fn fetch_for(&self, hash: &KeyHash, whose: Whose) -> Result<Snapshot, O::Error> {
        let fetched = self.origin.snapshot(hash).await?;
        Ok(self.keep(hash, whose, fetched).await)
    }

    /// [`Self::fetch`], bringing the companion's snapshot in the same call unless memory
    /// can answer for it (fresh, or stale and servable): asked only here, on the way to
    /// the origin, so a hit costs nothing extra.
    async fn fetch_with(
        &self,
        hash: &KeyHash,
        whose: Whose,
        companion: Option<&KeyHash>,
    ) -> Result<(Snapshot, Option<Snapshot>), O::Error> {
        let now = self.host.now_ms();
        let remembered = |k: &KeyHash| {
            self.tiers.memory
                && self.memo(|m| {
                    let entry = m.get(&k.as_str().to_string(), now);
                    let step = m
                        .rule()
                        .step(entry.map(|(s, f)| (s.is_some(), f)), Stale::Serve);
                    matches!(step, Step::Answer | Step::AnswerAndRefresh)
                })
        };
        let Some(other) = companion.filter(|k| !remembered(k)) else {
            return Ok((self.fetch_for(hash, whose).await?, None));
        };
        let (fetched, with) = self.origin.pair(hash, other).await?;
        let snap = self.keep(hash, whose, fetched).await;
        let with = match with {
            Some(f) => Some(self.keep(other, Whose::Key, f).await),
            None => None,
        };
        Ok((snap, with))
    }

    /// Fills both tiers with an origin answer. A newer answer already in memory wins, and
    /// only the winner is written to the Cache API. An unknown bearer goes to its own
    /// memo only (see [`Memory`]).
    async fn keep(&self, hash: &KeyHash, whose: Whose, fetched: Fetched) -> Snapshot {
        let Fetched {
            snapshot,
            started_ms,
            bytes,
        } = fetched;
        let key = hash.as_str();
        // A root key that was known (revoked since) stays in the memo, so its newer "not
        // found" keeps guarding against older answers still on their way.
        if whose == Whose::Root && snapshot.is_none() && !self.memo(|m| m.holds(&key.to_string())) {
            if self.tiers.memory {
                let mut unknown = self.memory.unknown_roots.borrow_mut();
                unknown.put(key.to_string(), None, started_ms);
            }
            return None;
        }
        let (newest, ttl) = self.memo(|m| {
            let newest = !self.tiers.memory || m.put(key.to_string(), snapshot.clone(), started_ms);
            (newest, m.rule().keep_ms(snapshot.is_some()) as f64)
        });
        if self.tiers.cache_api && newest {
            let entry = CacheEntry {
                bytes,
                stored_ms: started_ms,
            };
            if let Err(fault) = self.cache.put(key, entry, ttl).await {
                self.fault(fault);
            }
        }
        snapshot
    }

    fn refresh_later(&self, hash: &KeyHash) {
        let mut me = self.clone();
        me.origin = self.origin.afresh();
        let owned = hash.clone();
        let scheduled = self
            .host
            .after_response(Box::pin(async move { me.refresh(&owned).await }));
        if !scheduled {
            // Nothing will run it: release the claim so a later request can.
            self.memo(|m| m.end_refresh(&hash.as_str().to_string()));
        }
    }

    /// The background refresh of a stale key; releases the key's refresh claim.
    pub async fn refresh(&self, hash: &KeyHash) {
        if let Err(e) = self.fetch(hash).await {
            self.host
                .log(&format!("background snapshot refresh failed: {e}"));
        }
        self.memo(|m| m.end_refresh(&hash.as_str().to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::*;

    #[test]
    fn a_cold_root_key_brings_the_key_in_the_same_call() {
        let (io, t) = fake_answering([Ok(snap("root")), Ok(snap("k1"))]);
        let (r, k) = run(t.lookup_root(&root(), &hash())).unwrap();
        assert_eq!(
            (id(&r), k.as_ref().map(id)),
            (Some("root"), Some(Some("k1")))
        );
        assert_eq!(io.fetches.get(), 1);
        // Both are remembered: the key answers from memory, the root key too.
        looks_up(&t, "k1", CacheStatus::Hit);
        let (r, k) = run(t.lookup_root(&root(), &hash())).unwrap();
        assert_eq!((id(&r), k.is_none()), (Some("root"), true));
        assert_eq!(io.fetches.get(), 1);
    }

    #[test]
    fn an_unknown_root_key_brings_no_key() {
        let (io, t) = fake_answering([Ok(None), Ok(snap("k1"))]);
        let (r, k) = run(t.lookup_root(&root(), &hash())).unwrap();
        assert_eq!((r.is_none(), k.is_none()), (true, true));
        assert_eq!(io.fetches.get(), 1);
        assert_eq!(io.origin.borrow().len(), 1, "the key was not asked for");
    }

    #[test]
    fn a_remembered_key_is_not_fetched_with_the_root_key() {
        let (io, t) = fake_answering([Ok(snap("k1"))]);
        look(&t);
        io.answers(Ok(snap("root")));
        let (r, k) = run(t.lookup_root(&root(), &hash())).unwrap();
        assert_eq!((id(&r), k.is_none()), (Some("root"), true));
        assert_eq!(io.fetches.get(), 2);
        // Without a memory tier there is nothing to remember: the pair is asked for.
        let (io, t) = fake_with(Tiers {
            memory: false,
            cache_api: false,
        });
        io.answers(Ok(snap("root")));
        io.answers(Ok(snap("k1")));
        let (_, k) = run(t.lookup_root(&root(), &hash())).unwrap();
        assert_eq!(k.as_ref().map(id), Some(Some("k1")));
        assert_eq!(io.fetches.get(), 1);
    }

    #[test]
    fn a_miss_fetches_once_then_memory_answers() {
        let (io, t) = fake_answering([Ok(snap("k1"))]);
        looks_up(&t, "k1", CacheStatus::Miss);
        looks_up(&t, "k1", CacheStatus::Hit);
        assert_eq!(io.fetches.get(), 1);
    }

    #[test]
    fn stale_keys_answer_at_once_with_one_refresh() {
        let (io, t) = fake_answering([Ok(snap("k1"))]);
        look(&t);
        io.later(10_001.0);
        for _ in 0..3 {
            looks_up(&t, "k1", CacheStatus::Stale);
        }
        assert_eq!(io.refreshes.borrow().len(), 1, "one refresh per key");
        io.answers(Ok(snap("k2")));
        run(t.refresh(&hash()));
        looks_up(&t, "k2", CacheStatus::Hit);
        io.later(10_001.0);
        look(&t);
        assert_eq!(io.refreshes.borrow().len(), 2, "the claim was released");
    }

    #[test]
    fn stale_root_keys_reload_before_answering() {
        let (io, t) = fake_answering([Ok(snap("root"))]);
        run(t.lookup(&hash(), Stale::Reload)).unwrap();
        io.later(10_001.0);
        io.answers(Ok(None)); // revoked meanwhile
        let (s, status) = run(t.lookup(&hash(), Stale::Reload)).unwrap();
        assert_eq!((id(&s), status), (None, CacheStatus::Reload));
        assert!(io.refreshes.borrow().is_empty());
    }

    #[test]
    fn a_dead_origin_fails_a_stale_root_key_closed() {
        let (io, t) = fake_answering([Ok(snap("root"))]);
        run(t.lookup(&hash(), Stale::Reload)).unwrap();
        io.later(10_001.0);
        // However often it is asked, and however long the origin stays away, a stale root
        // key never answers from the copy: it is refused, and each refusal is not a new
        // stamp that would keep it alive.
        for _ in 0..3 {
            assert!(matches!(
                run(t.lookup(&hash(), Stale::Reload)),
                Err(Fault::Down)
            ));
            io.later(1_000.0);
        }
        // The copy stays for when the origin answers again: then it is read, not trusted.
        io.answers(Ok(None));
        let (s, status) = run(t.lookup(&hash(), Stale::Reload)).unwrap();
        assert_eq!((id(&s), status), (None, CacheStatus::Reload));
    }

    #[test]
    fn junk_bearers_cannot_push_hot_keys_out() {
        let (io, t) = fake_answering([Ok(snap("hot"))]);
        look(&t);
        let cached = io.cache.borrow().len();
        // More junk bearers than the memo holds (100 in the tests), each unknown.
        for n in 0..150 {
            io.answers(Ok(None));
            let junk = KeyHash::of(&format!("junk_{n}"));
            let (r, k) = run(t.lookup_root(&junk, &hash())).unwrap();
            assert!(r.is_none() && k.is_none());
        }
        looks_up(&t, "hot", CacheStatus::Hit);
        assert_eq!(t.memory.memo.borrow().len(), 1, "only the hot key");
        assert_eq!(t.memory.unknown_roots.borrow().len(), 150);
        assert_eq!(io.cache.borrow().len(), cached, "no Cache API writes");
        // Remembered apart, an unknown bearer still costs the origin one call per fresh
        // time, not one per request.
        let before = io.fetches.get();
        let junk = KeyHash::of("junk_0");
        let (r, _) = run(t.lookup_root(&junk, &hash())).unwrap();
        assert!(r.is_none());
        assert_eq!(io.fetches.get(), before);
    }

    #[test]
    fn a_revoked_root_key_stays_in_the_memo_that_knew_it() {
        let (io, t) = fake_answering([Ok(snap("root"))]);
        run(t.lookup(&root(), Stale::Reload)).unwrap();
        io.later(10_001.0);
        io.answers(Ok(None));
        let (r, _) = run(t.lookup(&root(), Stale::Reload)).unwrap();
        assert!(r.is_none());
        // Its "not found" replaced the known entry there, where a slower, older answer
        // cannot overwrite it, rather than going to the unknown bearers.
        assert_eq!(t.memory.unknown_roots.borrow().len(), 0);
        let entry = t
            .memory
            .memo
            .borrow_mut()
            .get(&root().as_str().to_string(), io.now.get());
        assert!(matches!(entry, Some((None, _))));
    }

    #[test]
    fn freshness_counts_from_the_origins_read_not_the_request() {
        let (io, t) = fake();
        // The origin had read it 6 s before: of the 10 s fresh time, 4 s are left here.
        io.answer_age.set(6_000);
        io.answers(Ok(snap("k")));
        look(&t);
        io.later(3_999.0);
        let (_, status) = look(&t);
        assert_eq!(status, CacheStatus::Hit);
        io.later(2.0);
        let (_, status) = look(&t);
        assert_eq!(
            status,
            CacheStatus::Stale,
            "fresh for 10 s from the read, no longer"
        );
    }

    #[test]
    fn concurrent_requests_share_one_root_key_reload() {
        let (io, t) = fake_answering([Ok(snap("root"))]);
        run(t.lookup(&root(), Stale::Reload)).unwrap();
        io.later(10_001.0);
        io.slow.set(true);
        let r = root();
        let before = io.fetches.get();
        // The origin is down: three requests wait on one reload, and all are refused.
        let three = futures::future::join3(
            t.lookup(&r, Stale::Reload),
            t.lookup(&r, Stale::Reload),
            t.lookup(&r, Stale::Reload),
        );
        let (a, b, c) = futures::executor::block_on(three);
        assert!(matches!(
            (a, b, c),
            (Err(Fault::Down), Err(Fault::Down), Err(Fault::Down))
        ));
        assert_eq!(
            io.fetches.get() - before,
            1,
            "one reload, not one per request"
        );
        // It answers again: one reload for the three, and the next reload is a new one.
        io.answers(Ok(snap("root")));
        let three = futures::future::join3(
            t.lookup(&r, Stale::Reload),
            t.lookup(&r, Stale::Reload),
            t.lookup(&r, Stale::Reload),
        );
        let (a, b, c) = futures::executor::block_on(three);
        for r in [a, b, c] {
            assert_eq!(
                r.map(|(s, st)| (id(&s).map(str::to_string), st)).ok(),
                Some((Some("root".into()), CacheStatus::Reload))
            );
        }
        assert_eq!(io.fetches.get() - before, 2);
    }

    #[test]
    fn our_own_faults_are_errors_not_stale_answers() {
        let (io, t) = fake_answering([Ok(snap("root"))]);
        run(t.lookup(&hash(), Stale::Reload)).unwrap();
        io.later(10_001.0);
        io.answers(Err(Fault::Ours));
        assert!(matches!(
            run(t.lookup(&hash(), Stale::Reload)),
            Err(Fault::Ours)
        ));
    }

    #[test]
    fn not_found_is_never_served_stale() {
        let (io, t) = fake_answering([Ok(None)]);
        look(&t);
        io.later(10_001.0);
        io.answers(Ok(snap("new")));
        looks_up(&t, "new", CacheStatus::Miss);
    }

    #[test]
    fn the_cache_api_fills_memory_and_keeps_its_age() {
        let (io, t) = fake_answering([Ok(snap("k1"))]);
        look(&t);
        // A new isolate: empty memory, same Cache API.
        *t.memory.memo.borrow_mut() = memo();
        io.later(5_000.0);
        looks_up(&t, "k1", CacheStatus::Hit);
        assert_eq!(t.memory.memo.borrow().len(), 1);
        io.later(5_001.0);
        let (_, status) = look(&t);
        assert_eq!(
            status,
            CacheStatus::Stale,
            "the copy aged from its first load"
        );
        assert_eq!(io.fetches.get(), 1);
    }

    #[test]
    fn unknown_keys_stay_in_the_cache_api_only_for_the_fresh_time() {
        let (io, t) = fake_answering([Ok(None), Ok(snap("k1"))]);
        look(&t);
        look(&t);
        let ttls: Vec<f64> = io.cache.borrow().values().map(|(_, _, t)| *t).collect();
        assert_eq!(ttls, vec![10_000.0]);
        let (io, t) = fake_answering([Ok(snap("k1"))]);
        look(&t);
        let ttls: Vec<f64> = io.cache.borrow().values().map(|(_, _, t)| *t).collect();
        assert_eq!(ttls, vec![600_000.0]);
    }

    #[test]
    fn an_older_answer_loses_to_a_newer_one() {
        let (io, t) = fake();
        t.memo(|m| m.put(hash().as_str().to_string(), snap("newer"), 2_000_000.0));
        io.answers(Ok(snap("older")));
        let s = run(t.fetch(&hash())).unwrap();
        assert_eq!(id(&s), Some("older"), "the caller still gets its answer");
        assert!(io.cache.borrow().is_empty(), "the loser is not kept");
        let kept = t.memo(|m| m.get(&hash().as_str().to_string(), 2_000_000.0));
        assert_eq!(
            kept.and_then(|(s, _)| s)
                .map(|s| s.key_id.clone())
                .as_deref(),
            Some("newer")
        );
    }

    #[test]
    fn with_no_tiers_every_lookup_asks_the_origin() {
        let (io, t) = fake_with(Tiers::parse("none").unwrap());
        for _ in 0..3 {
            io.answers(Ok(snap("k1")));
            let (_, status) = look(&t);
            assert_eq!(status, CacheStatus::Miss);
        }
        assert_eq!(io.fetches.get(), 3);
        assert!(t.memory.memo.borrow().is_empty() && io.cache.borrow().is_empty());
    }

    #[test]
    fn cache_api_faults_are_misses_counted_and_logged_once() {
        let (io, t) = fake_with(Tiers {
            memory: false,
            cache_api: true,
        });
        *io.cache_faults.borrow_mut() = Some(CacheFault::Read("network".into()));
        for _ in 0..3 {
            io.answers(Ok(snap("k1")));
            looks_up(&t, "k1", CacheStatus::Miss);
        }
        let stats = t.memory.stats.borrow();
        // Each lookup read once and wrote once, and both failed.
        assert_eq!(
            (stats.cache_read_failures, stats.cache_write_failures),
            (3, 3)
        );
        let logs = io.logs.borrow();
        assert_eq!(logs.len(), 2, "one line per kind: {logs:?}");
        assert!(logs[0].contains("network"));
    }

    #[test]
    fn a_corrupt_cache_api_entry_is_a_counted_miss() {
        let (io, t) = fake_with(Tiers {
            memory: false,
            cache_api: true,
        });
        io.cache.borrow_mut().insert(
            hash().as_str().to_string(),
            (b"not postcard".to_vec(), io.now.get(), 600_000.0),
        );
        io.answers(Ok(snap("k1")));
        looks_up(&t, "k1", CacheStatus::Miss);
        assert_eq!(t.memory.stats.borrow().cache_corrupt_entries, 1);
        assert_eq!(io.logs.borrow().len(), 1);
        // The origin's answer replaced it, so the next lookup is a hit from the Cache API.
        let (_, status) = look(&t);
        assert_eq!(status, CacheStatus::Hit);
        assert_eq!(t.memory.stats.borrow().cache_corrupt_entries, 1);
    }

    #[test]
    fn scheduled_refreshes_refresh() {
        let (io, t) = fake_answering([Ok(snap("k1"))]);
        look(&t);
        io.later(10_001.0);
        look(&t);
        io.answers(Ok(snap("k2")));
        let work = io.refreshes.borrow_mut().pop().unwrap();
        run(work);
        looks_up(&t, "k2", CacheStatus::Hit);
    }
}
