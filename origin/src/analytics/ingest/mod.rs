//! Analytics events, buffered in memory and written in batches.
//!
//! Verification must never wait on analytics: `record` pushes onto one of several
//! buffers under a short lock and, if the buffers hold `capacity` events, counts the
//! event as dropped. Each thread has its own buffer, so the runtime's workers do not
//! queue on one lock (one global mutex was taken by every verification). It wakes the
//! writer only when a batch fills; otherwise the writer wakes on its interval. (A channel
//! woke the writer for every event: about 5% of a loaded server's CPU went to those
//! cross-thread wake-ups.) On shutdown the writer drains everything. The writer is a
//! thread of its own, writing through a [`Writer`].

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::config::{EventMode, WriterPriority};
use crate::metrics::Metrics;

mod recorded;
pub mod retention;
pub mod rollup;
pub(crate) mod sql;
mod sqlite;
mod writer;

pub use recorded::{EventView, Recorded, RequestIdView, VerificationView, Verified, views};
pub use writer::Writer;

struct Buffer {
    shards: Box<[Mutex<Vec<Recorded>>]>,
    /// Events in the shards, for the capacity check and the batch-full wake-up.
    pending: AtomicUsize,
    /// The writer's thread, unparked when a batch fills.
    writer: OnceLock<std::thread::Thread>,
    closed: AtomicBool,
    config: BatchConfig,
    metrics: Arc<Metrics>,
}

impl Buffer {
    fn wake(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }

    fn shard(&self) -> &Mutex<Vec<Recorded>> {
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
    fn drain(&self) -> Vec<Recorded> {
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
    pub fn record(&self, event: impl Into<Recorded>) {
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
            .push(event.into());
        if before + 1 == b.config.batch_size {
            b.wake();
        }
    }
}

pub struct EventBatcher {
    pub sink: EventSink,
    thread: std::thread::JoinHandle<()>,
}

#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    pub capacity: usize,
    pub batch_size: usize,
    pub interval: Duration,
    pub mode: EventMode,
    pub priority: WriterPriority,
}

impl EventBatcher {
    /// Starts the writer on a thread of its own, off the runtime's workers: building and
    /// binding a batch is CPU work that delayed the requests queued behind it.
    pub fn start(
        writer: Writer,
        config: BatchConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<EventBatcher> {
        let shards = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
        let buffer = Arc::new(Buffer {
            shards: (0..shards).map(|_| Mutex::new(Vec::new())).collect(),
            pending: AtomicUsize::new(0),
            writer: OnceLock::new(),
            closed: AtomicBool::new(false),
            config,
            metrics,
        });
        let b = Arc::clone(&buffer);
        let thread = std::thread::Builder::new()
            .name("keyway-events".into())
            .spawn(move || run(writer, &b))?;
        let _ = buffer.writer.set(thread.thread().clone());
        Ok(EventBatcher {
            sink: EventSink { buffer },
            thread,
        })
    }

    /// Stops accepting, writes everything buffered, and waits for the writer to finish.
    pub async fn shutdown(self) {
        self.sink.buffer.closed.store(true, Ordering::Relaxed);
        self.sink.buffer.wake();
        let thread = self.thread;
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(())) => {}
            _ => tracing::error!("the event writer thread failed"),
        }
    }
}

fn run(mut writer: Writer, buffer: &Buffer) {
    if buffer.config.priority == WriterPriority::Idle {
        set_idle_priority();
    }
    loop {
        // Woken early when a batch fills or at shutdown; an unpark that came before
        // this park makes it return at once, so no wake-up is lost.
        std::thread::park_timeout(buffer.config.interval);
        let closed = buffer.closed.load(Ordering::Relaxed);
        // Everything buffered now is written in batches; what arrives meanwhile waits for
        // the next round (a full batch wakes it at once).
        let events = buffer.drain();
        let mut left = events.len();
        // Batches are slices of what was drained: splitting the Vec instead copied the
        // rest of it once per batch.
        for batch in events.chunks(buffer.config.batch_size) {
            buffer
                .metrics
                .event_buffer_depth
                .set(gauge(buffer.pending.load(Ordering::Relaxed) + left));
            write(&mut writer, batch, buffer.config.mode, &buffer.metrics);
            left -= batch.len();
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

/// Puts the calling thread in Linux's `SCHED_IDLE` class. Measured with the server on
/// one core at half its maximum rate, a batch at normal priority held the core for a
/// scheduler slice at a time while verifications queued: p99 2.4 to 3.7 ms against 0.9
/// to 1.5 ms with the writer idle (README, "The server on a core of its own").
fn set_idle_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `sched_param` is plain integers (musl's has more fields than glibc's),
        // and all zeros is the priority SCHED_IDLE requires.
        let param: libc::sched_param = unsafe { std::mem::zeroed() };
        // SAFETY: pid 0 is the calling thread, and `param` outlives the call.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc == 0 {
            tracing::info!("the event writer runs at idle priority");
        } else {
            tracing::warn!(error = %std::io::Error::last_os_error(), "could not give the event writer idle priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::warn!(
        "idle priority for the event writer exists only on Linux; it runs at normal priority"
    );
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn write(writer: &mut Writer, batch: &[Recorded], mode: EventMode, metrics: &Metrics) {
    let (written, dropped) = write_batch(batch, |part| writer.write(part, mode));
    metrics.events_written.inc_by(written as u64);
    metrics.events_dropped.inc_by(dropped as u64);
}

/// Writes that the whole batch may fail before it is split in search of a bad row.
const WHOLE_TRIES: u32 = 3;
/// Writes the search for bad rows may make: a handful of bad rows in a batch of 10,000 are
/// found in about 14 writes each, while a database that refuses everything costs no more
/// than this before the rest is dropped.
const SPLIT_WRITES: u32 = 64;

/// Writes `batch` through `write`, whole or, if it keeps failing, in halves, so that a
/// row the database refuses is dropped alone and not with its neighbours. Answers how
/// many events were written and how many dropped.
fn write_batch(
    batch: &[Recorded],
    mut write: impl FnMut(&[Recorded]) -> anyhow::Result<()>,
) -> (usize, usize) {
    // Retry a few times: losing a batch to one locked-database moment would be silly.
    for attempt in 0..WHOLE_TRIES {
        match write(batch) {
            Ok(()) => return (batch.len(), 0),
            Err(e) => {
                tracing::warn!(error = %e, attempt, events = batch.len(), "writing analytics events failed");
                std::thread::sleep(Duration::from_millis(100 * u64::from(attempt + 1)));
            }
        }
    }
    let mut budget = SPLIT_WRITES;
    let (written, dropped) = split(batch, &mut write, &mut budget);
    if dropped > 0 {
        tracing::error!(
            written,
            dropped,
            "dropping analytics events the database refused"
        );
    }
    (written, dropped)
}

/// One half at a time, down to single rows, while the budget lasts.
fn split(
    batch: &[Recorded],
    write: &mut impl FnMut(&[Recorded]) -> anyhow::Result<()>,
    budget: &mut u32,
) -> (usize, usize) {
    if batch.len() <= 1 || *budget == 0 {
        return (0, batch.len());
    }
    let (a, b) = batch.split_at(batch.len() / 2);
    let mut out = (0, 0);
    for half in [a, b] {
        let (w, d) = if *budget == 0 {
            (0, half.len())
        } else {
            *budget -= 1;
            match write(half) {
                Ok(()) => (half.len(), 0),
                Err(_) => split(half, write, budget),
            }
        };
        out = (out.0 + w, out.1 + d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_core::wire::{Event, RatelimitEvent, ServedBy};

    fn event(i: usize, identifier: &str) -> Recorded {
        Recorded::Wire(Event::Ratelimit(RatelimitEvent {
            time_ms: 1_700_000_000_000 + i as i64,
            request_id: format!("req_{i}"),
            workspace_id: "ws".into(),
            namespace: "ns".into(),
            identifier: identifier.into(),
            passed: true,
            latency_us: 1,
            served_by: ServedBy::Origin,
        }))
    }

    fn identifier(r: &Recorded) -> &str {
        match r {
            Recorded::Wire(Event::Ratelimit(e)) => &e.identifier,
            _ => "",
        }
    }

    #[test]
    fn a_refused_row_is_dropped_alone() {
        let mut batch: Vec<Recorded> = (0..1000).map(|i| event(i, "ok")).collect();
        batch[417] = event(417, "bad");
        batch[903] = event(903, "bad");
        let mut stored = 0;
        let mut writes = 0;
        let (written, dropped) = write_batch(&batch, |part| {
            writes += 1;
            if part.iter().any(|r| identifier(r) == "bad") {
                anyhow::bail!("refused");
            }
            stored += part.len();
            Ok(())
        });
        assert_eq!((written, dropped), (998, 2));
        assert_eq!(stored, 998);
        assert!(writes <= WHOLE_TRIES + 2 * 2 * 10, "{writes} writes");
    }

    #[test]
    fn a_database_that_refuses_everything_costs_a_bounded_number_of_writes() {
        let batch: Vec<Recorded> = (0..10_000).map(|i| event(i, "ok")).collect();
        let mut writes = 0;
        let (written, dropped) = write_batch(&batch, |_| {
            writes += 1;
            anyhow::bail!("down")
        });
        assert_eq!((written, dropped), (0, 10_000));
        assert!(writes <= WHOLE_TRIES + SPLIT_WRITES, "{writes} writes");
    }

    /// The real thing: PostgreSQL refuses a NUL in text, and only that row is lost.
    #[test]
    fn postgres_refuses_one_row_and_keeps_the_rest() {
        use keyway_testkit::db::{Backend, TestDb};
        let rt = tokio::runtime::Runtime::new().unwrap();
        let db = rt.block_on(TestDb::new(Backend::Postgres)).unwrap();
        let store = rt
            .block_on(crate::store::Store::connect(&db.url, 2))
            .unwrap();
        let mut writer = Writer::Store {
            store,
            runtime: rt.handle().clone(),
        };
        let mut batch: Vec<Recorded> = (0..50).map(|i| event(i, "ok")).collect();
        batch[20] = event(20, "a\0b");
        let (written, dropped) =
            write_batch(&batch, |part| writer.write(part, EventMode::RawAndRollup));
        assert_eq!((written, dropped), (49, 1));
        let n: i64 = rt.block_on(async {
            let pool = db.pool().await.unwrap();
            sqlx::query_scalar("SELECT COUNT(*) FROM ratelimit_events")
                .fetch_one(&pool)
                .await
                .unwrap()
        });
        assert_eq!(n, 49);
    }
}
