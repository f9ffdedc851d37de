//! A fake runtime for the policy's tests: a clock, a Cache API, an origin that answers
//! from a queue (empty means down), and work after the response kept to run by hand.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use keyway_core::error::ApiError;
use keyway_core::freshness::{CacheStatus, NotFound, ReloadFails, Rule, Stale};
use keyway_core::key::KeyHash;
use keyway_core::snapshot::KeySnapshot;
use keyway_core::wire::SnapshotFound;

use super::lookup::*;
use super::memo::Memo;
use super::stats::CacheFault;
use super::tiers::Tiers;

/// The fake runtime never waits, so one poll finishes any of these futures.
pub fn run<F: std::future::Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the fake runtime never waits"),
    }
}

#[derive(Debug)]
pub enum Fault {
    Down,
    Ours,
    /// A client error, by status.
    Client(u16),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl From<ApiError> for Fault {
    fn from(e: ApiError) -> Self {
        Fault::Client(e.status)
    }
}

/// Pending for a few polls, then ready: an origin call that takes long enough for a few
/// concurrent requests to arrive while it runs.
struct Wait(u8);

impl std::future::Future for Wait {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The fake Cache API: key → (bytes, stored at, time to live), in milliseconds.
pub type CacheEntries = HashMap<String, (Vec<u8>, f64, f64)>;

pub struct Fake {
    pub now: Cell<f64>,
    pub cache: RefCell<CacheEntries>,
    /// What the Cache API does instead of answering, when set.
    pub cache_faults: RefCell<Option<CacheFault>>,
    /// The origin's answers, in order; empty means it is down.
    pub origin: RefCell<VecDeque<Result<Snapshot, Fault>>>,
    pub fetches: Cell<u32>,
    /// How long ago the fake origin read each answer (`SnapshotFound::age_ms`).
    pub answer_age: Cell<u32>,
    /// When set, each origin call waits a few polls before answering, so concurrent
    /// requests interleave (run them with an executor, not [`run`]).
    pub slow: Cell<bool>,
    pub refreshes: RefCell<Vec<Later>>,
    pub logs: RefCell<Vec<String>>,
}

pub type Tiers3 = Snapshots<&'static Fake, &'static Fake, &'static Fake>;

pub fn memo() -> SnapshotMemo {
    Memo::new(
        100,
        Rule::new(10_000, 600_000, NotFound::FreshOnly, ReloadFails::Refuse),
    )
}

/// The fake runtime and the tiers over it, both living for the test.
pub fn fake_with(tiers: Tiers) -> (&'static Fake, Tiers3) {
    let io: &'static Fake = Box::leak(Box::new(Fake {
        now: Cell::new(1_000_000.0),
        cache: RefCell::new(HashMap::new()),
        cache_faults: RefCell::new(None),
        origin: RefCell::new(VecDeque::new()),
        fetches: Cell::new(0),
        answer_age: Cell::new(0),
        slow: Cell::new(false),
        refreshes: RefCell::new(Vec::new()),
        logs: RefCell::new(Vec::new()),
    }));
    let snapshots = Snapshots {
        tiers,
        memory: Memory::new(memo(), Memo::new(UNKNOWN_ROOTS_CAPACITY, memo().rule())),
        cache: io,
        origin: io,
        host: io,
    };
    (io, snapshots)
}

pub fn fake() -> (&'static Fake, Tiers3) {
    fake_with(Tiers::ALL)
}

/// The fake runtime with the origin's next answers queued, in order.
pub fn fake_answering<const N: usize>(
    answers: [Result<Snapshot, Fault>; N],
) -> (&'static Fake, Tiers3) {
    let (io, t) = fake();
    for a in answers {
        io.answers(a);
    }
    (io, t)
}

/// Looks the test key (`hash()`) up for a verification, which may be served stale.
pub fn look(t: &Tiers3) -> (Snapshot, CacheStatus) {
    run(t.lookup(&hash(), Stale::Serve)).unwrap()
}

/// Looks the test key up and checks which snapshot came back, and from where.
#[track_caller]
pub fn looks_up(t: &Tiers3, key_id: &str, status: CacheStatus) {
    let (s, got) = look(t);
    assert_eq!((id(&s), got), (Some(key_id), status));
}

impl Fake {
    pub fn answers(&self, a: Result<Snapshot, Fault>) {
        self.origin.borrow_mut().push_back(a);
    }
    pub fn later(&self, ms: f64) {
        self.now.set(self.now.get() + ms);
    }
}

impl CacheApi for &'static Fake {
    async fn get(&self, key: &str) -> Result<Option<CacheEntry>, CacheFault> {
        if let Some(fault) = self.cache_faults.borrow().clone() {
            return Err(fault);
        }
        Ok(self
            .cache
            .borrow()
            .get(key)
            .filter(|(_, stored, ttl)| self.now.get() - stored < *ttl)
            .map(|(bytes, stored, _)| CacheEntry {
                bytes: bytes.clone(),
                stored_ms: *stored,
            }))
    }
    async fn put(&self, key: &str, entry: CacheEntry, ttl_ms: f64) -> Result<(), CacheFault> {
        if let Some(fault) = self.cache_faults.borrow().clone() {
            return Err(CacheFault::Write(format!("{fault:?}")));
        }
        self.cache
            .borrow_mut()
            .insert(key.to_string(), (entry.bytes, entry.stored_ms, ttl_ms));
        Ok(())
    }
}

impl Origin for &'static Fake {
    type Error = Fault;
    async fn snapshot(&self, _hash: &KeyHash) -> Result<Fetched, Fault> {
        self.fetches.set(self.fetches.get() + 1);
        if self.slow.get() {
            Wait(3).await;
        }
        let answer = self
            .origin
            .borrow_mut()
            .pop_front()
            .unwrap_or(Err(Fault::Down));
        answer.map(|snapshot| {
            let found = SnapshotFound {
                snapshot: snapshot.as_deref().cloned(),
                age_ms: self.answer_age.get(),
            };
            Fetched::answered(found, self.now.get())
        })
    }
    /// Answers the root from the queue, and the key from the next answer only when
    /// the root was found (the origin's rule), in one counted call.
    async fn pair(
        &self,
        root: &KeyHash,
        key: &KeyHash,
    ) -> Result<(Fetched, Option<Fetched>), Fault> {
        let root = self.snapshot(root).await?;
        if root.snapshot.is_none() {
            return Ok((root, None));
        }
        self.fetches.set(self.fetches.get() - 1);
        let key = self.snapshot(key).await?;
        Ok((root, Some(key)))
    }
    fn unreachable(e: &Fault) -> bool {
        matches!(e, Fault::Down)
    }
    fn afresh(&self) -> Self {
        self
    }
    fn unreachable_error(_message: String) -> Fault {
        Fault::Down
    }
}

impl Host for &'static Fake {
    fn now_ms(&self) -> f64 {
        self.now.get()
    }
    fn after_response(&self, work: Later) -> bool {
        self.refreshes.borrow_mut().push(work);
        true
    }
    fn log(&self, message: &str) {
        self.logs.borrow_mut().push(message.to_string());
    }
    fn sleep(&self, ms: u64) -> Later {
        self.now.set(self.now.get() + ms as f64);
        Box::pin(Wait(1))
    }
}

pub fn snap(id: &str) -> Snapshot {
    Some(Arc::new(KeySnapshot {
        key_id: id.into(),
        ..keyway_core::snapshot::fixtures::key()
    }))
}

pub fn id(s: &Snapshot) -> Option<&str> {
    s.as_deref().map(|s| s.key_id.as_str())
}

pub fn hash() -> KeyHash {
    KeyHash::of("key_test")
}

pub fn root() -> KeyHash {
    KeyHash::of("root_test")
}
