//! Prometheus metrics for `GET /metrics`.
//!
//! Each server owns its registry (no global), so several servers in one test process do
//! not share counts.

use keyway_core::api::keys::VerifyCode;

use keyway_core::freshness::CacheStatus;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// One counter per verify code, resolved once: `with_label_values` hashes its labels
    /// on every call, which the hot path does not need to pay.
    verifications: Vec<(VerifyCode, IntCounter)>,
    /// Snapshot cache lookups by status, resolved once like `verifications`.
    cache: [IntCounter; 4],
    pub event_buffer_depth: IntGauge,
    pub events_dropped: IntCounter,
    pub events_written: IntCounter,
    /// Rate-limit counters dropped at the bound before their window ended.
    pub counters_evicted: IntCounter,
    pub request_duration: HistogramVec,
    /// Answers with a 5xx status. Each is also logged where it happened, with its cause.
    pub server_errors: IntCounter,
    /// Cluster mode: Redis calls that failed, by operation.
    pub redis_errors: IntCounterVec,
    /// Cluster mode: change notices sent, received, and whole-cache drops after a lost
    /// notice channel (`direction` = sent, received, resync).
    pub notices: IntCounterVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let verifications = IntCounterVec::new(
            Opts::new(
                "keyway_verifications_total",
                "Key verifications by outcome code",
            ),
            &["code"],
        )?;
        let cache = IntCounterVec::new(
            Opts::new(
                "keyway_snapshot_cache_total",
                "Snapshot cache lookups by status (hit, stale, miss)",
            ),
            &["status"],
        )?;
        let event_buffer_depth = IntGauge::new(
            "keyway_event_buffer_depth",
            "Analytics events waiting to be written",
        )?;
        let events_dropped = IntCounter::new(
            "keyway_events_dropped_total",
            "Analytics events dropped (buffer full or write failed)",
        )?;
        let events_written = IntCounter::new(
            "keyway_events_written_total",
            "Analytics events written to the database",
        )?;
        let counters_evicted = IntCounter::new(
            "keyway_ratelimit_counters_evicted_total",
            "Rate-limit counters dropped at --ratelimit-max-counters before their window ended",
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "keyway_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 1.0,
            ]),
            &["route"],
        )?;
        let server_errors = IntCounter::new(
            "keyway_server_errors_total",
            "Answers with a 5xx status (database unreachable, corrupt data, encoding failures)",
        )?;
        let redis_errors = IntCounterVec::new(
            Opts::new(
                "keyway_redis_errors_total",
                "Cluster mode: Redis calls that failed, by operation",
            ),
            &["op"],
        )?;
        let notices = IntCounterVec::new(
            Opts::new(
                "keyway_cluster_notices_total",
                "Cluster mode: change notices sent and received, and cache resyncs",
            ),
            &["direction"],
        )?;
        registry.register(Box::new(redis_errors.clone()))?;
        registry.register(Box::new(notices.clone()))?;
        registry.register(Box::new(verifications.clone()))?;
        registry.register(Box::new(server_errors.clone()))?;
        let verifications = VerifyCode::ALL
            .iter()
            .map(|c| {
                Ok((
                    *c,
                    verifications.get_metric_with_label_values(&[c.as_str()])?,
                ))
            })
            .collect::<prometheus::Result<Vec<_>>>()?;
        registry.register(Box::new(cache.clone()))?;
        let status = |s: CacheStatus| cache.get_metric_with_label_values(&[s.as_str()]);
        let cache = [
            status(CacheStatus::Hit)?,
            status(CacheStatus::Stale)?,
            status(CacheStatus::Reload)?,
            status(CacheStatus::Miss)?,
        ];
        registry.register(Box::new(event_buffer_depth.clone()))?;
        registry.register(Box::new(events_dropped.clone()))?;
        registry.register(Box::new(events_written.clone()))?;
        registry.register(Box::new(counters_evicted.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        Ok(Metrics {
            registry,
            verifications,
            cache,
            event_buffer_depth,
            events_dropped,
            events_written,
            counters_evicted,
            request_duration,
            server_errors,
            redis_errors,
            notices,
        })
    }

    /// The latency histogram of a route; resolved once per route when the router is built.
    pub fn route_histogram(&self, route: &str) -> Histogram {
        self.request_duration.with_label_values(&[route])
    }

    pub fn cache_lookup(&self, status: CacheStatus) {
        let i = match status {
            CacheStatus::Hit => 0,
            CacheStatus::Stale => 1,
            CacheStatus::Reload => 2,
            CacheStatus::Miss => 3,
        };
        self.cache[i].inc();
    }

    pub fn redis_error(&self, op: &str) {
        self.redis_errors.with_label_values(&[op]).inc();
    }

    pub fn notice(&self, direction: &str) {
        self.notices.with_label_values(&[direction]).inc();
    }

    pub fn verified(&self, code: VerifyCode) {
        if let Some((_, c)) = self.verifications.iter().find(|(k, _)| *k == code) {
            c.inc();
        }
    }

    pub fn render(&self) -> prometheus::Result<String> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
