//! The isolate's analytics events, shipped to the origin in batches.
//!
//! A batch leaves once it is full or its oldest event is old enough. What is buffered
//! when an isolate is evicted is lost: at most one batch or five seconds of decisions.

use keyway_core::wire::Event;

pub const BATCH: usize = 1_000;
pub const MAX_AGE_MS: f64 = 5_000.0;

#[derive(Default)]
pub struct EventBuffer {
    events: Vec<Event>,
    first_ms: f64,
}

impl EventBuffer {
    pub fn record(&mut self, event: Event, now_ms: f64) {
        if self.events.is_empty() {
            self.first_ms = now_ms;
        }
        self.events.push(event);
    }

    /// The events due to leave now (all of them), or nothing.
    pub fn take_due(&mut self, now_ms: f64, force: bool) -> Vec<Event> {
        let due = force
            || self.events.len() >= BATCH
            || (!self.events.is_empty() && now_ms - self.first_ms >= MAX_AGE_MS);
        if due {
            std::mem::take(&mut self.events)
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_core::wire::{RatelimitEvent, ServedBy};

    fn event() -> Event {
        Event::Ratelimit(RatelimitEvent {
            time_ms: 0,
            request_id: "req_1".into(),
            workspace_id: "ws".into(),
            namespace: "n".into(),
            identifier: "i".into(),
            passed: true,
            latency_us: 1,
            served_by: ServedBy::Edge,
        })
    }

    #[test]
    fn a_batch_leaves_when_full_or_old() {
        let mut b = EventBuffer::default();
        assert!(b.take_due(0.0, false).is_empty());
        for _ in 0..BATCH - 1 {
            b.record(event(), 100.0);
        }
        assert!(b.take_due(100.0, false).is_empty());
        b.record(event(), 100.0);
        assert_eq!(b.take_due(100.0, false).len(), BATCH);
        b.record(event(), 200.0);
        assert!(b.take_due(200.0 + MAX_AGE_MS - 1.0, false).is_empty());
        assert_eq!(b.take_due(200.0 + MAX_AGE_MS, false).len(), 1);
        b.record(event(), 300.0);
        assert_eq!(b.take_due(300.0, true).len(), 1, "forced");
    }
}
