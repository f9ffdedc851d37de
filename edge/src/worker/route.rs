//! Where the traffic switch is read: KV `route`, else the `KEYWAY_ROUTE` var.

use worker::Env;

use crate::policy::config::Config;
use crate::policy::route::RouteMode;

use super::isolate::{remember_route, remembered_route};

/// How long a route mode read from KV is reused before KV is asked again: a switch
/// takes effect within this, without a KV read per request.
const ROUTE_TTL_MS: f64 = 2_000.0;

pub async fn route_mode(env: &Env, cfg: &Config) -> RouteMode {
    if let Some(mode) = remembered_route(ROUTE_TTL_MS) {
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
    remember_route(mode);
    mode
}
