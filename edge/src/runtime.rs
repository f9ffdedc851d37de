//! The isolate's memory and the runtime's side of the snapshot tiers: thread-local state,
//! the clock, the Cache API, the origin lookup, event shipping and the traffic switch.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use keyway_core::key::KeyHash;
use keyway_core::wire::{
    self, Event, EventBatch, PairFound, PairLookup, SnapshotFound, SnapshotLookup,
};
use worker::{Cache, Context, Env, Headers, Response, console_log};

use crate::config::Config;
use crate::error::EdgeError;
use crate::events::EventBuffer;
use crate::lookup::{self, Fetched, Io, Snapshot, SnapshotMemo};
use crate::memo::Memo;
use crate::origin;
use crate::route::RouteMode;
use crate::stats::Stats;

/// How long a route mode read from KV is reused before KV is asked again.
const ROUTE_TTL_MS: f64 = 2_000.0;
const MEMO_CAPACITY: usize = 50_000;
const CACHE_URL: &str = "https://keyway-snapshots.internal/v1/";

thread_local! {
    // An isolate runs one request at a time on one thread; these are its memory.
    static SNAPSHOTS: RefCell<SnapshotMemo> = RefCell::new(Memo::new(MEMO_CAPACITY, 10_000.0, 600_000.0));
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
    static ROUTE: RefCell<Option<(RouteMode, f64)>> = const { RefCell::new(None) };
    static EVENTS: RefCell<EventBuffer> = RefCell::new(EventBuffer::default());
    static STATS: RefCell<Stats> = RefCell::new(Stats::default());
    static REQUEST_IDS: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A random half drawn once per isolate and a counter, as the origin makes its ids:
/// unique without four calls into JS per request.
pub fn request_id() -> String {
    let (prefix, n) = REQUEST_IDS.with(|ids| {
        let (prefix, next) = ids.get().unwrap_or_else(|| {
            // Math.random gives 53 good bits at most, so the half is two 32-bit draws.
            let word = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
            (word() << 32 | word(), 0)
        });
        ids.set(Some((prefix, next.wrapping_add(1))));
        (prefix, next)
    });
    keyway_core::api::request_id(prefix, n)
}

/// The settings, read once per isolate.
pub fn config(env: &Env) -> Rc<Config> {
    CONFIG.with(|c| {
        if let Some(cfg) = c.borrow().as_ref() {
            return cfg.clone();
        }
        let cfg = Rc::new(Config::from_vars(
            |name| env.var(name).ok().map(|v| v.to_string()),
            env.secret("KEYWAY_EDGE_SECRET").ok().map(|s| s.to_string()),
        ));
        SNAPSHOTS.with(|m| m.borrow_mut().set_times(cfg.fresh_ms, cfg.stale_ms));
        *c.borrow_mut() = Some(cfg.clone());
        cfg
    })
}

pub fn stats<R>(f: impl FnOnce(&mut Stats) -> R) -> R {
    STATS.with(|s| f(&mut s.borrow_mut()))
}

pub fn stats_json() -> Vec<u8> {
    let cached = SNAPSHOTS.with(|m| m.borrow().len());
    STATS.with(|s| s.borrow().to_json(cached))
}

/// The runtime for the tiers. Without a context (shadow comparisons, which already run
/// after the response) stale keys are not refreshed.
#[derive(Clone)]
pub struct Runtime {
    pub cfg: Rc<Config>,
    pub ctx: Option<Rc<Context>>,
}

impl Runtime {
    /// The caller's root key, and the key's snapshot when it came in the same call.
    pub async fn lookup_root(
        &self,
        root: &KeyHash,
        key: &KeyHash,
    ) -> Result<(Snapshot, Option<Snapshot>), EdgeError> {
        lookup::lookup_root(self, self.cfg.tiers, root, key).await
    }

    pub async fn lookup(
        &self,
        hash: &KeyHash,
        stale: lookup::Stale,
    ) -> Result<(Snapshot, lookup::Status), EdgeError> {
        lookup::lookup(self, self.cfg.tiers, hash, stale).await
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

impl Io for Runtime {
    type Error = EdgeError;

    fn now_ms(&self) -> f64 {
        now_ms()
    }

    fn memo<R>(&self, f: impl FnOnce(&mut SnapshotMemo) -> R) -> R {
        SNAPSHOTS.with(|m| f(&mut m.borrow_mut()))
    }

    async fn cache_get(&self, key: &str) -> Option<(Snapshot, f64)> {
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

    async fn cache_put(&self, key: &str, bytes: Vec<u8>, stored_ms: f64, ttl_ms: f64) {
        let headers = Headers::new();
        let _ = headers.set(
            "cache-control",
            &format!("max-age={}", (ttl_ms / 1000.0).ceil().max(1.0) as u64),
        );
        let _ = headers.set("x-keyway-stored-ms", &format!("{stored_ms}"));
        let _ = headers.set("content-type", wire::CONTENT_TYPE);
        if let Ok(resp) = Response::from_bytes(bytes) {
            let _ = Cache::default()
                .put(cache_url(key), resp.with_headers(headers))
                .await;
        }
    }

    async fn fetch(&self, hash: &KeyHash) -> Result<Fetched, EdgeError> {
        let started_ms = now_ms();
        let bytes = origin::internal(
            &self.cfg,
            wire::SNAPSHOT_PATH,
            wire::encode(&SnapshotLookup { hash: hash.clone() }),
        )
        .await?;
        let found: SnapshotFound = wire::decode(&bytes)
            .map_err(|e| EdgeError::Origin(format!("bad snapshot answer: {e}")))?;
        Ok(Fetched {
            snapshot: found.snapshot.map(Arc::new),
            started_ms,
            bytes,
        })
    }

    async fn fetch_pair(
        &self,
        root: &KeyHash,
        key: &KeyHash,
    ) -> Result<(Fetched, Option<Fetched>), EdgeError> {
        let started_ms = now_ms();
        let msg = PairLookup {
            root: root.clone(),
            key: key.clone(),
        };
        let bytes = origin::internal(&self.cfg, wire::PAIR_PATH, wire::encode(&msg)).await?;
        let found: PairFound = wire::decode(&bytes)
            .map_err(|e| EdgeError::Origin(format!("bad snapshot pair answer: {e}")))?;
        // Each is kept in the Cache API as the single lookup's answer would be.
        let fetched = |f: SnapshotFound| Fetched {
            bytes: wire::encode(&f),
            snapshot: f.snapshot.map(Arc::new),
            started_ms,
        };
        Ok((fetched(found.root), found.key.map(fetched)))
    }

    fn refresh_later(&self, hash: &KeyHash) {
        let Some(ctx) = &self.ctx else {
            // Nothing will run it: release the claim so a later request can.
            SNAPSHOTS.with(|m| m.borrow_mut().end_refresh(&hash.as_str().to_string()));
            return;
        };
        let io = self.clone();
        let hash = hash.clone();
        ctx.wait_until(async move {
            lookup::refresh(&io, io.cfg.tiers, &hash).await;
        });
    }

    fn unreachable(e: &EdgeError) -> bool {
        matches!(e, EdgeError::Origin(_))
    }

    fn log(&self, message: &str) {
        console_log!("{message}");
    }
}

pub fn record_event(event: Event) {
    let now = now_ms();
    EVENTS.with(|e| e.borrow_mut().record(event, now));
}

/// Ships the isolate's events once a batch is full or old enough.
pub fn flush_events(cfg: &Rc<Config>, ctx: &Context, force: bool) {
    let now = now_ms();
    let batch = EVENTS.with(|e| e.borrow_mut().take_due(now, force));
    if batch.is_empty() {
        return;
    }
    let cfg = Rc::clone(cfg);
    ctx.wait_until(async move {
        let n = batch.len() as u64;
        match origin::internal(
            &cfg,
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

/// The route mode: KV `route`, else the `KEYWAY_ROUTE` var, reused for a couple of
/// seconds so a switch takes effect quickly without a KV read per request.
pub async fn route_mode(env: &Env, cfg: &Config) -> RouteMode {
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
