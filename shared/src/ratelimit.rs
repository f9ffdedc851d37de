//! Rate-limit arithmetic: a sliding window approximated over fixed cells.
//!
//! Time is cut into cells of `duration_ms`. A request is weighed against the count in the
//! current cell plus the previous cell's count scaled by how much of it still overlaps
//! the sliding window. Two integers per limit give a smooth limit with no per-request
//! log, which is why counters can live in memory. The origin owns the counters; these
//! functions only compute what they become.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Whose counter a limit counts in. Every limit has exactly one owner, and two requests
/// share a counter only when their owners and window lengths are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterOwner<'a> {
    /// A configured rule of a key or an identity (rule ids are unique).
    Rule { rule_id: &'a str },
    /// A limit a verifyKey request applies ad hoc, by name, to one key.
    AdHoc { key_id: &'a str, name: &'a str },
    /// `ratelimit.limit` and `multiLimit`.
    Namespace {
        workspace_id: &'a str,
        namespace: &'a str,
        identifier: &'a str,
    },
}

/// The identity of one counter: a digest of its owner's fields, each length-prefixed,
/// and of the window length.
///
/// Length prefixes make the encoding unambiguous: joining names with a separator let
/// namespace `a` with identifier `b:x` share a counter with namespace `a:b` and
/// identifier `x`. The window length is part of the identity because cells are numbered
/// per duration: a counter kept across a duration change read the new, smaller cell
/// number as the clock going back, and never reset again. 128 bits keep ids small in
/// memory and as shared-store keys while making an accidental collision negligible.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterId([u8; 16]);

impl CounterId {
    pub fn new(owner: CounterOwner<'_>, duration_ms: u64) -> CounterId {
        let mut h = Sha256::new();
        let mut field = |part: &[u8]| {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        };
        match owner {
            CounterOwner::Rule { rule_id } => {
                field(b"rule");
                field(rule_id.as_bytes());
            }
            CounterOwner::AdHoc { key_id, name } => {
                field(b"adhoc");
                field(key_id.as_bytes());
                field(name.as_bytes());
            }
            CounterOwner::Namespace {
                workspace_id,
                namespace,
                identifier,
            } => {
                field(b"namespace");
                field(workspace_id.as_bytes());
                field(namespace.as_bytes());
                field(identifier.as_bytes());
            }
        }
        field(&duration_ms.to_be_bytes());
        let digest = h.finalize();
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        CounterId(id)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Lower-case hex, for keys in a shared store and for derived ids.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for CounterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CounterId({})", self.to_hex())
    }
}

/// The counters of one limit for one identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WindowState {
    pub cell: i64,
    pub current: u64,
    pub previous: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSpec {
    pub limit: u64,
    pub duration_ms: u64,
    pub cost: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub admitted: bool,
    /// What is left in the window after this request (0 when denied and exhausted).
    pub remaining: u64,
    /// Unix ms at which the current cell ends.
    pub reset: i64,
}

fn duration(spec: &LimitSpec) -> i64 {
    // A zero duration is rejected at the API; treat it as 1 ms here rather than divide by 0.
    i64::try_from(spec.duration_ms.max(1)).unwrap_or(i64::MAX)
}

pub fn cell_of(now_ms: i64, duration_ms: u64) -> i64 {
    let d = i64::try_from(duration_ms.max(1)).unwrap_or(i64::MAX);
    now_ms.div_euclid(d)
}

impl WindowState {
    /// The state as seen from `cell`: the current count becomes the previous one when a
    /// cell has passed, and both reset when more than one has.
    pub fn rolled(self, cell: i64) -> WindowState {
        if cell == self.cell {
            self
        } else if cell == self.cell.wrapping_add(1) {
            WindowState {
                cell,
                current: 0,
                previous: self.current,
            }
        } else if cell > self.cell {
            WindowState {
                cell,
                current: 0,
                previous: 0,
            }
        } else {
            // A clock that stepped back: keep counting in the newer cell we already have,
            // which can only make the limiter stricter.
            self
        }
    }
}

/// What the previous cell still weighs at `now_ms`.
fn weighted_previous(state: &WindowState, spec: &LimitSpec, now_ms: i64) -> u64 {
    let d = duration(spec);
    let elapsed = now_ms
        .saturating_sub(state.cell.saturating_mul(d))
        .clamp(0, d);
    let left = u128::try_from(d - elapsed).unwrap_or(0);
    let weighted = u128::from(state.previous) * left / u128::try_from(d).unwrap_or(1);
    u64::try_from(weighted).unwrap_or(u64::MAX)
}

/// Evaluates one limit without changing anything. `state` is rolled to `now_ms` first.
pub fn evaluate(state: WindowState, spec: &LimitSpec, now_ms: i64) -> (WindowState, Decision) {
    let cell = cell_of(now_ms, spec.duration_ms);
    let state = state.rolled(cell);
    let used = state
        .current
        .saturating_add(weighted_previous(&state, spec, now_ms));
    let effective = used.saturating_add(spec.cost);
    let reset = state.cell.saturating_add(1).saturating_mul(duration(spec));
    let decision = if effective > spec.limit {
        Decision {
            admitted: false,
            remaining: spec.limit.saturating_sub(used),
            reset,
        }
    } else {
        Decision {
            admitted: true,
            remaining: spec.limit - effective,
            reset,
        }
    };
    (state, decision)
}

/// Checks several limits as one: either every limit admits and every counter takes its
/// cost, or nothing is counted anywhere. Returns whether it passed and each limit's view.
pub fn admit_all(
    states: &mut [WindowState],
    specs: &[LimitSpec],
    now_ms: i64,
) -> (bool, Vec<Decision>) {
    admit_all_if(states, specs, now_ms, || true)
}

/// [`admit_all`], with one more condition checked only once every limit admits: the
/// counters take their cost only if `also` says yes too. A verification's credit spend
/// is that condition, so its limits and its credits are taken together or not at all.
/// Returns whether the limits passed (whatever `also` said) and each limit's view; when
/// nothing was counted, each view's `remaining` is what it was before this request.
pub fn admit_all_if(
    states: &mut [WindowState],
    specs: &[LimitSpec],
    now_ms: i64,
    also: impl FnOnce() -> bool,
) -> (bool, Vec<Decision>) {
    let mut decisions = Vec::with_capacity(specs.len());
    let mut rolled = Vec::with_capacity(specs.len());
    for (state, spec) in states.iter().zip(specs) {
        let (s, d) = evaluate(*state, spec, now_ms);
        rolled.push(s);
        decisions.push(d);
    }
    let passed = decisions.iter().all(|d| d.admitted);
    let counted = passed && also();
    for ((state, spec), (new, decision)) in states
        .iter_mut()
        .zip(specs)
        .zip(rolled.into_iter().zip(decisions.iter_mut()))
    {
        *state = new;
        if counted {
            state.current = state.current.saturating_add(spec.cost);
        } else if decision.admitted {
            decision.remaining = decision.remaining.saturating_add(spec.cost).min(spec.limit);
        }
    }
    (passed, decisions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(limit: u64, duration_ms: u64) -> LimitSpec {
        LimitSpec {
            limit,
            duration_ms,
            cost: 1,
        }
    }

    #[test]
    fn fills_then_denies_then_slides() {
        let s = spec(10, 1000);
        let mut st = [WindowState::default()];
        for i in 0..10 {
            let (ok, d) = admit_all(&mut st, &[s], 100);
            assert!(ok, "request {i}");
            assert_eq!(d[0].remaining, 9 - i);
            assert_eq!(d[0].reset, 1000);
        }
        let (ok, d) = admit_all(&mut st, &[s], 999);
        assert!(!ok);
        assert_eq!(d[0].remaining, 0);
        // Half-way through the next cell, the previous 10 weigh 5.
        let (ok, d) = admit_all(&mut st, &[s], 1500);
        assert!(ok);
        assert_eq!(d[0].remaining, 4);
        assert_eq!(d[0].reset, 2000);
        // Two cells later, all is forgotten.
        let (_, d) = admit_all(&mut st, &[s], 3000);
        assert_eq!(d[0].remaining, 9);
    }

    #[test]
    fn all_or_nothing() {
        let specs = [spec(100, 1000), spec(1, 1000)];
        let mut st = [WindowState::default(); 2];
        assert!(admit_all(&mut st, &specs, 0).0);
        let (ok, d) = admit_all(&mut st, &specs, 1);
        assert!(!ok);
        assert!(d[0].admitted && !d[1].admitted);
        assert_eq!(st[0].current, 1, "the passing limit took nothing");
        assert_eq!(d[0].remaining, 99);
    }

    #[test]
    fn zero_cost_always_passes_until_exceeded() {
        let s = LimitSpec {
            limit: 1,
            duration_ms: 1000,
            cost: 0,
        };
        let mut st = [WindowState {
            cell: 0,
            current: 1,
            previous: 0,
        }];
        let (ok, d) = admit_all(&mut st, &[s], 10);
        assert!(ok);
        assert_eq!(d[0].remaining, 0);
    }

    fn ns(namespace: &str, identifier: &str, duration_ms: u64) -> CounterId {
        CounterId::new(
            CounterOwner::Namespace {
                workspace_id: "ws_1",
                namespace,
                identifier,
            },
            duration_ms,
        )
    }

    #[test]
    fn counter_ids_do_not_collide_across_separators() {
        assert_ne!(ns("a", "b:x", 1000), ns("a:b", "x", 1000));
        assert_ne!(ns("a", "", 1000), ns("", "a", 1000));
        let adhoc = |key_id, name| CounterId::new(CounterOwner::AdHoc { key_id, name }, 1000);
        assert_ne!(adhoc("k", "a:b"), adhoc("k:a", "b"));
        assert_ne!(
            CounterId::new(CounterOwner::Rule { rule_id: "x" }, 1000),
            adhoc("x", "")
        );
        assert_eq!(ns("a", "b", 1000), ns("a", "b", 1000));
    }

    #[test]
    fn counter_ids_differ_by_duration() {
        // The same identifier with a longer window must not inherit the shorter window's
        // cell number, or its reset lands in the far future.
        assert_ne!(ns("n", "u", 1000), ns("n", "u", 60_000));
    }

    proptest! {
        /// Distinct (namespace, identifier) pairs never share a counter, whatever
        /// characters they hold.
        #[test]
        fn namespace_counters_are_injective(
            a in "[a:b]{0,6}", b in "[a:b]{0,6}", c in "[a:b]{0,6}", d in "[a:b]{0,6}",
        ) {
            prop_assert_eq!(ns(&a, &b, 1000) == ns(&c, &d, 1000), (a, b) == (c, d));
        }

        /// However requests and times are interleaved, the cost admitted in any one cell
        /// never exceeds the limit, for each of several limits checked together.
        #[test]
        fn never_admits_more_than_limit_per_window(
            limits in proptest::collection::vec((1u64..50, 1u64..5_000), 1..4),
            steps in proptest::collection::vec((0i64..3_000, 0u64..4), 1..400),
        ) {
            let mut now = 0i64;
            let mut states = vec![WindowState::default(); limits.len()];
            let mut admitted: Vec<std::collections::HashMap<i64, u64>> = vec![Default::default(); limits.len()];
            for (advance, cost) in steps {
                now += advance;
                let specs: Vec<LimitSpec> = limits.iter().map(|&(limit, duration_ms)| LimitSpec { limit, duration_ms, cost }).collect();
                let (ok, decisions) = admit_all(&mut states, &specs, now);
                prop_assert_eq!(ok, decisions.iter().all(|d| d.admitted));
                for (i, spec) in specs.iter().enumerate() {
                    prop_assert_eq!(decisions[i].reset, (cell_of(now, spec.duration_ms) + 1) * spec.duration_ms as i64);
                    prop_assert!(decisions[i].remaining <= spec.limit);
                    if ok {
                        let cell = cell_of(now, spec.duration_ms);
                        let total = admitted[i].entry(cell).or_default();
                        *total += cost;
                        prop_assert!(*total <= spec.limit, "cell {} admitted {} > {}", cell, total, spec.limit);
                    }
                }
            }
        }

        /// Rolling forward moves the current count into `previous` after one cell and
        /// forgets both after two or more.
        #[test]
        fn rolled_is_monotone(cell in 0i64..1000, cur in 0u64..100, prev in 0u64..100, ahead in 0i64..4) {
            let s = WindowState { cell, current: cur, previous: prev };
            let r = s.rolled(cell + ahead);
            match ahead {
                0 => prop_assert_eq!(r, s),
                1 => prop_assert_eq!(r, WindowState { cell: cell + 1, current: 0, previous: cur }),
                _ => prop_assert_eq!(r, WindowState { cell: cell + ahead, current: 0, previous: 0 }),
            }
        }
    }
}
