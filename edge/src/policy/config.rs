//! The Worker's settings, from its vars and secrets. Read once per isolate: vars and
//! secrets are fixed for an isolate's life (changing them deploys a new version), and
//! reading eight of them through JS on every request cost a measurable share of a hit.

use keyway_core::freshness::{NotFound, ReloadFails, Rule};
use keyway_core::secret::Secret;

use super::route::RouteMode;
use super::tiers::Tiers;

#[derive(Clone)]
pub struct Config {
    pub origin: String,
    pub secret: Option<Secret>,
    /// Relay `GET /metrics` to the origin (`KEYWAY_PROXY_METRICS=true`); off by default,
    /// since the origin's metrics are for its operator, not for every caller.
    pub proxy_metrics: bool,
    pub fresh_ms: f64,
    pub stale_ms: f64,
    pub route_default: RouteMode,
    pub timeout_ms: u64,
    pub tiers: Tiers,
}

impl Config {
    /// The snapshot tiers' freshness rule. Nothing tells an isolate that a key was
    /// created, so a "not found" counts only while fresh.
    pub fn rule(&self) -> Rule {
        Rule::new(
            self.fresh_ms as u64,
            self.stale_ms as u64,
            NotFound::FreshOnly,
            ReloadFails::Refuse,
        )
    }

    /// The oldest copy the origin may hand out: half the fresh time, so every answer is
    /// fresh here for at least the other half, and a change reaches the edge within one
    /// fresh time of being written, whatever the origin's own cache holds.
    pub fn origin_max_age_ms(&self) -> u32 {
        (self.fresh_ms / 2.0).clamp(0.0, f64::from(u32::MAX)) as u32
    }

    /// `var` reads a plain var; `secret` is `KEYWAY_EDGE_SECRET` from the secret store,
    /// which wins over a var of the same name.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, secret: Option<String>) -> Config {
        let secs = |name: &str, default: f64| {
            var(name)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
                .unwrap_or(default)
        };
        Config {
            origin: var("KEYWAY_ORIGIN_URL")
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
            secret: secret
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
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(3_000),
            tiers: var("KEYWAY_EDGE_TIERS")
                .and_then(|t| Tiers::parse(&t))
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)], secret: Option<&str>) -> Config {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_vars(|n| vars.get(n).cloned(), secret.map(str::to_string))
    }

    #[test]
    fn defaults_work_without_any_var() {
        let c = from(&[], None);
        assert_eq!(c.origin, "");
        assert!(c.secret.is_none() && !c.proxy_metrics);
        assert_eq!(
            (c.fresh_ms, c.stale_ms, c.timeout_ms),
            (10_000.0, 600_000.0, 3_000)
        );
        assert_eq!(c.route_default, RouteMode::Edge);
        assert_eq!(c.tiers, Tiers::ALL);
    }

    #[test]
    fn vars_are_read_and_bad_values_fall_back() {
        let c = from(
            &[
                ("KEYWAY_ORIGIN_URL", "http://o:8080/"),
                ("KEYWAY_EDGE_SECRET", "from-var"),
                ("KEYWAY_PROXY_METRICS", "true"),
                ("KEYWAY_FRESH_SECONDS", "2.5"),
                ("KEYWAY_STALE_SECONDS", "-1"),
                ("KEYWAY_ROUTE", "origin"),
                ("KEYWAY_ORIGIN_TIMEOUT_MS", "oops"),
                ("KEYWAY_EDGE_TIERS", "cache"),
            ],
            Some("from-secret"),
        );
        assert_eq!(c.origin, "http://o:8080");
        assert!(c.secret.as_ref().is_some_and(|s| s.matches("from-secret")));
        assert!(c.proxy_metrics);
        assert_eq!(
            (c.fresh_ms, c.stale_ms, c.timeout_ms),
            (2_500.0, 600_000.0, 3_000)
        );
        assert_eq!(c.route_default, RouteMode::Origin);
        assert!(!c.tiers.memory && c.tiers.cache_api);
    }

    #[test]
    fn an_empty_secret_is_no_secret() {
        assert!(from(&[("KEYWAY_EDGE_SECRET", "")], None).secret.is_none());
        assert!(from(&[("KEYWAY_EDGE_SECRET", "v")], None).secret.is_some());
    }
}
