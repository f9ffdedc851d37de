//! Where rate-limit windows and credit balances live: in this node's memory
//! ([`Counters::Local`]) or, in cluster mode, in Redis ([`Counters::Redis`]). Both run
//! the core's admission arithmetic; callers never ask which one they have.

pub mod ledger;
pub mod limiter;
pub mod local;
pub mod redis;

use std::sync::Arc;

use keyway_core::admission::{Admission, Charge};
use keyway_core::credits::CreditBalance;
use keyway_core::ratelimit::{CounterId, Decision, LimitSpec};

use crate::cluster::{Cluster, ClusterError};
use crate::store::Store;
use ledger::FlushReport;
use local::Local;
use redis::script::Limits;

pub enum Counters {
    Local(Local),
    Redis(Arc<Cluster>),
}

type Result<T> = std::result::Result<T, ClusterError>;

impl Counters {
    /// Counts a verification's limits and spends its credits, all or nothing.
    pub async fn admit(
        &self,
        store: &Store,
        charge: &Charge<'_>,
        now_ms: i64,
    ) -> Result<Admission> {
        match self {
            Counters::Local(l) => Ok(l.admit(charge, now_ms)),
            Counters::Redis(r) => r.admit(store, charge, now_ms).await,
        }
    }

    /// Counts limits with no credits (`ratelimit.limit`, `multiLimit`).
    pub async fn admit_limits(
        &self,
        counters: &[CounterId],
        specs: &[LimitSpec],
        now_ms: i64,
    ) -> Result<(bool, Vec<Decision>)> {
        match self {
            Counters::Local(l) => Ok(l.limiter.admit(counters, specs, now_ms)),
            Counters::Redis(r) => r.admit_limits(&Limits { counters, specs }, now_ms).await,
        }
    }

    /// A key's live balance, where one is held (else the stored one is current).
    pub async fn live_credits(&self, key_id: &str) -> Result<Option<CreditBalance>> {
        match self {
            Counters::Local(l) => Ok(l.ledger.peek(key_id)),
            Counters::Redis(r) => r.peek(key_id).await,
        }
    }

    /// Live balances of many keys at once (one Redis round trip in a cluster).
    pub async fn live_credits_many(&self, key_ids: &[&str]) -> Result<Vec<Option<CreditBalance>>> {
        match self {
            Counters::Local(l) => Ok(key_ids.iter().map(|id| l.ledger.peek(id)).collect()),
            Counters::Redis(r) => r.peek_many(key_ids).await,
        }
    }

    /// Drops a deleted key's live balance. It would never be spent again, and neither
    /// store expires it on its own.
    pub async fn drop_credits(&self, key_id: &str) -> Result<()> {
        match self {
            Counters::Local(l) => {
                l.ledger.forget(key_id);
                Ok(())
            }
            Counters::Redis(r) => r.drop_balance(key_id).await,
        }
    }

    /// Changes a balance from its live value, atomically against spends, and writes it
    /// through. See [`ledger::CreditLedger::change`].
    pub async fn change_credits(
        &self,
        store: &Store,
        key_id: &str,
        stored: Option<CreditBalance>,
        change: impl Fn(Option<CreditBalance>) -> Option<CreditBalance>,
    ) -> Result<Option<CreditBalance>> {
        match self {
            Counters::Local(l) => Ok(l.ledger.change(store, key_id, stored, change).await),
            Counters::Redis(r) => r.change(store, key_id, stored, change).await,
        }
    }

    /// Writes behind the balances spent since the last flush.
    pub async fn flush_credits(&self, store: &Store) -> FlushReport {
        match self {
            Counters::Local(l) => l.ledger.flush(store).await,
            Counters::Redis(r) => r.flush(store).await,
        }
    }

    /// Drops this node's expired windows; Redis expires its own.
    pub fn sweep(&self, now_ms: i64) {
        if let Counters::Local(l) = self {
            l.limiter.sweep(now_ms);
        }
    }
}
