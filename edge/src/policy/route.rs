//! The traffic switch: which model answers a verification.

use keyway_core::key::KeyHash;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMode {
    /// Decide at the edge from cached snapshots; forward only what needs counters.
    Edge,
    /// Proxy everything to the origin: the Worker is a thin entry.
    Origin,
    /// This percentage of keys (0..=100) is decided at the edge, the rest proxied.
    Split(u8),
    /// The origin answers; the edge decides in the background and compares.
    Shadow,
}

impl RouteMode {
    /// Parses `edge`, `origin`, `shadow` or `split:N`; `None` for anything else.
    pub fn parse(s: &str) -> Option<RouteMode> {
        match s.trim() {
            "edge" => Some(RouteMode::Edge),
            "origin" => Some(RouteMode::Origin),
            "shadow" => Some(RouteMode::Shadow),
            other => {
                let n: u8 = other.strip_prefix("split:")?.trim().parse().ok()?;
                (n <= 100).then_some(RouteMode::Split(n))
            }
        }
    }

    /// Whether this key's verification is decided at the edge. A split is sticky per key:
    /// the key hash picks the bucket, so one key always sees one model.
    pub fn decides_at_edge(self, hash: &KeyHash) -> bool {
        match self {
            RouteMode::Edge => true,
            RouteMode::Origin | RouteMode::Shadow => false,
            RouteMode::Split(n) => hash.bucket() % 100 < u64::from(n),
        }
    }
}

/// Whether the Worker relays `path` to the origin. An allow list, not a deny list: the
/// public API (`/v2/…`), and `/metrics` only where the operator asks for it
/// (`KEYWAY_PROXY_METRICS=true`). Never `/internal/…`: those are the edge's own calls,
/// and relaying them would hand anyone the edge's access. Anything else is a 404 at the
/// edge. `path` is the URL's parsed path, with dot segments already resolved.
pub fn may_proxy(path: &str, metrics: bool) -> bool {
    (path.starts_with("/v2/") && !path.contains("//")) || (metrics && path == "/metrics")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_the_api_and_nothing_internal() {
        assert!(may_proxy("/v2/apis.createApi", false));
        assert!(may_proxy("/v2/liveness", false));
        assert!(!may_proxy("/internal/v1/snapshot", false));
        assert!(!may_proxy("/internal/v1/snapshot", true));
        assert!(!may_proxy("/v2//internal/v1/snapshot", true));
        assert!(!may_proxy("/metrics", false));
        assert!(may_proxy("/metrics", true));
        assert!(!may_proxy("/metrics/x", true));
        assert!(!may_proxy("/", false));
        assert!(!may_proxy("/v2", false));
    }

    #[test]
    fn parses_modes() {
        assert_eq!(RouteMode::parse("edge"), Some(RouteMode::Edge));
        assert_eq!(RouteMode::parse(" origin\n"), Some(RouteMode::Origin));
        assert_eq!(RouteMode::parse("shadow"), Some(RouteMode::Shadow));
        assert_eq!(RouteMode::parse("split:50"), Some(RouteMode::Split(50)));
        assert_eq!(RouteMode::parse("split:101"), None);
        assert_eq!(RouteMode::parse("split:x"), None);
        assert_eq!(RouteMode::parse("sideways"), None);
    }

    #[test]
    fn split_is_sticky_and_roughly_proportional() {
        let keys: Vec<KeyHash> = (0..2000).map(|i| KeyHash::of(&format!("sk_{i}"))).collect();
        let at_edge = keys
            .iter()
            .filter(|h| RouteMode::Split(30).decides_at_edge(h))
            .count();
        assert!((450..750).contains(&at_edge), "{at_edge} of 2000 at 30%");
        for h in &keys {
            assert_eq!(
                RouteMode::Split(30).decides_at_edge(h),
                RouteMode::Split(30).decides_at_edge(h)
            );
        }
        assert_eq!(
            keys.iter()
                .filter(|h| RouteMode::Split(0).decides_at_edge(h))
                .count(),
            0
        );
        assert_eq!(
            keys.iter()
                .filter(|h| RouteMode::Split(100).decides_at_edge(h))
                .count(),
            2000
        );
    }
}
