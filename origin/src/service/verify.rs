//! The verification flow: look up, decide, admit against counters, count and record.

use keyway_core::api::keys::{VerifyKeyRequest, VerifyKeyResponseData};
use keyway_core::key::KeyHash;
use keyway_core::permission::Query;
use keyway_core::verify::{Plan, plan};

use crate::analytics::ingest::{Recorded, Verified};
use crate::error::AppError;
use crate::ids;
use crate::service::Caller;

/// Verifies a key (by hash) for a caller; shared by the public route and the edge's
/// forwarded verifications.
pub async fn verify(
    caller: &Caller<'_>,
    hash: &KeyHash,
    req: &VerifyKeyRequest,
    query: Option<&Query>,
) -> Result<VerifyKeyResponseData, AppError> {
    caller.require_verifier()?;
    let (snapshot, _) = caller.state.lookup(hash).await?;
    let now = ids::now_ms();
    let verdict = match plan(snapshot.as_deref(), req, query, caller, now)? {
        Plan::Decided(v) => v,
        Plan::Admit(pending) => {
            let admission = caller.state.admit(&pending.charge(), now).await?;
            pending.finish(admission)
        }
    };
    caller.state.metrics.verified(verdict.data.code);
    caller.state.events.record(Recorded::Verified(Verified::new(
        now,
        caller.ctx.request,
        caller,
        snapshot,
        &verdict,
        req,
        caller.ctx.latency_us(),
    )));
    Ok(verdict.data)
}
