//! The server's shared state: one cheap, clonable handle (an `Arc` inside).

use std::ops::Deref;
use std::sync::Arc;

use keyway_core::admission::{Admission, Charge};
use keyway_core::auth::{RootScope, root_key_token};
use keyway_core::credits::CreditBalance;
use keyway_core::key::KeyHash;
use keyway_core::ratelimit::{CounterId, Decision, LimitSpec};

use crate::analytics::ingest::EventSink;
use crate::caches::Caches;
use crate::caches::snapshots::{Lookup, Stale};
use crate::counters::Counters;
use crate::counters::ledger::FlushReport;
use crate::error::AppError;
use crate::ids;
use crate::metrics::Metrics;
use crate::store::{HashFilter, Store, StoreResult};

pub struct Inner {
    pub store: Store,
    pub caches: Caches,
    /// In memory on one node, in Redis in cluster mode (`--redis`).
    pub counters: Counters,
    pub events: EventSink,
    pub metrics: Arc<Metrics>,
    pub edge_secret: Option<keyway_core::secret::Secret>,
    pub analytics: crate::analytics::Analytics,
    /// Seals recoverable keys; `None` without `KEYWAY_ENCRYPTION_KEY`.
    pub vault: Option<crate::vault::Vault>,
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
        let found = self.caches.snapshots.get(&self.store, hash, stale).await?;
        self.metrics.cache_lookup(found.1);
        Ok(found)
    }

    /// For the edge: the snapshot as read no more than `max_age` ago, and its age.
    pub async fn lookup_within(
        &self,
        hash: &KeyHash,
        max_age: std::time::Duration,
    ) -> Result<
        (
            Option<Arc<keyway_core::snapshot::KeySnapshot>>,
            std::time::Duration,
        ),
        AppError,
    > {
        Ok(self
            .caches
            .snapshots
            .get_within(&self.store, hash, max_age)
            .await?)
    }

    /// The caller's root key, from `Authorization: Bearer`.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<RootScope, AppError> {
        let token = root_key_token(authorization)?;
        self.authenticate_hash(&KeyHash::of(token)).await
    }

    pub async fn authenticate_hash(&self, hash: &KeyHash) -> Result<RootScope, AppError> {
        let (snapshot, _) = self.lookup_with(hash, Stale::Reload).await?;
        Ok(RootScope::from_snapshot(snapshot, ids::now_ms())?)
    }

    /// Drops the cached snapshots a committed write changed. Called before answering.
    pub async fn invalidate(&self, filter: HashFilter<'_>) -> StoreResult<()> {
        let hashes = self.store.hashes_where(filter).await?;
        self.forget(hashes.iter().map(String::as_str)).await;
        Ok(())
    }

    /// Drops these snapshots here and, in cluster mode, on every other replica.
    pub async fn forget<'a>(&self, hashes: impl IntoIterator<Item = &'a str>) {
        self.caches.forget(hashes).await;
    }

    /// Counts a verification's limits and spends its credits, all or nothing.
    pub async fn admit(&self, charge: &Charge<'_>, now_ms: i64) -> Result<Admission, AppError> {
        Ok(self.counters.admit(&self.store, charge, now_ms).await?)
    }

    /// Counts limits with no credits (`ratelimit.limit`, `multiLimit`).
    pub async fn admit_limits(
        &self,
        counters: &[CounterId],
        specs: &[LimitSpec],
        now_ms: i64,
    ) -> Result<(bool, Vec<Decision>), AppError> {
        Ok(self.counters.admit_limits(counters, specs, now_ms).await?)
    }

    pub async fn live_credits(&self, key_id: &str) -> Result<Option<CreditBalance>, AppError> {
        Ok(self.counters.live_credits(key_id).await?)
    }

    pub async fn drop_credits(&self, key_id: &str) -> Result<(), AppError> {
        Ok(self.counters.drop_credits(key_id).await?)
    }

    pub async fn live_credits_many(
        &self,
        key_ids: &[&str],
    ) -> Result<Vec<Option<CreditBalance>>, AppError> {
        Ok(self.counters.live_credits_many(key_ids).await?)
    }

    pub async fn change_credits(
        &self,
        key_id: &str,
        stored: Option<CreditBalance>,
        change: impl Fn(Option<CreditBalance>) -> Option<CreditBalance>,
    ) -> Result<Option<CreditBalance>, AppError> {
        Ok(self
            .counters
            .change_credits(&self.store, key_id, stored, change)
            .await?)
    }

    /// Writes behind the balances spent since the last flush.
    pub async fn flush_credits(&self) -> FlushReport {
        self.counters.flush_credits(&self.store).await
    }
}
