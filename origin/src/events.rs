//! Analytics events, buffered in memory and written in batches.
//!
//! Verification must never wait on analytics: `record` pushes onto one of several
//! buffers under a short lock and, if the buffers hold `capacity` events, counts the
//! event as dropped. Each thread has its own buffer, so the runtime's workers do not
//! queue on one lock (one global mutex was taken by every verification). It wakes the
//! writer only when a batch fills; otherwise the writer wakes on its interval. (A channel
//! woke the writer for every event: about 5% of a loaded server's CPU went to those
//! cross-thread wake-ups.) On shutdown the writer drains everything.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyway_core::wire::Event;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::EventMode;
use crate::metrics::Metrics;
use crate::store::Store;

struct Buffer {
    shards: Box<[Mutex<Vec<Event>>]>,
    /// Events in the shards, for the capacity check and the batch-full wake-up.
    pending: AtomicUsize,
    full: Notify,
    closed: AtomicBool,
    config: BatchConfig,
    metrics: Arc<Metrics>,
}

impl Buffer {
    fn shard(&self) -> &Mutex<Vec<Event>> {
        thread_local! {
            static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let i = SHARD.with(|s| {
            s.get().unwrap_or_else(|| {
                let i = NEXT.fetch_add(1, Ordering::Relaxed);
                s.set(Some(i));
                i
            })
        });
        &self.shards[i % self.shards.len()]
    }

    /// Takes every buffered event, oldest shard contents first within each shard.
    fn drain(&self) -> Vec<Event> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut events = shard.lock().unwrap_or_else(|p| p.into_inner());
            if out.is_empty() {
                out = std::mem::take(&mut *events);
            } else {
                out.append(&mut events);
            }
        }
        self.pending.fetch_sub(out.len(), Ordering::AcqRel);
        out
    }
}

#[derive(Clone)]
pub struct EventSink {
    buffer: Arc<Buffer>,
}

impl EventSink {
    pub fn record(&self, event: Event) {
        let b = &self.buffer;
        if b.config.mode == EventMode::Off {
            return;
        }
        let before = b.pending.fetch_add(1, Ordering::AcqRel);
        if before >= b.config.capacity || b.closed.load(Ordering::Relaxed) {
            b.pending.fetch_sub(1, Ordering::AcqRel);
            b.metrics.events_dropped.inc();
            return;
        }
        b.shard()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event);
        if before + 1 == b.config.batch_size {
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
    pub mode: EventMode,
}

impl EventBatcher {
    pub fn start(store: Store, config: BatchConfig, metrics: Arc<Metrics>) -> EventBatcher {
        let shards = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
        let buffer = Arc::new(Buffer {
            shards: (0..shards).map(|_| Mutex::new(Vec::new())).collect(),
            pending: AtomicUsize::new(0),
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
        // Everything buffered now is written in batches; what arrives meanwhile waits for
        // the next round (a full batch wakes it at once).
        let mut events = buffer.drain();
        let mut left = events.len();
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(buffer.config.batch_size));
            let n = events.len();
            buffer
                .metrics
                .event_buffer_depth
                .set(gauge(buffer.pending.load(Ordering::Relaxed) + left));
            write(&store, events, buffer.config.mode, &buffer.metrics).await;
            left -= n;
            events = rest;
        }
        buffer
            .metrics
            .event_buffer_depth
            .set(gauge(buffer.pending.load(Ordering::Relaxed)));
        if closed {
            return;
        }
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn write(store: &Store, batch: Vec<Event>, mode: EventMode, metrics: &Metrics) {
    let n = batch.len();
    // Retry a few times: losing a batch to one locked-database moment would be silly.
    for attempt in 0..3u32 {
        match store.insert_events(&batch, mode).await {
            Ok(()) => {
                metrics.events_written.inc_by(n as u64);
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
}
