//! The Worker: binds the core and the policy modules to the Workers runtime.
//!
//! Errors leave through `EdgeError::into_response`, the one place where failures become
//! HTTP, distinguishing who caused them: the client (4xx, same as the origin's), the
//! origin being unreachable (503), or us (500). The Worker never throws: an exception
//! page would break every client's JSON parsing.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{Either, select};
use keyway_core::api::keys::VerifyKeyRequest;
use keyway_core::api::{Envelope, Meta};
use keyway_core::auth::{RootScope, bearer_token};
use keyway_core::error::ApiError;
use keyway_core::key::KeyHash;
use keyway_core::permission::Query;
use keyway_core::secret::Secret;
use keyway_core::snapshot::KeySnapshot;
use keyway_core::validate::{parse_json, verify_request};
use keyway_core::verify::{EventContext, Stateless, VerifyError, decide};
use keyway_core::wire::{
    self, Event, EventBatch, ForwardedVerify, ServedBy, SnapshotFound, SnapshotLookup, VerifyAnswer,
};
use worker::{
    Cache, Context, Delay, Env, Fetch, Headers, Method, Request, RequestInit, Response,
    console_log, event,
};

use crate::memo::{Freshness, Memo};
use crate::route::{RouteMode, may_proxy};
use crate::shadow;
use crate::tiers::Tiers;

const VERIFY_PATH: &str = "/v2/keys.verifyKey";
const STATS_PATH: &str = "/_keyway/stats";
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// How long a route mode read from KV is reused before KV is asked again.
const ROUTE_TTL_MS: f64 = 2_000.0;
const MEMO_CAPACITY: usize = 50_000;
const EVENT_BATCH: usize = 1_000;
const EVENT_MAX_AGE_MS: f64 = 5_000.0;
const CACHE_URL: &str = "https://keyway-snapshots.internal/v1/";

type Snapshot = Option<Arc<KeySnapshot>>;

#[derive(Clone)]
struct Config {
    origin: String,
    secret: Option<Secret>,
    /// Relay `GET /metrics` to the origin (`KEYWAY_PROXY_METRICS=true`); off by default,
    /// since the origin's metrics are for its operator, not for every caller.
    proxy_metrics: bool,
    fresh_ms: f64,
    stale_ms: f64,
    route_default: RouteMode,
    timeout_ms: u64,
    tiers: Tiers,
}

impl Config {
    fn from_env(env: &Env) -> Config {
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let secs = |name: &str, default: f64| {
            var(name)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(default)
        };
        Config {
            origin: var("KEYWAY_ORIGIN_URL")
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
            secret: env
                .secret("KEYWAY_EDGE_SECRET")
                .ok()
                .map(|s| s.to_string())
                .or_else(|| var("KEYWAY_EDGE_SECRET"))
                .filter(|s| !s.is_empty())
                .map(Secret::new),
            proxy_metrics: var("KEYWAY_PROXY_METRICS").is_some_and(|v| v.trim() == "true"),
            fresh_ms: secs("KEYWAY_FRESH_SECONDS", 10.0) * 1000.0,
            stale_ms: secs("KEYWAY_STALE_SECONDS", 600.0) * 1000.0,
            route_default: var("KEYWAY_ROUTE")
                .and_then(|r| RouteMode::parse(&r))
                .unwrap_or(RouteMode::Edge),
            timeout_ms: var("KEYWAY_ORIGIN_TIMEOUT_MS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(3_000),
            tiers: var("KEYWAY_EDGE_TIERS")
                .and_then(|t| Tiers::parse(&t))
                .unwrap_or_default(),
        }
    }
}

/// The settings, read once per isolate. Vars and secrets are fixed for an isolate's
/// life (changing them deploys a new version), and reading eight of them through JS on
/// every request cost a measurable share of a cache hit.
fn config(env: &Env) -> Rc<Config> {
    CONFIG.with(|c| {
        if let Some(cfg) = c.borrow().as_ref() {
            return cfg.clone();
        }
        let cfg = Rc::new(Config::from_env(env));
        SNAPSHOTS.with(|m| m.borrow_mut().set_times(cfg.fresh_ms, cfg.stale_ms));
        *c.borrow_mut() = Some(cfg.clone());
        cfg
    })
}

#[derive(Default)]
struct Stats {
    shadow_compared: u64,
    shadow_mismatches: u64,
    shadow_skipped: u64,
    events_sent: u64,
    events_lost: u64,
    body_read_failures: u64,
}

thread_local! {
    // An isolate runs one request at a time on one thread; these are its memory.
    static SNAPSHOTS: RefCell<Memo<String, Snapshot>> = RefCell::new(Memo::new(MEMO_CAPACITY, 10_000.0, 600_000.0));
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
    static ROUTE: RefCell<Option<(RouteMode, f64)>> = const { RefCell::new(None) };
    static EVENTS: RefCell<(Vec<Event>, f64)> = const { RefCell::new((Vec::new(), 0.0)) };
    static STATS: RefCell<Stats> = RefCell::new(Stats::default());
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn request_id() -> String {
    let a = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    let b = (js_sys::Math::random() * 4_294_967_296.0) as u64;
    format!("req_{a:08x}{b:08x}")
}

enum EdgeError {
    /// The client's mistake: the same 4xx the origin would give.
    Client(ApiError),
    /// The origin could not be reached in time or answered garbage.
    Origin(String),
    /// The runtime failed us.
    Runtime(String),
}

impl From<ApiError> for EdgeError {
    fn from(e: ApiError) -> Self {
        EdgeError::Client(e)
    }
}

impl From<worker::Error> for EdgeError {
    fn from(e: worker::Error) -> Self {
        EdgeError::Runtime(e.to_string())
    }
}

impl EdgeError {
    fn into_response(self, accept: Option<&str>, served_by: ServedBy) -> Response {
        let e = match self {
            EdgeError::Client(e) => e,
            EdgeError::Origin(why) => {
                console_log!("origin unavailable: {why}");
                ApiError::unavailable(
                    "The Keyway origin is unavailable; this request needs it. Try again shortly.",
                )
            }
            EdgeError::Runtime(why) => {
                console_log!("edge runtime error: {why}");
                ApiError::internal("The edge failed to complete the request.")
            }
        };
        bytes_response(
            e.status,
            e.to_json(&request_id()),
            e.content_type(accept),
            served_by,
            None,
        )
    }
}

fn bytes_response(
    status: u16,
    body: Vec<u8>,
    content_type: &str,
    served_by: ServedBy,
    cache: Option<&str>,
) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", content_type);
    let _ = headers.set("x-keyway-served-by", served_by.as_str());
    if let Some(c) = cache {
        let _ = headers.set("x-keyway-cache", c);
    }
    // `from_bytes` cannot fail for a byte vector; `fixed` is its infallible form.
    Response::builder()
        .with_status(status)
        .with_headers(headers)
        .fixed(body)
}

#[event(start)]
fn start() {
    console_error_panic_hook::set_once();
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let cfg = config(&env);
    let accept = req.headers().get("accept").ok().flatten();
    let ctx = Rc::new(ctx);
    let result = handle(req, &env, &ctx, &cfg).await;
    flush_events(&cfg, &ctx, false);
    Ok(result.unwrap_or_else(|e| e.into_response(accept.as_deref(), ServedBy::Edge)))
}

async fn handle(
    mut req: Request,
    env: &Env,
    ctx: &Rc<Context>,
    cfg: &Config,
) -> Result<Response, EdgeError> {
    let path = req.path();
    if path == STATS_PATH {
        return stats(&req, cfg);
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
    let accept = req.headers().get("accept").ok().flatten();
    let authorization = req.headers().get("authorization").ok().flatten();
    let body = read_body(&mut req).await?;
    // Validation before anything else: the same 400s as the origin, even without auth.
    let request: VerifyKeyRequest = parse_json(&body)?;
    let query = verify_request(&request)?;
    let hash = request.key.hash();
    if !mode.decides_at_edge(&hash) {
        let (status, resp_body, content_type) =
            origin_public_verify(cfg, &body, authorization.as_deref(), accept.as_deref()).await?;
        if mode == RouteMode::Shadow {
            let cfg = cfg.clone();
            let answer = resp_body.clone();
            ctx.wait_until(async move {
                compare_in_shadow(&cfg, authorization, request, query, hash, status, &answer).await;
            });
        }
        return Ok(bytes_response(
            status,
            resp_body,
            &content_type,
            ServedBy::Origin,
            None,
        ));
    }
    verify_at_edge(
        cfg,
        ctx,
        authorization.as_deref(),
        accept.as_deref(),
        request,
        query.as_ref(),
        &hash,
    )
    .await
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
        STATS.with(|s| s.borrow_mut().body_read_failures += 1);
        console_log!("request body could not be read: {e}");
        EdgeError::Client(ApiError::invalid_input(
            "The request body could not be read.",
            vec![keyway_core::error::ValidationIssue::new(
                "body",
                e.to_string(),
            )],
        ))
    })?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES).into());
    }
    Ok(body)
}

async fn authenticate(
    cfg: &Config,
    ctx: Option<&Rc<Context>>,
    authorization: Option<&str>,
) -> Result<RootScope, EdgeError> {
    let token = bearer_token(authorization)?;
    let (root, _) = lookup(cfg, ctx, &KeyHash::of(token), Stale::Reload).await?;
    Ok(RootScope::from_snapshot(root, now_ms() as i64)?)
}

async fn verify_at_edge(
    cfg: &Config,
    ctx: &Rc<Context>,
    authorization: Option<&str>,
    accept: Option<&str>,
    request: VerifyKeyRequest,
    query: Option<&Query>,
    hash: &KeyHash,
) -> Result<Response, EdgeError> {
    let started = now_ms();
    // Authenticate first: an unknown root key must not make the edge look the key up,
    // nor cost the origin a call for it. A cold isolate pays two round trips once; the
    // root key is hot after that.
    let caller = authenticate(cfg, Some(ctx), authorization).await?;
    caller.require_verifier()?;
    let (snapshot, status) = lookup(cfg, Some(ctx), hash, Stale::Serve).await?;
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
                Some(status),
            ))
        }
        Err(VerifyError::Api(e)) => Ok(bytes_response(
            e.status,
            e.to_json(&request_id()),
            e.content_type(accept),
            ServedBy::Edge,
            Some(status),
        )),
        Err(VerifyError::State(_needs_origin)) => {
            // Credits or rate limits: only the origin holds those counters.
            let root_token = bearer_token(authorization)?;
            let mut forwarded = request;
            forwarded.key = keyway_core::key::PlainKey::default();
            let msg = ForwardedVerify {
                root_key_hash: KeyHash::of(root_token),
                key_hash: hash.clone(),
                request: forwarded,
            };
            let bytes = origin_internal(cfg, wire::VERIFY_PATH, wire::encode(&msg)).await?;
            let answer: VerifyAnswer = wire::decode(&bytes)
                .map_err(|e| EdgeError::Origin(format!("bad verify answer: {e}")))?;
            let problem = answer.status == 429
                || (answer.status != 200
                    && accept.is_some_and(|a| a.contains("application/problem+json")));
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

/// What a stale snapshot may do (the origin's cache has the same rule).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stale {
    /// Answer at once and refresh in the background: keys being verified.
    Serve,
    /// Reload before answering, so a revoked root key is refused within the fresh time;
    /// the stale copy answers only if the origin cannot.
    Reload,
}

/// The three tiers: isolate memory, the Cache API, the origin. Returns the snapshot and
/// `hit`, `stale` or `miss`. Both cache tiers judge age by the memo's one freshness rule.
async fn lookup(
    cfg: &Config,
    ctx: Option<&Rc<Context>>,
    hash: &KeyHash,
    stale: Stale,
) -> Result<(Snapshot, &'static str), EdgeError> {
    let key = hash.as_str().to_string();
    let now = now_ms();
    let mut remembered = if cfg.tiers.memory {
        SNAPSHOTS.with(|m| m.borrow_mut().get(&key, now))
    } else {
        None
    };
    if remembered.is_none() && cfg.tiers.cache_api {
        remembered = cache_api_get(&key).await.and_then(|(snap, stored)| {
            SNAPSHOTS.with(|m| {
                let mut m = m.borrow_mut();
                if cfg.tiers.memory {
                    m.put(key.clone(), snap.clone(), stored);
                }
                m.freshness(stored, now).map(|f| (snap, f))
            })
        });
    }
    match remembered {
        Some((snap, Freshness::Fresh)) => Ok((snap, "hit")),
        // "Not found" is never served stale: a new key must not stay unknown.
        Some((snap @ Some(_), Freshness::Stale)) => match stale {
            Stale::Serve => {
                refresh_later(cfg, ctx, hash);
                Ok((snap, "stale"))
            }
            Stale::Reload => match fetch_snapshot(cfg, hash).await {
                Ok(fresh) => Ok((fresh, "miss")),
                Err(EdgeError::Origin(why)) => {
                    console_log!("reloading a stale root key failed, answering from cache: {why}");
                    // While the origin is away no revocation can arrive anyway; re-stamp
                    // the copy so the next requests do not each wait on a dead origin.
                    if cfg.tiers.memory {
                        SNAPSHOTS.with(|m| m.borrow_mut().put(key, snap.clone(), now));
                    }
                    Ok((snap, "stale"))
                }
                Err(e) => Err(e),
            },
        },
        _ => Ok((fetch_snapshot(cfg, hash).await?, "miss")),
    }
}

fn cache_url(key: &str) -> String {
    // Base64's '+', '/' and '=' would be read as URL syntax.
    let safe: String = key
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            '=' => '.',
            c => c,
        })
        .collect();
    format!("{CACHE_URL}{safe}")
}

async fn cache_api_get(key: &str) -> Option<(Snapshot, f64)> {
    let mut resp = Cache::default().get(cache_url(key), true).await.ok()??;
    let stored: f64 = resp
        .headers()
        .get("x-keyway-stored-ms")
        .ok()??
        .parse()
        .ok()?;
    let bytes = resp.bytes().await.ok()?;
    let found: SnapshotFound = wire::decode(&bytes).ok()?;
    Some((found.snapshot.map(Arc::new), stored))
}

async fn cache_api_put(key: String, bytes: Vec<u8>, stored: f64, ttl_ms: f64) {
    let headers = Headers::new();
    let _ = headers.set(
        "cache-control",
        &format!("max-age={}", (ttl_ms / 1000.0).ceil().max(1.0) as u64),
    );
    let _ = headers.set("x-keyway-stored-ms", &format!("{stored}"));
    let _ = headers.set("content-type", wire::CONTENT_TYPE);
    if let Ok(resp) = Response::from_bytes(bytes) {
        let _ = Cache::default()
            .put(cache_url(&key), resp.with_headers(headers))
            .await;
    }
}

/// Loads from the origin and fills both cache tiers.
async fn fetch_snapshot(cfg: &Config, hash: &KeyHash) -> Result<Snapshot, EdgeError> {
    // Stamped with when the request left, not when the answer came back: an answer that
    // left before a change must not pass for one that left after it.
    let started = now_ms();
    let bytes = origin_internal(
        cfg,
        wire::SNAPSHOT_PATH,
        wire::encode(&SnapshotLookup { hash: hash.clone() }),
    )
    .await?;
    let found: SnapshotFound =
        wire::decode(&bytes).map_err(|e| EdgeError::Origin(format!("bad snapshot answer: {e}")))?;
    let ttl = if found.snapshot.is_some() {
        cfg.stale_ms
    } else {
        cfg.fresh_ms
    };
    let snap = found.snapshot.map(Arc::new);
    // A newer answer already in memory wins; then the Cache API keeps it too.
    let newest = !cfg.tiers.memory
        || SNAPSHOTS.with(|m| {
            m.borrow_mut()
                .put(hash.as_str().to_string(), snap.clone(), started)
        });
    if cfg.tiers.cache_api && newest {
        cache_api_put(hash.as_str().to_string(), bytes, started, ttl).await;
    }
    Ok(snap)
}

fn refresh_later(cfg: &Config, ctx: Option<&Rc<Context>>, hash: &KeyHash) {
    let Some(ctx) = ctx else { return };
    let key = hash.as_str().to_string();
    // One refresh per key at a time: under load a stale hot key would otherwise send one
    // origin call per request until the first answer lands.
    if !SNAPSHOTS.with(|m| m.borrow_mut().begin_refresh(&key)) {
        return;
    }
    let cfg = cfg.clone();
    let hash = hash.clone();
    ctx.wait_until(async move {
        if let Err(EdgeError::Origin(why) | EdgeError::Runtime(why)) =
            fetch_snapshot(&cfg, &hash).await
        {
            console_log!("background snapshot refresh failed: {why}");
        }
        SNAPSHOTS.with(|m| m.borrow_mut().end_refresh(&key));
    });
}

/// Runs `fut` with the origin timeout; the origin being slow is the same as it being down.
async fn with_timeout<T>(
    cfg: &Config,
    fut: impl Future<Output = Result<T, EdgeError>>,
) -> Result<T, EdgeError> {
    let fut = Box::pin(fut);
    let delay = Delay::from(Duration::from_millis(cfg.timeout_ms));
    match select(fut, delay).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(EdgeError::Origin(format!(
            "no answer within {} ms",
            cfg.timeout_ms
        ))),
    }
}

fn post_init(headers: Headers, body: &[u8]) -> RequestInit {
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(js_sys::Uint8Array::from(body).into()));
    init
}

/// A postcard call to the origin's internal API; returns the response body.
async fn origin_internal(cfg: &Config, path: &str, body: Vec<u8>) -> Result<Vec<u8>, EdgeError> {
    let secret = cfg
        .secret
        .as_ref()
        .ok_or_else(|| EdgeError::Runtime("KEYWAY_EDGE_SECRET is not set".into()))?;
    let headers = Headers::new();
    headers.set("content-type", wire::CONTENT_TYPE)?;
    headers.set("authorization", &format!("Bearer {}", secret.expose()))?;
    let req = Request::new_with_init(&format!("{}{path}", cfg.origin), &post_init(headers, &body))?;
    with_timeout(cfg, async move {
        let mut resp = Fetch::Request(req)
            .send()
            .await
            .map_err(|e| EdgeError::Origin(e.to_string()))?;
        let status = resp.status_code();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| EdgeError::Origin(e.to_string()))?;
        if status != 200 && status != 204 {
            return Err(EdgeError::Origin(format!("{path} answered {status}")));
        }
        Ok(bytes)
    })
    .await
}

/// The origin's public verifyKey, for split and shadow traffic.
async fn origin_public_verify(
    cfg: &Config,
    body: &[u8],
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
        &post_init(headers, body),
    )?;
    with_timeout(cfg, async move {
        let mut resp = Fetch::Request(req)
            .send()
            .await
            .map_err(|e| EdgeError::Origin(e.to_string()))?;
        let content_type = resp
            .headers()
            .get("content-type")
            .ok()
            .flatten()
            .unwrap_or_else(|| "application/json".into());
        let status = resp.status_code();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| EdgeError::Origin(e.to_string()))?;
        Ok((status, bytes, content_type))
    })
    .await
}

/// Relays any request to the origin unchanged: method, path, query, headers, body, status.
async fn proxy(req: &mut Request, cfg: &Config) -> Result<Response, EdgeError> {
    let url = req.url()?;
    let target = match url.query() {
        Some(q) => format!("{}{}?{q}", cfg.origin, url.path()),
        None => format!("{}{}", cfg.origin, url.path()),
    };
    let method = req.method();
    let headers = Headers::new();
    for (k, v) in req.headers().entries() {
        if !matches!(
            k.as_str(),
            "host" | "content-length" | "cf-connecting-ip" | "x-forwarded-for"
        ) {
            headers.set(&k, &v)?;
        }
    }
    let mut init = RequestInit::new();
    init.with_method(method.clone()).with_headers(headers);
    if !matches!(method, Method::Get | Method::Head) {
        let body = read_body(req).await?;
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    let out = Request::new_with_init(&target, &init)?;
    with_timeout(cfg, async move {
        let mut resp = Fetch::Request(out)
            .send()
            .await
            .map_err(|e| EdgeError::Origin(e.to_string()))?;
        let status = resp.status_code();
        let headers = Headers::new();
        for (k, v) in resp.headers().entries() {
            if !matches!(
                k.as_str(),
                "content-length" | "content-encoding" | "transfer-encoding" | "connection"
            ) {
                headers.set(&k, &v)?;
            }
        }
        headers.set("x-keyway-served-by", "origin")?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| EdgeError::Origin(e.to_string()))?;
        Ok(Response::from_bytes(bytes)?
            .with_status(status)
            .with_headers(headers))
    })
    .await
}

/// The route mode: KV `route`, else the `KEYWAY_ROUTE` var, reused for a couple of
/// seconds so a switch takes effect quickly without a KV read per request.
async fn route_mode(env: &Env, cfg: &Config) -> RouteMode {
    let now = now_ms();
    if let Some((mode, at)) = ROUTE.with(|r| *r.borrow())
        && now - at < ROUTE_TTL_MS
    {
        return mode;
    }
    let from_kv = match env.kv("KEYWAY_CONFIG") {
        Ok(kv) => kv
            .get("route")
            .text()
            .await
            .ok()
            .flatten()
            .and_then(|v| RouteMode::parse(&v)),
        Err(_) => None,
    };
    let mode = from_kv.unwrap_or(cfg.route_default);
    ROUTE.with(|r| *r.borrow_mut() = Some((mode, now)));
    mode
}

async fn compare_in_shadow(
    cfg: &Config,
    authorization: Option<String>,
    request: VerifyKeyRequest,
    query: Option<Query>,
    hash: KeyHash,
    origin_status: u16,
    origin_body: &[u8],
) {
    let Some(origin) = shadow::origin_verdict(origin_status, origin_body) else {
        STATS.with(|s| s.borrow_mut().shadow_skipped += 1);
        return;
    };
    let Ok(caller) = authenticate(cfg, None, authorization.as_deref()).await else {
        STATS.with(|s| s.borrow_mut().shadow_skipped += 1);
        return;
    };
    let Ok((snapshot, _)) = lookup(cfg, None, &hash, Stale::Serve).await else {
        STATS.with(|s| s.borrow_mut().shadow_skipped += 1);
        return;
    };
    match decide(
        snapshot.as_deref(),
        &request,
        query.as_ref(),
        &caller,
        now_ms() as i64,
        &mut Stateless,
    ) {
        Ok(verdict) => {
            let edge = (verdict.data.valid, verdict.data.code);
            let mismatch = shadow::disagrees(edge, origin);
            STATS.with(|s| {
                let mut s = s.borrow_mut();
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
        // Stateful verifications cannot be decided at the edge; nothing to compare.
        Err(_) => STATS.with(|s| s.borrow_mut().shadow_skipped += 1),
    }
}

fn stats(req: &Request, cfg: &Config) -> Result<Response, EdgeError> {
    let authorization = req.headers().get("authorization").ok().flatten();
    let token = bearer_token(authorization.as_deref())?;
    if !cfg.secret.as_ref().is_some_and(|s| s.matches(token)) {
        return Err(ApiError::unauthorized("The edge secret is wrong.").into());
    }
    let body = STATS.with(|s| {
        let s = s.borrow();
        serde_json::json!({
            "shadowCompared": s.shadow_compared,
            "shadowMismatches": s.shadow_mismatches,
            "shadowSkipped": s.shadow_skipped,
            "eventsSent": s.events_sent,
            "eventsLost": s.events_lost,
            "bodyReadFailures": s.body_read_failures,
            "cachedSnapshots": SNAPSHOTS.with(|m| m.borrow().len()),
        })
    });
    Ok(bytes_response(
        200,
        body.to_string().into_bytes(),
        "application/json",
        ServedBy::Edge,
        None,
    ))
}

fn record_event(event: Event) {
    EVENTS.with(|e| {
        let mut e = e.borrow_mut();
        if e.0.is_empty() {
            e.1 = now_ms();
        }
        e.0.push(event);
    });
}

/// Ships the isolate's events once a batch is full or old enough. What is buffered when
/// an isolate is evicted is lost: at most one batch or five seconds of edge decisions.
fn flush_events(cfg: &Config, ctx: &Rc<Context>, force: bool) {
    let batch = EVENTS.with(|e| {
        let mut e = e.borrow_mut();
        let due = force
            || e.0.len() >= EVENT_BATCH
            || (!e.0.is_empty() && now_ms() - e.1 >= EVENT_MAX_AGE_MS);
        if due {
            std::mem::take(&mut e.0)
        } else {
            Vec::new()
        }
    });
    if batch.is_empty() {
        return;
    }
    let cfg = cfg.clone();
    ctx.wait_until(async move {
        let n = batch.len() as u64;
        match origin_internal(
            &cfg,
            wire::EVENTS_PATH,
            wire::encode(&EventBatch { events: batch }),
        )
        .await
        {
            Ok(_) => STATS.with(|s| s.borrow_mut().events_sent += n),
            Err(EdgeError::Origin(why) | EdgeError::Runtime(why)) => {
                console_log!("dropping {n} analytics events: {why}");
                STATS.with(|s| s.borrow_mut().events_lost += n);
            }
            Err(EdgeError::Client(_)) => STATS.with(|s| s.borrow_mut().events_lost += n),
        }
    });
}
