//! `ratelimit.*`: standalone rate limiting by namespace and identifier, with overrides.

use crate::service::Caller;
use crate::service::Page;
use crate::service::validate::Validate;
use keyway_core::api::ratelimit::{
    LimitRequest, LimitResponseData, ListOverridesRequest, MultiLimitCheck, MultiLimitResponseData,
    OverrideData, OverrideRef, SetOverrideRequest, SetOverrideResponseData,
};
use keyway_core::api::{Empty, int64};
use keyway_core::auth::{Action, RootScope};
use keyway_core::ratelimit::{CounterId, CounterOwner, LimitSpec};
use keyway_core::validate::Issues;
use keyway_core::wire::{Event, RatelimitEvent, ServedBy};
use serde::Serialize;

use crate::caches::overrides::OverrideCache;
use crate::error::AppError;
use crate::ids;
use crate::service::paginate;
use crate::service::resources;
use crate::service::validate::page_limit;
use crate::store::OverrideRow;

fn validate_limit(v: &mut Issues, loc: &str, r: &LimitRequest) {
    v.length(&format!("{loc}namespace"), &r.namespace, 1, 512);
    v.length(&format!("{loc}identifier"), &r.identifier, 1, 512);
    v.range(&format!("{loc}limit"), r.limit, 1, int64::MAX);
    v.range(&format!("{loc}duration"), r.duration, 1000, 2_592_000_000);
}

fn require_limit(caller: &RootScope, namespace: &str, action: Action) -> Result<(), AppError> {
    caller
        .require(action, Some(namespace))
        .map_err(AppError::Client)
}

/// Runs limits as one unit, honouring overrides, and records one event per limit.
async fn run(
    caller: &Caller<'_>,
    reqs: &[LimitRequest],
) -> Result<(bool, Vec<MultiLimitCheck>), AppError> {
    let mut counters = Vec::with_capacity(reqs.len());
    let mut specs = Vec::with_capacity(reqs.len());
    let mut overrides = Vec::with_capacity(reqs.len());
    for r in reqs {
        let o = caller
            .state
            .caches
            .overrides
            .find(
                &caller.state.store,
                caller.workspace_id(),
                &r.namespace,
                &r.identifier,
            )
            .await?;
        let (limit, duration) = o
            .as_ref()
            .map_or((r.limit, r.duration), |o| (o.limit, o.duration));
        counters.push(CounterId::new(
            CounterOwner::Namespace {
                workspace_id: caller.workspace_id(),
                namespace: &r.namespace,
                identifier: &r.identifier,
            },
            duration,
        ));
        specs.push(LimitSpec {
            limit,
            duration_ms: duration,
            cost: r.cost.unwrap_or(1),
        });
        overrides.push(o.map(|o| o.id));
    }
    let now = ids::now_ms();
    let (passed, decisions) = caller.state.admit_limits(&counters, &specs, now).await?;
    let latency_us = caller.ctx.latency_us();
    let request_id = caller.ctx.request.render();
    let mut checks = Vec::with_capacity(reqs.len());
    for ((r, spec), (d, o)) in reqs.iter().zip(&specs).zip(decisions.iter().zip(overrides)) {
        caller.state.events.record(Event::Ratelimit(RatelimitEvent {
            time_ms: now,
            request_id: request_id.clone(),
            workspace_id: caller.workspace_id().to_string(),
            namespace: r.namespace.clone(),
            identifier: r.identifier.clone(),
            passed,
            latency_us,
            served_by: ServedBy::Origin,
        }));
        checks.push(MultiLimitCheck {
            namespace: r.namespace.clone(),
            identifier: r.identifier.clone(),
            limit: spec.limit,
            remaining: d.remaining,
            reset: d.reset,
            passed: passed && d.admitted,
            override_id: o,
        });
    }
    Ok((passed, checks))
}

pub async fn limit(caller: &Caller<'_>, req: LimitRequest) -> Result<impl Serialize, AppError> {
    require_limit(caller, &req.namespace, Action::Limit)?;
    let (passed, mut checks) = run(caller, std::slice::from_ref(&req)).await?;
    let c = checks.remove(0);
    Ok(LimitResponseData {
        limit: c.limit,
        remaining: c.remaining,
        reset: c.reset,
        success: passed,
        override_id: c.override_id,
    })
}

pub async fn multi_limit(
    caller: &Caller<'_>,
    reqs: Vec<LimitRequest>,
) -> Result<impl Serialize, AppError> {
    for r in &reqs {
        require_limit(caller, &r.namespace, Action::Limit)?;
    }
    let (passed, limits) = run(caller, &reqs).await?;
    Ok(MultiLimitResponseData { passed, limits })
}

impl Validate for Vec<LimitRequest> {
    fn issues(&self, v: &mut Issues) {
        let reqs = self;
        v.check((1..=100).contains(&reqs.len()), "body", || {
            "must have between 1 and 100 items".into()
        });
        v.unique("body", reqs, |r| {
            (r.namespace.as_str(), r.identifier.as_str())
        });
        for (i, r) in reqs.iter().enumerate() {
            validate_limit(v, &format!("body[{i}]."), r);
        }
    }
}

/// Drops the namespace's cached overrides here and on every other node, before answering.
async fn forget_overrides(caller: &Caller<'_>, namespace: &str) {
    let name = OverrideCache::name(caller.workspace_id(), namespace);
    caller.state.forget([name.as_str()]).await;
}

fn validate_ref(v: &mut Issues, namespace: &str, identifier: &str) {
    v.length("body.namespace", namespace, 1, 512);
    v.length("body.identifier", identifier, 1, 512);
}

pub async fn set_override(
    caller: &Caller<'_>,
    req: SetOverrideRequest,
) -> Result<impl Serialize, AppError> {
    require_limit(caller, &req.namespace, Action::SetOverride)?;
    let row = OverrideRow {
        id: ids::new_id("rlo"),
        namespace: req.namespace,
        identifier: req.identifier,
        limit: req.limit,
        duration: req.duration,
    };
    let id = caller
        .store()
        .set_override(caller.workspace_id(), &row, ids::now_ms())
        .await?;
    forget_overrides(caller, &row.namespace).await;
    Ok(SetOverrideResponseData { override_id: id })
}

pub async fn get_override(
    caller: &Caller<'_>,
    req: OverrideRef,
) -> Result<impl Serialize, AppError> {
    require_limit(caller, &req.namespace, Action::ReadOverride)?;
    let o = resources::ratelimit_override(caller, &req.namespace, &req.identifier).await?;
    Ok(override_data(o))
}

fn override_data(o: OverrideRow) -> OverrideData {
    OverrideData {
        override_id: o.id,
        duration: o.duration,
        identifier: o.identifier,
        limit: o.limit,
    }
}

pub async fn list_overrides(
    caller: &Caller<'_>,
    req: ListOverridesRequest,
) -> Result<Page<impl Serialize>, AppError> {
    let limit = page_limit(req.limit, 10)?;
    require_limit(caller, &req.namespace, Action::ReadOverride)?;
    let rows = caller
        .store()
        .list_overrides(
            caller.workspace_id(),
            &req.namespace,
            req.cursor.as_deref(),
            limit + 1,
        )
        .await?;
    let (rows, cursor) = paginate(rows, limit, |r| r.id.clone());
    Ok(Page::new(
        rows.into_iter().map(override_data).collect(),
        cursor,
    ))
}

pub async fn delete_override(
    caller: &Caller<'_>,
    req: OverrideRef,
) -> Result<impl Serialize, AppError> {
    require_limit(caller, &req.namespace, Action::DeleteOverride)?;
    let o = resources::ratelimit_override(caller, &req.namespace, &req.identifier).await?;
    caller.store().delete_override(&o.id).await?;
    forget_overrides(caller, &req.namespace).await;
    Ok(Empty {})
}

impl Validate for LimitRequest {
    fn issues(&self, v: &mut Issues) {
        validate_limit(v, "body.", self);
    }
}

impl Validate for SetOverrideRequest {
    fn issues(&self, v: &mut Issues) {
        validate_ref(v, &self.namespace, &self.identifier);
        v.range("body.duration", self.duration, 1000, 2_592_000_000);
    }
}

impl Validate for OverrideRef {
    fn issues(&self, v: &mut Issues) {
        validate_ref(v, &self.namespace, &self.identifier);
    }
}

impl Validate for ListOverridesRequest {
    fn issues(&self, v: &mut Issues) {
        v.length("body.namespace", &self.namespace, 1, 512);
    }

    fn page(&self) -> Option<(Option<u64>, u64)> {
        Some((self.limit, 10))
    }
}
