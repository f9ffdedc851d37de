//! Cluster mode: several origins on one database share their counters and change notices
//! through Redis.
//!
//! Redis holds the truth for every rate-limit window and every credit balance; one
//! verification is one script call (`admit.lua`), which admits its limits and its credit
//! spend together. Writes that drop cached snapshots publish the hashes they dropped, so
//! every other node drops them too ([`notices`]). Without `--redis` none of this exists
//! and the origin keeps its counters in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::metrics::Metrics;

/// How long a counter call may take before the verification answers 503 instead. A
/// verification that waits longer on its counters is worse than one that fails fast.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis answered something unexpected: {0}")]
    Reply(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

pub struct Cluster {
    conn: ConnectionManager,
    pub(crate) client: redis::Client,
    prefix: String,
    pub(crate) metrics: Arc<Metrics>,
    /// Whether the last call reached Redis: the log says each outage once, not per request.
    up: AtomicBool,
}

impl Cluster {
    /// Connects, failing if Redis cannot be reached at start: a node that starts without
    /// its counters would refuse every stateful verification, so say so at once.
    pub async fn connect(
        url: &str,
        prefix: &str,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Cluster>> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(200));
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| anyhow::anyhow!("connecting to redis timed out"))??;
        Ok(Arc::new(Cluster {
            conn,
            client,
            prefix: prefix.to_string(),
            metrics,
            up: AtomicBool::new(true),
        }))
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        k.push_str(&parts.join(":"));
        k
    }

    /// Records the outcome of one Redis call, logging the moment it changes.
    pub(crate) fn observe<T>(
        &self,
        op: &'static str,
        result: Result<T, ClusterError>,
    ) -> Result<T, ClusterError> {
        match &result {
            Ok(_) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("redis is reachable again");
                }
            }
            Err(e) => {
                self.metrics.redis_error(op);
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::error!(error = %e, op, "redis is unreachable: verifications that need counters answer 503 until it is back");
                }
            }
        }
        result
    }
}
