//! The verification decision, in the one order both deployment models follow.
//!
//! [`plan`] is a pure function of the snapshot, the request, the caller and `now`. It
//! decides everything the snapshot alone can decide ([`Plan::Decided`]); what depends on
//! counters comes back as a [`Pending`] admission ([`Plan::Admit`]). The origin admits it
//! against its counters (memory, or Redis in cluster mode) and calls [`Pending::finish`];
//! the edge holds no counters and forwards it to the origin. Both answer the same way
//! because both run this code.

mod event;
mod limits;
mod order;
#[cfg(test)]
mod tests;

pub use event::EventContext;
pub use limits::resolve_limits;
pub use order::{Pending, Plan, Verdict, plan};

use crate::admission::InMemory;
use crate::api::keys::VerifyKeyRequest;
use crate::auth::RootScope;
use crate::error::ApiError;
use crate::permission::Query;
use crate::snapshot::KeySnapshot;

/// The whole decision over the in-memory counter store: plan, admit what needs counters,
/// finish. For tests and benchmarks; the origin takes the same three steps over its own
/// counters, and the edge answers `Plan::Decided` and forwards `Plan::Admit`.
pub fn decide_in_memory(
    snapshot: Option<&KeySnapshot>,
    request: &VerifyKeyRequest,
    query: Option<&Query>,
    caller: &RootScope,
    now_ms: i64,
    counters: &mut InMemory,
) -> Result<Verdict, ApiError> {
    Ok(match plan(snapshot, request, query, caller, now_ms)? {
        Plan::Decided(verdict) => verdict,
        Plan::Admit(pending) => {
            let admission = counters.admit(&pending.charge(), now_ms);
            pending.finish(admission)
        }
    })
}
