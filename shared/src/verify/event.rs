//! The analytics event a verification leaves: edge and origin record the same shape.

use std::borrow::Borrow;

use crate::api::keys::VerifyKeyRequest;
use crate::auth::RootScope;
use crate::snapshot::KeySnapshot;
use crate::wire::{ServedBy, VerificationEvent};

use super::Verdict;

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

impl Verdict {
    /// The snapshot an event may name: the looked-up key only when the verdict found it.
    /// A NOT_FOUND for another workspace's key must not put that workspace's API and
    /// identity ids into the caller's analytics. Every recorder goes through here.
    pub fn recordable_key<K: Borrow<KeySnapshot>>(&self, snapshot: Option<K>) -> Option<K> {
        snapshot.filter(|_| self.data.key_id.is_some())
    }

    /// The analytics event for this decision.
    pub fn event(&self, at: EventContext<'_>) -> VerificationEvent {
        let key = self.recordable_key(at.snapshot);
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
