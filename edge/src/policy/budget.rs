//! One request's time for the origin. Every origin call a request makes (the root key, the
//! key, the forwarded verification) draws on the same `KEYWAY_ORIGIN_TIMEOUT_MS`, so a
//! request that needs the origin gets its 503 within that time, not within one timeout
//! per call.

/// When the request's time for the origin runs out, on the isolate's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    deadline_ms: f64,
}

impl Budget {
    pub fn new(now_ms: f64, timeout_ms: u64) -> Budget {
        Budget {
            deadline_ms: now_ms + timeout_ms as f64,
        }
    }

    /// The milliseconds left at `now_ms`; `None` once none are.
    pub fn left_ms(&self, now_ms: f64) -> Option<u64> {
        let left = self.deadline_ms - now_ms;
        (left >= 1.0).then_some(left as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_share_one_budget() {
        let b = Budget::new(1_000.0, 3_000);
        assert_eq!(b.left_ms(1_000.0), Some(3_000));
        // A first call took 2.9 s: the second has 100 ms, not another 3 s.
        assert_eq!(b.left_ms(3_900.0), Some(100));
        assert_eq!(b.left_ms(3_999.5), None);
        assert_eq!(b.left_ms(5_000.0), None);
    }
}
