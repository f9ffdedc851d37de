//! Which rate limits a verification counts, and the counters they count on.

use crate::admission::LimitCheck;
use crate::api::keys::VerifyRatelimit;
use crate::error::ApiError;
use crate::ratelimit::{CounterId, CounterOwner, LimitSpec};
use crate::snapshot::KeySnapshot;

/// The limits this request counts: auto-applied ones always (cost 1, unless the request
/// names them with another cost), named ones when requested. A name that is neither
/// configured nor given with `limit` and `duration` is a 412.
pub fn resolve_limits(
    key: &KeySnapshot,
    requested: &[VerifyRatelimit],
) -> Result<Vec<LimitCheck>, ApiError> {
    let mut checks = Vec::with_capacity(key.ratelimits.len() + requested.len());
    for rule in key.ratelimits.iter().filter(|r| r.auto_apply) {
        if !requested.iter().any(|r| r.name == rule.name) {
            checks.push(rule_check(rule, 1));
        }
    }
    for req in requested {
        let cost = req.cost.unwrap_or(1);
        if let Some(rule) = key.ratelimits.iter().find(|r| r.name == req.name) {
            checks.push(rule_check(rule, cost));
        } else if let (Some(limit), Some(duration_ms)) = (req.limit, req.duration) {
            let counter = CounterId::new(
                CounterOwner::AdHoc {
                    key_id: &key.key_id,
                    name: &req.name,
                },
                duration_ms,
            );
            checks.push(LimitCheck {
                id: adhoc_id(&counter),
                counter,
                name: req.name.clone(),
                spec: LimitSpec {
                    limit,
                    duration_ms,
                    cost,
                },
                auto_apply: false,
            });
        } else {
            return Err(ApiError::precondition_failed(format!(
                "The ratelimit '{}' does not exist on the key or its identity; configure it, or pass 'limit' and 'duration' to apply it ad hoc.",
                req.name
            )));
        }
    }
    Ok(checks)
}

/// A configured rule, counted at `cost`.
fn rule_check(rule: &crate::snapshot::RateLimitRule, cost: u64) -> LimitCheck {
    LimitCheck {
        counter: rule_counter(rule),
        id: rule.id.clone(),
        name: rule.name.clone(),
        spec: LimitSpec {
            limit: rule.limit,
            duration_ms: rule.duration_ms,
            cost,
        },
        auto_apply: rule.auto_apply,
    }
}

fn rule_counter(rule: &crate::snapshot::RateLimitRule) -> CounterId {
    CounterId::new(CounterOwner::Rule { rule_id: &rule.id }, rule.duration_ms)
}

/// A stable `rl_…` id for an ad-hoc limit, which has no stored row.
fn adhoc_id(counter: &CounterId) -> String {
    let mut hex = counter.to_hex();
    hex.truncate(16);
    format!("rl_adhoc_{hex}")
}
