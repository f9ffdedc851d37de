//! The admission call: one verification's limits and credits in one script run.

use std::sync::LazyLock;

use keyway_core::admission::{Admission, Charge};
use keyway_core::credits::{CreditBalance, Spend};
use keyway_core::ratelimit::{Decision, cell_of};
use redis::Value;

use crate::cluster::{Cluster, ClusterError};
use crate::store::Store;

static ADMIT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("admit.lua")));

/// The limit checks alone, as `ratelimit.limit` and `multiLimit` make them.
pub struct Limits<'a> {
    pub counters: &'a [keyway_core::ratelimit::CounterId],
    pub specs: &'a [keyway_core::ratelimit::LimitSpec],
}

impl Cluster {
    /// Admits a verification's charge. Seeds a balance Redis does not hold from the
    /// database first (a second call, only on a balance's first use or after a Redis
    /// restart).
    pub async fn admit(
        &self,
        store: &Store,
        charge: &Charge<'_>,
        now_ms: i64,
    ) -> Result<Admission, ClusterError> {
        let counters: Vec<_> = charge.checks.iter().map(|c| c.counter).collect();
        let specs: Vec<_> = charge.checks.iter().map(|c| c.spec).collect();
        let limits = Limits {
            counters: &counters,
            specs: &specs,
        };
        let result = self.admit_inner(store, &limits, charge, now_ms).await;
        self.observe("admit", result)
    }

    /// Counts limits with no credits: `ratelimit.limit` and `multiLimit`.
    pub async fn admit_limits(
        &self,
        limits: &Limits<'_>,
        now_ms: i64,
    ) -> Result<(bool, Vec<Decision>), ClusterError> {
        let charge = Charge {
            checks: &[],
            credits: None,
        };
        let result = self.run(limits, &charge, None, now_ms).await;
        let result = result.and_then(|r| r.ok_or_else(|| ClusterError::Reply("seed".into())));
        self.observe("ratelimit", result.map(|a| (a.limits_passed, a.decisions)))
    }

    async fn admit_inner(
        &self,
        store: &Store,
        limits: &Limits<'_>,
        charge: &Charge<'_>,
        now_ms: i64,
    ) -> Result<Admission, ClusterError> {
        if let Some(a) = self.run(limits, charge, None, now_ms).await? {
            return Ok(a);
        }
        let credits = charge
            .credits
            .ok_or_else(|| ClusterError::Reply("asked for a seed without credits".into()))?;
        // The database's balance is at most one flush behind what Redis last held: seeding
        // from it errs in the key holder's favour, never against them.
        let seed = store
            .read_credits(credits.key_id)
            .await?
            .unwrap_or(credits.credits.balance);
        self.run(limits, charge, Some(seed), now_ms)
            .await?
            .ok_or_else(|| ClusterError::Reply("asked for a seed twice".into()))
    }

    /// One script call; `None` when Redis holds no balance and none was given.
    async fn run(
        &self,
        limits: &Limits<'_>,
        charge: &Charge<'_>,
        seed: Option<CreditBalance>,
        now_ms: i64,
    ) -> Result<Option<Admission>, ClusterError> {
        let mut inv = ADMIT.prepare_invoke();
        for id in limits.counters {
            inv.key(self.key(&["rl", &id.to_hex()]));
        }
        inv.arg(limits.counters.len());
        inv.arg(u8::from(charge.credits.is_some()));
        for spec in limits.specs {
            let d = spec.duration_ms.max(1);
            let cell = cell_of(now_ms, d);
            let into = now_ms - cell.saturating_mul(i64::try_from(d).unwrap_or(i64::MAX));
            let left = i64::try_from(d).unwrap_or(i64::MAX) - into;
            inv.arg(cell)
                .arg(d)
                .arg(exact(spec.limit))
                .arg(exact(spec.cost))
                .arg(left);
        }
        if let Some(c) = charge.credits {
            inv.key(self.key(&["cr", c.key_id]));
            inv.key(self.key(&["cr-dirty"]));
            let refill = c.credits.refill.as_ref();
            inv.arg(exact(c.cost))
                .arg(
                    refill
                        .and_then(|r| r.last_moment(now_ms))
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                )
                .arg(refill.map_or(0, |r| exact(r.amount)));
            match seed {
                Some(s) => inv.arg(exact(s.remaining)).arg(s.last_refill_at),
                None => inv.arg("").arg(""),
            };
            inv.arg(c.key_id);
        }
        let reply: Value = inv.invoke_async(&mut self.conn()).await?;
        parse(reply, limits.specs.len(), charge.credits.is_some())
    }
}

fn int(v: &Value) -> Result<i64, ClusterError> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(ClusterError::Reply(format!("{other:?}"))),
    }
}

fn parse(reply: Value, n: usize, has_credit: bool) -> Result<Option<Admission>, ClusterError> {
    let Value::Array(items) = reply else {
        return Err(ClusterError::Reply(format!("{reply:?}")));
    };
    if let [Value::BulkString(s)] = items.as_slice()
        && s == b"seed"
    {
        return Ok(None);
    }
    if items.len() != 3 + 3 * n {
        return Err(ClusterError::Reply(format!("{} values", items.len())));
    }
    let u = |v: &Value| int(v).map(|i| u64::try_from(i).unwrap_or(0));
    let limits_passed = int(&items[0])? == 1;
    let remaining = u(&items[2])?;
    let spend = match (has_credit, int(&items[1])?) {
        (true, 1) => Some(Spend::Spent { remaining }),
        (true, 2) => Some(Spend::Exceeded { remaining }),
        _ => None,
    };
    let decisions = items[3..]
        .chunks(3)
        .map(|c| {
            Ok(Decision {
                admitted: int(&c[0])? == 1,
                remaining: u(&c[1])?,
                reset: int(&c[2])?,
            })
        })
        .collect::<Result<Vec<_>, ClusterError>>()?;
    Ok(Some(Admission {
        decisions,
        limits_passed,
        spend,
    }))
}

/// A count as the script may carry it: Lua's numbers are doubles, exact up to 2^53 - 1,
/// where the API stops every credit, limit and cost. A larger value stored before that
/// bound counts down from the bound instead of wrapping to a negative balance.
pub(super) fn exact(n: u64) -> u64 {
    n.min(keyway_core::api::int64::COUNTER_MAX)
}
