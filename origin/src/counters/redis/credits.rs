//! Credit balances in Redis: read, changed by the API, and written behind to the database.

use std::sync::LazyLock;

use keyway_core::credits::CreditBalance;
use redis::AsyncCommands;

use crate::cluster::{Cluster, ClusterError};
use crate::counters::ledger::{FlushReport, Unwritten};
use crate::store::Store;

/// Sets (or deletes) a balance only if its version is still the one the caller read, so a
/// change computed from a live balance cannot overwrite a spend that raced it.
static SWAP: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local v = redis.call('HGET', KEYS[1], 'v')
if (v or '') ~= ARGV[1] then return 0 end
if ARGV[2] == 'del' then
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[1], 'r', ARGV[3], 't', ARGV[4], 'v', tostring((tonumber(v) or 0) + 1))
  redis.call('PEXPIRE', KEYS[1], 2592000000)
end
return 1
",
    )
});

/// Balances written per flush round; the rest wait for the next one.
const FLUSH_BATCH: usize = 1000;

impl Cluster {
    fn balance_key(&self, key_id: &str) -> String {
        self.key(&["cr", key_id])
    }

    async fn read(&self, key_id: &str) -> Result<Option<(CreditBalance, String)>, ClusterError> {
        let (r, t, v): (Option<u64>, Option<i64>, Option<String>) = redis::cmd("HMGET")
            .arg(self.balance_key(key_id))
            .arg("r")
            .arg("t")
            .arg("v")
            .query_async(&mut self.conn())
            .await?;
        Ok(match (r, t) {
            (Some(remaining), Some(last_refill_at)) => Some((
                CreditBalance {
                    remaining,
                    last_refill_at,
                },
                v.unwrap_or_default(),
            )),
            _ => None,
        })
    }

    /// Forgets a deleted key's balance: nothing will spend it again, and written behind it
    /// would only be written to a row that is gone.
    pub async fn drop_balance(&self, key_id: &str) -> Result<(), ClusterError> {
        let result = redis::pipe()
            .del(self.balance_key(key_id))
            .srem(self.key(&["cr-dirty"]), key_id)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(ClusterError::from);
        self.observe("drop_balance", result)
    }

    /// The cluster's live balance, if Redis holds one (else the database's is current).
    pub async fn peek(&self, key_id: &str) -> Result<Option<CreditBalance>, ClusterError> {
        let result = self.read(key_id).await.map(|b| b.map(|(b, _)| b));
        self.observe("peek", result)
    }

    /// The live balances of many keys in one round trip, in the order asked.
    pub async fn peek_many(
        &self,
        key_ids: &[&str],
    ) -> Result<Vec<Option<CreditBalance>>, ClusterError> {
        type Fields = (Option<u64>, Option<i64>);
        if key_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in key_ids {
            pipe.cmd("HMGET")
                .arg(self.balance_key(id))
                .arg("r")
                .arg("t");
        }
        let result = pipe.query_async::<Vec<Fields>>(&mut self.conn()).await;
        let rows = self.observe("peek", result.map_err(ClusterError::from))?;
        Ok(rows
            .into_iter()
            .map(|(r, t)| match (r, t) {
                (Some(remaining), Some(last_refill_at)) => Some(CreditBalance {
                    remaining,
                    last_refill_at,
                }),
                _ => None,
            })
            .collect())
    }

    /// Changes a balance from its live value, atomically against spends on every node,
    /// then writes it through to the database. `change` gets the live balance (or
    /// `stored` when Redis holds none) and returns the new one, or `None` for unlimited.
    pub async fn change(
        &self,
        store: &Store,
        key_id: &str,
        stored: Option<CreditBalance>,
        change: impl Fn(Option<CreditBalance>) -> Option<CreditBalance>,
    ) -> Result<Option<CreditBalance>, ClusterError> {
        let result = async {
            loop {
                let live = self.read(key_id).await?;
                let version = live.as_ref().map(|(_, v)| v.clone()).unwrap_or_default();
                let new = change(live.map(|(b, _)| b).or(stored));
                let mut inv = SWAP.prepare_invoke();
                inv.key(self.balance_key(key_id)).arg(&version);
                match new {
                    None => inv.arg("del").arg(0).arg(0),
                    Some(b) => inv
                        .arg("set")
                        .arg(super::script::exact(b.remaining))
                        .arg(b.last_refill_at),
                };
                let swapped: i64 = inv.invoke_async(&mut self.conn()).await?;
                if swapped == 1 {
                    break Ok::<_, ClusterError>(new);
                }
            }
        }
        .await;
        let new = self.observe("credits", result)?;
        store
            .write_credits(
                key_id,
                new.map(|b| b.remaining),
                new.map(|b| b.last_refill_at),
            )
            .await?;
        Ok(new)
    }

    /// Writes the balances any node changed since they were last written. The set of
    /// unwritten balances lives in Redis, so a node that dies leaves its spends for the
    /// others to write. A failed write puts its key back for the next round.
    pub async fn flush(&self, store: &Store) -> FlushReport {
        let mut report = FlushReport::default();
        let dirty_key = self.key(&["cr-dirty"]);
        let popped: Result<Vec<String>, _> = redis::cmd("SPOP")
            .arg(&dirty_key)
            .arg(FLUSH_BATCH)
            .query_async(&mut self.conn())
            .await;
        let ids = match popped {
            Ok(ids) => ids,
            Err(e) => {
                let _ = self.observe::<()>("flush", Err(e.into()));
                return report;
            }
        };
        for key_id in ids {
            let outcome = match self.read(&key_id).await {
                Ok(Some((b, _))) => store
                    .write_credits_if_metered(&key_id, b.remaining, b.last_refill_at)
                    .await
                    .map(|()| b.remaining)
                    .map_err(|e| (b.remaining, e)),
                // Made unlimited or evicted since: nothing to write.
                Ok(None) => continue,
                Err(e) => {
                    let _ = self.observe::<()>("flush", Err(e));
                    let _: Result<(), _> = self.conn().sadd(&dirty_key, &key_id).await;
                    continue;
                }
            };
            match outcome {
                Ok(_) => report.written += 1,
                Err((remaining, error)) => {
                    let _: Result<(), _> = self.conn().sadd(&dirty_key, &key_id).await;
                    report.failed.push(Unwritten {
                        key_id,
                        remaining,
                        error,
                    });
                }
            }
        }
        report
    }
}
