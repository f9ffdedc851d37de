//! Analytics events, buffered in memory and written in batches.
//!
//! Verification must never wait on analytics: `record` pushes onto a vector under a
//! short lock and, if the buffer is full, counts the event as dropped. It wakes the
//! writer only when a batch fills; otherwise the writer wakes on its interval. (A channel
//! woke the writer for every event: about 5% of a loaded server's CPU went to those
//! cross-thread wake-ups.) On shutdown the writer drains everything.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyway_core::wire::Event;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::store::Store;

struct Buffer {
    events: Mutex<Vec<Event>>,
    full: Notify,
    closed: AtomicBool,
    config: BatchConfig,
    metrics: Arc<Metrics>,
}

#[derive(Clone)]
pub struct EventSink {
    buffer: Arc<Buffer>,
}

impl EventSink {
    pub fn record(&self, event: Event) {
        let b = &self.buffer;
        let len = {
            let mut events = b.events.lock().unwrap_or_else(|p| p.into_inner());
            if events.len() >= b.config.capacity || b.closed.load(Ordering::Relaxed) {
                drop(events);
                b.metrics.events_dropped.inc();
                return;
            }
            events.push(event);
            events.len()
        };
        b.metrics.event_buffer_depth.inc();
        if len == b.config.batch_size {
            b.full.notify_one();
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
        let buffer = Arc::new(Buffer {
            events: Mutex::new(Vec::with_capacity(config.batch_size.min(config.capacity))),
            full: Notify::new(),
            closed: AtomicBool::new(false),
            config,
            metrics,
        });
        let task = tokio::spawn(run(store, Arc::clone(&buffer)));
        EventBatcher {
            sink: EventSink { buffer },
            task,
        }
    }

    /// Stops accepting, writes everything buffered, and waits for the writer to finish.
    pub async fn shutdown(self) {
        self.sink.buffer.closed.store(true, Ordering::Relaxed);
        self.sink.buffer.full.notify_one();
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "event writer task failed");
        }
    }
}

async fn run(store: Store, buffer: Arc<Buffer>) {
    let mut tick = tokio::time::interval(buffer.config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            _ = buffer.full.notified() => {},
        }
        let closed = buffer.closed.load(Ordering::Relaxed);
        loop {
            let batch: Vec<Event> = {
                let mut events = buffer.events.lock().unwrap_or_else(|p| p.into_inner());
                let n = events.len().min(buffer.config.batch_size);
                events.drain(..n).collect()
            };
            if batch.is_empty() {
                break;
            }
            let full = batch.len() == buffer.config.batch_size;
            write(&store, batch, &buffer.metrics).await;
            if !full {
                break;
            }
        }
        if closed {
            return;
        }
    }
}

async fn write(store: &Store, batch: Vec<Event>, metrics: &Metrics) {
    let n = batch.len();
    // Retry a few times: losing a batch to one locked-database moment would be silly.
    for attempt in 0..3u32 {
        match store.insert_events(&batch).await {
            Ok(()) => {
                metrics.events_written.inc_by(n as u64);
                metrics.event_buffer_depth.sub(n as i64);
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
}
