//! The isolate's counters, served at `/_keyway/stats` to a caller holding the edge secret.

#[derive(Default)]
pub struct Stats {
    pub shadow_compared: u64,
    pub shadow_mismatches: u64,
    pub shadow_skipped: u64,
    pub events_sent: u64,
    pub events_lost: u64,
    pub body_read_failures: u64,
    /// Cache API reads that failed, entries that could not be decoded, and writes that
    /// failed. Each is a miss or a skipped write, never an error for the caller; the
    /// first of each kind in an isolate is logged, the rest only counted.
    pub cache_read_failures: u64,
    pub cache_corrupt_entries: u64,
    pub cache_write_failures: u64,
}

/// A Cache API fault, with what the runtime said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheFault {
    Read(String),
    Corrupt(String),
    Write(String),
}

impl CacheFault {
    fn describe(&self) -> (&'static str, &str) {
        match self {
            CacheFault::Read(why) => ("reading a snapshot from the Cache API failed", why),
            CacheFault::Corrupt(why) => ("a Cache API snapshot entry is corrupt", why),
            CacheFault::Write(why) => ("writing a snapshot to the Cache API failed", why),
        }
    }
}

impl Stats {
    /// Counts `fault`, and returns the line to log when it is the first of its kind.
    pub fn cache_fault(&mut self, fault: &CacheFault) -> Option<String> {
        let count = match fault {
            CacheFault::Read(_) => &mut self.cache_read_failures,
            CacheFault::Corrupt(_) => &mut self.cache_corrupt_entries,
            CacheFault::Write(_) => &mut self.cache_write_failures,
        };
        *count += 1;
        let (what, why) = fault.describe();
        (*count == 1)
            .then(|| format!("{what}: {why} (logged once per isolate; /_keyway/stats counts them)"))
    }

    /// `cached`: the snapshots in memory, and the unknown bearers remembered apart.
    pub fn to_json(&self, cached: (usize, usize)) -> Vec<u8> {
        let (cached_snapshots, unknown_root_keys) = cached;
        serde_json::json!({
            "shadowCompared": self.shadow_compared,
            "shadowMismatches": self.shadow_mismatches,
            "shadowSkipped": self.shadow_skipped,
            "eventsSent": self.events_sent,
            "eventsLost": self.events_lost,
            "bodyReadFailures": self.body_read_failures,
            "cacheReadFailures": self.cache_read_failures,
            "cacheCorruptEntries": self.cache_corrupt_entries,
            "cacheWriteFailures": self.cache_write_failures,
            "cachedSnapshots": cached_snapshots,
            "cachedUnknownRootKeys": unknown_root_keys,
        })
        .to_string()
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_reported() {
        let s = Stats {
            shadow_compared: 1,
            shadow_mismatches: 2,
            shadow_skipped: 3,
            events_sent: 4,
            events_lost: 5,
            body_read_failures: 6,
            cache_read_failures: 8,
            cache_corrupt_entries: 9,
            cache_write_failures: 10,
        };
        let v: serde_json::Value = serde_json::from_slice(&s.to_json((7, 11))).unwrap();
        let got: Vec<u64> = [
            "shadowCompared",
            "shadowMismatches",
            "shadowSkipped",
            "eventsSent",
            "eventsLost",
            "bodyReadFailures",
            "cachedSnapshots",
            "cacheReadFailures",
            "cacheCorruptEntries",
            "cacheWriteFailures",
            "cachedUnknownRootKeys",
        ]
        .iter()
        .map(|k| v[*k].as_u64().unwrap())
        .collect();
        assert_eq!(got, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    }

    #[test]
    fn each_kind_of_cache_fault_is_counted_and_logged_once() {
        let mut s = Stats::default();
        let read = CacheFault::Read("boom".into());
        assert!(s.cache_fault(&read).unwrap().contains("boom"));
        assert_eq!(s.cache_fault(&read), None);
        assert!(s.cache_fault(&CacheFault::Corrupt("x".into())).is_some());
        assert!(s.cache_fault(&CacheFault::Write("y".into())).is_some());
        assert_eq!(
            (
                s.cache_read_failures,
                s.cache_corrupt_entries,
                s.cache_write_failures
            ),
            (2, 1, 1)
        );
    }
}
