//! The server's shared state: one cheap, clonable handle (an `Arc` inside).

use std::ops::Deref;
use std::sync::Arc;

use keyway_core::admission::{Admission, Charge};
use keyway_core::auth::{RootScope, bearer_token};
use keyway_core::credits::CreditBalance;
use keyway_core::error::ApiError;
use keyway_core::key::KeyHash;
use keyway_core::ratelimit::{CounterId, Decision, LimitSpec};

use crate::cache::{Lookup, SnapshotCache, Stale};
use crate::cluster::ClusterError;
use crate::cluster::notices::Notices;
use crate::cluster::script::Limits;
use crate::events::EventSink;
use crate::http::{AppError, Credentials};
use crate::ids;
use crate::ledger::{CreditLedger, FlushReport};
use crate::limiter::MemoryCounters;
use crate::metrics::Metrics;
use crate::overrides::OverrideCache;
use crate::store::{HashFilter, Store, StoreResult};

pub struct Inner {
    pub store: Store,
    pub cache: Arc<SnapshotCache>,
    pub overrides: Arc<OverrideCache>,
    pub counters: Arc<MemoryCounters>,
    pub ledger: Arc<CreditLedger>,
    pub events: EventSink,
    pub metrics: Arc<Metrics>,
    pub edge_secret: Option<keyway_core::secret::Secret>,
    /// Cluster mode (`--redis`): counters and balances in Redis, change notices to the
    /// other replicas. `None` on a single node.
    pub cluster: Option<Cluster>,
    pub analytics: crate::analytics::Analytics,
    /// Seals recoverable keys; `None` without `KEYWAY_ENCRYPTION_KEY`.
    pub vault: Option<crate::vault::Vault>,
}

/// The shared parts of cluster mode.
pub struct Cluster {
    pub redis: Arc<crate::cluster::Cluster>,
    pub notices: Arc<Notices>,
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
        self.metrics.cache_lookup(found.1);
        Ok(found)
    }

    /// The caller's root key, from `Authorization: Bearer`.
    pub async fn authenticate(&self, credentials: &Credentials) -> Result<RootScope, AppError> {
        let token = bearer_token(credentials.authorization())?;
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
        let hashes: Vec<&str> = hashes.into_iter().collect();
        self.cache.invalidate(hashes.iter().copied());
        self.overrides.invalidate(hashes.iter().copied());
        if let Some(c) = &self.cluster {
            c.notices.publish(hashes).await;
        }
    }

    /// Counts a verification's limits and spends its credits, all or nothing.
    pub async fn admit(&self, charge: &Charge<'_>, now_ms: i64) -> Result<Admission, AppError> {
        match &self.cluster {
            Some(c) => c
                .redis
                .admit(&self.store, charge, now_ms)
                .await
                .map_err(counters_unreachable),
            None => Ok(self.admit_in_memory(charge, now_ms)),
        }
    }

    /// A single node's admission: its own counters and ledger. The spend runs while the
    /// limits' shards are held, and only once they admit; the limits count only if it
    /// succeeds (the core's `admission::admit` order).
    fn admit_in_memory(&self, charge: &Charge<'_>, now_ms: i64) -> Admission {
        let ids: Vec<CounterId> = charge.checks.iter().map(|c| c.counter).collect();
        let specs: Vec<LimitSpec> = charge.checks.iter().map(|c| c.spec).collect();
        let mut spend = None;
        let (limits_passed, decisions) =
            self.counters
                .admit_if(&ids, &specs, now_ms, || match charge.credits {
                    None => true,
                    Some(c) => {
                        let s = self.ledger.spend(c.key_id, c.credits, c.cost, now_ms);
                        spend = Some(s);
                        s.admitted()
                    }
                });
        Admission {
            decisions,
            limits_passed,
            spend,
        }
    }

    /// Counts limits with no credits (`ratelimit.limit`, `multiLimit`).
    pub async fn admit_limits(
        &self,
        counters: &[CounterId],
        specs: &[LimitSpec],
        now_ms: i64,
    ) -> Result<(bool, Vec<Decision>), AppError> {
        match &self.cluster {
            Some(c) => c
                .redis
                .admit_limits(&Limits { counters, specs }, now_ms)
                .await
                .map_err(counters_unreachable),
            None => Ok(self.counters.admit(counters, specs, now_ms)),
        }
    }

    /// A key's live balance, where one is held (else the stored one is current).
    pub async fn live_credits(&self, key_id: &str) -> Result<Option<CreditBalance>, AppError> {
        match &self.cluster {
            Some(c) => c.redis.peek(key_id).await.map_err(counters_unreachable),
            None => Ok(self.ledger.peek(key_id)),
        }
    }

    /// Drops a deleted key's live balance: Redis's in a cluster, the ledger's cell on one
    /// node. Neither would ever be spent again, and neither expired on its own.
    pub async fn drop_credits(&self, key_id: &str) -> Result<(), AppError> {
        match &self.cluster {
            Some(c) => c
                .redis
                .drop_balance(key_id)
                .await
                .map_err(counters_unreachable),
            None => {
                self.ledger.forget(key_id);
                Ok(())
            }
        }
    }

    /// Live balances of many keys at once (one Redis round trip in a cluster).
    pub async fn live_credits_many(
        &self,
        key_ids: &[&str],
    ) -> Result<Vec<Option<CreditBalance>>, AppError> {
        match &self.cluster {
            Some(c) => c
                .redis
                .peek_many(key_ids)
                .await
                .map_err(counters_unreachable),
            None => Ok(key_ids.iter().map(|id| self.ledger.peek(id)).collect()),
        }
    }

    /// Changes a balance from its live value, atomically against spends, and writes it
    /// through. See [`CreditLedger::change`].
    pub async fn change_credits(
        &self,
        key_id: &str,
        stored: Option<CreditBalance>,
        change: impl Fn(Option<CreditBalance>) -> Option<CreditBalance>,
    ) -> Result<Option<CreditBalance>, AppError> {
        match &self.cluster {
            Some(c) => c
                .redis
                .change(&self.store, key_id, stored, change)
                .await
                .map_err(counters_unreachable),
            None => Ok(self
                .ledger
                .change(&self.store, key_id, stored, change)
                .await),
        }
    }

    /// Writes behind the balances spent since the last flush.
    pub async fn flush_credits(&self) -> FlushReport {
        match &self.cluster {
            Some(c) => c.redis.flush(&self.store).await,
            None => self.ledger.flush(&self.store).await,
        }
    }
}

/// Redis did not answer: refuse rather than guess, so no limit or balance is over-spent.
/// The cluster logs the outage once and counts each failure.
fn counters_unreachable(e: ClusterError) -> AppError {
    match e {
        ClusterError::Store(e) => AppError::from(e),
        _ => AppError(ApiError::unavailable(
            "The shared rate-limit and credit counters are unreachable; nothing was counted or spent. Retry shortly.",
        )),
    }
}
