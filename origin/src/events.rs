//! Analytics events, buffered in memory and written in batches.
//!
//! Verification must never wait on analytics: `record` only tries to enqueue, and a full
//! buffer counts the event as dropped. One task drains the buffer into the database every
//! flush interval or whenever a batch fills, and drains it completely on shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keyway_core::wire::Event;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

impl EventSink {
    pub fn record(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) => self.metrics.event_buffer_depth.inc(),
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.metrics.events_dropped.inc();
            }
        }
    }
}

pub struct EventBatcher {
    pub sink: EventSink,
    task: JoinHandle<()>,
}

#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    pub capacity: usize,
    pub batch_size: usize,
    pub interval: Duration,
}

impl EventBatcher {
    pub fn start(store: Store, config: BatchConfig, metrics: Arc<Metrics>) -> EventBatcher {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let sink = EventSink {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            metrics: Arc::clone(&metrics),
        };
        let task = tokio::spawn(run(store, rx, config, metrics));
        EventBatcher { sink, task }
    }

    /// Stops accepting, writes everything buffered, and waits for the writer to finish.
    pub async fn shutdown(self) {
        let EventBatcher { sink, task } = self;
        drop(sink);
        if let Err(e) = task.await {
            tracing::error!(error = %e, "event writer task failed");
        }
    }
}

async fn run(
    store: Store,
    mut rx: mpsc::Receiver<Event>,
    config: BatchConfig,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<Event> = Vec::with_capacity(config.batch_size);
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = rx.recv() => match received {
                Some(e) => {
                    batch.push(e);
                    if batch.len() >= config.batch_size {
                        write(&store, &mut batch, &metrics).await;
                    }
                }
                None => {
                    // Every sender is gone: shutdown. Write what is left and stop.
                    write(&store, &mut batch, &metrics).await;
                    return;
                }
            },
            _ = tick.tick() => write(&store, &mut batch, &metrics).await,
        }
    }
}

async fn write(store: &Store, batch: &mut Vec<Event>, metrics: &Metrics) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len();
    // Retry a few times: losing a batch to one locked-database moment would be silly.
    for attempt in 0..3u32 {
        match store.insert_events(batch).await {
            Ok(()) => {
                metrics.events_written.inc_by(n as u64);
                metrics.event_buffer_depth.sub(n as i64);
                batch.clear();
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, attempt, events = n, "writing analytics events failed");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await;
            }
        }
    }
    tracing::error!(
        events = n,
        "dropping an analytics batch after repeated write failures"
    );
    metrics.events_dropped.inc_by(n as u64);
    metrics.event_buffer_depth.sub(n as i64);
    batch.clear();
}
