//! Calls to the origin: the internal postcard API (snapshots, forwarded verifications,
//! events), its public verifyKey (split and shadow traffic) and the proxy for every other
//! `/v2/*` route, each under the origin timeout.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{Either, select};
use keyway_core::key::KeyHash;
use keyway_core::wire::{
    self, EventBatch, ForwardedVerify, PairFound, PairLookup, SnapshotFound, SnapshotLookup,
    VerifyAnswer,
};
use worker::{Context, Delay, Fetch, Headers, Method, Request, RequestInit, Response, console_log};

use crate::policy::budget::Budget;
use crate::policy::config::Config;
use crate::policy::lookup::{Fetched, Origin};

use super::error::EdgeError;
use super::isolate::{now_ms, stats, take_due_events};

pub const VERIFY_PATH: &str = "/v2/keys.verifyKey";

/// Runs `fut` within what is left of the request's budget; the origin being slow is the
/// same as it being down.
async fn within<T>(
    budget: Budget,
    fut: impl Future<Output = Result<T, EdgeError>>,
) -> Result<T, EdgeError> {
    let Some(left) = budget.left_ms(now_ms()) else {
        return Err(EdgeError::Origin(
            "the request's time for the origin is spent".into(),
        ));
    };
    let fut = Box::pin(fut);
    let delay = Delay::from(Duration::from_millis(left));
    match select(fut, delay).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(EdgeError::Origin(format!("no answer within {left} ms"))),
    }
}

/// A budget of its own, for a call that is the only one its request makes.
fn alone(cfg: &Config) -> Budget {
    Budget::new(now_ms(), cfg.timeout_ms)
}

fn post_init(headers: Headers, body: &[u8]) -> RequestInit {
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(js_sys::Uint8Array::from(body).into()));
    init
}

async fn send(req: Request) -> Result<Response, EdgeError> {
    Fetch::Request(req)
        .send()
        .await
        .map_err(|e| EdgeError::Origin(e.to_string()))
}

async fn body(resp: &mut Response) -> Result<Vec<u8>, EdgeError> {
    resp.bytes()
        .await
        .map_err(|e| EdgeError::Origin(e.to_string()))
}

/// A postcard call to the origin's internal API; returns the response body.
pub async fn internal(
    cfg: &Config,
    budget: Budget,
    path: &str,
    payload: Vec<u8>,
) -> Result<Vec<u8>, EdgeError> {
    let secret = cfg
        .secret
        .as_ref()
        .ok_or_else(|| EdgeError::Runtime("KEYWAY_EDGE_SECRET is not set".into()))?;
    let headers = Headers::new();
    headers.set("content-type", wire::CONTENT_TYPE)?;
    headers.set("authorization", &format!("Bearer {}", secret.expose()))?;
    let req = Request::new_with_init(
        &format!("{}{path}", cfg.origin),
        &post_init(headers, &payload),
    )?;
    within(budget, async move {
        let mut resp = send(req).await?;
        let status = resp.status_code();
        let bytes = body(&mut resp).await?;
        if status != 200 && status != 204 {
            return Err(EdgeError::Origin(format!("{path} answered {status}")));
        }
        Ok(bytes)
    })
    .await
}

/// The origin's public verifyKey, for split and shadow traffic.
pub async fn public_verify(
    cfg: &Config,
    payload: &[u8],
    authorization: Option<&str>,
    accept: Option<&str>,
) -> Result<(u16, Vec<u8>, String), EdgeError> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    if let Some(a) = authorization {
        headers.set("authorization", a)?;
    }
    if let Some(a) = accept {
        headers.set("accept", a)?;
    }
    let req = Request::new_with_init(
        &format!("{}{VERIFY_PATH}", cfg.origin),
        &post_init(headers, payload),
    )?;
    within(alone(cfg), async move {
        let mut resp = send(req).await?;
        let content_type = resp
            .headers()
            .get("content-type")
            .ok()
            .flatten()
            .unwrap_or_else(|| "application/json".into());
        let status = resp.status_code();
        let bytes = body(&mut resp).await?;
        Ok((status, bytes, content_type))
    })
    .await
}

/// Relays any request to the origin unchanged: method, path, query, headers, body, status.
/// `payload` is the already-read body (none for GET and HEAD).
pub async fn proxy(
    req: &Request,
    payload: Option<Vec<u8>>,
    cfg: &Config,
) -> Result<Response, EdgeError> {
    let url = req.url()?;
    let target = match url.query() {
        Some(q) => format!("{}{}?{q}", cfg.origin, url.path()),
        None => format!("{}{}", cfg.origin, url.path()),
    };
    // One copy of the header list in JS, then the few removals, rather than a JS call
    // per header in each direction.
    let headers = req.headers().clone();
    for h in [
        "host",
        "content-length",
        "cf-connecting-ip",
        "x-forwarded-for",
    ] {
        headers.delete(h)?;
    }
    let mut init = RequestInit::new();
    init.with_method(req.method()).with_headers(headers);
    if let Some(payload) = payload {
        init.with_body(Some(js_sys::Uint8Array::from(payload.as_slice()).into()));
    }
    let out = Request::new_with_init(&target, &init)?;
    within(alone(cfg), async move {
        let mut resp = send(out).await?;
        let status = resp.status_code();
        let headers = resp.headers().clone();
        for h in [
            "content-length",
            "content-encoding",
            "transfer-encoding",
            "connection",
        ] {
            headers.delete(h)?;
        }
        headers.set("x-keyway-served-by", "origin")?;
        let bytes = body(&mut resp).await?;
        Ok(Response::from_bytes(bytes)?
            .with_status(status)
            .with_headers(headers))
    })
    .await
}

/// The origin's internal API as the snapshot tiers see it.
#[derive(Clone)]
pub struct OriginApi {
    pub cfg: Rc<Config>,
    /// The request's time for the origin, shared by every call it makes.
    pub budget: Budget,
}

impl Origin for OriginApi {
    type Error = EdgeError;

    async fn snapshot(&self, hash: &KeyHash) -> Result<Fetched, EdgeError> {
        let started_ms = now_ms();
        let msg = SnapshotLookup {
            hash: hash.clone(),
            max_age_ms: self.cfg.origin_max_age_ms(),
        };
        let bytes = internal(
            &self.cfg,
            self.budget,
            wire::SNAPSHOT_PATH,
            wire::encode(&msg),
        )
        .await?;
        let found: SnapshotFound = wire::decode(&bytes)
            .map_err(|e| EdgeError::Origin(format!("bad snapshot answer: {e}")))?;
        Ok(Fetched::answered(found, started_ms))
    }

    async fn pair(
        &self,
        root: &KeyHash,
        key: &KeyHash,
    ) -> Result<(Fetched, Option<Fetched>), EdgeError> {
        let started_ms = now_ms();
        let msg = PairLookup {
            root: root.clone(),
            key: key.clone(),
            max_age_ms: self.cfg.origin_max_age_ms(),
        };
        let bytes = internal(&self.cfg, self.budget, wire::PAIR_PATH, wire::encode(&msg)).await?;
        let found: PairFound = wire::decode(&bytes)
            .map_err(|e| EdgeError::Origin(format!("bad snapshot pair answer: {e}")))?;
        // Each is kept in the Cache API as the single lookup's answer would be.
        let fetched = |f: SnapshotFound| Fetched::answered(f, started_ms);
        Ok((fetched(found.root), found.key.map(fetched)))
    }

    fn unreachable(e: &EdgeError) -> bool {
        matches!(e, EdgeError::Origin(_))
    }

    fn unreachable_error(message: String) -> EdgeError {
        EdgeError::Origin(message)
    }

    fn afresh(&self) -> Self {
        OriginApi {
            cfg: Rc::clone(&self.cfg),
            budget: alone(&self.cfg),
        }
    }
}

/// A verification that needs the origin's counters. The answer carries the origin's
/// status, body and content type (chosen from the caller's `Accept` there), relayed as is.
pub async fn forward_verify(
    origin: &OriginApi,
    msg: &ForwardedVerify,
) -> Result<VerifyAnswer, EdgeError> {
    let bytes = internal(
        &origin.cfg,
        origin.budget,
        wire::VERIFY_PATH,
        wire::encode(msg),
    )
    .await?;
    wire::decode(&bytes).map_err(|e| EdgeError::Origin(format!("bad verify answer: {e}")))
}

/// Ships the isolate's events once a batch is full or old enough.
pub fn flush_events(cfg: &Rc<Config>, ctx: &Context, force: bool) {
    let batch = take_due_events(force);
    if batch.is_empty() {
        return;
    }
    let cfg = Rc::clone(cfg);
    ctx.wait_until(async move {
        let n = batch.len() as u64;
        match internal(
            &cfg,
            alone(&cfg),
            wire::EVENTS_PATH,
            wire::encode(&EventBatch { events: batch }),
        )
        .await
        {
            Ok(_) => stats(|s| s.events_sent += n),
            Err(e) => {
                console_log!("dropping {n} analytics events: {e}");
                stats(|s| s.events_lost += n);
            }
        }
    });
}
