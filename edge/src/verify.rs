//! verifyKey at the edge: decided here from cached snapshots with the core's `decide`,
//! forwarded to the origin when it needs counters, and compared in shadow mode.

use keyway_core::api::keys::VerifyKeyRequest;
use keyway_core::api::{Envelope, Meta};
use keyway_core::auth::RootScope;
use keyway_core::key::{KeyHash, PlainKey};
use keyway_core::permission::Query;
use keyway_core::verify::{EventContext, Stateless, VerifyError, decide};
use keyway_core::wire::{self, Event, ForwardedVerify, ServedBy, VerifyAnswer};
use worker::{Response, console_log};

use crate::error::{Accept, EdgeError, bytes_response};
use crate::lookup::{Stale, Status};
use crate::origin;
use crate::runtime::{Runtime, now_ms, record_event, request_id, stats};
use crate::shadow;

/// The caller's root key, by the hash of its bearer token.
pub async fn authenticate(rt: &Runtime, root_hash: &KeyHash) -> Result<RootScope, EdgeError> {
    let (root, _) = rt.lookup(root_hash, Stale::Reload).await?;
    Ok(RootScope::from_snapshot(root, now_ms() as i64)?)
}

pub async fn verify_at_edge(
    rt: &Runtime,
    root_hash: KeyHash,
    accept: &Accept,
    request: VerifyKeyRequest,
    query: Option<&Query>,
    hash: &KeyHash,
) -> Result<Response, EdgeError> {
    let started = now_ms();
    // Authenticate first: an unknown root key must not make the edge look the key up,
    // nor cost the origin a key lookup. When the root key needs the origin anyway, the
    // key comes in the same call, and only if the root key authenticates there.
    let (root, prefetched) = rt.lookup_root(&root_hash, hash).await?;
    let caller = RootScope::from_snapshot(root, now_ms() as i64)?;
    caller.require_verifier()?;
    let (snapshot, status) = match prefetched {
        Some(snapshot) => (snapshot, Status::Miss),
        None => rt.lookup(hash, Stale::Serve).await?,
    };
    let now = now_ms();
    match decide(
        snapshot.as_deref(),
        &request,
        query,
        &caller,
        now as i64,
        &mut Stateless,
    ) {
        Ok(verdict) => {
            let request_id = request_id();
            record_event(Event::Verification(verdict.event(EventContext {
                time_ms: now as i64,
                request_id: &request_id,
                caller: &caller,
                snapshot: snapshot.as_deref(),
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
                Some(status.as_str()),
            ))
        }
        Err(VerifyError::Api(e)) => Ok(bytes_response(
            e.status,
            e.to_json(&request_id()),
            e.content_type(accept.get().as_deref()),
            ServedBy::Edge,
            Some(status.as_str()),
        )),
        Err(VerifyError::State(_needs_origin)) => {
            // Credits or rate limits: only the origin holds those counters.
            let mut forwarded = request;
            forwarded.key = PlainKey::default();
            let msg = ForwardedVerify {
                root_key_hash: root_hash,
                key_hash: hash.clone(),
                request: forwarded,
            };
            let bytes = origin::internal(&rt.cfg, wire::VERIFY_PATH, wire::encode(&msg)).await?;
            let answer: VerifyAnswer = wire::decode(&bytes)
                .map_err(|e| EdgeError::Origin(format!("bad verify answer: {e}")))?;
            let problem = answer.status == 429
                || (answer.status != 200
                    && accept
                        .get()
                        .is_some_and(|a| a.contains("application/problem+json")));
            let content_type = if problem {
                "application/problem+json"
            } else {
                "application/json"
            };
            Ok(bytes_response(
                answer.status,
                answer.body,
                content_type,
                ServedBy::Origin,
                None,
            ))
        }
    }
}

/// Decides at the edge what the origin already answered, and counts disagreements.
pub async fn compare_in_shadow(
    rt: Runtime,
    root_hash: Option<KeyHash>,
    request: VerifyKeyRequest,
    query: Option<Query>,
    hash: KeyHash,
    origin_status: u16,
    origin_body: Vec<u8>,
) {
    let skipped = || stats(|s| s.shadow_skipped += 1);
    let Some(origin) = shadow::origin_verdict(origin_status, &origin_body) else {
        return skipped();
    };
    let Some(root_hash) = root_hash else {
        return skipped();
    };
    let Ok(caller) = authenticate(&rt, &root_hash).await else {
        return skipped();
    };
    let Ok((snapshot, _)) = rt.lookup(&hash, Stale::Serve).await else {
        return skipped();
    };
    let Ok(verdict) = decide(
        snapshot.as_deref(),
        &request,
        query.as_ref(),
        &caller,
        now_ms() as i64,
        &mut Stateless,
    ) else {
        // Stateful verifications cannot be decided at the edge; nothing to compare.
        return skipped();
    };
    let edge = (verdict.data.valid, verdict.data.code);
    let mismatch = shadow::disagrees(edge, origin);
    stats(|s| {
        s.shadow_compared += 1;
        if mismatch {
            s.shadow_mismatches += 1;
        }
    });
    if mismatch {
        // The key id only, never the key.
        console_log!(
            "shadow mismatch key_id={} edge={} origin={}",
            verdict.data.key_id.as_deref().unwrap_or("-"),
            edge.1.as_str(),
            origin.1.as_str()
        );
    }
}
