//! What a verification takes from the counters: its rate limits and its credit spend,
//! admitted as one.
//!
//! Unkey's order is limits, then credits. Admitting them as one unit means a request that
//! is rate limited spends no credits, and a request that is out of credits counts against
//! no limit. Every counter store (the origin's memory, the cluster's Redis script) runs
//! this arithmetic; [`admit`] is its definition, and the Redis script is tested against it.

use std::collections::HashMap;

use crate::credits::{CreditBalance, Refill, Spend, spend};
use crate::ratelimit::{CounterId, Decision, LimitSpec, WindowState, admit_all_if};
use crate::snapshot::SnapshotCredits;

/// One rate limit to count for this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCheck {
    /// The counter: the rule's for configured limits (a rule belongs to one key or one
    /// identity), the key's and the name's for ad-hoc limits; always with the duration.
    pub counter: CounterId,
    pub id: String,
    pub name: String,
    pub spec: LimitSpec,
    pub auto_apply: bool,
}

/// One verification's demand on the counters.
#[derive(Debug, Clone, Copy)]
pub struct Charge<'a> {
    /// The rate limits to count, possibly none.
    pub checks: &'a [LimitCheck],
    /// The credit spend, if the key is metered.
    pub credits: Option<CreditCharge<'a>>,
}

#[derive(Debug, Clone, Copy)]
pub struct CreditCharge<'a> {
    pub key_id: &'a str,
    /// The balance as loaded with the snapshot (where a store starts when it holds none)
    /// and the refill rule.
    pub credits: &'a SnapshotCredits,
    pub cost: u64,
}

impl Charge<'_> {
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty() && self.credits.is_none()
    }
}

/// What the counters answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Each check's view, in the order of `Charge::checks`.
    pub decisions: Vec<Decision>,
    /// Whether every limit admitted. When false, nothing was counted or spent.
    pub limits_passed: bool,
    /// The credit outcome: `None` if the key is not metered or a limit refused first.
    pub spend: Option<Spend>,
}

impl Admission {
    /// Whether anything was taken: every limit counted and the credits spent.
    pub fn admitted(&self) -> bool {
        self.limits_passed && self.spend.is_none_or(Spend::admitted)
    }
}

/// The credit side of [`admit`]: the live balance and how to refill it.
pub struct Balance<'a> {
    pub balance: &'a mut CreditBalance,
    pub refill: Option<&'a Refill>,
    pub cost: u64,
}

/// Admits limits and credits together on the given state, changing it in place.
///
/// Limits are evaluated first; credits are refilled (if a refill is due) and spent only if
/// every limit admits; the limits take their cost only if the spend succeeds. A due refill
/// is kept even when the spend is refused: it happened whatever this request does.
pub fn admit(
    states: &mut [WindowState],
    specs: &[LimitSpec],
    credits: Option<Balance<'_>>,
    now_ms: i64,
) -> Admission {
    let mut outcome = None;
    let (limits_passed, decisions) = admit_all_if(states, specs, now_ms, || {
        let Some(c) = credits else { return true };
        *c.balance = c.balance.refilled(c.refill, now_ms);
        let s = spend(c.balance.remaining, c.cost);
        c.balance.remaining = s.remaining();
        outcome = Some(s);
        s.admitted()
    });
    Admission {
        decisions,
        limits_passed,
        spend: outcome,
    }
}

/// The simplest honest counter store: maps in memory, one owner at a time. For tests and
/// benchmarks of the decision; the origin's own store shards and locks the same arithmetic.
#[derive(Debug, Default)]
pub struct InMemory {
    pub windows: HashMap<CounterId, WindowState>,
    pub balances: HashMap<String, CreditBalance>,
}

impl InMemory {
    /// Counts every limit of `charge` and spends its credits as one unit, as [`admit`]
    /// defines: all are taken, or none is.
    pub fn admit(&mut self, charge: &Charge<'_>, now_ms: i64) -> Admission {
        let mut states: Vec<WindowState> = charge
            .checks
            .iter()
            .map(|c| self.windows.get(&c.counter).copied().unwrap_or_default())
            .collect();
        let specs: Vec<LimitSpec> = charge.checks.iter().map(|c| c.spec).collect();
        let mut balance = charge.credits.map(|c| {
            self.balances
                .get(c.key_id)
                .copied()
                .unwrap_or(c.credits.balance)
        });
        let out = admit(
            &mut states,
            &specs,
            charge.credits.zip(balance.as_mut()).map(|(c, b)| Balance {
                balance: b,
                refill: c.credits.refill.as_ref(),
                cost: c.cost,
            }),
            now_ms,
        );
        for (c, s) in charge.checks.iter().zip(states) {
            self.windows.insert(c.counter, s);
        }
        if let (Some(c), Some(b)) = (charge.credits, balance) {
            self.balances.insert(c.key_id.to_string(), b);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credits::{RefillInterval, Spend};

    fn spec(limit: u64, cost: u64) -> LimitSpec {
        LimitSpec {
            limit,
            duration_ms: 1000,
            cost,
        }
    }

    #[test]
    fn rate_limited_spends_nothing() {
        let mut states = [WindowState {
            cell: 0,
            current: 5,
            previous: 0,
        }];
        let mut balance = CreditBalance {
            remaining: 10,
            last_refill_at: 0,
        };
        let a = admit(
            &mut states,
            &[spec(5, 1)],
            Some(Balance {
                balance: &mut balance,
                refill: None,
                cost: 1,
            }),
            10,
        );
        assert!(!a.limits_passed && !a.admitted());
        assert_eq!(a.spend, None);
        assert_eq!(balance.remaining, 10);
        assert_eq!(states[0].current, 5);
    }

    #[test]
    fn out_of_credits_counts_no_limit() {
        let mut states = [WindowState::default(), WindowState::default()];
        let mut balance = CreditBalance {
            remaining: 2,
            last_refill_at: 0,
        };
        let a = admit(
            &mut states,
            &[spec(10, 1), spec(3, 2)],
            Some(Balance {
                balance: &mut balance,
                refill: None,
                cost: 3,
            }),
            10,
        );
        assert!(a.limits_passed && !a.admitted());
        assert_eq!(a.spend, Some(Spend::Exceeded { remaining: 2 }));
        assert_eq!(states[0].current + states[1].current, 0);
        // Each view shows what is left without this request.
        assert_eq!(a.decisions[0].remaining, 10);
        assert_eq!(a.decisions[1].remaining, 3);
    }

    #[test]
    fn both_taken_together() {
        let mut states = [WindowState::default()];
        let mut balance = CreditBalance {
            remaining: 0,
            last_refill_at: 0,
        };
        let refill = Refill {
            interval: RefillInterval::Daily,
            amount: 4,
            refill_day: None,
        };
        let a = admit(
            &mut states,
            &[spec(10, 1)],
            Some(Balance {
                balance: &mut balance,
                refill: Some(&refill),
                cost: 3,
            }),
            86_400_000 + 5,
        );
        assert!(a.admitted());
        assert_eq!(a.spend, Some(Spend::Spent { remaining: 1 }));
        assert_eq!(balance.remaining, 1);
        assert_eq!(balance.last_refill_at, 86_400_000);
        assert_eq!(states[0].current, 1);
        assert_eq!(a.decisions[0].remaining, 9);
    }
}
