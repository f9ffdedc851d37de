//! verifyKey at the edge: the policy's decision answered here, forwarded to the origin
//! when it needs counters, and compared with the origin's answer in shadow mode.

use keyway_core::api::keys::VerifyKeyRequest;
use keyway_core::api::{Envelope, Meta};
use keyway_core::key::{KeyHash, PlainKey};
use keyway_core::permission::Query;
use keyway_core::verify::{EventContext, Plan};
use keyway_core::wire::{Event, ForwardedVerify, ServedBy};
use worker::{Response, console_log};

use crate::policy::shadow::{self, Comparison};

use super::error::EdgeError;
use super::isolate::{now_ms, record_event, request_id, stats};
use super::origin;
use super::respond::{Accept, bytes_response};
use super::tiers::EdgeSnapshots;

pub async fn verify_at_edge(
    snapshots: &EdgeSnapshots,
    root_hash: KeyHash,
    accept: &Accept,
    request: VerifyKeyRequest,
    query: Option<&Query>,
    hash: &KeyHash,
) -> Result<Response, EdgeError> {
    let started = now_ms();
    let prepared = snapshots.prepare(&root_hash, hash).await?;
    let cache = Some(prepared.status.as_str());
    let now = now_ms();
    match prepared.plan(&request, query, now as i64) {
        Ok(Plan::Decided(verdict)) => {
            let request_id = request_id();
            record_event(Event::Verification(verdict.event(EventContext {
                time_ms: now as i64,
                request_id: &request_id,
                caller: &prepared.caller,
                snapshot: prepared.snapshot.as_deref(),
                request: &request,
                latency_us: ((now - started).max(0.0) * 1000.0) as u64,
                served_by: ServedBy::Edge,
            })));
            let body = serde_json::to_vec(&Envelope {
                meta: Meta { request_id },
                data: verdict.data,
            })
            .map_err(|e| EdgeError::Runtime(e.to_string()))?;
            Ok(bytes_response(
                200,
                body,
                "application/json",
                ServedBy::Edge,
                cache,
            ))
        }
        Err(e) => Ok(bytes_response(
            e.status,
            e.to_json(&request_id()),
            e.content_type(accept.get().as_deref()),
            ServedBy::Edge,
            cache,
        )),
        Ok(Plan::Admit(_)) => {
            // Credits or rate limits: only the origin holds those counters.
            let mut forwarded = request;
            forwarded.key = PlainKey::default();
            let msg = ForwardedVerify {
                root_key_hash: root_hash,
                key_hash: hash.clone(),
                request: forwarded,
                accept: accept.get(),
            };
            let answer = origin::forward_verify(&snapshots.origin, &msg).await?;
            Ok(bytes_response(
                answer.status,
                answer.body,
                &answer.content_type,
                ServedBy::Origin,
                None,
            ))
        }
    }
}

/// Decides at the edge what the origin already answered, and counts disagreements.
pub async fn compare_in_shadow(
    snapshots: EdgeSnapshots,
    root_hash: Option<KeyHash>,
    request: VerifyKeyRequest,
    query: Option<Query>,
    hash: KeyHash,
    origin_status: u16,
    origin_body: Vec<u8>,
) {
    let comparison = match (
        shadow::origin_verdict(origin_status, &origin_body),
        root_hash,
    ) {
        (Some(origin), Some(root_hash)) => match snapshots.prepare(&root_hash, &hash).await {
            Ok(prepared) => shadow::compare(
                prepared.plan(&request, query.as_ref(), now_ms() as i64),
                origin,
            ),
            Err(_) => Comparison::Skipped,
        },
        _ => Comparison::Skipped,
    };
    stats(|s| s.count_shadow(&comparison));
    if let Comparison::Mismatch {
        key_id,
        edge,
        origin,
    } = comparison
    {
        console_log!(
            "shadow mismatch key_id={} edge={} origin={}",
            key_id.as_deref().unwrap_or("-"),
            edge.as_str(),
            origin.as_str()
        );
    }
}
