//! The server's shared state: one cheap, clonable handle (an `Arc` inside).

use std::ops::Deref;
use std::sync::Arc;

use axum::http::HeaderMap;
use keyway_core::auth::{RootScope, bearer_token};
use keyway_core::credits::Spend;
use keyway_core::key::KeyHash;
use keyway_core::ratelimit::{CounterId, Decision, LimitSpec};
use keyway_core::snapshot::{KeySnapshot, SnapshotCredits};
use keyway_core::verify::{KeyState, LimitCheck};

use crate::cache::{Lookup, SnapshotCache, Stale};
use crate::events::EventSink;
use crate::http::{AppError, authorization};
use crate::ids;
use crate::ledger::CreditLedger;
use crate::limiter::{Counters, MemoryCounters};
use crate::metrics::Metrics;
use crate::store::{HashFilter, Store, StoreResult};

pub struct Inner {
    pub store: Store,
    pub cache: Arc<SnapshotCache>,
    pub counters: Arc<MemoryCounters>,
    pub ledger: Arc<CreditLedger>,
    pub events: EventSink,
    pub metrics: Arc<Metrics>,
    pub edge_secret: Option<keyway_core::secret::Secret>,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub async fn lookup(&self, hash: &KeyHash) -> Result<Lookup, AppError> {
        self.lookup_with(hash, Stale::Serve).await
    }

    pub async fn lookup_with(&self, hash: &KeyHash, stale: Stale) -> Result<Lookup, AppError> {
        let found = self.cache.get(&self.store, hash, stale).await?;
        self.metrics
            .cache
            .with_label_values(&[found.1.as_str()])
            .inc();
        Ok(found)
    }

    /// The caller's root key, from `Authorization: Bearer`.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<RootScope, AppError> {
        let token = bearer_token(authorization(headers))?;
        self.authenticate_hash(&KeyHash::of(token)).await
    }

    pub async fn authenticate_hash(&self, hash: &KeyHash) -> Result<RootScope, AppError> {
        let (snapshot, _) = self.lookup_with(hash, Stale::Reload).await?;
        Ok(RootScope::from_snapshot(snapshot, ids::now_ms())?)
    }

    /// Drops the cached snapshots a committed write changed. Called before answering.
    pub async fn invalidate(&self, filter: HashFilter<'_>) -> StoreResult<()> {
        let hashes = self.store.hashes_where(filter).await?;
        self.cache.invalidate(hashes.iter().map(String::as_str));
        Ok(())
    }
}

/// The origin's answers to the core's stateful checks: its own counters and ledger.
pub struct OriginKeyState<'a> {
    pub counters: &'a dyn Counters,
    pub ledger: &'a CreditLedger,
}

impl KeyState for OriginKeyState<'_> {
    type Error = std::convert::Infallible;

    fn ratelimit(
        &mut self,
        checks: &[LimitCheck],
        now_ms: i64,
    ) -> Result<(bool, Vec<Decision>), Self::Error> {
        let ids: Vec<CounterId> = checks.iter().map(|c| c.counter).collect();
        let specs: Vec<LimitSpec> = checks.iter().map(|c| c.spec).collect();
        Ok(self.counters.admit(&ids, &specs, now_ms))
    }

    fn spend_credits(
        &mut self,
        key: &KeySnapshot,
        credits: &SnapshotCredits,
        cost: u64,
        now_ms: i64,
    ) -> Result<Spend, Self::Error> {
        Ok(self.ledger.spend(&key.key_id, credits, cost, now_ms))
    }
}
