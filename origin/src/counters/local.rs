//! A single node's counters: rate-limit windows in sharded memory, credit balances in
//! the write-behind ledger.

use keyway_core::admission::{Admission, Charge};
use keyway_core::ratelimit::{CounterId, LimitSpec};

use super::ledger::CreditLedger;
use super::limiter::MemoryCounters;

pub struct Local {
    pub limiter: MemoryCounters,
    pub ledger: CreditLedger,
}

impl Local {
    /// The spend runs while the limits' shards are held, and only once they admit; the
    /// limits count only if it succeeds (the core's `admission::admit` order).
    pub fn admit(&self, charge: &Charge<'_>, now_ms: i64) -> Admission {
        let ids: Vec<CounterId> = charge.checks.iter().map(|c| c.counter).collect();
        let specs: Vec<LimitSpec> = charge.checks.iter().map(|c| c.spec).collect();
        let mut spend = None;
        let (limits_passed, decisions) =
            self.limiter
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
}
