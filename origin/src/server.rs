//! `keyway serve`: wiring, background tasks, and graceful shutdown.
//!
//! Shutdown order matters for durability: stop accepting, let in-flight requests finish
//! (they may still spend credits and record events), then flush credits, then drain the
//! event buffer, then close the database.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use keyway_core::secret::Secret;

use crate::analytics::Analytics;
use crate::analytics::ingest::retention;
use crate::analytics::ingest::{BatchConfig, EventBatcher, Writer};
use crate::analytics::query::reader::Reader;
use crate::caches::Caches;
use crate::caches::notices::Notices;
use crate::caches::overrides::OverrideCache;
use crate::caches::snapshots::SnapshotCache;
use crate::config::ServeConfig;
use crate::counters::Counters;
use crate::counters::ledger::CreditLedger;
use crate::counters::limiter::MemoryCounters;
use crate::counters::local::Local;
use crate::ids;
use crate::metrics::Metrics;
use crate::routes::{MetricsOn, metrics_router, router};
use crate::state::{AppState, Inner};
use crate::store::{Bootstrap, Store};

/// A server's state, built and bootstrapped but not listening: what `serve` runs, and
/// what tests drive in process through the router.
pub struct Built {
    pub state: AppState,
    pub batcher: EventBatcher,
}

pub async fn build(config: &ServeConfig) -> anyhow::Result<Built> {
    // A root key every request would refuse as malformed is a setup mistake: say so now.
    if let Some(key) = &config.root_key {
        let header = format!("Bearer {}", key.expose());
        if keyway_core::auth::root_key_token(Some(&header)).is_err() {
            anyhow::bail!(
                "KEYWAY_ROOT_KEY must be 1 to {} visible ASCII characters",
                keyway_core::auth::MAX_ROOT_KEY_BYTES
            );
        }
    }
    let store = Store::connect(config.database_url.expose(), config.db_connections).await?;
    let (workspace, boot) = store
        .bootstrap(config.root_key.as_ref().map(Secret::expose), ids::now_ms())
        .await?;
    match boot {
        Bootstrap::Generated(key) => {
            // Printed once, to stderr, never to the log stream: it is the only copy.
            eprintln!(
                "\nNo root key was configured, so one was created. It is shown only this once:\n\n    {}\n\nStore it as KEYWAY_ROOT_KEY or in your secret manager.\n",
                key.expose()
            );
            tracing::info!(%workspace, "generated a bootstrap root key (printed to stderr)");
        }
        Bootstrap::Registered { revoked } => {
            tracing::info!(%workspace, revoked, "registered the configured root key; earlier bootstrap root keys are revoked")
        }
        Bootstrap::Revoked => tracing::warn!(
            %workspace,
            "the configured KEYWAY_ROOT_KEY was revoked and stays revoked; set a new value to rotate it"
        ),
        Bootstrap::Existing | Bootstrap::Unchanged => tracing::info!(%workspace, "workspace ready"),
    }

    let metrics = Arc::new(Metrics::new()?);
    let batcher = EventBatcher::start(
        Writer::for_database(config.database_url.expose(), store.clone())?,
        BatchConfig {
            capacity: config.event_buffer,
            batch_size: config.event_batch_size.max(1),
            interval: Duration::from_millis(config.event_flush_ms.max(10)),
            mode: config.events,
            priority: config.event_writer_priority,
        },
        Arc::clone(&metrics),
    )?;
    let cache = Arc::new(SnapshotCache::new(
        config.cache_capacity,
        config.fresh(),
        config.stale(),
    ));
    let overrides = Arc::new(OverrideCache::new(config.fresh()));
    let (counters, notices) = match &config.redis_url {
        Some(url) => {
            let redis = crate::cluster::Cluster::connect(
                url.expose(),
                &config.redis_prefix,
                Arc::clone(&metrics),
            )
            .await
            .map_err(|e| anyhow::anyhow!("cluster mode: cannot reach redis: {e}"))?;
            let notices = Notices::start(
                Arc::clone(&redis),
                Arc::clone(&cache),
                Arc::clone(&overrides),
            );
            tracing::info!(prefix = %config.redis_prefix, "cluster mode: counters and change notices in redis");
            (Counters::Redis(redis), Some(notices))
        }
        None => (
            Counters::Local(Local {
                limiter: MemoryCounters::with_bound(
                    config.ratelimit_max_counters,
                    metrics.counters_evicted.clone(),
                ),
                ledger: CreditLedger::default(),
            }),
            None,
        ),
    };
    let state = AppState(Arc::new(Inner {
        store: store.clone(),
        caches: Caches {
            snapshots: cache,
            overrides,
            notices,
        },
        counters,
        events: batcher.sink.clone(),
        metrics,
        edge_secret: config.edge_secret.clone().filter(|s| !s.is_empty()),
        analytics: Analytics {
            reader: analytics_reader(config.database_url.expose()).await?,
            limits: config.analytics_limits.clone(),
            running: Default::default(),
        },
        vault: config.encryption.vault()?,
    }));
    Ok(Built { state, batcher })
}

/// The analytics reader; on PostgreSQL, after its role and policies are in place.
async fn analytics_reader(url: &str) -> anyhow::Result<Reader> {
    let role = if url.starts_with("sqlite:") {
        None
    } else {
        crate::analytics::query::reader::prepare_postgres(url).await?
    };
    Reader::connect(url, role)
}

pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let Built { state, batcher } = build(&config).await?;
    let store = state.store.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let background = spawn_background(&state, &config, stop_rx.clone());
    let retention = retention::spawn(store.clone(), &config.retention, stop_rx.clone());

    let metrics_on = match config.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "metrics listening");
            let app = metrics_router(state.clone());
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.changed().await;
                };
                if let Err(e) = axum::serve(listener, app.into_make_service())
                    .with_graceful_shutdown(stopped)
                    .await
                {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            });
            MetricsOn::Separate
        }
        None => MetricsOn::Api,
    };

    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, database = %redact(config.database_url.expose()), "listening");
    axum::serve(
        listener,
        router(state.clone(), metrics_on).into_make_service(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;

    tracing::info!("stopped accepting; flushing credits and events");
    let _ = stop_tx.send(true);
    let _ = background.await;
    let _ = retention.await;
    let unwritten = flush_credits_for_shutdown(&state, config.shutdown_flush()).await;
    let AppState(inner) = state;
    drop(inner);
    batcher.shutdown().await;
    store.close().await;
    if unwritten.is_empty() {
        tracing::info!("shutdown complete");
        Ok(())
    } else {
        // Exit non-zero so an orchestrator (and the operator) sees that balances were
        // lost, and name each one so it can be restored by hand.
        for u in &unwritten {
            tracing::error!(key_id = %u.key_id, remaining = u.remaining, error = %u.error, "credit balance not written");
        }
        anyhow::bail!(
            "{} credit balance(s) could not be written before shutdown; they are listed above",
            unwritten.len()
        )
    }
}

/// Flushes credits, retrying failures until none remain or `budget` has passed; returns
/// what still could not be written.
async fn flush_credits_for_shutdown(
    state: &AppState,
    budget: Duration,
) -> Vec<crate::counters::ledger::Unwritten> {
    let deadline = tokio::time::Instant::now() + budget;
    loop {
        let report = state.flush_credits().await;
        if report.failed.is_empty() {
            tracing::info!(balances = report.written, "credit balances flushed");
            return Vec::new();
        }
        if tokio::time::Instant::now() >= deadline {
            return report.failed;
        }
        tracing::warn!(
            failed = report.failed.len(),
            "some credit balances could not be written; retrying"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The credit write-behind and the counter sweeper.
fn spawn_background(
    state: &AppState,
    config: &ServeConfig,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    let flush_every = Duration::from_millis(config.credit_flush_ms.max(10));
    tokio::spawn(async move {
        let mut flush = tokio::time::interval(flush_every);
        let mut sweep = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = flush.tick() => {
                    let report = state.flush_credits().await;
                    if let Some(first) = report.failed.first() {
                        tracing::warn!(
                            failed = report.failed.len(),
                            written = report.written,
                            error = %first.error,
                            "credit write-behind could not write every balance; they stay dirty and are retried"
                        );
                    }
                }
                _ = sweep.tick() => state.counters.sweep(ids::now_ms()),
                _ = stop.changed() => return,
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Database URLs may carry passwords; log only scheme and host.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{}", host.split('?').next().unwrap_or(host))
        }
        None => "<database>".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_credentials() {
        assert_eq!(
            super::redact("postgres://user:secret@db:5432/k?x=1"),
            "postgres://db:5432/k"
        );
        assert_eq!(super::redact("sqlite://keyway.db"), "sqlite://keyway.db");
    }
}
