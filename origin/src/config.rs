//! Settings for `keyway serve`: flags, each with an environment variable, each with a
//! default that works on a laptop.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use keyway_core::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// What becomes of analytics events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EventMode {
    /// Raw rows and the per-minute, hour, day and month rollups.
    #[value(name = "raw+rollup")]
    RawAndRollup,
    /// The rollups only: counts survive, single requests do not.
    Rollup,
    /// Nothing is recorded.
    Off,
}

impl EventMode {
    pub fn raw(self) -> bool {
        self == EventMode::RawAndRollup
    }

    pub fn rollup(self) -> bool {
        self != EventMode::Off
    }
}

/// The event writer thread's CPU priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WriterPriority {
    /// The same as the runtime's workers.
    Normal,
    /// Linux `SCHED_IDLE`: the writer runs only when the workers leave the CPU free, so a
    /// batch never delays a verification. When the CPU stays busy, writes lag, events can
    /// be dropped once the buffer is full, and with SQLite the API's own writes can wait
    /// behind a batch that holds the write lock.
    Idle,
}

/// How long analytics rows are kept, in days per table; 0 keeps them forever.
#[derive(Debug, Clone, Args)]
pub struct Retention {
    /// Days raw events (`key_verifications`, `ratelimit_events`) are kept.
    #[arg(
        long = "retention-raw-days",
        env = "KEYWAY_RETENTION_RAW_DAYS",
        default_value_t = 7.0
    )]
    pub raw_days: f64,
    /// Days per-minute rollups are kept.
    #[arg(
        long = "retention-minute-days",
        env = "KEYWAY_RETENTION_MINUTE_DAYS",
        default_value_t = 7.0
    )]
    pub minute_days: f64,
    /// Days per-hour rollups are kept.
    #[arg(
        long = "retention-hour-days",
        env = "KEYWAY_RETENTION_HOUR_DAYS",
        default_value_t = 30.0
    )]
    pub hour_days: f64,
    /// Days per-day rollups are kept.
    #[arg(
        long = "retention-day-days",
        env = "KEYWAY_RETENTION_DAY_DAYS",
        default_value_t = 365.0
    )]
    pub day_days: f64,
    /// Days per-month rollups are kept.
    #[arg(
        long = "retention-month-days",
        env = "KEYWAY_RETENTION_MONTH_DAYS",
        default_value_t = 365.0
    )]
    pub month_days: f64,
    /// Seconds between retention passes.
    #[arg(
        long = "retention-interval-seconds",
        env = "KEYWAY_RETENTION_INTERVAL_SECONDS",
        default_value_t = 60.0
    )]
    pub interval_seconds: f64,
    /// Rows deleted per statement: small, so no delete holds the database for long.
    #[arg(
        long = "retention-batch",
        env = "KEYWAY_RETENTION_BATCH",
        default_value_t = 5_000
    )]
    pub batch: u32,
}

/// Bounds on one `analytics.get*` query.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyticsLimits {
    /// Most rows one analytics query may return; more is a 422.
    #[arg(
        long = "analytics-max-rows",
        env = "KEYWAY_ANALYTICS_MAX_ROWS",
        default_value_t = 10_000
    )]
    pub max_rows: u64,
    /// Milliseconds one analytics query may run before it is stopped with a 422.
    #[arg(
        long = "analytics-timeout-ms",
        env = "KEYWAY_ANALYTICS_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub timeout_ms: u64,
    /// Analytics queries one root key may have running at once; more is a 429.
    #[arg(
        long = "analytics-per-key",
        env = "KEYWAY_ANALYTICS_PER_KEY",
        default_value_t = 2
    )]
    pub per_key: usize,
}

/// Recoverable keys' master keys. Shared by `serve` and `keyway encryption rotate`.
#[derive(Debug, Clone, Args)]
pub struct EncryptionConfig {
    /// Master key for recoverable keys: 32 random bytes in standard base64 (for example
    /// `openssl rand -base64 32`). Unset: `recoverable: true` is refused with a 412.
    #[arg(
        long = "encryption-key",
        env = "KEYWAY_ENCRYPTION_KEY",
        hide_env_values = true
    )]
    pub current: Option<Secret>,

    /// Earlier master keys, comma-separated: values sealed under them still open, and
    /// `keyway encryption rotate` re-seals them under the current one.
    #[arg(
        long = "old-encryption-keys",
        env = "KEYWAY_ENCRYPTION_KEYS_OLD",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub old: Vec<Secret>,
}

impl EncryptionConfig {
    pub fn vault(&self) -> anyhow::Result<Option<crate::vault::Vault>> {
        Ok(crate::vault::Vault::from_config(
            self.current.as_ref(),
            &self.old,
        )?)
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "KEYWAY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Serve `GET /metrics` on this address only (for example a private interface or
    /// loopback), and not on `--listen`. Unset: `/metrics` is on `--listen`.
    #[arg(long, env = "KEYWAY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Database URL: `sqlite://FILE` (created on first start) or `postgres://…`.
    #[arg(
        long = "database",
        env = "KEYWAY_DATABASE_URL",
        default_value = "sqlite://keyway.db",
        hide_env_values = true
    )]
    pub database_url: Secret,

    /// Cluster mode: Redis (`redis://host:port[/db]`) holds every rate-limit window and
    /// credit balance and carries change notices between replicas. Unset: one node,
    /// counters in memory.
    #[arg(long = "redis", env = "KEYWAY_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,

    /// Every Redis key and channel starts with this, so deployments can share a Redis.
    #[arg(long, env = "KEYWAY_REDIS_PREFIX", default_value = "keyway:")]
    pub redis_prefix: String,

    /// Root key to register on start (hashed; a restart with the same value is a no-op).
    #[arg(long, env = "KEYWAY_ROOT_KEY", hide_env_values = true)]
    pub root_key: Option<Secret>,

    #[command(flatten)]
    pub encryption: EncryptionConfig,

    /// Shared secret for the edge's internal endpoints; unset turns them off.
    #[arg(long, env = "KEYWAY_EDGE_SECRET", hide_env_values = true)]
    pub edge_secret: Option<Secret>,

    /// Seconds a cached key snapshot is fresh.
    #[arg(long, env = "KEYWAY_CACHE_FRESH_SECONDS", default_value_t = 10.0)]
    pub cache_fresh_seconds: f64,

    /// Seconds a stale snapshot may still answer while it is refreshed in the background.
    #[arg(long, env = "KEYWAY_CACHE_STALE_SECONDS", default_value_t = 600.0)]
    pub cache_stale_seconds: f64,

    /// Most rate-limit counters kept in memory (about 100 bytes each). Past it a new
    /// counter takes the place of one whose window has ended, else of one ending soon,
    /// counted in `keyway_ratelimit_counters_evicted_total`. Cluster mode counts in Redis:
    /// bound it there with `maxmemory` and `maxmemory-policy volatile-ttl`.
    #[arg(
        long,
        env = "KEYWAY_RATELIMIT_MAX_COUNTERS",
        default_value_t = 1_000_000
    )]
    pub ratelimit_max_counters: usize,

    /// Most snapshots kept in memory. 0 turns the cache off: every verification reads
    /// the database (the lab's `origin-cold` scenario).
    #[arg(long, env = "KEYWAY_CACHE_CAPACITY", default_value_t = 2_000_000)]
    pub cache_capacity: u64,

    /// Milliseconds between write-behind flushes of credit balances.
    #[arg(long, env = "KEYWAY_CREDIT_FLUSH_MS", default_value_t = 1000)]
    pub credit_flush_ms: u64,

    /// Seconds shutdown keeps retrying credit writes that fail before it gives up and
    /// exits non-zero, naming the balances it could not write.
    #[arg(long, env = "KEYWAY_SHUTDOWN_FLUSH_SECONDS", default_value_t = 5.0)]
    pub shutdown_flush_seconds: f64,

    /// Milliseconds between analytics batch writes.
    #[arg(long, env = "KEYWAY_EVENT_FLUSH_MS", default_value_t = 5000)]
    pub event_flush_ms: u64,

    /// Events per batch write (a full batch is written at once).
    #[arg(long, env = "KEYWAY_EVENT_BATCH_SIZE", default_value_t = 10_000)]
    pub event_batch_size: usize,

    /// Events buffered in memory at most; beyond it events are counted as dropped.
    #[arg(long, env = "KEYWAY_EVENT_BUFFER", default_value_t = 100_000)]
    pub event_buffer: usize,

    /// Analytics: `raw+rollup`, `rollup` (counts only) or `off`.
    #[arg(long, env = "KEYWAY_EVENTS", value_enum, default_value = "raw+rollup")]
    pub events: EventMode,

    /// The event writer's CPU priority: `normal`, or `idle` to yield every CPU the
    /// verifications want (for a server given about one core).
    #[arg(
        long,
        env = "KEYWAY_EVENT_WRITER_PRIORITY",
        value_enum,
        default_value = "normal"
    )]
    pub event_writer_priority: WriterPriority,

    #[command(flatten)]
    pub retention: Retention,

    #[command(flatten)]
    pub analytics_limits: AnalyticsLimits,

    /// Database connections.
    #[arg(long, env = "KEYWAY_DB_CONNECTIONS", default_value_t = 8)]
    pub db_connections: u32,

    /// Log format.
    #[arg(long, env = "KEYWAY_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,
}

/// A number of seconds clamped to [0, one year]: NaN and negatives mean zero and "inf"
/// a year, where `Duration::from_secs_f64` would panic and the cache and timers reject
/// durations of centuries.
fn seconds(s: f64) -> Duration {
    const YEAR: f64 = 365.0 * 86_400.0;
    Duration::try_from_secs_f64(s.clamp(0.0, YEAR)).unwrap_or(Duration::ZERO)
}

impl ServeConfig {
    pub fn fresh(&self) -> Duration {
        seconds(self.cache_fresh_seconds)
    }

    pub fn shutdown_flush(&self) -> Duration {
        seconds(self.shutdown_flush_seconds)
    }

    pub fn stale(&self) -> Duration {
        seconds(self.cache_stale_seconds)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeConfig,
    }

    #[test]
    fn debug_shows_no_secret() {
        let cli = Cli::try_parse_from([
            "keyway",
            "--root-key",
            "root_SECRET_ONE",
            "--edge-secret",
            "edge_SECRET_TWO",
            "--database",
            "postgres://keyway:SECRET_THREE@db/keyway",
        ])
        .unwrap();
        let shown = format!("{:?}", cli.serve);
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_eq!(
            cli.serve.root_key.as_ref().map(Secret::expose),
            Some("root_SECRET_ONE")
        );
    }

    #[test]
    fn odd_durations_do_not_panic() {
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
        assert_eq!(seconds(-1.0), Duration::ZERO);
        assert_eq!(seconds(f64::INFINITY), Duration::from_secs(365 * 86_400));
    }
}
