//! `keyway serve`: wiring, background tasks, and graceful shutdown.
//!
//! Shutdown order matters for durability: stop accepting, let in-flight requests finish
//! (they may still spend credits and record events), then flush credits, then drain the
//! event buffer, then close the database.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cache::SnapshotCache;
use crate::config::ServeConfig;
use crate::events::{BatchConfig, EventBatcher};
use crate::ids;
use crate::ledger::CreditLedger;
use crate::limiter::MemoryCounters;
use crate::metrics::Metrics;
use crate::routes::router;
use crate::state::{AppState, Inner};
use crate::store::{Bootstrap, Store};

pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let store = Store::connect(&config.database_url, config.db_connections).await?;
    let (workspace, boot) = store
        .bootstrap(config.root_key.as_deref(), ids::now_ms())
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
        Bootstrap::Registered => tracing::info!(%workspace, "registered the configured root key"),
        Bootstrap::Existing | Bootstrap::Unchanged => tracing::info!(%workspace, "workspace ready"),
    }

    let metrics = Arc::new(Metrics::new()?);
    let batcher = EventBatcher::start(
        store.clone(),
        BatchConfig {
            capacity: config.event_buffer,
            batch_size: config.event_batch_size.max(1),
            interval: Duration::from_millis(config.event_flush_ms.max(10)),
        },
        Arc::clone(&metrics),
    );
    let state = AppState(Arc::new(Inner {
        store: store.clone(),
        cache: Arc::new(SnapshotCache::new(
            config.cache_capacity,
            config.fresh(),
            config.stale(),
        )),
        counters: Arc::new(MemoryCounters::default()),
        ledger: Arc::new(CreditLedger::default()),
        events: batcher.sink.clone(),
        metrics,
        edge_secret: config.edge_secret.clone().filter(|s| !s.is_empty()),
    }));

    let (stop_tx, stop_rx) = watch::channel(false);
    let background = spawn_background(&state, &config, stop_rx);

    let listener = TcpListener::bind(config.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, database = %redact(&config.database_url), "listening");
    axum::serve(listener, router(state.clone()).into_make_service())
        .with_graceful_shutdown(shutdown_signal())
        .await?;

    tracing::info!("stopped accepting; flushing credits and events");
    let _ = stop_tx.send(true);
    let _ = background.await;
    match state.ledger.flush(&state.store).await {
        Ok(n) => tracing::info!(balances = n, "credit balances flushed"),
        Err(e) => tracing::error!(error = %e, "flushing credit balances failed"),
    }
    let AppState(inner) = state;
    drop(inner);
    batcher.shutdown().await;
    store.close().await;
    tracing::info!("shutdown complete");
    Ok(())
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
                    if let Err(e) = state.ledger.flush(&state.store).await {
                        tracing::warn!(error = %e, "credit write-behind failed; will retry");
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
