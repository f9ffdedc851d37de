//! The Worker's entry point: routing, body limits, and the traffic switch. Everything it
//! calls lives in a module named for it.

use std::rc::Rc;

use keyway_core::api::keys::VerifyKeyRequest;
use keyway_core::auth::{bearer_token, root_key_token};
use keyway_core::error::{ApiError, ValidationIssue};
use keyway_core::key::KeyHash;
use keyway_core::validate::{parse_json, verify_request};
use keyway_core::wire::ServedBy;
use worker::{Context, Env, Method, Request, Response, console_log, event};

use crate::policy::config::Config;
use crate::policy::route::{RouteMode, may_proxy};

use super::error::EdgeError;
use super::isolate::{self, config, stats};
use super::origin::{self, VERIFY_PATH, flush_events};
use super::respond::{Accept, bytes_response};
use super::route::route_mode;
use super::tiers::{EdgeSnapshots, snapshots};
use super::verify::{compare_in_shadow, verify_at_edge};

const STATS_PATH: &str = "/_keyway/stats";
const MAX_BODY_BYTES: usize = 1024 * 1024;

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let cfg = config(&env);
    let accept = Accept::of(req.headers());
    let ctx = Rc::new(ctx);
    let tiers = snapshots(&cfg, Some(Rc::clone(&ctx)));
    let result = handle(req, &env, &cfg, &tiers, &ctx, &accept).await;
    flush_events(&cfg, &ctx, false);
    Ok(result.unwrap_or_else(|e| e.into_response(&accept, ServedBy::Edge)))
}

async fn handle(
    mut req: Request,
    env: &Env,
    cfg: &Rc<Config>,
    tiers: &EdgeSnapshots,
    ctx: &Context,
    accept: &Accept,
) -> Result<Response, EdgeError> {
    let path = req.path();
    if path == STATS_PATH {
        return stats_response(&req, cfg);
    }
    if path != VERIFY_PATH || req.method() != Method::Post {
        if !may_proxy(&path, cfg.proxy_metrics) {
            return Err(ApiError::route_not_found(&path).into());
        }
        return proxy(&mut req, cfg).await;
    }
    let mode = route_mode(env, cfg).await;
    if mode == RouteMode::Origin {
        return proxy(&mut req, cfg).await;
    }
    let authorization = req.headers().get("authorization").ok().flatten();
    let body = read_body(&mut req).await?;
    // Validation before anything else: the same 400s as the origin, even without auth.
    let request: VerifyKeyRequest = parse_json(&body)?;
    let query = verify_request(&request)?;
    let hash = request.key.hash();
    // The bearer token is parsed and hashed once per request.
    let root_hash = root_key_token(authorization.as_deref()).map(KeyHash::of);
    if !mode.decides_at_edge(&hash) {
        let (status, answer, content_type) = origin::public_verify(
            cfg,
            &body,
            authorization.as_deref(),
            accept.get().as_deref(),
        )
        .await?;
        if mode == RouteMode::Shadow {
            // Already after the response: nothing in it may wait for later still.
            let shadow = snapshots(cfg, None);
            let compared = answer.clone();
            ctx.wait_until(compare_in_shadow(
                shadow,
                root_hash.ok(),
                request,
                query,
                hash,
                status,
                compared,
            ));
        }
        return Ok(bytes_response(
            status,
            answer,
            &content_type,
            ServedBy::Origin,
            None,
        ));
    }
    verify_at_edge(tiers, root_hash?, accept, request, query.as_ref(), &hash).await
}

async fn proxy(req: &mut Request, cfg: &Config) -> Result<Response, EdgeError> {
    let payload = match req.method() {
        Method::Get | Method::Head => None,
        _ => Some(read_body(req).await?),
    };
    origin::proxy(req, payload, cfg).await
}

async fn read_body(req: &mut Request) -> Result<Vec<u8>, EdgeError> {
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES).into());
    }
    let body = req.bytes().await.map_err(|e| {
        // A body that cannot be read is not an empty body: say so, count it, log it.
        stats(|s| s.body_read_failures += 1);
        console_log!("request body could not be read: {e}");
        EdgeError::Client(ApiError::invalid_input(
            "The request body could not be read.",
            vec![ValidationIssue::new("body", e.to_string())],
        ))
    })?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES).into());
    }
    Ok(body)
}

fn stats_response(req: &Request, cfg: &Config) -> Result<Response, EdgeError> {
    let authorization = req.headers().get("authorization").ok().flatten();
    let token = bearer_token(authorization.as_deref())?;
    if !cfg.secret.as_ref().is_some_and(|s| s.matches(token)) {
        return Err(ApiError::unauthorized("The edge secret is wrong.").into());
    }
    Ok(bytes_response(
        200,
        isolate::stats_json(),
        "application/json",
        ServedBy::Edge,
        None,
    ))
}
