//! What the event buffers hold, and the borrowed rows the writers read from it.
//!
//! An origin verification is kept as the snapshots the request already holds (shared
//! `Arc`s) and a few numbers, not as the wire event's strings. Copying those strings cost
//! about six allocations per request on the runtime's workers and as many frees on the
//! writer's thread, and the writer's reads of strings another core had written up to a
//! flush interval earlier were cache misses: a tenth of its time went to `memcpy` while
//! binding them. Snapshots of hot keys stay in cache. The edge's batches and the rate-limit
//! outcomes arrive as wire events and are kept as they are.

use std::sync::Arc;

use keyway_core::api::keys::{VerifyCode, VerifyKeyRequest};
use keyway_core::auth::RootScope;
use keyway_core::snapshot::KeySnapshot;
use keyway_core::verify::Verdict;
use keyway_core::wire::{Event, RatelimitEvent, ServedBy};

use crate::ids::RequestId;

pub enum Recorded {
    Wire(Event),
    Verified(Verified),
}

/// A verification the origin answered.
pub struct Verified {
    pub time_ms: i64,
    /// The counter, not the rendered id: the writer renders it into a buffer of its own
    /// instead of copying a string another core wrote a flush earlier.
    pub request: RequestId,
    /// The caller, whose workspace the event belongs to.
    pub caller: RootScope,
    /// The key, when the verdict found it (`Verdict::recordable_key`).
    pub key: Option<Arc<KeySnapshot>>,
    pub outcome: VerifyCode,
    pub spent_credits: u64,
    pub tags: Vec<String>,
    pub latency_us: u64,
}

impl Verified {
    /// The event `Verdict::event` would build for the same verification. `snapshot` is
    /// what the lookup found; it is kept only when the verdict found the key.
    pub fn new(
        time_ms: i64,
        request_id: RequestId,
        caller: &RootScope,
        snapshot: Option<Arc<KeySnapshot>>,
        verdict: &Verdict,
        body: &VerifyKeyRequest,
        latency_us: u64,
    ) -> Verified {
        Verified {
            time_ms,
            request: request_id,
            caller: caller.clone(),
            key: verdict.recordable_key(snapshot),
            outcome: verdict.data.code,
            spent_credits: verdict.spent_credits,
            tags: body.tags.clone().unwrap_or_default(),
            latency_us,
        }
    }
}

impl From<Event> for Recorded {
    fn from(e: Event) -> Self {
        Recorded::Wire(e)
    }
}

/// One event as both writers read it, whichever way it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventView<'a> {
    Verification(VerificationView<'a>),
    Ratelimit(&'a RatelimitEvent),
}

/// A request id as the event holds it.
#[derive(Debug, Clone, Copy)]
pub enum RequestIdView<'a> {
    Text(&'a str),
    Origin(RequestId),
}

impl std::fmt::Display for RequestIdView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestIdView::Text(s) => f.write_str(s),
            RequestIdView::Origin(r) => r.fmt(f),
        }
    }
}

/// Equal when they render the same, however each is held.
impl PartialEq for RequestIdView<'_> {
    fn eq(&self, o: &Self) -> bool {
        match (self, o) {
            (RequestIdView::Origin(a), RequestIdView::Origin(b)) => a == b,
            _ => self.to_string() == o.to_string(),
        }
    }
}

impl Eq for RequestIdView<'_> {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationView<'a> {
    pub time_ms: i64,
    pub request_id: RequestIdView<'a>,
    pub workspace_id: &'a str,
    /// Empty when no key was found, as are `key_id` and the wire event's fields.
    pub api_id: &'a str,
    pub key_id: &'a str,
    pub identity_id: Option<&'a str>,
    pub outcome: VerifyCode,
    pub spent_credits: u64,
    pub tags: &'a [String],
    pub latency_us: u64,
    pub served_by: ServedBy,
}

impl Recorded {
    pub fn view(&self) -> EventView<'_> {
        match self {
            Recorded::Wire(e) => EventView::from(e),
            Recorded::Verified(v) => {
                let key = v.key.as_deref();
                EventView::Verification(VerificationView {
                    time_ms: v.time_ms,
                    request_id: RequestIdView::Origin(v.request),
                    workspace_id: v.caller.workspace_id(),
                    api_id: key.map_or("", |k| &k.api_id),
                    key_id: key.map_or("", |k| &k.key_id),
                    identity_id: key.and_then(|k| k.identity.as_deref()).map(|i| &*i.id),
                    outcome: v.outcome,
                    spent_credits: v.spent_credits,
                    tags: &v.tags,
                    latency_us: v.latency_us,
                    served_by: ServedBy::Origin,
                })
            }
        }
    }
}

impl<'a> From<&'a Event> for EventView<'a> {
    fn from(e: &'a Event) -> Self {
        match e {
            Event::Verification(v) => EventView::Verification(VerificationView {
                time_ms: v.time_ms,
                request_id: RequestIdView::Text(&v.request_id),
                workspace_id: &v.workspace_id,
                api_id: &v.api_id,
                key_id: &v.key_id,
                identity_id: v.identity_id.as_deref(),
                outcome: v.outcome,
                spent_credits: v.spent_credits,
                tags: &v.tags,
                latency_us: v.latency_us,
                served_by: v.served_by,
            }),
            Event::Ratelimit(r) => EventView::Ratelimit(r),
        }
    }
}

/// The views of a batch, built once per write.
pub fn views(events: &[Recorded]) -> Vec<EventView<'_>> {
    events.iter().map(Recorded::view).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_core::api::keys::VerifyKeyResponseData;
    use keyway_core::snapshot::IdentitySnapshot;
    use keyway_core::verify::EventContext;

    fn snapshot(key_id: &str, workspace_id: &str) -> KeySnapshot {
        KeySnapshot {
            key_id: key_id.into(),
            api_id: format!("api_of_{key_id}"),
            workspace_id: workspace_id.into(),
            identity: Some(Box::new(IdentitySnapshot {
                id: format!("id_of_{key_id}"),
                external_id: "user".into(),
                meta: None,
            })),
            ..keyway_core::snapshot::fixtures::key()
        }
    }

    /// The origin's own record of a verification reads, row for row, as the wire event
    /// the edge records for the same verdict: found, and not found (where the snapshot the
    /// lookup returned must lend the event nothing).
    #[test]
    fn an_origin_verification_reads_as_its_wire_event() {
        let mut root = snapshot("key_root", "ws_1");
        root.for_workspace_id = Some("ws_1".into());
        let caller = RootScope::from_snapshot(Some(Arc::new(root)), 0).unwrap();
        let key = Arc::new(snapshot("key_1", "ws_other"));
        let request: VerifyKeyRequest =
            serde_json::from_str(r#"{"key":"x","tags":["a","b"]}"#).unwrap();
        let id = RequestId::next();
        for (code, found) in [(VerifyCode::Valid, true), (VerifyCode::NotFound, false)] {
            let mut data = VerifyKeyResponseData::bare(code);
            data.key_id = found.then(|| key.key_id.clone());
            let verdict = Verdict {
                data,
                spent_credits: 3,
            };
            let wire = Event::Verification(verdict.event(EventContext {
                time_ms: 5,
                request_id: &id.render(),
                caller: &caller,
                snapshot: Some(&key),
                request: &request,
                latency_us: 9,
                served_by: ServedBy::Origin,
            }));
            let recorded = Recorded::Verified(Verified::new(
                5,
                id,
                &caller,
                Some(Arc::clone(&key)),
                &verdict,
                &request,
                9,
            ));
            assert_eq!(recorded.view(), EventView::from(&wire), "{code:?}");
            let EventView::Verification(v) = recorded.view() else {
                panic!("a verification")
            };
            assert_eq!(v.workspace_id, "ws_1");
            assert_eq!(v.identity_id.is_some(), found);
        }
    }
}
