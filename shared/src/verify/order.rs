//! The checks in Unkey's order: not found / deleted / outside the caller's scope →
//! disabled → expired → permission query → rate limits → credits.
//!
//! A key in another workspace than the caller's, or of an API the caller may not verify,
//! is "not found" at the first step, before any of its state is looked at: outside the
//! caller's scope a key does not exist, so a verification reveals nothing about it (not
//! whether it is disabled, nor its id, name or meta).

use crate::admission::{Admission, Charge, CreditCharge, LimitCheck};
use crate::api::keys::{VerifyCode, VerifyKeyRequest, VerifyKeyResponseData, VerifyRatelimitData};
use crate::auth::{Action, RootScope};
use crate::error::ApiError;
use crate::permission::Query;
use crate::snapshot::{KeySnapshot, raw_meta};

use super::limits::resolve_limits;

/// The decision, with what analytics needs beyond the response.
#[derive(Debug)]
pub struct Verdict {
    pub data: VerifyKeyResponseData,
    pub spent_credits: u64,
}

impl Verdict {
    pub(super) fn of(data: VerifyKeyResponseData) -> Self {
        Verdict {
            data,
            spent_credits: 0,
        }
    }
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

/// Decides every check that needs no counter; the rest is a [`Pending`] admission.
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
