//! The snapshot tiers of one request, over this isolate's memory and the runtime's I/O.

use std::rc::Rc;

use worker::Context;

use crate::policy::budget::Budget;
use crate::policy::config::Config;
use crate::policy::lookup::Snapshots;

use super::cache_api::WorkerCache;
use super::isolate::{RequestHost, memory, now_ms};
use super::origin::OriginApi;

pub type EdgeSnapshots = Snapshots<WorkerCache, OriginApi, RequestHost>;

/// The tiers for one request, over this isolate's memory.
pub fn snapshots(cfg: &Rc<Config>, ctx: Option<Rc<Context>>) -> EdgeSnapshots {
    Snapshots {
        tiers: cfg.tiers,
        memory: memory(),
        cache: WorkerCache,
        origin: OriginApi {
            cfg: Rc::clone(cfg),
            budget: Budget::new(now_ms(), cfg.timeout_ms),
        },
        host: RequestHost { ctx },
    }
}
