//! The verification decision, in the one order both deployment models follow.
//!
//! `decide` is a pure function of the snapshot, the request, the caller, `now`, and the
//! answers of a [`KeyState`] for the two stateful checks (rate limits and credits). The
//! origin plugs in its in-memory counters; the edge plugs in [`Stateless`], which refuses,
//! so a verification that needs counters comes back as "forward this to the origin"
//! while everything decidable from the snapshot alone is decided locally.

use crate::admission::{Admission, Charge, CreditCharge};
use crate::api::keys::{
    VerifyCode, VerifyKeyRequest, VerifyKeyResponseData, VerifyRatelimit, VerifyRatelimitData,
};
use crate::auth::{Action, RootScope};
use crate::error::ApiError;
use crate::permission::Query;
use crate::ratelimit::{CounterId, CounterOwner, LimitSpec};
use crate::snapshot::{KeySnapshot, raw_meta};
use crate::wire::{ServedBy, VerificationEvent};

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

/// The stateful half of a verification.
pub trait KeyState {
    type Error;

    /// Counts every limit of `charge` and spends its credits as one unit, in the way
    /// [`crate::admission::admit`] defines: all are taken, or none is.
    fn admit(&mut self, charge: &Charge<'_>, now_ms: i64) -> Result<Admission, Self::Error>;
}

/// The verification cannot finish without the origin's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeedsOrigin;

/// A `KeyState` that holds no counters: every stateful check means "forward".
#[derive(Debug, Default, Clone, Copy)]
pub struct Stateless;

impl KeyState for Stateless {
    type Error = NeedsOrigin;

    fn admit(&mut self, _: &Charge<'_>, _: i64) -> Result<Admission, NeedsOrigin> {
        Err(NeedsOrigin)
    }
}

#[derive(Debug)]
pub enum VerifyError<E> {
    /// A 4xx for the caller (the 412 for an unknown named limit).
    Api(ApiError),
    State(E),
}

/// The decision, with what analytics needs beyond the response.
#[derive(Debug)]
pub struct Verdict {
    pub data: VerifyKeyResponseData,
    pub spent_credits: u64,
}

impl Verdict {
    fn of(data: VerifyKeyResponseData) -> Self {
        Verdict {
            data,
            spent_credits: 0,
        }
    }

    /// The analytics event for this decision; edge and origin record the same shape.
    ///
    /// The key's API and identity are recorded only when the verdict found the key: a
    /// NOT_FOUND for another workspace's key must not put that workspace's API and
    /// identity ids into the caller's analytics.
    pub fn event(&self, at: EventContext<'_>) -> VerificationEvent {
        let key = at.snapshot.filter(|_| self.data.key_id.is_some());
        VerificationEvent {
            time_ms: at.time_ms,
            request_id: at.request_id.to_string(),
            workspace_id: at.caller.workspace_id().to_string(),
            api_id: key.map(|s| s.api_id.clone()).unwrap_or_default(),
            key_id: self.data.key_id.clone().unwrap_or_default(),
            identity_id: key.and_then(|s| s.identity.as_ref().map(|i| i.id.clone())),
            outcome: self.data.code,
            spent_credits: self.spent_credits,
            tags: at.request.tags.clone().unwrap_or_default(),
            latency_us: at.latency_us,
            served_by: at.served_by,
        }
    }
}

/// Where and when a verification happened, for its analytics event.
pub struct EventContext<'a> {
    pub time_ms: i64,
    pub request_id: &'a str,
    pub caller: &'a RootScope,
    pub snapshot: Option<&'a KeySnapshot>,
    pub request: &'a VerifyKeyRequest,
    pub latency_us: u64,
    pub served_by: ServedBy,
}

/// The response for a key that exists, before the stateful checks fill in their parts.
fn key_response(key: &KeySnapshot, code: VerifyCode) -> VerifyKeyResponseData {
    let mut data = VerifyKeyResponseData::bare(code);
    data.key_id = Some(key.key_id.clone());
    data.name = key.name.clone();
    data.meta = raw_meta(key.meta.as_deref());
    data.expires = key.expires;
    data.enabled = Some(key.enabled);
    data.permissions = (!key.permissions.is_empty()).then(|| key.permissions.clone());
    data.roles = (!key.roles.is_empty()).then(|| key.roles.clone());
    data.identity = key.identity_data();
    data
}

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
            checks.push(LimitCheck {
                counter: rule_counter(rule),
                id: rule.id.clone(),
                name: rule.name.clone(),
                spec: LimitSpec {
                    limit: rule.limit,
                    duration_ms: rule.duration_ms,
                    cost: 1,
                },
                auto_apply: true,
            });
        }
    }
    for req in requested {
        let cost = req.cost.unwrap_or(1);
        if let Some(rule) = key.ratelimits.iter().find(|r| r.name == req.name) {
            checks.push(LimitCheck {
                counter: rule_counter(rule),
                id: rule.id.clone(),
                name: rule.name.clone(),
                spec: LimitSpec {
                    limit: rule.limit,
                    duration_ms: rule.duration_ms,
                    cost,
                },
                auto_apply: rule.auto_apply,
            });
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

fn rule_counter(rule: &crate::snapshot::RateLimitRule) -> CounterId {
    CounterId::new(CounterOwner::Rule { rule_id: &rule.id }, rule.duration_ms)
}

/// A stable `rl_…` id for an ad-hoc limit, which has no stored row.
fn adhoc_id(counter: &CounterId) -> String {
    let mut hex = counter.to_hex();
    hex.truncate(16);
    format!("rl_adhoc_{hex}")
}

/// Decides a verification. The order is Unkey's:
/// not found / deleted / outside the caller's scope → disabled → expired → permission
/// query → rate limits → credits. A key in another workspace than the caller's, or of an
/// API the caller may not verify, is "not found" at the first step, before any of its
/// state is looked at: outside the caller's scope a key does not exist, so a verification
/// reveals nothing about it (not whether it is disabled, nor its id, name or meta).
pub fn decide<S: KeyState>(
    snapshot: Option<&KeySnapshot>,
    request: &VerifyKeyRequest,
    query: Option<&Query>,
    caller: &RootScope,
    now_ms: i64,
    state: &mut S,
) -> Result<Verdict, VerifyError<S::Error>> {
    match plan(snapshot, request, query, caller, now_ms).map_err(VerifyError::Api)? {
        Plan::Decided(verdict) => Ok(verdict),
        Plan::Admit(pending) => {
            let admission = state
                .admit(&pending.charge(), now_ms)
                .map_err(VerifyError::State)?;
            Ok(pending.finish(admission))
        }
    }
}

/// A verification decided as far as the snapshot alone allows.
#[derive(Debug)]
pub enum Plan<'k> {
    /// No counter is involved: this is the answer.
    Decided(Verdict),
    /// The answer depends on the counters: admit [`Pending::charge`], then
    /// [`Pending::finish`]. Split so that a store that must be awaited (Redis) can sit
    /// between the two halves while the decision itself stays here.
    Admit(Pending<'k>),
}

#[derive(Debug)]
pub struct Pending<'k> {
    key: &'k KeySnapshot,
    checks: Vec<LimitCheck>,
    cost: u64,
    data: VerifyKeyResponseData,
}

impl Pending<'_> {
    pub fn charge(&self) -> Charge<'_> {
        Charge {
            checks: &self.checks,
            credits: self.key.credits.as_ref().map(|credits| CreditCharge {
                key_id: &self.key.key_id,
                credits,
                cost: self.cost,
            }),
        }
    }

    /// The verdict, given what the counters answered for [`Pending::charge`].
    pub fn finish(self, admission: Admission) -> Verdict {
        let Pending {
            checks,
            cost,
            mut data,
            ..
        } = self;
        if !checks.is_empty() {
            data.ratelimits = Some(
                checks
                    .iter()
                    .zip(&admission.decisions)
                    .map(|(c, d)| VerifyRatelimitData {
                        exceeded: !d.admitted,
                        id: c.id.clone(),
                        name: c.name.clone(),
                        limit: c.spec.limit,
                        duration: c.spec.duration_ms,
                        reset: d.reset,
                        remaining: d.remaining,
                        auto_apply: c.auto_apply,
                    })
                    .collect(),
            );
        }
        if !admission.limits_passed {
            data.valid = false;
            data.code = VerifyCode::RateLimited;
            return Verdict::of(data);
        }
        let mut spent_credits = 0;
        if let Some(spend) = admission.spend {
            data.credits = Some(spend.remaining());
            if !spend.admitted() {
                data.valid = false;
                data.code = VerifyCode::UsageExceeded;
                return Verdict::of(data);
            }
            spent_credits = cost;
        }
        Verdict {
            data,
            spent_credits,
        }
    }
}

/// The first half of [`decide`]: every check that needs no counter.
pub fn plan<'k>(
    snapshot: Option<&'k KeySnapshot>,
    request: &VerifyKeyRequest,
    query: Option<&Query>,
    caller: &RootScope,
    now_ms: i64,
) -> Result<Plan<'k>, ApiError> {
    // 1. Not found, deleted, a root key, or outside the caller's workspace or APIs.
    let key = match snapshot {
        Some(k)
            if !k.deleted
                && !k.is_root_key()
                && k.workspace_id == caller.workspace_id()
                && caller.allows(Action::VerifyKey, Some(&k.api_id)) =>
        {
            k
        }
        _ => {
            return Ok(Plan::Decided(Verdict::of(VerifyKeyResponseData::bare(
                VerifyCode::NotFound,
            ))));
        }
    };
    // 2. Disabled.
    if !key.enabled {
        return Ok(Plan::Decided(Verdict::of(key_response(
            key,
            VerifyCode::Disabled,
        ))));
    }
    // 3. Expired.
    if key.is_expired(now_ms) {
        return Ok(Plan::Decided(Verdict::of(key_response(
            key,
            VerifyCode::Expired,
        ))));
    }
    // 4. Permission query.
    if query.is_some_and(|q| !q.allows_sorted(&key.permissions)) {
        return Ok(Plan::Decided(Verdict::of(key_response(
            key,
            VerifyCode::InsufficientPermissions,
        ))));
    }
    // 5 and 6. Rate limits, then credits (the cost defaults to 1, and 0 is allowed), taken
    // together or not at all.
    let checks = resolve_limits(key, request.ratelimits.as_deref().unwrap_or(&[]))?;
    let data = key_response(key, VerifyCode::Valid);
    if checks.is_empty() && key.credits.is_none() {
        return Ok(Plan::Decided(Verdict::of(data)));
    }
    Ok(Plan::Admit(Pending {
        key,
        checks,
        cost: request.credits.map_or(1, |c| c.cost),
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credits::CreditBalance;
    use crate::snapshot::{LimitOwner, SnapshotCredits, fixtures};

    type Counters = crate::admission::InMemory;

    fn root(perms: &[&str]) -> RootScope {
        crate::auth::tests::scope(perms)
    }

    fn req(json: &str) -> VerifyKeyRequest {
        serde_json::from_str(json).unwrap()
    }

    fn run(
        key: Option<&KeySnapshot>,
        r: &VerifyKeyRequest,
        now: i64,
        c: &mut Counters,
    ) -> VerifyKeyResponseData {
        let q = r.permissions.as_deref().map(|p| Query::parse(p).unwrap());
        match decide(key, r, q.as_ref(), &root(&["api.*.verify_key"]), now, c) {
            Ok(v) => v.data,
            Err(VerifyError::Api(e)) => panic!("{e}"),
            Err(VerifyError::State(e)) => match e {},
        }
    }

    fn code(key: Option<&KeySnapshot>, r: &str) -> VerifyCode {
        run(key, &req(r), 1_000, &mut Counters::default()).code
    }

    /// A key the caller may not see records no API or identity of its own in the
    /// caller's analytics; a key it may see records both.
    #[test]
    fn events_name_only_keys_the_caller_found() {
        let mut k = fixtures::key();
        k.identity = Some(Box::new(crate::snapshot::IdentitySnapshot {
            id: "id_1".into(),
            external_id: "user".into(),
            meta: None,
        }));
        let r = req(r#"{"key":"x"}"#);
        let caller = root(&["api.*.verify_key"]);
        let event = |key: &KeySnapshot| {
            let verdict = decide(
                Some(key),
                &r,
                None,
                &caller,
                1_000,
                &mut Counters::default(),
            )
            .unwrap_or_else(|_| panic!("decided"));
            verdict.event(EventContext {
                time_ms: 1_000,
                request_id: "req_1",
                caller: &caller,
                snapshot: Some(key),
                request: &r,
                latency_us: 1,
                served_by: crate::wire::ServedBy::Origin,
            })
        };
        let found = event(&k);
        assert_eq!(found.outcome, VerifyCode::Valid);
        assert_eq!(
            (found.api_id.as_str(), found.identity_id.as_deref()),
            (k.api_id.as_str(), Some("id_1"))
        );

        let mut foreign = k.clone();
        foreign.workspace_id = "ws_other".into();
        let hidden = event(&foreign);
        assert_eq!(hidden.outcome, VerifyCode::NotFound);
        assert_eq!(hidden.workspace_id, "ws_1");
        assert_eq!(
            (
                hidden.api_id.as_str(),
                hidden.key_id.as_str(),
                hidden.identity_id
            ),
            ("", "", None)
        );
    }

    #[test]
    fn each_code() {
        let k = fixtures::key();
        assert_eq!(code(None, r#"{"key":"x"}"#), VerifyCode::NotFound);
        assert_eq!(code(Some(&k), r#"{"key":"x"}"#), VerifyCode::Valid);

        let mut deleted = k.clone();
        deleted.deleted = true;
        assert_eq!(code(Some(&deleted), r#"{"key":"x"}"#), VerifyCode::NotFound);

        let mut disabled = k.clone();
        disabled.enabled = false;
        assert_eq!(
            code(Some(&disabled), r#"{"key":"x"}"#),
            VerifyCode::Disabled
        );

        let mut expired = k.clone();
        expired.expires = Some(1_000);
        assert_eq!(code(Some(&expired), r#"{"key":"x"}"#), VerifyCode::Expired);
        expired.expires = Some(1_001);
        assert_eq!(code(Some(&expired), r#"{"key":"x"}"#), VerifyCode::Valid);

        assert_eq!(
            code(
                Some(&k),
                r#"{"key":"x","permissions":"api.read AND api.write"}"#
            ),
            VerifyCode::Valid
        );
        assert_eq!(
            code(
                Some(&k),
                r#"{"key":"x","permissions":"api.read AND api.delete"}"#
            ),
            VerifyCode::InsufficientPermissions
        );

        let mut limited = k.clone();
        limited.ratelimits = vec![fixtures::rule("rl_1", "requests", 1, true, LimitOwner::Key)];
        let mut c = Counters::default();
        let r = req(r#"{"key":"x"}"#);
        assert_eq!(run(Some(&limited), &r, 0, &mut c).code, VerifyCode::Valid);
        assert_eq!(
            run(Some(&limited), &r, 1, &mut c).code,
            VerifyCode::RateLimited
        );

        let mut metered = k.clone();
        metered.credits = Some(SnapshotCredits {
            balance: CreditBalance {
                remaining: 1,
                last_refill_at: 0,
            },
            refill: None,
        });
        let mut c = Counters::default();
        let d = run(Some(&metered), &r, 0, &mut c);
        assert_eq!((d.code, d.credits), (VerifyCode::Valid, Some(0)));
        let d = run(Some(&metered), &r, 0, &mut c);
        assert_eq!(
            (d.code, d.credits, d.valid),
            (VerifyCode::UsageExceeded, Some(0), false)
        );
    }

    #[test]
    fn order_of_checks() {
        // Everything wrong at once: each fix reveals the next code in Unkey's order.
        let mut k = fixtures::key();
        k.enabled = false;
        k.expires = Some(0);
        k.api_id = "api_other".into();
        k.ratelimits = vec![fixtures::rule("rl_1", "requests", 0, true, LimitOwner::Key)];
        k.credits = Some(SnapshotCredits {
            balance: CreditBalance {
                remaining: 0,
                last_refill_at: 0,
            },
            refill: None,
        });
        let r = req(r#"{"key":"x","permissions":"nope"}"#);
        let q = Query::parse("nope").unwrap();
        let scoped = root(&["api.api_1.verify_key"]);
        let step = |k: &KeySnapshot| {
            decide(
                Some(k),
                &r,
                Some(&q),
                &scoped,
                1_000,
                &mut Counters::default(),
            )
            .map(|v| v.data.code)
            .map_err(|_| ())
            .unwrap()
        };
        // Outside the caller's scope first: a disabled, expired key of an API the caller
        // may not verify is as unknown as a missing one, and nothing about it comes back.
        let hidden = decide(
            Some(&k),
            &r,
            Some(&q),
            &scoped,
            1_000,
            &mut Counters::default(),
        )
        .map_err(|_| ())
        .unwrap()
        .data;
        assert_eq!(
            hidden.code,
            VerifyCode::NotFound,
            "caller scoped to another API"
        );
        assert!(hidden.key_id.is_none() && hidden.name.is_none() && hidden.meta.is_none());
        k.api_id = "api_1".into();
        assert_eq!(step(&k), VerifyCode::Disabled);
        k.enabled = true;
        assert_eq!(step(&k), VerifyCode::Expired);
        k.expires = None;
        assert_eq!(step(&k), VerifyCode::InsufficientPermissions);
        k.permissions.push("nope".into());
        k = k.normalized();
        assert_eq!(step(&k), VerifyCode::RateLimited);
        k.ratelimits[0].limit = 10;
        assert_eq!(step(&k), VerifyCode::UsageExceeded);
        k.credits = None;
        assert_eq!(step(&k), VerifyCode::Valid);
    }

    #[test]
    fn other_workspace_is_not_found() {
        let mut k = fixtures::key();
        k.workspace_id = "ws_2".into();
        k.enabled = false;
        assert_eq!(code(Some(&k), r#"{"key":"x"}"#), VerifyCode::NotFound);
        let mut rootkey = fixtures::key();
        rootkey.for_workspace_id = Some("ws_1".into());
        assert_eq!(code(Some(&rootkey), r#"{"key":"x"}"#), VerifyCode::NotFound);
    }

    #[test]
    fn named_limits_and_412() {
        let mut k = fixtures::key();
        k.ratelimits = vec![
            fixtures::rule("rl_auto", "requests", 100, true, LimitOwner::Key),
            fixtures::rule("rl_tok", "tokens", 10, false, LimitOwner::Identity),
        ];
        let mut c = Counters::default();
        // Only the auto-applied one counts by default.
        let d = run(Some(&k), &req(r#"{"key":"x"}"#), 0, &mut c);
        let names: Vec<_> = d
            .ratelimits
            .unwrap()
            .iter()
            .map(|r| r.name.clone())
            .collect();
        assert_eq!(names, ["requests"]);
        // Named with a cost.
        let d = run(
            Some(&k),
            &req(r#"{"key":"x","ratelimits":[{"name":"tokens","cost":10}]}"#),
            0,
            &mut c,
        );
        assert_eq!(d.code, VerifyCode::Valid);
        let rl = d.ratelimits.unwrap();
        assert_eq!(rl.len(), 2);
        assert_eq!(rl[1].remaining, 0);
        // Ad hoc.
        let d = run(
            Some(&k),
            &req(r#"{"key":"x","ratelimits":[{"name":"burst","limit":1,"duration":1000}]}"#),
            0,
            &mut c,
        );
        let rl = d.ratelimits.unwrap();
        assert!(rl[1].id.starts_with("rl_adhoc_"));
        // Unknown without limit/duration → 412.
        let r = req(r#"{"key":"x","ratelimits":[{"name":"missing"}]}"#);
        match decide(Some(&k), &r, None, &root(&["api.*.verify_key"]), 0, &mut c) {
            Err(VerifyError::Api(e)) => assert_eq!(e.status, 412),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rate_limited_spends_no_credits() {
        let mut k = fixtures::key();
        k.ratelimits = vec![fixtures::rule("rl_1", "requests", 1, true, LimitOwner::Key)];
        k.credits = Some(SnapshotCredits {
            balance: CreditBalance {
                remaining: 5,
                last_refill_at: 0,
            },
            refill: None,
        });
        let mut c = Counters::default();
        let r = req(r#"{"key":"x"}"#);
        run(Some(&k), &r, 0, &mut c);
        let d = run(Some(&k), &r, 0, &mut c);
        assert_eq!(d.code, VerifyCode::RateLimited);
        assert_eq!(c.balances["key_1"].remaining, 4);
    }

    #[test]
    fn stateless_decides_what_it_can_and_forwards_the_rest() {
        let k = fixtures::key();
        let r = req(r#"{"key":"x"}"#);
        let caller = root(&["api.*.verify_key"]);
        let v = decide(Some(&k), &r, None, &caller, 0, &mut Stateless).unwrap();
        assert!(v.data.valid);
        let mut metered = k.clone();
        metered.credits = Some(SnapshotCredits {
            balance: CreditBalance {
                remaining: 5,
                last_refill_at: 0,
            },
            refill: None,
        });
        assert!(matches!(
            decide(Some(&metered), &r, None, &caller, 0, &mut Stateless),
            Err(VerifyError::State(NeedsOrigin))
        ));
        // A disabled metered key needs no counters to be refused.
        metered.enabled = false;
        assert_eq!(
            decide(Some(&metered), &r, None, &caller, 0, &mut Stateless)
                .unwrap()
                .data
                .code,
            VerifyCode::Disabled
        );
    }

    #[test]
    fn response_json_shape() {
        let mut k = fixtures::key();
        k.identity = Some(Box::new(crate::snapshot::IdentitySnapshot {
            id: "id_1".into(),
            external_id: "u1".into(),
            meta: None,
        }));
        let d = run(
            Some(&k),
            &req(r#"{"key":"x"}"#),
            0,
            &mut Counters::default(),
        );
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({
                "valid": true, "code": "VALID", "keyId": "key_1", "name": "test", "meta": {"plan": "pro"},
                "enabled": true, "permissions": ["api.read", "api.write"], "roles": ["admin"],
                "identity": {"id": "id_1", "externalId": "u1"}
            })
        );
    }
}
