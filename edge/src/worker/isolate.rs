//! The isolate's memory: one thread runs one request at a time, and these live as long
//! as the isolate does. Also its clock, request ids and settings, and the [`Host`] a
//! request gives the policy.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use keyway_core::freshness::{NotFound, ReloadFails, Rule};
use keyway_core::wire::Event;
use worker::{Context, Env, console_log};

use crate::policy::config::Config;
use crate::policy::events::EventBuffer;
use crate::policy::lookup::{Host, Later, Memory, UNKNOWN_ROOTS_CAPACITY};
use crate::policy::memo::Memo;
use crate::policy::route::RouteMode;
use crate::policy::stats::Stats;

const MEMO_CAPACITY: usize = 50_000;

const DEFAULT_RULE: Rule = Rule {
    fresh_ms: 10_000,
    stale_ms: 600_000,
    not_found: NotFound::FreshOnly,
    reload_fails: ReloadFails::Refuse,
};

thread_local! {
    static MEMORY: Memory = Memory::new(
        Memo::new(MEMO_CAPACITY, DEFAULT_RULE),
        Memo::new(UNKNOWN_ROOTS_CAPACITY, DEFAULT_RULE),
    );
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
    static ROUTE: Cell<Option<(RouteMode, f64)>> = const { Cell::new(None) };
    static EVENTS: RefCell<EventBuffer> = RefCell::new(EventBuffer::default());
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
        MEMORY.with(|m| {
            m.memo.borrow_mut().set_rule(cfg.rule());
            m.unknown_roots.borrow_mut().set_rule(cfg.rule());
        });
        *c.borrow_mut() = Some(cfg.clone());
        cfg
    })
}

/// The isolate's memo and stats, shared by every request's tiers.
pub fn memory() -> Memory {
    MEMORY.with(Memory::clone)
}

pub fn stats<R>(f: impl FnOnce(&mut Stats) -> R) -> R {
    MEMORY.with(|m| f(&mut m.stats.borrow_mut()))
}

pub fn stats_json() -> Vec<u8> {
    MEMORY.with(|m| {
        let cached = (m.memo.borrow().len(), m.unknown_roots.borrow().len());
        m.stats.borrow().to_json(cached)
    })
}

pub fn record_event(event: Event) {
    let now = now_ms();
    EVENTS.with(|e| e.borrow_mut().record(event, now));
}

/// The events due to leave now, if any.
pub fn take_due_events(force: bool) -> Vec<Event> {
    let now = now_ms();
    EVENTS.with(|e| e.borrow_mut().take_due(now, force))
}

/// The route mode read last, if it is younger than `ttl_ms`.
pub fn remembered_route(ttl_ms: f64) -> Option<RouteMode> {
    let now = now_ms();
    ROUTE
        .with(Cell::get)
        .filter(|(_, at)| now - at < ttl_ms)
        .map(|(mode, _)| mode)
}

pub fn remember_route(mode: RouteMode) {
    ROUTE.with(|r| r.set(Some((mode, now_ms()))));
}

/// The runtime around one request. Without a context (shadow comparisons, which already
/// run after the response) nothing runs later, so stale keys are not refreshed.
#[derive(Clone)]
pub struct RequestHost {
    pub ctx: Option<Rc<Context>>,
}

impl Host for RequestHost {
    fn now_ms(&self) -> f64 {
        now_ms()
    }

    fn after_response(&self, work: Later) -> bool {
        match &self.ctx {
            Some(ctx) => {
                ctx.wait_until(work);
                true
            }
            None => false,
        }
    }

    fn log(&self, message: &str) {
        console_log!("{message}");
    }

    fn sleep(&self, ms: u64) -> Later {
        Box::pin(worker::Delay::from(std::time::Duration::from_millis(ms)))
    }
}
